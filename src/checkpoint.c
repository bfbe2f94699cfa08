/* Checkpoint files. Rank 0 writes (all ranks hold the same parameters and optimizer
 * state); every rank can read. HDF5 errors are turned into one-line messages.
 *
 * Layout (format 1; format 2, for networks with convolutions, adds the lines marked 2):
 *   /                         attrs format_version, nntrain_version, ranks
 *   /model/denseK/weight      float32 [in, out]     K = 1, 2, ... from the input side
 *   /model/denseK/bias        float32 [out]
 *   /model/convK/weight  2    float32 [k, k, in_c, out_c]   K = 1, 2, ...: the convolutions, input first
 *   /model/convK/bias    2    float32 [out_c]
 *   /model                    attrs widths, activation, loss, n_params, checksum (CRC-32)
 *                        2    and image int [3] (c, h, w), convs int [n, 4] (pool, k, channels, pad);
 *                             widths[0] is then the flattened output of the convolutions
 *   /optimizer/velocity/{convK,denseK}/{weight,bias}   momentum buffers, same shapes
 *   /optimizer                attrs lr, lr_schedule, momentum, weight_decay, velocity_checksum
 *   /progress                 attrs epochs_completed, step_in_epoch, global_step
 *   /progress/rng_state       uint32 [ranks, 4]: each rank's shuffle generator
 *   /progress/loss_partial    float64 [ranks]: each rank's training-loss sum this epoch
 *                             (deterministic mode: one row, [1, 4] and [1], the same for
 *                             every rank count: see progress_rows)
 *   /options                  attrs epochs, batch_size, seed, train_limit, data; optional
 *                             (absent: the default, so older files stay valid) accumulate,
 *                             dropout, input_dropout, max_norm, warmup_epochs, momentum_end,
 *                             momentum_ramp_epochs, validation, compress, virtual_shards
 *                             (deterministic mode only; see fields[] below), shift
 *   /results                  attr test_accuracy of the last completed epoch (optional)
 *   /integrity                attr attributes_checksum: CRC-32 of every attribute above
 *                             (optional: older files have none, and load unchecked)
 * Integers are stored as int64, reals as float64, text as fixed-length strings. */
#define _XOPEN_SOURCE 700 /* fsync, realpath */
#include "nn/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "nn/comm.h"
#include "nn/conv_spec.h"
#include "nn/hdf5_image.h"
#include "nn/options.h"
#include "nn/outputs.h"
#include "nn/placement.h"
#include "nn/version.h"
#include "nn/watchdog.h"

uint32_t nn_checksum(const float *data, size_t n) {
    uLong crc = crc32(0L, Z_NULL, 0);
    const unsigned char *bytes = (const unsigned char *)data;
    size_t left = n * sizeof(float);
    while (left > 0) { /* crc32 takes a uInt length */
        uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
        crc = crc32(crc, bytes, chunk);
        bytes += chunk;
        left -= chunk;
    }
    return (uint32_t)crc;
}

/* ---- the scalar attributes, said once ---- */

/* Every scalar attribute of the file in one flat record; the table below says
 * where each one lives. Writing and reading both walk the table. */
typedef struct record {
    long long format_version, ranks;
    char nntrain_version[32];
    char activation[16], loss[16];
    long long n_params, checksum;
    double lr, momentum, weight_decay;
    char lr_schedule[16];
    long long velocity_checksum;
    long long epochs_completed, step_in_epoch, global_step;
    long long epochs, batch_size, seed, train_limit;
    char data[NN_PATH_MAX];
    long long accumulate;
    double dropout, input_dropout, max_norm;
    double warmup_epochs, momentum_end, momentum_ramp_epochs;
    long long validation;
    char compress[16];
    double test_accuracy;
    long long virtual_shards;
    long long shift;
} record;

typedef enum kind { INTEGER, REAL, TEXT } kind;

typedef struct field {
    const char *group, *name;
    kind kind;
    size_t offset, size;
    int optional;       /* written only when it is not `absent` (text: not empty), which */
    double absent;      /* a file without it means: newer settings, older files stay valid */
    const char *option; /* a run setting: read through the command line's own checks */
} field;

#define FIELD(group, member, kind) {group, #member, kind, offsetof(record, member), sizeof(((record *)0)->member), 0, 0, NULL}
#define SETTING(group, member, kind, option) \
    {group, #member, kind, offsetof(record, member), sizeof(((record *)0)->member), 0, 0, option}
#define OPTIONAL_SETTING(group, member, kind, absent, option) \
    {group, #member, kind, offsetof(record, member), sizeof(((record *)0)->member), 1, absent, option}
static const field fields[] = {
    FIELD("/", format_version, INTEGER),          FIELD("/", nntrain_version, TEXT),
    FIELD("/", ranks, INTEGER),                   SETTING("/model", activation, TEXT, "activation"),
    SETTING("/model", loss, TEXT, "loss"),        FIELD("/model", n_params, INTEGER),
    FIELD("/model", checksum, INTEGER),           SETTING("/optimizer", lr, REAL, "lr"),
    SETTING("/optimizer", lr_schedule, TEXT, "lr-schedule"),
    SETTING("/optimizer", momentum, REAL, "momentum"),
    SETTING("/optimizer", weight_decay, REAL, "weight-decay"),
    FIELD("/optimizer", velocity_checksum, INTEGER),
    FIELD("/progress", epochs_completed, INTEGER), FIELD("/progress", step_in_epoch, INTEGER),
    FIELD("/progress", global_step, INTEGER),     SETTING("/options", epochs, INTEGER, "epochs"),
    SETTING("/options", batch_size, INTEGER, "batch-size"),
    SETTING("/options", seed, INTEGER, "seed"),
    SETTING("/options", train_limit, INTEGER, "train-limit"),
    SETTING("/options", data, TEXT, "data"),
    OPTIONAL_SETTING("/options", accumulate, INTEGER, 1, "accumulate"),
    OPTIONAL_SETTING("/options", dropout, REAL, 0, "dropout"),
    OPTIONAL_SETTING("/options", input_dropout, REAL, 0, "input-dropout"),
    OPTIONAL_SETTING("/options", max_norm, REAL, 0, "max-norm"),
    OPTIONAL_SETTING("/options", warmup_epochs, REAL, 0, "warmup-epochs"),
    OPTIONAL_SETTING("/options", momentum_end, REAL, 0, "momentum-end"),
    OPTIONAL_SETTING("/options", momentum_ramp_epochs, REAL, 0, "momentum-ramp-epochs"),
    OPTIONAL_SETTING("/options", validation, INTEGER, 0, "validation"),
    OPTIONAL_SETTING("/options", compress, TEXT, 0, "compress"),
    OPTIONAL_SETTING("/results", test_accuracy, REAL, -1, NULL),
    OPTIONAL_SETTING("/options", virtual_shards, INTEGER, 0, "virtual-shards"), /* deterministic mode */
    OPTIONAL_SETTING("/options", shift, INTEGER, 0, "shift"),
};
#undef FIELD
#undef SETTING
#undef OPTIONAL_SETTING
enum { N_FIELDS = sizeof fields / sizeof fields[0] };
static const char *const groups[] = {"/model", "/optimizer", "/optimizer/velocity", "/progress", "/options",
                                     "/results", "/integrity"};

/* Whether an optional field holds its `absent` value (text: the empty string). */
static int field_absent(const field *f, const char *value) {
    if (f->kind == TEXT) return value[0] == '\0';
    return (f->kind == INTEGER ? (double)*(const long long *)(const void *)value
                               : *(const double *)(const void *)value) == f->absent;
}

/* A field's value as text: the command line's form for settings (reals with all 17
 * digits, so the float read back is the one written) and the checksum's input. */
static void field_text(const field *f, const char *value, char *out, size_t cap) {
    if (f->kind == INTEGER) snprintf(out, cap, "%lld", *(const long long *)(const void *)value);
    else if (f->kind == REAL) snprintf(out, cap, "%.17g", *(const double *)(const void *)value);
    else snprintf(out, cap, "%s", value);
}

/* CRC-32 of every attribute's path and value, and the widths: a hand-edited setting
 * (a negative lr, a step past the end) no longer matches. */
static uint32_t record_checksum(const record *rec, const nn_model_spec *spec) {
    uLong crc = crc32(0L, Z_NULL, 0);
    char line[NN_PATH_MAX + 96], text[NN_PATH_MAX];
    for (int i = 0; i < N_FIELDS; i++) {
        field_text(&fields[i], (const char *)rec + fields[i].offset, text, sizeof text);
        int n = snprintf(line, sizeof line, "%s/%s=%s\n", fields[i].group, fields[i].name, text);
        crc = crc32(crc, (const unsigned char *)line, (uInt)(n < (int)sizeof line ? n : (int)sizeof line - 1));
    }
    for (int i = 0; i < spec->n_widths; i++) {
        int n = snprintf(line, sizeof line, "widths[%d]=%d\n", i, spec->widths[i]);
        crc = crc32(crc, (const unsigned char *)line, (uInt)n);
    }
    for (int i = 0; i < spec->n_convs; i++) { /* format 2: image and convs too */
        const nn_conv_spec *c = &spec->convs[i];
        int n = snprintf(line, sizeof line, "image=%dx%dx%d convs[%d]=%d,%d,%d,%d\n", spec->image[0], spec->image[1],
                         spec->image[2], i, c->pool, c->k, c->channels, c->pad);
        crc = crc32(crc, (const unsigned char *)line, (uInt)n);
    }
    return (uint32_t)crc;
}

/* The HDF5 memory type of a field; text as a fixed string of `text_size` bytes. */
static hid_t field_type(const field *f, size_t text_size) {
    if (f->kind == INTEGER) return H5Tcopy(H5T_NATIVE_LLONG);
    if (f->kind == REAL) return H5Tcopy(H5T_NATIVE_DOUBLE);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, text_size);
    return type;
}

static void fill_record(record *rec, const nn_train_state *s, int ranks) {
    const nn_run_config *c = s->config;
    const nn_model *m = s->model;
    *rec = (record){.format_version = m->spec.n_convs ? NN_CHECKPOINT_FORMAT_CONV : NN_CHECKPOINT_FORMAT, .ranks = ranks, .n_params = (long long)m->n_params,
                    .checksum = nn_checksum(m->params, m->n_params), .lr = c->lr, .momentum = c->momentum,
                    .weight_decay = s->sgd->weight_decay, .velocity_checksum = nn_checksum(s->sgd->velocity, s->sgd->n),
                    .epochs_completed = s->progress->epochs_completed, .step_in_epoch = s->progress->step_in_epoch,
                    .global_step = s->progress->global_step, .epochs = c->epochs, .batch_size = c->batch_size,
                    .seed = (long long)c->seed, .train_limit = c->train_limit, .accumulate = c->accumulate,
                    .dropout = c->spec.dropout, .input_dropout = c->spec.input_dropout, .max_norm = c->max_norm,
                    .warmup_epochs = c->warmup_epochs, .momentum_end = c->momentum_end,
                    .momentum_ramp_epochs = c->momentum_ramp_epochs, .validation = c->validation,
                    .test_accuracy = s->test_accuracy, .virtual_shards = c->virtual_shards,
                    .shift = c->shift};
    snprintf(rec->nntrain_version, sizeof rec->nntrain_version, "%s", NN_VERSION);
    snprintf(rec->activation, sizeof rec->activation, "%s", nn_activation_name(m->spec.activation));
    snprintf(rec->loss, sizeof rec->loss, "%s", nn_loss_name(m->spec.loss));
    snprintf(rec->lr_schedule, sizeof rec->lr_schedule, "%s", nn_schedule_name(c->schedule));
    /* absolute: a resume from another working directory (a job script's cd) reads the
     * same file, not whatever that directory's data/mnist.h5 is */
    char resolved[PATH_MAX];
    snprintf(rec->data, sizeof rec->data, "%s", realpath(c->data, resolved) ? resolved : c->data);
    if (c->compress != NN_COMPRESS_NONE) snprintf(rec->compress, sizeof rec->compress, "%s", nn_compress_name(c->compress));
}

/* ---- writing: each helper returns < 0 on failure ---- */

static herr_t put_attr(hid_t file, const char *group, const char *name, hid_t type, int rank, const hsize_t *dims,
                       const void *value) {
    hid_t space = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate_by_name(file, group, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = attr < 0 ? -1 : H5Awrite(attr, type, value);
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    return rc;
}

static herr_t put_fields(hid_t file, const record *rec) {
    herr_t rc = 0;
    for (int i = 0; i < N_FIELDS && rc >= 0; i++) {
        const field *f = &fields[i];
        const char *value = (const char *)rec + f->offset;
        if (f->optional && field_absent(f, value)) continue;
        hid_t type = field_type(f, f->kind == TEXT ? strlen(value) + 1 : 0);
        rc = put_attr(file, f->group, f->name, type, 0, NULL, value);
        H5Tclose(type);
    }
    return rc;
}

static herr_t put_dataset(hid_t file, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dset = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = dset < 0 ? -1 : H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (dset >= 0) H5Dclose(dset);
    H5Sclose(space);
    nn_watchdog_alive(); /* writing a large checkpoint is progress */
    return rc;
}

/* The shape of a layer's weights as stored: dense [in, out], conv [k, k, in_c, out_c]. */
static int weight_dims(const nn_layer *d, hsize_t dims[4], hsize_t *biases) {
    const nn_conv_geom *g = &d->conv;
    if (d->kind == NN_LAYER_CONV) {
        dims[0] = dims[1] = (hsize_t)g->k, dims[2] = (hsize_t)g->in_c, dims[3] = (hsize_t)g->out_c;
        *biases = (hsize_t)g->out_c;
        return 4;
    }
    dims[0] = (hsize_t)d->in, dims[1] = (hsize_t)d->out;
    *biases = (hsize_t)d->out;
    return 2;
}

/* PREFIX/{convK,denseK}/weight and .../bias, from a buffer laid out like the model's
 * parameters. */
static herr_t put_layers(hid_t file, const char *prefix, const nn_model *model, const float *buffer) {
    herr_t rc = 0;
    int k[2] = {0, 0}; /* dense, conv */
    for (int l = 0; l < model->n_layers && rc >= 0; l++) {
        const nn_layer *d = &model->layers[l];
        if (!nn_layer_has_params(d)) continue;
        int conv = d->kind == NN_LAYER_CONV;
        char name[64];
        snprintf(name, sizeof name, "%s/%s%d", prefix, conv ? "conv" : "dense", ++k[conv]);
        hid_t g = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) return -1;
        H5Gclose(g);
        size_t w_offset = (size_t)(d->weight - model->params), b_offset = (size_t)(d->bias - model->params);
        hsize_t wdims[4], bdims[1];
        int rank = weight_dims(d, wdims, bdims);
        char path[96];
        snprintf(path, sizeof path, "%s/weight", name);
        rc = put_dataset(file, path, H5T_NATIVE_FLOAT, rank, wdims, buffer + w_offset);
        snprintf(path, sizeof path, "%s/bias", name);
        if (rc >= 0) rc = put_dataset(file, path, H5T_NATIVE_FLOAT, 1, bdims, buffer + b_offset);
    }
    return rc;
}

/* Format 2: the input image and one row (pool, k, channels, pad) per conv or pool. */
static herr_t put_convs(hid_t file, const nn_model_spec *spec) {
    int rows[NN_MAX_CONVS][4];
    for (int i = 0; i < spec->n_convs; i++) {
        const nn_conv_spec *c = &spec->convs[i];
        rows[i][0] = c->pool, rows[i][1] = c->k, rows[i][2] = c->channels, rows[i][3] = c->pad;
    }
    hsize_t three = 3, dims[2] = {(hsize_t)spec->n_convs, 4};
    herr_t rc = put_attr(file, "/model", "image", H5T_NATIVE_INT, 1, &three, spec->image);
    return rc < 0 ? rc : put_attr(file, "/model", "convs", H5T_NATIVE_INT, 2, dims, rows);
}

/* Built in memory and written out whole (nn/hdf5_image.h: a full disk must not leave
 * HDF5 holding a file it cannot close). */
static int write_file(const char *tmp, const char *path, const nn_train_state *s, int ranks, int rows,
                      const uint32_t *rng_states, const double *loss_partials) {
    size_t expected = 2 * s->model->n_params * sizeof(float) + ((size_t)1 << 20); /* one allocation, usually */
    hid_t file = nn_hdf5_image_create(tmp, expected);
    if (file < 0) return -1;
    herr_t rc = 0;
    for (size_t i = 0; i < sizeof groups / sizeof groups[0] && rc >= 0; i++) {
        hid_t g = H5Gcreate2(file, groups[i], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = g < 0 ? -1 : H5Gclose(g);
    }
    record rec;
    fill_record(&rec, s, ranks);
    hsize_t nw = (hsize_t)s->model->spec.n_widths, rdims[2] = {(hsize_t)rows, 4};
    if (rc >= 0) rc = put_layers(file, "/model", s->model, s->model->params);
    if (rc >= 0) rc = put_layers(file, "/optimizer/velocity", s->model, s->sgd->velocity);
    if (rc >= 0) rc = put_dataset(file, "/progress/rng_state", H5T_NATIVE_UINT32, 2, rdims, rng_states);
    if (rc >= 0) rc = put_dataset(file, "/progress/loss_partial", H5T_NATIVE_DOUBLE, 1, rdims, loss_partials);
    if (rc >= 0) rc = put_attr(file, "/model", "widths", H5T_NATIVE_INT, 1, &nw, s->model->spec.widths);
    if (rc >= 0 && s->model->spec.n_convs) rc = put_convs(file, &s->model->spec);
    if (rc >= 0) rc = put_fields(file, &rec);
    long long attributes_checksum = record_checksum(&rec, &s->model->spec);
    if (rc >= 0) rc = put_attr(file, "/integrity", "attributes_checksum", H5T_NATIVE_LLONG, 0, NULL, &attributes_checksum);
    if (rc < 0) {
        H5Fclose(file);
        errno = 0; /* HDF5's failure, not the system's */
        return -1;
    }
    /* exclusive: each save renames or removes its temporary file, and the one a killed
     * run left was removed at start, so a file there now is someone else's */
    return nn_hdf5_image_write(file, tmp, path, true);
}

/* Make a new name in the directory durable (nn_hdf5_image_write synced the file's bytes). */
static void sync_directory(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    if (fsync(fd) != 0) { /* best effort: some filesystems refuse fsync on directories */ }
    close(fd);
}

/* Rows of /progress: one a rank, or in deterministic mode one for the run, so that
 * its arrays too are the same for every rank count. That loses nothing there: every
 * rank's generator is the same (virtual shards draw their own permutations), and the
 * loss sums lie on a grid where adding them is exact; their sum goes in row 0. */
static int progress_rows(const nn_train_state *s, int ranks, double *loss_partials) {
    if (s->config->virtual_shards <= 0) return ranks;
    for (int i = 1; i < ranks; i++) loss_partials[0] += loss_partials[i];
    return 1;
}

/* What a save may replace: the file at the checkpoint's path that was checked at
 * start (nn_checkpoint_check_replaceable) or that the last save wrote, unchanged
 * since (the same inode and size: not the modification time, which HDF5 moves when a
 * viewer merely opens the file for writing and closes it), or nothing; and only in the
 * directory checked at start. Anything else there was put or changed by someone
 * else during the run: a file moved there, a file written into in place (`cp`, an
 * editor, h5py's "w"), or the directory itself moved away and a new one made at its
 * name (where another run may now be writing). The trusted file is not reopened:
 * HDF5 cannot open a file another program holds open for writing. */
typedef struct file_identity {
    bool known;
    dev_t dev;
    ino_t ino;
    off_t size;
} file_identity;

static struct {
    file_identity file, dir;
} trusted;

static file_identity identity_of(const struct stat *st) {
    return (file_identity){true, st->st_dev, st->st_ino, st->st_size};
}

static bool same_identity(const file_identity *a, const struct stat *st) {
    return a->known && st->st_dev == a->dev && st->st_ino == a->ino && st->st_size == a->size;
}

/* NN_OK where a save may put its file at `path` now (see above). */
static int check_still_ours(const char *path, nn_error *err) {
    char dir_copy[NN_PATH_MAX];
    snprintf(dir_copy, sizeof dir_copy, "%s", path);
    struct stat st;
    if (trusted.dir.known && (stat(dirname(dir_copy), &st) != 0 || st.st_dev != trusted.dir.dev ||
                              st.st_ino != trusted.dir.ino))
        return nn_fail(err, NN_ERR_RUNTIME, "%s: its directory is not the one this run started in (moved or "
                       "replaced during the run); this checkpoint is not saved", path);
    if (stat(path, &st) == 0 && !same_identity(&trusted.file, &st))
        return nn_fail(err, NN_ERR_RUNTIME, "%s: is not the checkpoint this run checked or wrote (replaced or "
                       "changed during the run); not replacing it, and this checkpoint is not saved", path);
    return NN_OK;
}

static int save_on_root(const char *path, const nn_train_state *s, int ranks, const uint32_t *rng_states,
                        double *loss_partials, nn_error *err) {
    char tmp[NN_PATH_MAX + 8], dir[NN_PATH_MAX];
    nn_output_temporary_name(tmp, sizeof tmp, path);
    snprintf(dir, sizeof dir, "%s", path);
    int rows = progress_rows(s, ranks, loss_partials);
    int status = check_still_ours(path, err); /* before a file is made in a directory not ours */
    if (status) return status;
    if (write_file(tmp, path, s, ranks, rows, rng_states, loss_partials) < 0) {
        int saved = errno;
        if (saved == EEXIST)
            return nn_fail(err, NN_ERR_RUNTIME, "%s: a file was put there during the run: not writing over it, and "
                           "this checkpoint is not saved", tmp);
        remove(tmp);
        return nn_fail(err, NN_ERR_RUNTIME, "%s: cannot write checkpoint (%s)", tmp,
                       saved ? strerror(saved) : "HDF5 error");
    }
    /* and again just before the rename, which replaces whatever is there */
    struct stat written; /* the file written is trusted next, not whatever the path names after the rename */
    if ((status = check_still_ours(path, err)) || stat(tmp, &written) != 0) {
        remove(tmp);
        return status ? status : nn_fail(err, NN_ERR_RUNTIME, "%s: vanished before it was put in place", tmp);
    }
    nn_watchdog_alive();
    if (rename(tmp, path) < 0) { /* nn_hdf5_image_write synced the file */
        int saved = errno;
        remove(tmp);
        return nn_fail(err, NN_ERR_RUNTIME, "%s: cannot put checkpoint in place: %s", path, strerror(saved));
    }
    trusted.file = identity_of(&written);
    sync_directory(dirname(dir));
    return NN_OK;
}

/* What every checkpoint, of any format version, carries. */
static const char *const checkpoint_marks[] = {"format_version", "/progress", NULL};

int nn_checkpoint_check_replaceable(const char *path, nn_error *err) {
    int status = nn_output_check_ours("--checkpoint", path, "checkpoint", checkpoint_marks, err);
    if (status) return status;
    struct stat st; /* the file checked (if any) and its directory are what the saves may write */
    trusted.file = stat(path, &st) == 0 ? identity_of(&st) : (file_identity){0};
    char dir_copy[NN_PATH_MAX];
    snprintf(dir_copy, sizeof dir_copy, "%s", path);
    trusted.dir = stat(dirname(dir_copy), &st) == 0 ? identity_of(&st) : (file_identity){0};
    return NN_OK;
}

int nn_checkpoint_remove_leftover(const char *path, const char *tmp, nn_error *err) {
    return nn_output_remove_hdf5_leftover("--checkpoint", path, tmp, checkpoint_marks, err);
}

int nn_checkpoint_save(const char *path, const nn_train_state *state, MPI_Comm comm, double *seconds, nn_error *err) {
    double t0 = MPI_Wtime();
    int rank, ranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &ranks);
    uint32_t *rng_states = NULL;
    double *loss_partials = NULL;
    int status = NN_OK;
    if (rank == 0) {
        rng_states = malloc((size_t)ranks * 4 * sizeof *rng_states);
        loss_partials = malloc((size_t)ranks * sizeof *loss_partials);
        if (!rng_states || !loss_partials) status = nn_fail(err, NN_ERR_RUNTIME, "out of memory writing %s", path);
    }
    /* every rank learns whether rank 0 has room to gather into, before the gathers */
    status = nn_comm_agree(comm, status, err);
    if (status == NN_OK) {
        MPI_Gather(state->shuffle_rng->s, 4, MPI_UINT32_T, rng_states, 4, MPI_UINT32_T, 0, comm);
        MPI_Gather(&state->loss_partial, 1, MPI_DOUBLE, loss_partials, 1, MPI_DOUBLE, 0, comm);
    }
    if (rank == 0 && status == NN_OK) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        errno = 0;
        status = save_on_root(path, state, ranks, rng_states, loss_partials, err);
    }
    free(rng_states);
    free(loss_partials);
    status = nn_comm_agree(comm, status, err);
    if (seconds) *seconds = MPI_Wtime() - t0;
    return status;
}

/* ---- reading ---- */

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
    uint32_t computed = record_checksum(rec, spec);
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
    if (access(path, R_OK) != 0) return nn_fail(err, NN_ERR_INPUT, "%s: cannot read checkpoint: %s", path, strerror(errno));
    hid_t file = H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    if (file < 0) return nn_fail(err, NN_ERR_INPUT, "%s: not a valid checkpoint: truncated or not an HDF5 file", path);
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
