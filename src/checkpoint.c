/* Checkpoint files. Rank 0 writes (all ranks hold the same parameters and optimizer
 * state); every rank can read. HDF5 errors are turned into one-line messages.
 *
 * Layout (format 1):
 *   /                         attrs format_version, nntrain_version, ranks
 *   /model/denseK/weight      float32 [in, out]     K = 1, 2, ... from the input side
 *   /model/denseK/bias        float32 [out]
 *   /model                    attrs widths, activation, loss, n_params, checksum (CRC-32)
 *   /optimizer/velocity/denseK/{weight,bias}   momentum buffers, same shapes
 *   /optimizer                attrs lr, lr_schedule, momentum, weight_decay, velocity_checksum
 *   /progress                 attrs epochs_completed, step_in_epoch, global_step
 *   /progress/rng_state       uint32 [ranks, 4]: each rank's shuffle generator
 *   /progress/loss_partial    float64 [ranks]: each rank's training-loss sum this epoch
 *   /options                  attrs epochs, batch_size, seed, train_limit, data */
#define _POSIX_C_SOURCE 200809L /* fsync, getpid */
#include "nn/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "nn/comm.h"
#include "nn/version.h"

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

/* ---- writing helpers: each returns < 0 on failure ---- */

static herr_t put_attr(hid_t obj, const char *name, hid_t type, int rank, const hsize_t *dims, const void *value) {
    hid_t space = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = attr < 0 ? -1 : H5Awrite(attr, type, value);
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    return rc;
}

static herr_t put_int(hid_t obj, const char *name, long value) {
    long long v = value;
    return put_attr(obj, name, H5T_NATIVE_LLONG, 0, NULL, &v);
}

static herr_t put_double(hid_t obj, const char *name, double value) {
    return put_attr(obj, name, H5T_NATIVE_DOUBLE, 0, NULL, &value);
}

static herr_t put_string(hid_t obj, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(value) + 1);
    herr_t rc = put_attr(obj, name, type, 0, NULL, value);
    H5Tclose(type);
    return rc;
}

static herr_t put_dataset(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dset = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = dset < 0 ? -1 : H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (dset >= 0) H5Dclose(dset);
    H5Sclose(space);
    return rc;
}

/* denseK/weight and denseK/bias under `group`, from a buffer laid out like the
 * model's parameters. */
static herr_t put_layers(hid_t group, const nn_model *model, const float *buffer) {
    herr_t rc = 0;
    int k = 0;
    for (int l = 0; l < model->n_layers && rc >= 0; l++) {
        const nn_layer *d = &model->layers[l];
        if (d->kind != NN_LAYER_DENSE) continue;
        char name[32];
        snprintf(name, sizeof name, "dense%d", ++k);
        hid_t g = H5Gcreate2(group, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) return -1;
        size_t w_offset = (size_t)(d->weight - model->params), b_offset = (size_t)(d->bias - model->params);
        hsize_t wdims[2] = {(hsize_t)d->in, (hsize_t)d->out}, bdims[1] = {(hsize_t)d->out};
        rc = put_dataset(g, "weight", H5T_NATIVE_FLOAT, 2, wdims, buffer + w_offset);
        if (rc >= 0) rc = put_dataset(g, "bias", H5T_NATIVE_FLOAT, 1, bdims, buffer + b_offset);
        H5Gclose(g);
    }
    return rc;
}

static int write_file(const char *tmp, const nn_train_options *opt, const nn_model *model, const nn_sgd *sgd,
                      const nn_progress *progress, int ranks, const uint32_t *rng_states,
                      const double *loss_partials) {
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) return -1;
    const nn_model_spec *spec = &model->spec;
    herr_t rc = put_int(file, "format_version", NN_CHECKPOINT_FORMAT);
    if (rc >= 0) rc = put_string(file, "nntrain_version", NN_VERSION);
    if (rc >= 0) rc = put_int(file, "ranks", ranks);

    hid_t g = H5Gcreate2(file, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t nw = (hsize_t)spec->n_widths;
    if (g < 0) rc = -1;
    if (rc >= 0) rc = put_layers(g, model, model->params);
    if (rc >= 0) rc = put_attr(g, "widths", H5T_NATIVE_INT, 1, &nw, spec->widths);
    if (rc >= 0) rc = put_string(g, "activation", nn_activation_name(spec->activation));
    if (rc >= 0) rc = put_string(g, "loss", nn_loss_name(spec->loss));
    if (rc >= 0) rc = put_int(g, "n_params", (long)model->n_params);
    if (rc >= 0) rc = put_int(g, "checksum", nn_checksum(model->params, model->n_params));
    if (g >= 0) H5Gclose(g);

    g = rc >= 0 ? H5Gcreate2(file, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    hid_t v = g >= 0 ? H5Gcreate2(g, "velocity", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    if (v < 0) rc = -1;
    if (rc >= 0) rc = put_layers(v, model, sgd->velocity);
    if (rc >= 0) rc = put_double(g, "lr", opt->lr);
    if (rc >= 0) rc = put_string(g, "lr_schedule", nn_schedule_name(opt->schedule));
    if (rc >= 0) rc = put_double(g, "momentum", sgd->momentum);
    if (rc >= 0) rc = put_double(g, "weight_decay", sgd->weight_decay);
    if (rc >= 0) rc = put_int(g, "velocity_checksum", nn_checksum(sgd->velocity, sgd->n));
    if (v >= 0) H5Gclose(v);
    if (g >= 0) H5Gclose(g);

    g = rc >= 0 ? H5Gcreate2(file, "progress", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    hsize_t rdims[2] = {(hsize_t)ranks, 4};
    if (g < 0) rc = -1;
    if (rc >= 0) rc = put_int(g, "epochs_completed", progress->epochs_completed);
    if (rc >= 0) rc = put_int(g, "step_in_epoch", progress->step_in_epoch);
    if (rc >= 0) rc = put_int(g, "global_step", progress->global_step);
    if (rc >= 0) rc = put_dataset(g, "rng_state", H5T_NATIVE_UINT32, 2, rdims, rng_states);
    if (rc >= 0) rc = put_dataset(g, "loss_partial", H5T_NATIVE_DOUBLE, 1, rdims, loss_partials);
    if (g >= 0) H5Gclose(g);

    g = rc >= 0 ? H5Gcreate2(file, "options", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    if (g < 0) rc = -1;
    if (rc >= 0) rc = put_int(g, "epochs", opt->epochs);
    if (rc >= 0) rc = put_int(g, "batch_size", opt->batch_size);
    if (rc >= 0) rc = put_int(g, "seed", (long)opt->seed);
    if (rc >= 0) rc = put_int(g, "train_limit", opt->train_limit);
    if (rc >= 0) rc = put_string(g, "data", opt->data);
    if (g >= 0) H5Gclose(g);

    if (H5Fclose(file) < 0) rc = -1;
    return rc < 0 ? -1 : 0;
}

/* Make the file's bytes, then its new name, durable. */
static int sync_path(const char *path, int directory) {
    int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int save_on_root(const char *path, const nn_train_options *opt, const nn_model *model, const nn_sgd *sgd,
                        const nn_progress *progress, int ranks, const uint32_t *rng_states,
                        const double *loss_partials, nn_error *err) {
    char tmp[NN_PATH_MAX + 32], dir[NN_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(dir, sizeof dir, "%s", path);
    if (write_file(tmp, opt, model, sgd, progress, ranks, rng_states, loss_partials) < 0) {
        int saved = errno;
        remove(tmp);
        return nn_fail(err, NN_ERR_RUNTIME, "%s: cannot write checkpoint (%s)", tmp,
                       saved ? strerror(saved) : "HDF5 error");
    }
    if (sync_path(tmp, 0) < 0 || rename(tmp, path) < 0) {
        int saved = errno;
        remove(tmp);
        return nn_fail(err, NN_ERR_RUNTIME, "%s: cannot put checkpoint in place: %s", path, strerror(saved));
    }
    sync_path(dirname(dir), 1); /* best effort: some filesystems refuse fsync on directories */
    return NN_OK;
}

int nn_checkpoint_save(const char *path, const nn_train_options *opt, const nn_model *model,
                       const nn_sgd *sgd, const nn_progress *progress, const nn_rng *shuffle_rng,
                       double loss_partial, MPI_Comm comm, double *seconds, nn_error *err) {
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
    /* Gathering is collective: every rank joins, even when rank 0 could not allocate. */
    uint32_t dummy_states[4];
    double dummy_loss;
    MPI_Gather(shuffle_rng->s, 4, MPI_UINT32_T, rng_states ? rng_states : dummy_states, 4, MPI_UINT32_T, 0, comm);
    MPI_Gather(&loss_partial, 1, MPI_DOUBLE, loss_partials ? loss_partials : &dummy_loss, 1, MPI_DOUBLE, 0, comm);
    if (rank == 0 && status == NN_OK) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        errno = 0;
        status = save_on_root(path, opt, model, sgd, progress, ranks, rng_states, loss_partials, err);
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
} reader;

/* Reads a scalar or small array attribute at `object`; records a message on failure. */
static void get_attr(reader *r, const char *object, const char *name, hid_t type, void *out, size_t count) {
    if (r->failed) return;
    hid_t attr = H5Aexists_by_name(r->file, object, name, H5P_DEFAULT) > 0
                     ? H5Aopen_by_name(r->file, object, name, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int ok = attr >= 0;
    if (ok) {
        hid_t space = H5Aget_space(attr);
        ok = H5Sget_simple_extent_npoints(space) == (hssize_t)count;
        H5Sclose(space);
    }
    if (ok) ok = H5Aread(attr, type, out) >= 0;
    if (attr >= 0) H5Aclose(attr);
    if (!ok) {
        r->failed = 1;
        nn_fail(r->err, NN_ERR_INPUT, "%s: not a valid checkpoint: missing or bad attribute %s%s%s", r->path,
                object, strcmp(object, "/") ? "/" : "", name);
    }
}

static long get_long(reader *r, const char *object, const char *name) {
    long long v = 0;
    get_attr(r, object, name, H5T_NATIVE_LLONG, &v, 1);
    return (long)v;
}

static void get_string(reader *r, const char *object, const char *name, char *out, size_t cap) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, cap);
    memset(out, 0, cap);
    get_attr(r, object, name, type, out, 1);
    H5Tclose(type);
    out[cap - 1] = '\0';
}

/* Reads a dataset that must have exactly the given shape. */
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
    if (ok) ok = H5Dread(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0;
    if (dset >= 0) H5Dclose(dset);
    if (!ok) {
        r->failed = 1;
        nn_fail(r->err, NN_ERR_INPUT, "%s: not a valid checkpoint: missing, misshapen or unreadable %s", r->path, name);
    }
}

static void get_layers(reader *r, const char *group, const nn_model_spec *spec, float *buffer) {
    size_t offset = 0;
    for (int i = 0; i + 1 < spec->n_widths; i++) {
        char name[128];
        hsize_t wdims[2] = {(hsize_t)spec->widths[i], (hsize_t)spec->widths[i + 1]}, bdims[1] = {wdims[1]};
        snprintf(name, sizeof name, "%s/dense%d/weight", group, i + 1);
        get_dataset(r, name, H5T_NATIVE_FLOAT, 2, wdims, buffer + offset);
        offset += wdims[0] * wdims[1];
        snprintf(name, sizeof name, "%s/dense%d/bias", group, i + 1);
        get_dataset(r, name, H5T_NATIVE_FLOAT, 1, bdims, buffer + offset);
        offset += bdims[0];
    }
}

void nn_checkpoint_free(nn_checkpoint *ck) {
    free(ck->rng_states);
    free(ck->loss_partials);
    free(ck->params);
    free(ck->velocity);
    memset(ck, 0, sizeof *ck);
}

int nn_checkpoint_load(const char *path, nn_checkpoint *ck, nn_error *err) {
    memset(ck, 0, sizeof *ck);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (access(path, R_OK) != 0) return nn_fail(err, NN_ERR_INPUT, "%s: cannot read checkpoint: %s", path, strerror(errno));
    hid_t file = H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    if (file < 0) return nn_fail(err, NN_ERR_INPUT, "%s: not a valid checkpoint: truncated or not an HDF5 file", path);
    reader r = {file, path, err, 0};

    ck->format_version = (int)get_long(&r, "/", "format_version");
    if (!r.failed && ck->format_version != NN_CHECKPOINT_FORMAT) {
        r.failed = 1;
        nn_fail(err, NN_ERR_INPUT, "%s: checkpoint format version %d, this nntrain reads version %d", path,
                ck->format_version, NN_CHECKPOINT_FORMAT);
    }
    get_string(&r, "/", "nntrain_version", ck->version, sizeof ck->version);
    ck->ranks = (int)get_long(&r, "/", "ranks");
    if (!r.failed && (ck->ranks < 1 || ck->ranks > 1 << 20)) {
        r.failed = 1;
        nn_fail(err, NN_ERR_INPUT, "%s: not a valid checkpoint: %d ranks", path, ck->ranks);
    }

    /* the network */
    nn_train_options *o = &ck->saved;
    nn_options_defaults(o);
    hsize_t nw = 0;
    if (!r.failed) {
        hid_t attr = H5Aexists_by_name(file, "model", "widths", H5P_DEFAULT) > 0
                         ? H5Aopen_by_name(file, "model", "widths", H5P_DEFAULT, H5P_DEFAULT) : -1;
        if (attr >= 0) {
            hid_t space = H5Aget_space(attr);
            nw = (hsize_t)H5Sget_simple_extent_npoints(space);
            H5Sclose(space);
            H5Aclose(attr);
        }
        if (nw < 2 || nw > NN_MAX_WIDTHS) {
            r.failed = 1;
            nn_fail(err, NN_ERR_INPUT, "%s: not a valid checkpoint: bad /model/widths", path);
        }
    }
    get_attr(&r, "model", "widths", H5T_NATIVE_INT, o->spec.widths, nw);
    o->spec.n_widths = (int)nw;
    for (int i = 0; !r.failed && i < (int)nw; i++)
        if (o->spec.widths[i] < 1) {
            r.failed = 1;
            nn_fail(err, NN_ERR_INPUT, "%s: not a valid checkpoint: bad /model/widths", path);
        }
    char text[64];
    get_string(&r, "model", "activation", text, sizeof text);
    if (!r.failed && nn_parse_activation(text, &o->spec.activation)) {
        r.failed = 1;
        nn_fail(err, NN_ERR_INPUT, "%s: not a valid checkpoint: unknown activation '%s'", path, text);
    }
    get_string(&r, "model", "loss", text, sizeof text);
    if (!r.failed && nn_parse_loss(text, &o->spec.loss)) {
        r.failed = 1;
        nn_fail(err, NN_ERR_INPUT, "%s: not a valid checkpoint: unknown loss '%s'", path, text);
    }
    long n_params = get_long(&r, "model", "n_params");
    if (!r.failed && (size_t)n_params != nn_spec_param_count(&o->spec)) {
        r.failed = 1;
        nn_fail(err, NN_ERR_INPUT, "%s: not a valid checkpoint: %ld parameters for a %d-layer network of %zu",
                path, n_params, (int)nw, nn_spec_param_count(&o->spec));
    }

    /* parameters and momentum, with their checksums */
    if (!r.failed) {
        ck->n_params = (size_t)n_params;
        ck->params = malloc(ck->n_params * sizeof(float));
        ck->velocity = malloc(ck->n_params * sizeof(float));
        ck->rng_states = malloc((size_t)ck->ranks * 4 * sizeof(uint32_t));
        ck->loss_partials = malloc((size_t)ck->ranks * sizeof(double));
        if (!ck->params || !ck->velocity || !ck->rng_states || !ck->loss_partials) {
            r.failed = 1;
            nn_fail(err, NN_ERR_RUNTIME, "%s: out of memory reading checkpoint", path);
        }
    }
    if (!r.failed) get_layers(&r, "/model", &o->spec, ck->params);
    if (!r.failed) get_layers(&r, "/optimizer/velocity", &o->spec, ck->velocity);
    long stored = get_long(&r, "model", "checksum");
    if (!r.failed && (uint32_t)stored != nn_checksum(ck->params, ck->n_params)) {
        r.failed = 1;
        nn_fail(err, NN_ERR_INPUT, "%s: parameter checksum mismatch (stored %08lx, computed %08x): the file is corrupted",
                path, (unsigned long)stored, nn_checksum(ck->params, ck->n_params));
    }
    stored = get_long(&r, "optimizer", "velocity_checksum");
    if (!r.failed && (uint32_t)stored != nn_checksum(ck->velocity, ck->n_params)) {
        r.failed = 1;
        nn_fail(err, NN_ERR_INPUT, "%s: momentum checksum mismatch: the file is corrupted", path);
    }

    /* optimizer settings, progress, options */
    double value = 0;
    get_attr(&r, "optimizer", "lr", H5T_NATIVE_DOUBLE, &value, 1);
    o->lr = (float)value;
    get_attr(&r, "optimizer", "momentum", H5T_NATIVE_DOUBLE, &value, 1);
    o->momentum = (float)value;
    get_attr(&r, "optimizer", "weight_decay", H5T_NATIVE_DOUBLE, &value, 1);
    o->weight_decay = (float)value;
    get_string(&r, "optimizer", "lr_schedule", text, sizeof text);
    if (!r.failed && nn_parse_schedule(text, &o->schedule)) {
        r.failed = 1;
        nn_fail(err, NN_ERR_INPUT, "%s: not a valid checkpoint: unknown lr_schedule '%s'", path, text);
    }
    ck->progress.epochs_completed = (int)get_long(&r, "progress", "epochs_completed");
    ck->progress.step_in_epoch = get_long(&r, "progress", "step_in_epoch");
    ck->progress.global_step = get_long(&r, "progress", "global_step");
    hsize_t rdims[2] = {(hsize_t)ck->ranks, 4};
    get_dataset(&r, "/progress/rng_state", H5T_NATIVE_UINT32, 2, rdims, ck->rng_states);
    get_dataset(&r, "/progress/loss_partial", H5T_NATIVE_DOUBLE, 1, rdims, ck->loss_partials);
    o->epochs = (int)get_long(&r, "options", "epochs");
    o->batch_size = (int)get_long(&r, "options", "batch_size");
    o->seed = (uint64_t)get_long(&r, "options", "seed");
    o->train_limit = get_long(&r, "options", "train_limit");
    get_string(&r, "options", "data", o->data, sizeof o->data);
    if (!r.failed && (ck->progress.epochs_completed < 0 || ck->progress.step_in_epoch < 0 || o->batch_size < 1 ||
                      o->epochs < 1 || ck->progress.global_step < 0)) {
        r.failed = 1;
        nn_fail(err, NN_ERR_INPUT, "%s: not a valid checkpoint: inconsistent progress", path);
    }
    H5Fclose(file);
    if (r.failed) {
        int status = err->status;
        nn_checkpoint_free(ck);
        return status;
    }
    return NN_OK;
}
