/* Writing a checkpoint (rank 0, collective for the gathers) and what a save may
 * replace; the format is checkpoint_format.h's. */
#define _XOPEN_SOURCE 700 /* fsync, realpath */
#include "checkpoint_format.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/comm.h"
#include "nn/hdf5_image.h"
#include "nn/output_place.h"
#include "nn/outputs.h"
#include "nn/version.h"
#include "nn/watchdog.h"

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
                    .shift = c->shift, .train_loss = s->train_loss,
                    .best_test_accuracy = s->best_accuracy, .best_epoch = s->best_epoch};
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
static int write_file(int dir_fd, const char *tmp_name, const char *tmp, const char *path, const nn_train_state *s,
                      int ranks, int rows,
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
    long long attributes_checksum = checkpoint_record_checksum(&rec, &s->model->spec);
    if (rc >= 0) rc = put_attr(file, "/integrity", "attributes_checksum", H5T_NATIVE_LLONG, 0, NULL, &attributes_checksum);
    if (rc < 0) {
        H5Fclose(file);
        errno = 0; /* HDF5's failure, not the system's */
        return -1;
    }
    /* exclusive: each save renames or removes its temporary file, and the one a killed
     * run left was removed at start, so a file there now is someone else's */
    return nn_hdf5_image_write(file, dir_fd, tmp_name, path, true);
}

/* Make a new name in the directory durable (nn_hdf5_image_write synced the file's bytes). */
static void sync_directory(int dir_fd, const char *path) {
    char dir[NN_PATH_MAX]; /* the held directory, where the rename went; else the path's */
    int fd = dir_fd != AT_FDCWD ? openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                                : open(nn_output_directory_of(path, dir, sizeof dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
 * directory checked at start (nn/output_place.h). Anything else there was put or
 * changed by someone else during the run: a file moved there, a file written into in
 * place (`cp`, an editor, h5py's "w"), or the directory itself moved away and a new
 * one made at its name (where another run may now be writing). */
static nn_output_place trusted = NN_OUTPUT_PLACE_NONE;
static const char not_saved[] = "this checkpoint is not saved";

static int save_on_root(const char *path, const nn_train_state *s, int ranks, const uint32_t *rng_states,
                        double *loss_partials, nn_error *err) {
    char tmp[NN_PATH_MAX + 8];
    nn_output_temporary_name(tmp, sizeof tmp, path);
    int rows = progress_rows(s, ranks, loss_partials);
    /* before the image is built and written: a save that cannot be put in place is not made */
    int status = nn_output_place_check(&trusted, path, path, not_saved, err);
    if (status) return status;
    const char *tmp_name;
    int dir_fd = nn_output_place_at(&trusted, tmp, &tmp_name); /* made in the directory checked */
    if (write_file(dir_fd, tmp_name, tmp, path, s, ranks, rows, rng_states, loss_partials) < 0) {
        int saved = errno; /* a file made and not written whole was removed (nn_hdf5_image_write) */
        if (saved == EEXIST)
            status = nn_fail(err, NN_ERR_RUNTIME, "%s: a file was put there during the run: not writing over it, "
                             "and this checkpoint is not saved", tmp);
        else
            status = nn_fail(err, NN_ERR_RUNTIME, "%s: cannot write checkpoint (%s)", tmp,
                             saved ? strerror(saved) : "HDF5 error");
        /* the place changed since the check above (the directory removed: ENOENT): that is why */
        return nn_output_place_reason(&trusted, path, path, not_saved, status, err);
    }
    nn_watchdog_alive();
    /* checked again as it is renamed, which replaces whatever is there (nn_hdf5_image_write synced the file) */
    if ((status = nn_output_place_rename(&trusted, tmp, path, path, not_saved, err))) {
        nn_output_place_remove(&trusted, tmp);
        return status;
    }
    sync_directory(dir_fd, path);
    return NN_OK;
}


int nn_checkpoint_check_replaceable(const char *path, nn_error *err) {
    /* held first, then its content checked, then held and named still the same file:
     * a file swapped in between is not taken for the one checked */
    nn_output_place_take(&trusted, path, "checkpoint");
    int status = nn_output_check_ours("--checkpoint", path, "checkpoint", checkpoint_marks, err);
    if (!status) status = nn_output_place_check(&trusted, path, path, "nothing is trained", err);
    return status;
}

int nn_checkpoint_remove_leftover(const char *path, const char *tmp, nn_error *err) {
    const char *name; /* in the directory nn_checkpoint_check_replaceable held */
    int dir_fd = nn_output_place_at(&trusted, tmp, &name);
    return nn_output_remove_hdf5_leftover("--checkpoint", path, dir_fd, name, tmp, checkpoint_marks, err);
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
