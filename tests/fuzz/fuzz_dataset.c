/* libFuzzer harness: the dataset validator and shard reader. As for checkpoints, the
 * fuzz input decides what the file holds -- num_classes (missing, an integer, a real,
 * an array, text), /train and /test images and labels (missing, rank, shape, type,
 * huge declared dimensions in a sparse chunked dataset, label values) -- and the file
 * is written with the HDF5 API. nn_shard_read on one rank must return a shard that
 * is consistent with the file, or refuse it with a message. */
#define _GNU_SOURCE
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_input.h"
#include "nn/dataset.h"

static char path[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    MPI_Init(argc, argv);
    /* in the directory scripts/fuzz.sh made (and removes), else in memory-backed /dev/shm */
    const char *dir = getenv("NN_FUZZ_SCRATCH");
    snprintf(path, sizeof path, "%s/fuzz-dataset-%d.h5", dir ? dir : "/dev/shm", (int)getpid());
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return 0;
}

static void put_classes(fuzz_input *in, hid_t file) {
    uint8_t how = take_byte(in) % 8;
    if (how == 0) return;
    hsize_t n = 1 + take_byte(in) % 4;
    long long value[4] = {take_number(in, 12), 3, 3, 3};
    double real = (double)value[0] + 0.25;
    hid_t space = how == 1 ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
    hid_t type = how == 2 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_LLONG;
    hid_t attr = H5Acreate2(file, "num_classes", type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr >= 0) H5Awrite(attr, type, how == 2 ? (void *)&real : (void *)value), H5Aclose(attr);
    H5Sclose(space);
}

/* /split/name: rank, dims, element type and contents from the input. */
static void put_array(fuzz_input *in, hid_t file, const char *name, int nominal_rank, hsize_t samples) {
    uint8_t how = take_byte(in) % 16;
    if (how == 0) return;
    int rank = how == 1 ? 1 + take_byte(in) % 4 : nominal_rank;
    hsize_t dims[4] = {samples, 1 + take_byte(in) % 4, 1 + take_byte(in) % 4, 1 + take_byte(in) % 3};
    int sparse = how == 2; /* declared far larger than written: chunked, no data */
    if (sparse) dims[rank - 1] = 1 + ((hsize_t)take_u64(in) >> (1 + take_byte(in) % 63));
    hid_t type = how == 3 ? H5T_NATIVE_FLOAT : how == 4 ? H5T_NATIVE_INT16 : how == 5 ? H5T_NATIVE_INT8 : H5T_NATIVE_UINT8;
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (sparse) {
        hsize_t chunk[4] = {1, 1, 1, 1};
        H5Pset_chunk(dcpl, rank, chunk);
    }
    hid_t dset = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    hssize_t count = H5Sget_simple_extent_npoints(space);
    if (dset >= 0 && !sparse && count > 0 && count <= 4096) {
        int16_t values[4096];
        for (hssize_t i = 0; i < count; i++) values[i] = (int16_t)(take_byte(in) % 4 == 0 ? take_number(in, 300) : i % 3);
        H5Dwrite(dset, H5T_NATIVE_INT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
    }
    if (dset >= 0) H5Dclose(dset);
    H5Pclose(dcpl);
    H5Sclose(space);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_input in = {data, size, 0};
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) abort();
    put_classes(&in, file);
    hsize_t samples = take_byte(&in) % 9;
    const char *names[] = {"/train", "/train/images", "/train/labels"};
    if (take_byte(&in) % 16) {
        H5Gclose(H5Gcreate2(file, names[0], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        put_array(&in, file, names[1], 3, samples);
        put_array(&in, file, names[2], 1, samples + (take_byte(&in) % 8 == 0));
    }
    H5Fclose(file);

    nn_shard shard;
    nn_error err = {0};
    long limit = take_byte(&in) % 4;
    int status = nn_shard_read(path, "train", limit, MPI_COMM_SELF, &shard, &err);
    if (status == NN_OK) {
        if (shard.count < 1 || shard.count != shard.total || shard.dim < 1 || shard.num_classes < 2 ||
            (limit > 0 && shard.total > limit))
            abort();
        for (long i = 0; i < shard.count; i++)
            if (shard.labels[i] >= shard.num_classes) abort();
        volatile uint8_t last = shard.images[shard.count * shard.dim - 1];
        (void)last;
        nn_shard_free(&shard);
    } else if (!err.msg[0]) {
        abort();
    }
    return 0;
}
