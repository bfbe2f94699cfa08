/* Writes the small HDF5 files the command-line tests feed to nntrain: one good
 * dataset and one file for each kind of bad input. Usage: make_test_data DIR */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/dataset_write.h"

enum { N = 64, SIDE = 4, CLASSES = 3 };

static void write_dataset(hid_t file, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dset = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (data) H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(dset);
    H5Sclose(space);
}

static void write_classes(hid_t file, int classes) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(file, "num_classes", H5T_NATIVE_INT, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, H5T_NATIVE_INT, &classes);
    H5Aclose(attr);
    H5Sclose(space);
}

/* num_classes as something other than one integer: a 16000-element array, or 10.7. */
static void write_bad_classes(hid_t file, int array) {
    static int many[16000];
    double real = 10.7;
    hsize_t n = 16000;
    hid_t space = array ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
    hid_t type = array ? H5T_NATIVE_INT : H5T_NATIVE_DOUBLE;
    hid_t attr = H5Acreate2(file, "num_classes", type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, type, array ? (const void *)many : (const void *)&real);
    H5Aclose(attr);
    H5Sclose(space);
}

/* Images [N, 16, 2^60 + 1]: the trailing dimensions multiply to 2^64 + 16, which
 * wraps around to 16 in 64 bits. Chunked, nothing written. */
static void write_huge_images(hid_t file, const char *name) {
    hsize_t dims[3] = {N, 16, (1ull << 60) + 1}, chunk[3] = {1, 1, 16};
    hid_t space = H5Screate_simple(3, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 3, chunk);
    hid_t dset = H5Dcreate2(file, name, H5T_NATIVE_UINT8, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dset >= 0) H5Dclose(dset);
    H5Pclose(dcpl);
    H5Sclose(space);
}

/* Images compressed in chunks of 8 samples, written whole. */
static void write_chunked_images(hid_t file, const char *name, const uint8_t *images) {
    hsize_t dims[3] = {N, SIDE, SIDE}, chunk[3] = {8, SIDE, SIDE};
    hid_t space = H5Screate_simple(3, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 3, chunk);
    H5Pset_deflate(dcpl, 6);
    hid_t dset = H5Dcreate2(file, name, H5T_NATIVE_UINT8, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dwrite(dset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, images);
    H5Dclose(dset);
    H5Pclose(dcpl);
    H5Sclose(space);
}

/* Flips the bytes of /train/images' second chunk (samples 8-15: rank 0's at 2 ranks)
 * past its first two, so the chunk no longer inflates: a file damaged on disk. */
static int damage_second_chunk(const char *path) {
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, "/train/images", H5P_DEFAULT);
    hsize_t offset[3];
    unsigned mask;
    haddr_t addr = 0;
    hsize_t size = 0;
    hid_t space = H5Dget_space(dset);
    herr_t rc = H5Dget_chunk_info(dset, space, 1, offset, &mask, &addr, &size);
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(file);
    FILE *f = rc < 0 || size < 4 ? NULL : fopen(path, "r+b");
    if (!f) return 1;
    for (hsize_t i = 2; i < size; i++) {
        fseek(f, (long)(addr + i), SEEK_SET);
        int c = fgetc(f);
        fseek(f, (long)(addr + i), SEEK_SET);
        fputc(c ^ 0x5a, f);
    }
    return fclose(f) ? 1 : 0;
}

/* A file built by hand, for the layouts nn_dataset_write refuses to produce. */
typedef enum {
    FLAT_IMAGES, NO_TRAIN_IMAGES, ZERO_SAMPLES, COUNT_MISMATCH, FLOAT_IMAGES, NO_CLASSES, ARRAY_CLASSES,
    REAL_CLASSES, HUGE_SAMPLES, DAMAGED_CHUNK, TEST_RESHAPED
} variant;

static void write_variant(const char *dir, const char *name, variant v, const uint8_t *images, const uint8_t *labels) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (v == ARRAY_CLASSES || v == REAL_CLASSES) write_bad_classes(file, v == ARRAY_CLASSES);
    else if (v != NO_CLASSES) write_classes(file, CLASSES);
    const char *splits[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        char g[64];
        snprintf(g, sizeof g, "/%s", splits[s]);
        H5Gclose(H5Gcreate2(file, g, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        hsize_t n = v == ZERO_SAMPLES ? 0 : N;
        hsize_t idims[3] = {n, SIDE, SIDE}, flat = n * SIDE * SIDE, ldims[1] = {v == COUNT_MISMATCH ? n - 1 : n};
        if (v == TEST_RESHAPED && s == 1) idims[1] = SIDE / 2, idims[2] = SIDE * 2; /* the same values a sample */
        snprintf(g, sizeof g, "/%s/images", splits[s]);
        if (v == FLAT_IMAGES) write_dataset(file, g, H5T_NATIVE_UINT8, 1, &flat, images);
        else if (v == FLOAT_IMAGES) write_dataset(file, g, H5T_NATIVE_FLOAT, 3, idims, NULL);
        else if (v == HUGE_SAMPLES) write_huge_images(file, g);
        else if (v == DAMAGED_CHUNK && s == 0) write_chunked_images(file, g, images);
        else if (!(v == NO_TRAIN_IMAGES && s == 0)) write_dataset(file, g, H5T_NATIVE_UINT8, 3, idims, n ? images : NULL);
        snprintf(g, sizeof g, "/%s/labels", splits[s]);
        write_dataset(file, g, H5T_NATIVE_UINT8, 1, ldims, ldims[0] ? labels : NULL);
    }
    H5Fclose(file);
    if (v == DAMAGED_CHUNK && damage_second_chunk(path)) fprintf(stderr, "make_test_data: cannot damage %s\n", path);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_test_data DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    uint8_t images[N * SIDE * SIDE], labels[N];
    for (int i = 0; i < N; i++) {
        labels[i] = (uint8_t)(i % CLASSES);
        /* an easy, learnable pattern: class c lights up row c */
        for (int p = 0; p < SIDE * SIDE; p++) images[i * SIDE * SIDE + p] = (uint8_t)(p / SIDE == labels[i] ? 200 + i % 50 : i % 20);
    }
    nn_split_data split = {images, labels, N, SIDE, SIDE};
    nn_error err;
    char path[1024];
    snprintf(path, sizeof path, "%s/good.h5", dir);
    if (nn_dataset_write(path, &split, &split, CLASSES, "test", &err)) {
        fprintf(stderr, "make_test_data: %s\n", err.msg);
        return 1;
    }
    nn_split_data fewer = split; /* the same samples' shape, fewer of them: another dataset to resume on */
    fewer.count = N - 8;
    snprintf(path, sizeof path, "%s/fewer.h5", dir);
    if (nn_dataset_write(path, &fewer, &split, CLASSES, "test", &err)) return 1;
    labels[N - 1] = 7; /* outside 0..2, on the last rank */
    snprintf(path, sizeof path, "%s/badlabel.h5", dir);
    if (nn_dataset_write(path, &split, &split, CLASSES, "test", &err)) return 1;
    labels[N - 1] = (uint8_t)((N - 1) % CLASSES);

    write_variant(dir, "flat.h5", FLAT_IMAGES, images, labels);
    write_variant(dir, "noimages.h5", NO_TRAIN_IMAGES, images, labels);
    write_variant(dir, "empty.h5", ZERO_SAMPLES, images, labels);
    write_variant(dir, "mismatch.h5", COUNT_MISMATCH, images, labels);
    write_variant(dir, "float.h5", FLOAT_IMAGES, images, labels);
    write_variant(dir, "noclasses.h5", NO_CLASSES, images, labels);
    write_variant(dir, "arrayclasses.h5", ARRAY_CLASSES, images, labels);
    write_variant(dir, "realclasses.h5", REAL_CLASSES, images, labels);
    write_variant(dir, "huge.h5", HUGE_SAMPLES, images, labels);
    write_variant(dir, "damaged.h5", DAMAGED_CHUNK, images, labels);
    write_variant(dir, "reshaped.h5", TEST_RESHAPED, images, labels);
    snprintf(path, sizeof path, "%s/text.h5", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fputs("this is not an HDF5 file\n", f);
    fclose(f);
    return 0;
}
