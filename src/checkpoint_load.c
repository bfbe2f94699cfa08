/* Reading a checkpoint back: every field, shape and checksum checked, one line for the
 * first problem; the format is checkpoint_format.h's. */
#define _POSIX_C_SOURCE 200809L /* access */
#include "checkpoint_format.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/comm.h"
#include "nn/conv_spec.h"
#include "nn/options.h"
#include "nn/placement.h"

typedef struct reader {
    hid_t file;
    const char *path;
    nn_error *err;
    int failed;
    int readers_on_node; /* ranks of this node loading the file at once, each a copy */
} reader;

/* Records the first problem found, as "PATH: message". */
static void reject(reader *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reject(reader *r, int status, const char *fmt, ...) {
    if (r->failed) return;
    r->failed = 1;
    char what[sizeof r->err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    nn_fail(r->err, status, "%s: %s", r->path, what);
}

/* An attribute of exactly `count` values (its size: the caller's guard). */
static void get_attr(reader *r, const char *group, const char *name, hid_t type, void *out, hsize_t count) {
    if (r->failed) return;
    hid_t attr = H5Aexists_by_name(r->file, group, name, H5P_DEFAULT) > 0
                     ? H5Aopen_by_name(r->file, group, name, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int ok = attr >= 0;
    if (ok) { /* the count, and the class as stored: a real 1.5 must not read as the integer 1 */
        hid_t space = H5Aget_space(attr), stored = H5Aget_type(attr);
        ok = H5Sget_simple_extent_npoints(space) == (hssize_t)count && H5Tget_class(stored) == H5Tget_class(type);
        H5Tclose(stored);
        H5Sclose(space);
    }
    if (ok) ok = H5Aread(attr, type, out) >= 0;
    if (attr >= 0) H5Aclose(attr);
    if (!ok)
        reject(r, NN_ERR_INPUT, "not a valid checkpoint: missing or bad attribute %s%s%s", group,
               strcmp(group, "/") ? "/" : "", name);
}

static void get_field(reader *r, const field *f, record *rec) {
    char *value = (char *)rec + f->offset;
    if (f->optional && !r->failed && H5Aexists_by_name(r->file, f->group, f->name, H5P_DEFAULT) <= 0) {
        if (f->kind == INTEGER) *(long long *)(void *)value = (long long)f->absent;
        else if (f->kind == REAL) *(double *)(void *)value = f->absent;
        else value[0] = '\0';
        return;
    }
    hid_t type = field_type(f, f->size);
    get_attr(r, f->group, f->name, type, value, 1);
    H5Tclose(type);
    if (f->kind == TEXT) value[f->size - 1] = '\0';
}

/* The widths attribute, whose length is the network's depth. */
static void get_widths(reader *r, nn_model_spec *spec) {
    hsize_t nw = 0;
    if (!r->failed && H5Aexists_by_name(r->file, "/model", "widths", H5P_DEFAULT) > 0) {
        hid_t attr = H5Aopen_by_name(r->file, "/model", "widths", H5P_DEFAULT, H5P_DEFAULT);
        hid_t space = attr >= 0 ? H5Aget_space(attr) : -1;
        if (space >= 0) {
            nw = (hsize_t)H5Sget_simple_extent_npoints(space);
            H5Sclose(space);
        }
        if (attr >= 0) H5Aclose(attr);
    }
    if (nw < 2 || nw > NN_MAX_WIDTHS) reject(r, NN_ERR_INPUT, "not a valid checkpoint: bad /model/widths");
    get_attr(r, "/model", "widths", H5T_NATIVE_INT, spec->widths, nw);
    spec->n_widths = (int)nw;
    for (int i = 0; !r->failed && i < (int)nw; i++)
        if (spec->widths[i] < 1 || spec->widths[i] > NN_MAX_UNITS) /* as --layers: the count cannot overflow */
            reject(r, NN_ERR_INPUT, "not a valid checkpoint: bad /model/widths");
}

/* The number of values of attribute group/name (0 when absent). */
static hssize_t attr_count(reader *r, const char *group, const char *name) {
    hssize_t n = 0;
    if (r->failed || H5Aexists_by_name(r->file, group, name, H5P_DEFAULT) <= 0) return 0;
    hid_t attr = H5Aopen_by_name(r->file, group, name, H5P_DEFAULT, H5P_DEFAULT);
    hid_t space = attr >= 0 ? H5Aget_space(attr) : -1;
    if (space >= 0) n = H5Sget_simple_extent_npoints(space), H5Sclose(space);
    if (attr >= 0) H5Aclose(attr);
    return n;
}

/* Format 2: the input image and the convolutions, each row checked, and the
 * network they make checked against the stored widths (its first: the flattened output). */
static void get_convs(reader *r, nn_model_spec *spec) {
    hssize_t n = attr_count(r, "/model", "convs") / 4;
    int rows[NN_MAX_CONVS][4];
    if (n < 1 || n > NN_MAX_CONVS) reject(r, NN_ERR_INPUT, "not a valid checkpoint: bad /model/convs");
    get_attr(r, "/model", "image", H5T_NATIVE_INT, spec->image, 3);
    get_attr(r, "/model", "convs", H5T_NATIVE_INT, rows, (hsize_t)n * 4);
    if (r->failed) return;
    spec->n_convs = (int)n;
    int ok = spec->image[0] > 0 && spec->image[1] > 0 && spec->image[2] > 0 && (long)spec->image[0] * spec->image[1] <= 1000000;
    for (int i = 0; i < n; i++) {
        const int *w = rows[i];
        spec->convs[i] = (nn_conv_spec){.pool = w[0] != 0, .k = w[1], .channels = w[2], .pad = w[3]};
        ok = ok && (w[0] == 1 || (w[0] == 0 && w[1] >= 1 && w[1] <= 64 && w[2] >= 1 && w[2] <= 65536 && w[3] >= 0 && w[3] < w[1]));
    }
    int flat = spec->widths[0];
    nn_error e;
    if (!ok || (long)spec->image[0] * spec->image[1] * spec->image[2] > 100000000 ||
        nn_spec_fit_image(spec, spec->image, spec->image[0] * spec->image[1] * spec->image[2], r->path, "checkpoint", &e) ||
        spec->widths[0] != flat)
        reject(r, NN_ERR_INPUT, "not a valid checkpoint: bad /model/convs or /model/image");
}

/* The run's settings, each through the command line's own parse and range check
 * ("/optimizer/lr -1: must be in [0, 100]"). */
static void take_settings(reader *r, const record *rec, nn_run_config *c) {
    nn_run_config_defaults(c); /* the model's widths are read already: keep them */
    for (int i = 0; i < N_FIELDS && !r->failed; i++) {
        const field *f = &fields[i];
        const char *value = (const char *)rec + f->offset;
        if (!f->option || (f->optional && field_absent(f, value))) continue; /* absent: the default */
        char label[64], text[NN_PATH_MAX];
        snprintf(label, sizeof label, "%s/%s", f->group, f->name);
        field_text(f, value, text, sizeof text);
        nn_error e = {0};
        if (nn_run_setting_parse(c, f->option, label, text, &e)) reject(r, NN_ERR_INPUT, "not a valid checkpoint: %s", e.msg);
    }
}

/* The record's values into the checkpoint, each checked. */
static void take_record(reader *r, const record *rec, nn_checkpoint *ck) {
    nn_run_config *c = &ck->config;
    nn_model_spec spec = c->spec;
    take_settings(r, rec, c);
    memcpy(c->spec.widths, spec.widths, sizeof spec.widths);
    c->spec.n_widths = spec.n_widths;
    c->spec.n_convs = spec.n_convs; /* and the convolutions (format 2) */
    memcpy(c->spec.convs, spec.convs, sizeof spec.convs);
    memcpy(c->spec.image, spec.image, sizeof spec.image);
    snprintf(ck->version, sizeof ck->version, "%s", rec->nntrain_version);
    ck->ranks = (int)rec->ranks;
    if (rec->ranks < 1 || rec->ranks > 1 << 20) reject(r, NN_ERR_INPUT, "not a valid checkpoint: %lld ranks", rec->ranks);
    if (!r->failed && (size_t)rec->n_params != nn_spec_param_count(&c->spec))
        reject(r, NN_ERR_INPUT, "not a valid checkpoint: %lld parameters for a %d-layer network of %zu", rec->n_params,
               c->spec.n_widths, nn_spec_param_count(&c->spec));
    ck->n_params = (size_t)rec->n_params;
    ck->test_accuracy = rec->test_accuracy >= 0 && rec->test_accuracy <= 1 ? rec->test_accuracy : -1.0;
    ck->train_loss = rec->train_loss >= 0 && isfinite(rec->train_loss) ? rec->train_loss : -1.0;
    /* the best so far; a file without it (older, or none recorded) has only the last epoch's */
    bool best = rec->best_test_accuracy >= 0 && rec->best_test_accuracy <= 1 && rec->best_epoch >= 1 &&
                rec->best_epoch <= rec->epochs_completed;
    ck->best_accuracy = best ? rec->best_test_accuracy : ck->test_accuracy;
    ck->best_epoch = best ? (int)rec->best_epoch : ck->test_accuracy >= 0 ? (int)rec->epochs_completed : 0;
    if (c->virtual_shards > c->batch_size)
        reject(r, NN_ERR_INPUT, "not a valid checkpoint: virtual_shards %d exceeds the batch %d", c->virtual_shards,
               c->batch_size);
    ck->progress = (nn_progress){(int)rec->epochs_completed, (long)rec->step_in_epoch, (long)rec->global_step};
    if (rec->epochs_completed < 0 || rec->epochs_completed > rec->epochs || rec->step_in_epoch < 0 ||
        rec->global_step < rec->step_in_epoch || rec->global_step > 0x7fffffffffffLL)
        reject(r, NN_ERR_INPUT, "not a valid checkpoint: inconsistent progress (epoch %lld of %lld, step %lld, global step %lld)",
               rec->epochs_completed + 1, rec->epochs, rec->step_in_epoch, rec->global_step);
}

/* The file's attributes: none this nntrain does not know (it could not honour one), and
 * the same checksum as when written, where the file has one (older files do not). */
typedef struct unknown_search {
    const char *group;
    char name[128]; /* the first unknown attribute's */
} unknown_search;

static herr_t note_unknown(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)loc;
    (void)info;
    unknown_search *u = data;
    if (!strcmp(u->group, "/model") && !strcmp(name, "widths")) return 0;
    if (!strcmp(u->group, "/model") && (!strcmp(name, "image") || !strcmp(name, "convs"))) return 0; /* format 2 */
    if (!strcmp(u->group, "/integrity") && !strcmp(name, "attributes_checksum")) return 0;
    for (int i = 0; i < N_FIELDS; i++)
        if (!strcmp(fields[i].group, u->group) && !strcmp(fields[i].name, name)) return 0;
    snprintf(u->name, sizeof u->name, "%s", name);
    return 1;
}

static void check_attributes(reader *r, const record *rec, const nn_model_spec *spec) {
    static const char *const all[] = {"/", "/model", "/optimizer", "/progress", "/options", "/results", "/integrity"};
    for (size_t i = 0; i < sizeof all / sizeof all[0] && !r->failed; i++) {
        if (strcmp(all[i], "/") && H5Lexists(r->file, all[i], H5P_DEFAULT) <= 0) continue;
        unknown_search u = {all[i], ""};
        if (H5Aiterate_by_name(r->file, all[i], H5_INDEX_NAME, H5_ITER_INC, NULL, note_unknown, &u, H5P_DEFAULT) > 0)
            reject(r, NN_ERR_INPUT, "not a valid checkpoint: unknown attribute %s%s%s (written by a newer nntrain, or edited)",
                   all[i], strcmp(all[i], "/") ? "/" : "", u.name);
    }
    if (r->failed || H5Lexists(r->file, "/integrity", H5P_DEFAULT) <= 0) return;
    long long stored = 0;
    get_attr(r, "/integrity", "attributes_checksum", H5T_NATIVE_LLONG, &stored, 1);
    uint32_t computed = checkpoint_record_checksum(rec, spec);
    if (!r->failed && (uint32_t)stored != computed)
        reject(r, NN_ERR_INPUT, "attribute checksum mismatch (stored %08x, computed %08x): the file was edited or is corrupted",
               (uint32_t)stored, computed);
}

/* Reads a dataset that must have exactly the given shape; with `out` NULL, only
 * checks the shape. */
static void get_dataset(reader *r, const char *name, hid_t type, int rank, const hsize_t *dims, void *out) {
    if (r->failed) return;
    hid_t dset = H5Lexists(r->file, name, H5P_DEFAULT) > 0 ? H5Dopen2(r->file, name, H5P_DEFAULT) : -1;
    int ok = dset >= 0;
    if (ok) {
        hid_t space = H5Dget_space(dset);
        hsize_t got[8];
        ok = H5Sget_simple_extent_ndims(space) == rank;
        if (ok) H5Sget_simple_extent_dims(space, got, NULL);
        for (int i = 0; ok && i < rank; i++) ok = got[i] == dims[i];
        H5Sclose(space);
    }
    if (ok && out) ok = H5Dread(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0;
    if (dset >= 0) H5Dclose(dset);
    if (!ok) reject(r, NN_ERR_INPUT, "not a valid checkpoint: missing, misshapen or unreadable %s", name);
}

/* Where offset lands in buffer; NULL when only the shapes are checked. */
static float *at(float *buffer, size_t offset) { return buffer ? buffer + offset : NULL; }

/* Format 2: PREFIX/convK/{weight,bias}, the convolutions' parameters (first in the
 * buffer); returns how many floats they are. */
static size_t get_conv_layers(reader *r, const char *group, const nn_model_spec *spec, float *buffer) {
    size_t offset = 0;
    hsize_t c = (hsize_t)spec->image[0];
    for (int i = 0, k = 0; i < spec->n_convs; i++) {
        const nn_conv_spec *l = &spec->convs[i];
        if (l->pool) continue;
        char name[128];
        hsize_t wdims[4] = {(hsize_t)l->k, (hsize_t)l->k, c, (hsize_t)l->channels}, bdims[1] = {wdims[3]};
        snprintf(name, sizeof name, "%s/conv%d/weight", group, ++k);
        get_dataset(r, name, H5T_NATIVE_FLOAT, 4, wdims, at(buffer, offset));
        offset += wdims[0] * wdims[1] * wdims[2] * wdims[3];
        snprintf(name, sizeof name, "%s/conv%d/bias", group, k);
        get_dataset(r, name, H5T_NATIVE_FLOAT, 1, bdims, at(buffer, offset));
        offset += bdims[0];
        c = wdims[3];
    }
    return offset;
}

static void get_layers(reader *r, const char *group, const nn_model_spec *spec, float *buffer) {
    size_t offset = get_conv_layers(r, group, spec, buffer);
    for (int i = 0; i + 1 < spec->n_widths; i++) {
        char name[128];
        hsize_t wdims[2] = {(hsize_t)spec->widths[i], (hsize_t)spec->widths[i + 1]}, bdims[1] = {wdims[1]};
        snprintf(name, sizeof name, "%s/dense%d/weight", group, i + 1);
        get_dataset(r, name, H5T_NATIVE_FLOAT, 2, wdims, at(buffer, offset));
        offset += wdims[0] * wdims[1];
        snprintf(name, sizeof name, "%s/dense%d/bias", group, i + 1);
        get_dataset(r, name, H5T_NATIVE_FLOAT, 1, bdims, at(buffer, offset));
        offset += bdims[0];
    }
}

/* The rows of /progress: one a rank; in deterministic mode one (files of that mode
 * written before it had one row a rank, and still load). */
static int saved_rows(reader *r, const nn_checkpoint *ck) {
    if (r->failed || ck->config.virtual_shards <= 0) return ck->ranks;
    hsize_t rows = 0;
    hid_t dset = H5Lexists(r->file, "/progress/loss_partial", H5P_DEFAULT) > 0
                     ? H5Dopen2(r->file, "/progress/loss_partial", H5P_DEFAULT) : -1;
    if (dset >= 0) {
        hid_t space = H5Dget_space(dset);
        if (H5Sget_simple_extent_ndims(space) == 1) H5Sget_simple_extent_dims(space, &rows, NULL);
        H5Sclose(space);
        H5Dclose(dset);
    }
    return rows == 1 ? 1 : ck->ranks; /* any other shape is refused by get_dataset */
}

/* A checksum only says the numbers are the ones written: a NaN or infinity among them
 * (a file edited and re-signed, or written by a run gone astray) would train or score
 * as garbage, and a resumed run would blame --lr for the file's fault. */
static void check_finite(reader *r, const float *values, size_t n, const char *what) {
    for (size_t i = 0; i < n && !r->failed; i++)
        if (!isfinite(values[i]))
            reject(r, NN_ERR_INPUT, "not a valid checkpoint: %s %zu of %zu is %g; a model that is not finite cannot "
                   "be resumed or evaluated", what, i, n, (double)values[i]);
}

/* Parameters, momentum and the per-rank state, with the checksums checked. */
static void get_arrays(reader *r, const record *rec, nn_checkpoint *ck) {
    /* the file holds the arrays its widths promise before their memory is asked for:
     * widths edited in a file without /integrity are then bad input, not out of memory */
    get_layers(r, "/model", &ck->config.spec, NULL);
    get_layers(r, "/optimizer/velocity", &ck->config.spec, NULL);
    if (r->failed) return;
    char need[96]; /* datasets never written read as zeros: their shapes are not enough */
    snprintf(need, sizeof need, "reading its %zu parameters and momentum takes", ck->n_params);
    nn_error memory;
    if (nn_placement_check_memory(2.0 * sizeof(float) * (double)ck->n_params, r->readers_on_node, need,
                                  "each rank its own copy", &memory))
        reject(r, NN_ERR_RUNTIME, "%s", memory.msg);
    if (r->failed) return;
    ck->params = malloc(ck->n_params * sizeof(float));
    ck->velocity = malloc(ck->n_params * sizeof(float));
    ck->rows = saved_rows(r, ck);
    ck->rng_states = malloc((size_t)ck->rows * 4 * sizeof(uint32_t));
    ck->loss_partials = malloc((size_t)ck->rows * sizeof(double));
    if (!ck->params || !ck->velocity || !ck->rng_states || !ck->loss_partials)
        reject(r, NN_ERR_RUNTIME, "out of memory reading checkpoint");
    get_layers(r, "/model", &ck->config.spec, ck->params);
    get_layers(r, "/optimizer/velocity", &ck->config.spec, ck->velocity);
    hsize_t rdims[2] = {(hsize_t)ck->rows, 4};
    get_dataset(r, "/progress/rng_state", H5T_NATIVE_UINT32, 2, rdims, ck->rng_states);
    get_dataset(r, "/progress/loss_partial", H5T_NATIVE_DOUBLE, 1, rdims, ck->loss_partials);
    for (int i = 0; i < ck->rows && !r->failed; i++) /* no checksum covers it: a sum of losses is >= 0 and finite */
        if (!(ck->loss_partials[i] >= 0.0 && isfinite(ck->loss_partials[i])))
            reject(r, NN_ERR_INPUT, "not a valid checkpoint: /progress/loss_partial[%d] = %g (a sum of losses)", i,
                   ck->loss_partials[i]);
    if (r->failed) return;
    uint32_t computed = nn_checksum(ck->params, ck->n_params);
    if ((uint32_t)rec->checksum != computed)
        reject(r, NN_ERR_INPUT, "parameter checksum mismatch (stored %08x, computed %08x): the file is corrupted",
               (uint32_t)rec->checksum, computed);
    if ((uint32_t)rec->velocity_checksum != nn_checksum(ck->velocity, ck->n_params))
        reject(r, NN_ERR_INPUT, "momentum checksum mismatch: the file is corrupted");
    check_finite(r, ck->params, ck->n_params, "parameter");
    check_finite(r, ck->velocity, ck->n_params, "momentum value");
}

void nn_checkpoint_free(nn_checkpoint *ck) {
    free(ck->rng_states);
    free(ck->loss_partials);
    free(ck->params);
    free(ck->velocity);
    memset(ck, 0, sizeof *ck);
}

int nn_checkpoint_load(const char *path, int readers_on_node, nn_checkpoint *ck, nn_error *err) {
    memset(ck, 0, sizeof *ck);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (access(path, R_OK) != 0)
        return nn_fail_local(err, NN_ERR_INPUT, "%s: cannot read checkpoint: %s", path, strerror(errno));
    hid_t file = H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    if (file < 0)
        return nn_fail_local(err, NN_ERR_INPUT, "%s: not a valid checkpoint: truncated or not an HDF5 file", path);
    reader r = {file, path, err, 0, readers_on_node > 1 ? readers_on_node : 1};
    record *rec = calloc(1, sizeof *rec);
    if (!rec) reject(&r, NN_ERR_RUNTIME, "out of memory reading checkpoint");
    for (int i = 0; i < N_FIELDS && !r.failed; i++) {
        get_field(&r, &fields[i], rec);
        if (i == 0 && !r.failed && rec->format_version != NN_CHECKPOINT_FORMAT &&
            rec->format_version != NN_CHECKPOINT_FORMAT_CONV) /* the version decides the rest */
            reject(&r, NN_ERR_INPUT, "checkpoint format version %lld, this nntrain reads versions %d and %d",
                   rec->format_version, NN_CHECKPOINT_FORMAT, NN_CHECKPOINT_FORMAT_CONV);
    }
    ck->format_version = rec ? (int)rec->format_version : 0;
    get_widths(&r, &ck->config.spec);
    if (ck->format_version == NN_CHECKPOINT_FORMAT_CONV) get_convs(&r, &ck->config.spec);
    if (!r.failed) check_attributes(&r, rec, &ck->config.spec);
    if (!r.failed) take_record(&r, rec, ck);
    get_arrays(&r, rec, ck);
    H5Fclose(file);
    free(rec);
    if (!r.failed) return NN_OK;
    nn_checkpoint_free(ck);
    return err->status;
}

int nn_checkpoint_agree(const char *path, const nn_checkpoint *ck, MPI_Comm comm, nn_error *err) {
    uint64_t h = nn_comm_hash(NN_COMM_HASH_START, &ck->progress, sizeof ck->progress);
    h = nn_comm_hash(h, &ck->n_params, sizeof ck->n_params);
    h = nn_comm_hash(h, ck->rng_states, (size_t)ck->rows * 4 * sizeof *ck->rng_states);
    h = nn_comm_hash(h, ck->loss_partials, (size_t)ck->rows * sizeof *ck->loss_partials);
    h = nn_comm_hash(h, ck->params, ck->n_params * sizeof *ck->params);
    h = nn_comm_hash(h, ck->velocity, ck->n_params * sizeof *ck->velocity);
    return nn_comm_agree_same(comm, &h, sizeof h, path, "every rank must read the same checkpoint (a node-local "
                              "copy that differs? a relative path from another directory?)", err);
}
