/* Reading a rank's shard of the dataset with the MPI-IO driver: every rank opens
 * the file collectively and reads only its own hyperslab. The metadata checks give
 * the same answer on every rank (same file), so collective calls stay matched; what
 * can differ per rank (memory, the labels in its slab) is agreed on explicitly. */
#define _DEFAULT_SOURCE /* madvise */
#include "nn/dataset.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nn/comm.h"

void nn_dataset_before_mpi_init(void) { setenv("OMPI_MCA_sharedfp", "^lockedfile", 0); }

void nn_shard_range(long total, int rank, int nranks, long *offset, long *count) {
    long begin = (long)((long long)rank * total / nranks);
    long end = (long)((long long)(rank + 1) * total / nranks);
    *offset = begin;
    *count = end - begin;
}

/* The shard is read at random rows every step: on 2 MiB pages its TLB misses all
 * but disappear. (A hint; the kernel may ignore it.) */
static uint8_t *alloc_samples(size_t bytes) {
    const size_t huge = 2u << 20;
    size_t rounded = (bytes + huge - 1) / huge * huge;
    uint8_t *p = aligned_alloc(huge, rounded ? rounded : huge);
#ifdef MADV_HUGEPAGE
    if (p) madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return p;
}

void nn_shard_free(nn_shard *shard) {
    free(shard->images);
    free(shard->labels);
    memset(shard, 0, sizeof *shard);
}

/* Handles opened while reading, closed in one place. */
typedef struct reader {
    hid_t file, images, labels;
} reader;

static void reader_close(reader *r) {
    if (r->images >= 0) H5Dclose(r->images);
    if (r->labels >= 0) H5Dclose(r->labels);
    if (r->file >= 0) H5Fclose(r->file);
}

/* The root attribute num_classes: exactly one integer in 2..256. */
static int read_num_classes(hid_t file, const char *path, int *classes, nn_error *err) {
    if (H5Aexists(file, "num_classes") <= 0)
        return nn_fail(err, NN_ERR_INPUT, "%s: missing root attribute num_classes", path);
    hid_t attr = H5Aopen(file, "num_classes", H5P_DEFAULT);
    hid_t space = attr < 0 ? -1 : H5Aget_space(attr), type = attr < 0 ? -1 : H5Aget_type(attr);
    int one_integer = space >= 0 && type >= 0 && H5Sget_simple_extent_npoints(space) == 1 &&
                      H5Tget_class(type) == H5T_INTEGER;
    long long value = 0;
    herr_t rc = one_integer ? H5Aread(attr, H5T_NATIVE_LLONG, &value) : -1;
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (attr >= 0) H5Aclose(attr);
    if (!one_integer) return nn_fail(err, NN_ERR_INPUT, "%s: attribute num_classes must be one integer", path);
    if (rc < 0) return nn_fail(err, NN_ERR_INPUT, "%s: cannot read attribute num_classes", path);
    if (value < 2 || value > 256)
        return nn_fail(err, NN_ERR_INPUT, "%s: num_classes = %lld, expected 2..256", path, value);
    *classes = (int)value;
    return NN_OK;
}

/* Opens /split/name and returns its shape; rank must lie in [min_rank, max_rank]. */
static int open_dataset(hid_t file, const char *path, const char *split, const char *name,
                        int min_rank, int max_rank, hid_t *out, hsize_t dims[H5S_MAX_RANK],
                        int *ndims, nn_error *err) {
    char where[64];
    snprintf(where, sizeof where, "/%s/%s", split, name);
    if (H5Lexists(file, split, H5P_DEFAULT) <= 0 || H5Lexists(file, where, H5P_DEFAULT) <= 0)
        return nn_fail(err, NN_ERR_INPUT, "%s: no dataset %s", path, where);
    *out = H5Dopen2(file, where, H5P_DEFAULT);
    if (*out < 0) return nn_fail(err, NN_ERR_INPUT, "%s: cannot open dataset %s", path, where);
    hid_t type = H5Dget_type(*out);
    int integer = H5Tget_class(type) == H5T_INTEGER;
    H5Tclose(type);
    if (!integer) return nn_fail(err, NN_ERR_INPUT, "%s: %s is not an integer dataset", path, where);
    hid_t space = H5Dget_space(*out);
    *ndims = H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    if (*ndims < min_rank || *ndims > max_rank) {
        if (min_rank == max_rank)
            return nn_fail(err, NN_ERR_INPUT, "%s: %s has rank %d, expected %d", path, where, *ndims, min_rank);
        return nn_fail(err, NN_ERR_INPUT, "%s: %s has rank %d, expected %d..%d", path, where,
                       *ndims, min_rank, max_rank);
    }
    return NN_OK;
}

/* What HDF5 said of the call that just failed: its innermost message (the most
 * specific, "inflate() failed"), and whether a filter failed to undo what was
 * stored (the data is damaged: bad input) rather than the reading itself. */
typedef struct hdf5_reason {
    char text[128];
    int damaged;
} hdf5_reason;

static herr_t note_reason(unsigned depth, const H5E_error2_t *e, void *data) {
    hdf5_reason *r = data;
    if (depth == 0) snprintf(r->text, sizeof r->text, "%s", e->desc ? e->desc : "no reason given");
    if (e->maj_num == H5E_PLINE) r->damaged = 1;
    return 0;
}

static void take_reason(hdf5_reason *r) {
    if (r->text[0]) return; /* the first failure's */
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, note_reason, r);
    if (!r->text[0]) snprintf(r->text, sizeof r->text, "no reason given");
}

/* Collective read of rows [offset, offset+count) of a dataset of shape dims,
 * converted to mem_type (HDF5 converts: labels are read as int, images as uint8).
 * A failure's reason goes into *why (taken at once: the next HDF5 call clears it). */
static int read_rows(hid_t dset, int ndims, const hsize_t dims[], long offset, long count,
                     hid_t mem_type, void *buf, hdf5_reason *why) {
    hsize_t start[H5S_MAX_RANK] = {0}, block[H5S_MAX_RANK];
    for (int d = 0; d < ndims; d++) block[d] = dims[d];
    start[0] = (hsize_t)offset;
    block[0] = (hsize_t)count;
    hid_t file_space = H5Dget_space(dset);
    hid_t mem_space = H5Screate_simple(ndims, block, NULL);
    if (count > 0) {
        H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, NULL, block, NULL);
    } else { /* a rank with nothing to read still joins the collective call */
        H5Sselect_none(file_space);
        H5Sselect_none(mem_space);
    }
    hid_t xfer = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(xfer, H5FD_MPIO_COLLECTIVE);
    herr_t rc = H5Dread(dset, mem_type, mem_space, file_space, xfer, buf);
    if (rc < 0) take_reason(why);
    H5Pclose(xfer);
    H5Sclose(mem_space);
    H5Sclose(file_space);
    return rc < 0 ? NN_ERR_RUNTIME : NN_OK;
}

/* Opens the file collectively with the MPI-IO driver; the verdict is agreed. */
static int open_file(const char *path, MPI_Comm comm, reader *r, nn_error *err) {
    int status = NN_OK;
    if (access(path, R_OK) != 0)
        status = nn_fail_local(err, NN_ERR_INPUT, "%s: cannot read: %s", path, strerror(errno));
    else if (H5Fis_hdf5(path) <= 0)
        status = nn_fail_local(err, NN_ERR_INPUT, "%s: not an HDF5 file", path);
    if (nn_comm_agree(comm, status, err)) return err->status;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
    r->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (r->file < 0) status = nn_fail_local(err, NN_ERR_INPUT, "%s: cannot open as HDF5", path);
    return nn_comm_agree(comm, status, err);
}

/* Shapes and types of /split/images and /split/labels, and the split's size after
 * `limit`: metadata, identical on every rank. */
static int read_shape(reader *r, const char *path, const char *split, const long range[3], int nranks,
                      nn_shard *out, hsize_t idims[], int *irank, hsize_t ldims[], nn_error *err) {
    int lrank, status = read_num_classes(r->file, path, &out->num_classes, err);
    if (!status) status = open_dataset(r->file, path, split, "images", 2, H5S_MAX_RANK, &r->images, idims, irank, err);
    if (!status) status = open_dataset(r->file, path, split, "labels", 1, 1, &r->labels, ldims, &lrank, err);
    if (status) return status;
    if (idims[0] != ldims[0])
        return nn_fail(err, NN_ERR_INPUT, "%s: /%s/images has %llu samples but /%s/labels has %llu", path, split,
                       (unsigned long long)idims[0], split, (unsigned long long)ldims[0]);
    if (idims[0] == 0) return nn_fail(err, NN_ERR_INPUT, "%s: /%s holds zero samples", path, split);
    hid_t type = H5Dget_type(r->images);
    int bytes = H5Tget_size(type) == 1 && H5Tget_sign(type) == H5T_SGN_NONE;
    H5Tclose(type);
    if (!bytes) return nn_fail(err, NN_ERR_INPUT, "%s: /%s/images must be uint8", path, split);
    const hsize_t max_dim = 100000000;
    hsize_t dim = 1;
    for (int d = 1; d < *irank; d++) /* checked before each product: no wrap-around */
        dim = idims[d] != 0 && dim <= max_dim / idims[d] ? dim * idims[d] : 0;
    if (dim == 0 || dim > max_dim)
        return nn_fail(err, NN_ERR_INPUT, "%s: /%s/images: the values per sample (trailing dimensions) must "
                       "multiply to 1..%llu", path, split, (unsigned long long)max_dim);
    out->dim = (int)dim;
    out->image[2] = (int)idims[*irank - 1];
    out->image[1] = *irank > 2 ? (int)idims[*irank - 2] : 1;
    out->image[0] = (int)(dim / ((hsize_t)out->image[1] * out->image[2]));
    long limit = range[0], rows = limit > 0 && limit < (long)idims[0] ? limit : (long)idims[0];
    long first = range[1] < 0 ? rows + range[1] : range[1];
    long end = range[2] < 0 ? rows + range[2] : range[2] == 0 || range[2] > rows ? rows : range[2];
    if (first < 0)
        return nn_fail(err, NN_ERR_INPUT, "%s: /%s has %ld samples, fewer than the %ld asked for", path, split, rows,
                       -range[1]);
    if (end <= first)
        return nn_fail(err, NN_ERR_INPUT, "%s: /%s has %ld samples: none left after holding out %ld", path, split,
                       rows, rows - end);
    out->offset = first; /* where this split's rows start; each rank adds its own offset */
    out->total = end - first;
    if (out->total < nranks && (first > 0 || end < rows)) /* a part of the split: say which */
        return nn_fail(err, NN_ERR_INPUT, "%s: %ld samples in /%s (rows %ld..%ld of %ld) cannot be split over %d ranks",
                       path, out->total, split, first, end - 1, rows, nranks);
    if (out->total < nranks)
        return nn_fail(err, NN_ERR_INPUT, "%s: %ld samples in /%s cannot be split over %d ranks", path, out->total,
                       split, nranks);
    return NN_OK;
}

/* This rank's buffers: the shard, and its labels as int for reading (freed by
 * read_shard). */
static int allocate_shard(nn_shard *out, const char *path, int rank, int **wide_labels, nn_error *err) {
    out->images = alloc_samples((size_t)out->count * out->dim);
    out->labels = malloc((size_t)out->count);
    *wide_labels = malloc((size_t)out->count * sizeof(int));
    if (out->images && out->labels && *wide_labels) return NN_OK;
    return nn_fail(err, NN_ERR_RUNTIME, "%s: rank %d: out of memory for %ld samples", path, rank, out->count);
}

/* Collective: this rank's rows. Labels are read as int whatever their stored
 * width, so out-of-range values are seen rather than wrapped. Both reads are made
 * whatever the first gave: they are collective, and a rank that left one out would
 * leave the others waiting in it. */
static int read_shard(reader *r, const char *path, const char *split, int rank, const hsize_t idims[], int irank,
                      const hsize_t ldims[], int *wide_labels, nn_shard *out, nn_error *err) {
    int status = NN_OK;
    hdf5_reason why = {{0}, 0};
    const char *failed = NULL;
    if (read_rows(r->images, irank, idims, out->offset, out->count, H5T_NATIVE_UINT8, out->images, &why))
        failed = "images";
    if (read_rows(r->labels, 1, ldims, out->offset, out->count, H5T_NATIVE_INT, wide_labels, &why) && !failed)
        failed = "labels";
    if (failed)
        return nn_fail(err, why.damaged ? NN_ERR_INPUT : NN_ERR_RUNTIME, "%s: reading /%s/%s failed on rank %d%s: %s",
                       path, split, failed, rank, why.damaged ? " (damaged data)" : "", why.text);
    for (long i = 0; i < out->count && !status; i++) {
        if (wide_labels[i] < 0 || wide_labels[i] >= out->num_classes)
            status = nn_fail(err, NN_ERR_INPUT, "%s: /%s/labels[%ld] = %d is outside 0..%d", path, split,
                             out->offset + i, wide_labels[i], out->num_classes - 1);
        else
            out->labels[i] = (uint8_t)wide_labels[i];
    }
    return status;
}

int nn_shard_read(const char *path, const char *split, long limit, MPI_Comm comm, nn_shard *out, nn_error *err) {
    return nn_shard_read_rows(path, split, limit, 0, 0, comm, out, err);
}

int nn_shard_read_rows(const char *path, const char *split, long limit, long first, long end, MPI_Comm comm,
                       nn_shard *out, nn_error *err) {
    return nn_shard_read_parts(path, split, limit, first, end, 0, comm, out, err);
}

/* This rank's rows: an even split, or whole parts of `parts` even parts. */
static void rank_rows(long total, int parts, int rank, int nranks, long *offset, long *count) {
    if (parts <= 0) {
        nn_shard_range(total, rank, nranks, offset, count);
        return;
    }
    long first = (long)((long long)rank * parts / nranks), end = (long)((long long)(rank + 1) * parts / nranks);
    *offset = (long)((long long)first * total / parts);
    *count = (long)((long long)end * total / parts) - *offset;
}

/* Collective: every rank read the same shape. Each opens `path` itself, so a
 * node-local copy that differs, or a relative path from another directory, would
 * have ranks split other totals (a hang at the epoch's end) or score other sets. */
static int same_shape_everywhere(const char *path, const nn_shard *out, const hsize_t idims[], int irank,
                                 const hsize_t ldims[], MPI_Comm comm, nn_error *err) {
    long shape[5 + H5S_MAX_RANK] = {out->num_classes, out->total, out->offset, irank, (long)ldims[0]};
    for (int d = 0; d < irank && d < H5S_MAX_RANK; d++) shape[5 + d] = (long)idims[d];
    return nn_comm_agree_same(comm, shape, sizeof shape, path,
                              "every rank must read the same file (a node-local copy that differs? a relative "
                              "path from another directory?)", err);
}

/* Collective: every rank's file holds the same first and last samples of the split.
 * The shape alone lets through a node-local copy of another dataset of the same
 * shape (Fashion-MNIST staged where MNIST was meant): each rank would train on its
 * own. A few rows at each end catch it for the price of four small reads; a copy
 * that differs only in between is not caught (hashing every row would read the whole
 * file on every rank). */
enum { SAMPLE_ROWS = 8 };

static int same_samples_everywhere(reader *r, const char *path, const char *split, const nn_shard *out,
                                   const hsize_t idims[], int irank, const hsize_t ldims[], MPI_Comm comm,
                                   nn_error *err) {
    long n = out->total < SAMPLE_ROWS ? out->total : SAMPLE_ROWS;
    const long at[2] = {out->offset, out->offset + out->total - n};
    uint8_t *pixels = malloc((size_t)n * out->dim);
    int labels[SAMPLE_ROWS], status = pixels ? NN_OK : nn_fail(err, NN_ERR_RUNTIME, "%s: out of memory", path);
    if ((status = nn_comm_agree(comm, status, err))) return status;
    uint64_t h = NN_COMM_HASH_START;
    hdf5_reason why = {{0}, 0};
    int failed = 0;
    for (int end = 0; end < 2; end++) { /* every read made on every rank: they are collective */
        failed |= read_rows(r->images, irank, idims, at[end], n, H5T_NATIVE_UINT8, pixels, &why) != NN_OK;
        failed |= read_rows(r->labels, 1, ldims, at[end], n, H5T_NATIVE_INT, labels, &why) != NN_OK;
        h = nn_comm_hash(nn_comm_hash(h, pixels, (size_t)n * out->dim), labels, (size_t)n * sizeof *labels);
    }
    free(pixels);
    status = failed ? nn_fail(err, why.damaged ? NN_ERR_INPUT : NN_ERR_RUNTIME, "%s: reading /%s failed: %s", path,
                              split, why.text)
                    : NN_OK;
    if ((status = nn_comm_agree(comm, status, err))) return status;
    return nn_comm_agree_same(comm, &h, sizeof h, path,
                              "every rank must read the same file: its first or last samples differ (a node-local "
                              "copy of another dataset of the same shape?)", err);
}

int nn_shard_read_parts(const char *path, const char *split, long limit, long first, long end, int parts,
                        MPI_Comm comm, nn_shard *out, nn_error *err) {
    const long range[3] = {limit, first, end};
    int rank, nranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &nranks);
    memset(out, 0, sizeof *out);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* we report errors ourselves, in one line */
    reader r = {-1, -1, -1};
    if (open_file(path, comm, &r, err)) return err->status;
    hsize_t idims[H5S_MAX_RANK], ldims[H5S_MAX_RANK];
    int irank = 0, *wide_labels = NULL;
    int status = nn_comm_agree(comm, read_shape(&r, path, split, range, nranks, out, idims, &irank, ldims, err), err);
    if (!status) status = same_shape_everywhere(path, out, idims, irank, ldims, comm, err);
    if (!status) status = same_samples_everywhere(&r, path, split, out, idims, irank, ldims, comm, err);
    if (!status) {
        long start = out->offset, mine;
        rank_rows(out->total, parts, rank, nranks, &mine, &out->count);
        out->offset = start + mine;
        /* agreed before the collective reads: no rank enters them alone */
        status = nn_comm_agree(comm, allocate_shard(out, path, rank, &wide_labels, err), err);
    }
    if (!status)
        status = nn_comm_agree(comm, read_shard(&r, path, split, rank, idims, irank, ldims, wide_labels, out, err), err);
    free(wide_labels);
    reader_close(&r);
    if (status) nn_shard_free(out);
    return status;
}

void nn_pixels_to_floats(const uint8_t *restrict src, float *restrict dst, int dim) {
    for (int d = 0; d < dim; d++) dst[d] = src[d] * (1.0f / 255.0f);
}

void nn_shard_prefetch(const nn_shard *shard, uint32_t row) {
    const char *p = (const char *)shard->images + (size_t)row * shard->dim;
    for (int b = 0; b < shard->dim; b += 64) __builtin_prefetch(p + b, 0, 1); /* to L2, not L1 */
}

void nn_shard_gather(const nn_shard *shard, const uint32_t *order, int n, float *x, uint8_t *labels) {
    const int dim = shard->dim;
    enum { AHEAD = 4 }; /* rows in flight: the rows are random, so the hardware cannot guess them */
    for (int i = 0; i < n; i++) {
        if (i + AHEAD < n) {
            const char *next = (const char *)shard->images + (size_t)order[i + AHEAD] * dim;
            for (int b = 0; b < dim; b += 64) __builtin_prefetch(next + b);
            const char *to = (const char *)(x + (size_t)(i + AHEAD) * dim);
            for (size_t b = 0; b < (size_t)dim * sizeof(float); b += 64) __builtin_prefetch(to + b, 1);
        }
        nn_pixels_to_floats(shard->images + (size_t)order[i] * dim, x + (size_t)i * dim, dim);
        labels[i] = shard->labels[order[i]];
    }
}
