/* Writing the dataset file (layout in nn/dataset.h). Serial: built with HDF5's
 * in-memory (core) driver, nn/hdf5_image.h.
 *
 * The file is built in memory, written to "<path>.tmp" and renamed into place only
 * when complete and synced, so a
 * reader never sees a half-written dataset and a failure leaves `path` as it was. */
#define _POSIX_C_SOURCE 200809L /* open */

#include "nn/dataset_write.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nn/hdf5_image.h"
#include "nn/outputs.h"

/* Images are chunked along N: each chunk holds whole samples, at most this many bytes,
 * so a rank's contiguous hyperslab touches few chunks and no chunk is read twice. */
#define IMAGE_CHUNK_SAMPLES 1024
#define IMAGE_CHUNK_MAX_BYTES (8u << 20)
#define LABEL_CHUNK_SAMPLES 65536
#define HDF5_DETAIL_CHARS 160

/* The innermost message of HDF5's error stack: the most specific reason it gives. */
static herr_t keep_first_message(unsigned n, const H5E_error2_t *e, void *buf) {
    (void)n;
    char *msg = buf;
    if (msg[0] == '\0' && e->desc && e->desc[0]) snprintf(msg, HDF5_DETAIL_CHARS, "%s", e->desc);
    return 0;
}

static int fail_hdf5(const char *path, const char *what, nn_error *err) {
    char detail[HDF5_DETAIL_CHARS] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_first_message, detail);
    H5Eclear2(H5E_DEFAULT);
    return nn_fail(err, NN_ERR_RUNTIME, "%s: HDF5 could not %s%s%s", path, what,
                   detail[0] ? ": " : "", detail);
}

static int check_split(const char *name, const nn_split_data *s, nn_error *err) {
    if (!s || !s->images || !s->labels)
        return nn_fail(err, NN_ERR_INPUT, "dataset write: %s split has no data", name);
    if (s->count <= 0 || s->rows <= 0 || s->cols <= 0)
        return nn_fail(err, NN_ERR_INPUT, "dataset write: %s split has shape [%ld,%d,%d]",
                       name, s->count, s->rows, s->cols);
    return NN_OK;
}

/* A fixed-size, chunked uint8 dataset holding all of `data`. */
static int write_uint8(hid_t group, const char *name, int rank, const hsize_t *dims,
                       const hsize_t *chunk, const uint8_t *data) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int ok = space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0;
    hid_t dset = ok ? H5Dcreate2(group, name, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl,
                                 H5P_DEFAULT) : -1;
    ok = dset >= 0 && H5Dwrite(dset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (dset >= 0) ok = H5Dclose(dset) >= 0 && ok;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return ok ? 0 : -1;
}

static int write_split(hid_t file, const char *name, const nn_split_data *s) {
    hsize_t sample_bytes = (hsize_t)s->rows * (hsize_t)s->cols;
    hsize_t chunk_n = IMAGE_CHUNK_SAMPLES;
    while (chunk_n > 1 && chunk_n * sample_bytes > IMAGE_CHUNK_MAX_BYTES) chunk_n /= 2;
    if (chunk_n > (hsize_t)s->count) chunk_n = (hsize_t)s->count;
    hsize_t label_chunk = LABEL_CHUNK_SAMPLES < s->count ? LABEL_CHUNK_SAMPLES : s->count;

    hsize_t image_dims[3] = {(hsize_t)s->count, (hsize_t)s->rows, (hsize_t)s->cols};
    hsize_t image_chunk[3] = {chunk_n, (hsize_t)s->rows, (hsize_t)s->cols};
    hsize_t label_dims[1] = {(hsize_t)s->count};

    hid_t group = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (group < 0) return -1;
    int ok = write_uint8(group, "images", 3, image_dims, image_chunk, s->images) == 0 &&
             write_uint8(group, "labels", 1, label_dims, &label_chunk, s->labels) == 0;
    ok = H5Gclose(group) >= 0 && ok;
    return ok ? 0 : -1;
}

static int write_root_attributes(hid_t file, int num_classes, const char *source) {
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t text = H5Tcopy(H5T_C_S1); /* fixed-length, NUL-terminated string */
    int ok = scalar >= 0 && text >= 0 && H5Tset_size(text, strlen(source) + 1) >= 0 &&
             H5Tset_strpad(text, H5T_STR_NULLTERM) >= 0;

    hid_t attr = ok ? H5Acreate2(file, "num_classes", H5T_STD_I32LE, scalar, H5P_DEFAULT,
                                 H5P_DEFAULT) : -1;
    int32_t classes = num_classes;
    ok = attr >= 0 && H5Awrite(attr, H5T_NATIVE_INT32, &classes) >= 0;
    if (attr >= 0) ok = H5Aclose(attr) >= 0 && ok;

    attr = ok ? H5Acreate2(file, "source", text, scalar, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = attr >= 0 && H5Awrite(attr, text, source) >= 0;
    if (attr >= 0) ok = H5Aclose(attr) >= 0 && ok;

    if (text >= 0) H5Tclose(text);
    if (scalar >= 0) H5Sclose(scalar);
    return ok ? 0 : -1;
}

static const char not_written[] = "the dataset is not written";

/* What every dataset in this layout carries. */
static const char *const dataset_marks[] = {"/train", "/test", "num_classes", NULL};

/* Create the temporary file first, before the dataset is built in memory: a path
 * that cannot be written fails at once, with open()'s reason ("No such file or
 * directory"). */
static int create_tmp(const nn_output_place *place, const char *path, const char *tmp, nn_error *err) {
    const char *name;
    int dir = nn_output_place_at(place, tmp, &name); /* in the directory checked */
    int status = nn_output_remove_hdf5_leftover("--out", path, dir, name, tmp, dataset_marks, err);
    if (status) return status;
    int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666); /* a file made since is another writer's */
    if (fd < 0) /* the place changed since it was checked (the directory removed: ENOENT): that is why */
        return nn_output_place_reason(place, path, path, not_written,
                                      nn_fail(err, NN_ERR_RUNTIME, "%s: cannot create temporary file %s: %s", path,
                                              tmp, strerror(errno)),
                                      err);
    close(fd);
    return NN_OK;
}

/* Built in memory and written out whole, synced (nn/hdf5_image.h: a full disk must
 * not leave HDF5 holding a file it cannot close). */
static int write_tmp_file(const nn_output_place *place, const char *tmp, const char *path, const nn_split_data *train,
                          const nn_split_data *test, int num_classes, const char *source, nn_error *err) {
    size_t bytes = (size_t)train->count * (size_t)(train->rows * train->cols + 1) +
                   (size_t)test->count * (size_t)(test->rows * test->cols + 1);
    hid_t file = nn_hdf5_image_create(tmp, bytes + ((size_t)1 << 20));
    if (file < 0) return fail_hdf5(tmp, "create the file", err);
    const char *failed = NULL;
    if (write_split(file, "train", train) != 0) failed = "write /train";
    else if (write_split(file, "test", test) != 0) failed = "write /test";
    else if (write_root_attributes(file, num_classes, source) != 0) failed = "write attributes";
    if (failed) {
        int status = fail_hdf5(tmp, failed, err);
        H5Fclose(file);
        return status;
    }
    const char *name;
    int dir = nn_output_place_at(place, tmp, &name);
    if (nn_hdf5_image_write(file, dir, name, path, false) != 0) /* the temporary file create_tmp made */
        return nn_fail(err, NN_ERR_RUNTIME, "%s: cannot write: %s", tmp, strerror(errno));
    return NN_OK;
}

int nn_dataset_write_placed(nn_output_place *place, const char *path, const nn_split_data *train,
                            const nn_split_data *test, int num_classes, const char *source, nn_error *err) {
    int status = check_split("train", train, err);
    if (status == NN_OK) status = check_split("test", test, err);
    if (status != NN_OK) return status;
    if (num_classes < 1)
        return nn_fail(err, NN_ERR_INPUT, "dataset write: num_classes %d < 1", num_classes);
    if (!source) source = "";

    char tmp[NN_PATH_MAX + 8];
    if (strlen(path) >= NN_PATH_MAX) return nn_fail(err, NN_ERR_INPUT, "%s: path too long", path);
    nn_output_temporary_name(tmp, sizeof tmp, path);

    /* Our messages replace HDF5's automatic stack dump; restore the caller's handler after. */
    H5E_auto2_t old_handler;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_handler, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    status = create_tmp(place, path, tmp, err); /* in the held directory: checked as it is renamed */
    if (status == NN_OK) {
        const char *name;
        int dir = nn_output_place_at(place, tmp, &name);
        nn_output_writing(dir, name); /* ours now: a stop signal removes it */
        status = write_tmp_file(place, tmp, path, train, test, num_classes, source, err);
        nn_output_writing(AT_FDCWD, NULL); /* a signal from here on leaves the name alone, never removes what took it */
        if (status == NN_OK) status = nn_output_place_rename(place, tmp, path, path, not_written, err);
        if (status != NN_OK) nn_output_place_remove(place, tmp); /* only a file we created ourselves */
    }

    H5Eset_auto2(H5E_DEFAULT, old_handler, old_data);
    return status;
}

int nn_dataset_write(const char *path, const nn_split_data *train, const nn_split_data *test,
                     int num_classes, const char *source, nn_error *err) {
    nn_output_place place = NN_OUTPUT_PLACE_NONE; /* whatever is there now may be replaced */
    nn_output_place_take(&place, path, "dataset");
    int status = nn_dataset_write_placed(&place, path, train, test, num_classes, source, err);
    nn_output_place_release(&place);
    return status;
}

int nn_dataset_check_replaceable(const char *option, const char *path, nn_error *err) {
    return nn_output_check_ours(option, path, "dataset", dataset_marks, err);
}
