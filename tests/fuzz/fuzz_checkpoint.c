/* libFuzzer harness: the checkpoint loader. The fuzz input does not become the file's
 * bytes (that would fuzz the HDF5 library, not us): it decides, field by field, what a
 * format-1 checkpoint holds -- each attribute present or missing, of the right type or
 * not, scalar or array, with a sane or hostile value; each dataset's shape; whether the
 * checksums match -- and the file is written with the HDF5 API. nn_checkpoint_load
 * must accept it with consistent contents, or refuse it with a message. */
#define _GNU_SOURCE
#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_input.h"
#include "nn/checkpoint.h"

static char path[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    /* in the directory scripts/fuzz.sh made (and removes), else in memory-backed /dev/shm */
    const char *dir = getenv("NN_FUZZ_SCRATCH");
    snprintf(path, sizeof path, "%s/fuzz-checkpoint-%d.h5", dir ? dir : "/dev/shm", (int)getpid());
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return 0;
}

/* An attribute at `group`: usually as the format says, sometimes missing, of another
 * type or an array. */
static void put_int(fuzz_input *in, hid_t file, const char *group, const char *name, long long sane) {
    uint8_t how = take_byte(in) % 16;
    if (how == 0) return; /* missing */
    hsize_t two = 2;
    hid_t space = how == 1 ? H5Screate_simple(1, &two, NULL) : H5Screate(H5S_SCALAR);
    long long values[2] = {how < 12 ? sane : take_number(in, 10), 0};
    double real = (double)values[0] + 0.5;
    hid_t type = how == 2 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_LLONG;
    hid_t attr = H5Acreate_by_name(file, group, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (attr >= 0) H5Awrite(attr, type, how == 2 ? (void *)&real : (void *)values), H5Aclose(attr);
    H5Sclose(space);
}

static void put_real(fuzz_input *in, hid_t file, const char *group, const char *name, double sane) {
    uint8_t how = take_byte(in) % 16;
    if (how == 0) return;
    double v = how < 12 ? sane : (double)take_number(in, 100) / 7.0;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate_by_name(file, group, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (attr >= 0) H5Awrite(attr, H5T_NATIVE_DOUBLE, &v), H5Aclose(attr);
    H5Sclose(space);
}

static void put_text(fuzz_input *in, hid_t file, const char *group, const char *name, const char *sane) {
    uint8_t how = take_byte(in) % 16;
    if (how == 0) return;
    char text[80];
    if (how < 12) snprintf(text, sizeof text, "%s", sane);
    else {
        size_t n = take_byte(in) % (sizeof text - 1);
        for (size_t i = 0; i < n; i++) text[i] = (char)(take_byte(in) | 1);
        text[n] = '\0';
    }
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(text) + 1);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate_by_name(file, group, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (attr >= 0) H5Awrite(attr, type, text), H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
}

/* A dataset of `rank` dims, sometimes with one dimension off by one or missing. */
static void put_floats(fuzz_input *in, hid_t file, const char *name, hid_t type, int rank, hsize_t *dims,
                       const void *data) {
    uint8_t how = take_byte(in) % 16;
    if (how == 0) return;
    if (how == 1 && dims[rank - 1] > 0) dims[rank - 1]--; /* misshapen */
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dset = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (dset >= 0) H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), H5Dclose(dset);
    H5Sclose(space);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_input in = {data, size, 0};
    nn_model_spec spec = {.n_widths = 2 + take_byte(&in) % 3};
    for (int i = 0; i < spec.n_widths; i++) spec.widths[i] = 1 + take_byte(&in) % 5;
    size_t n = nn_spec_param_count(&spec);
    int ranks = 1 + take_byte(&in) % 3;
    float params[256], velocity[256];
    for (size_t i = 0; i < n; i++) params[i] = (float)take_byte(&in) / 7.0f, velocity[i] = (float)take_byte(&in);
    uint32_t rng[12] = {0};
    double loss[3] = {1, 2, 3};

    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) abort();
    const char *groups[] = {"/model", "/optimizer", "/optimizer/velocity", "/progress", "/options"};
    for (int g = 0; g < 5; g++)
        if (take_byte(&in) % 32) H5Gclose(H5Gcreate2(file, groups[g], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    size_t offset = 0;
    for (int i = 0; i + 1 < spec.n_widths; i++) {
        for (int v = 0; v < 2; v++) {
            char name[96];
            const float *buf = v ? velocity : params;
            hsize_t wdims[2] = {(hsize_t)spec.widths[i], (hsize_t)spec.widths[i + 1]}, bdims[1] = {wdims[1]};
            snprintf(name, sizeof name, "%s/dense%d", v ? "/optimizer/velocity" : "/model", i + 1);
            H5Gclose(H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
            snprintf(name, sizeof name, "%s/dense%d/weight", v ? "/optimizer/velocity" : "/model", i + 1);
            put_floats(&in, file, name, H5T_NATIVE_FLOAT, 2, wdims, buf + offset);
            snprintf(name, sizeof name, "%s/dense%d/bias", v ? "/optimizer/velocity" : "/model", i + 1);
            put_floats(&in, file, name, H5T_NATIVE_FLOAT, 1, bdims, buf + offset + wdims[0] * wdims[1]);
        }
        offset += (size_t)spec.widths[i] * spec.widths[i + 1] + spec.widths[i + 1];
    }
    hsize_t rdims[2] = {(hsize_t)ranks, 4};
    put_floats(&in, file, "/progress/rng_state", H5T_NATIVE_UINT32, 2, rdims, rng);
    rdims[0] = (hsize_t)ranks;
    put_floats(&in, file, "/progress/loss_partial", H5T_NATIVE_DOUBLE, 1, rdims, loss);
    /* sometimes a hostile width, with the parameter count an editor would compute for
     * it (wrapped, for the largest): the small arrays must still be refused, unread */
    nn_model_spec stored = spec;
    if (take_byte(&in) % 16 == 0) {
        static const int hostile[] = {0, -1, 1000001, 65536, INT_MAX};
        stored.widths[take_byte(&in) % stored.n_widths] = hostile[take_byte(&in) % 5];
    }
    hsize_t nw = (hsize_t)spec.n_widths - (take_byte(&in) % 8 == 0);
    hid_t space = H5Screate_simple(1, &nw, NULL);
    hid_t attr = take_byte(&in) % 16
                     ? H5Acreate_by_name(file, "/model", "widths", H5T_NATIVE_INT, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                     : -1;
    if (attr >= 0) H5Awrite(attr, H5T_NATIVE_INT, stored.widths), H5Aclose(attr);
    H5Sclose(space);

    put_int(&in, file, "/", "format_version", 1);
    put_text(&in, file, "/", "nntrain_version", "0.1.0");
    put_int(&in, file, "/", "ranks", ranks);
    put_text(&in, file, "/model", "activation", take_byte(&in) % 2 ? "relu" : "sigmoid");
    put_text(&in, file, "/model", "loss", take_byte(&in) % 2 ? "softmax" : "mse");
    put_int(&in, file, "/model", "n_params", (long long)nn_spec_param_count(&stored));
    put_int(&in, file, "/model", "checksum", nn_checksum(params, n));
    put_real(&in, file, "/optimizer", "lr", 0.1);
    put_text(&in, file, "/optimizer", "lr_schedule", "cosine");
    put_real(&in, file, "/optimizer", "momentum", 0.9);
    put_real(&in, file, "/optimizer", "weight_decay", 0);
    put_int(&in, file, "/optimizer", "velocity_checksum", nn_checksum(velocity, n));
    put_int(&in, file, "/progress", "epochs_completed", take_number(&in, 5));
    put_int(&in, file, "/progress", "step_in_epoch", take_number(&in, 5));
    put_int(&in, file, "/progress", "global_step", take_number(&in, 50));
    put_int(&in, file, "/options", "epochs", take_number(&in, 9));
    put_int(&in, file, "/options", "batch_size", take_number(&in, 100));
    put_int(&in, file, "/options", "seed", take_number(&in, 100));
    put_int(&in, file, "/options", "train_limit", take_number(&in, 100));
    put_text(&in, file, "/options", "data", "data/mnist.h5");
    H5Fclose(file);

    nn_checkpoint ck;
    nn_error err = {0};
    int status = nn_checkpoint_load(path, 1, &ck, &err);
    if (status == NN_OK) { /* what was accepted is whole and consistent */
        if (ck.n_params != nn_spec_param_count(&ck.config.spec) || ck.ranks < 1 || ck.config.batch_size < 1 ||
            ck.config.epochs < 1 || ck.progress.step_in_epoch < 0 || nn_checksum(ck.params, ck.n_params) !=
            nn_checksum(params, n))
            abort();
        volatile double last = ck.loss_partials[ck.ranks - 1] + ck.rng_states[4 * ck.ranks - 1] + ck.velocity[ck.n_params - 1];
        (void)last;
        nn_checkpoint_free(&ck);
    } else if (!err.msg[0]) {
        abort();
    }
    return 0;
}
