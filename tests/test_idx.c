/* IDX reading (raw and gzip, good and broken files) and writing the dataset file. */
#define _POSIX_C_SOURCE 200809L /* mkdir, rmdir, stat */

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "cunit_run.h"
#include "nn/dataset_write.h"
#include "nn/idx.h"

/* ---- helpers ---------------------------------------------------------------------- */

/* "<NN_TEST_TMP or /tmp>/test_idx_<name>", written into buf. */
static const char *tmp_path(const char *name, char *buf, size_t n) {
    const char *dir = getenv("NN_TEST_TMP");
    snprintf(buf, n, "%s/test_idx_%s", dir && *dir ? dir : "/tmp", name);
    return buf;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* An IDX image in memory: magic, big-endian dims, then data. Returns its size. */
static size_t make_idx(uint8_t *out, int ndim, const uint32_t *dims, const uint8_t *data) {
    size_t n = 0, count = 1;
    out[n++] = 0, out[n++] = 0, out[n++] = 0x08, out[n++] = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++) {
        for (int shift = 24; shift >= 0; shift -= 8) out[n++] = (uint8_t)(dims[d] >> shift);
        count *= dims[d];
    }
    memcpy(out + n, data, count);
    return n + count;
}

static void write_raw(const char *path, const uint8_t *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_FATAL(fwrite(bytes, 1, n, f) == n);
    CU_ASSERT_FATAL(fclose(f) == 0);
}

static void write_gzip(const char *path, const uint8_t *bytes, size_t n) {
    gzFile f = gzopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_FATAL(gzwrite(f, bytes, (unsigned)n) == (int)n);
    CU_ASSERT_FATAL(gzclose(f) == Z_OK);
}

/* 3 images of 2x4 with distinct bytes. */
static const uint32_t image_dims[3] = {3, 2, 4};
static uint8_t image_data[24];
static uint8_t file_bytes[256];

static size_t make_images_file(void) {
    for (int i = 0; i < 24; i++) image_data[i] = (uint8_t)(i * 11 + 3);
    return make_idx(file_bytes, 3, image_dims, image_data);
}

/* Reading `path` must fail with NN_ERR_INPUT and a message naming the file. */
static void expect_input_error(const char *path, int expect_ndim) {
    nn_idx idx;
    nn_error err = {0};
    CU_ASSERT_EQUAL(nn_idx_read(path, expect_ndim, &idx, &err), NN_ERR_INPUT);
    CU_ASSERT_EQUAL(err.status, NN_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    CU_ASSERT_PTR_NULL(idx.data);
    remove(path);
}

/* ---- IDX reading ------------------------------------------------------------------- */

static void check_images(const char *path) {
    nn_idx idx;
    nn_error err = {0};
    CU_ASSERT_EQUAL_FATAL(nn_idx_read(path, 3, &idx, &err), NN_OK);
    CU_ASSERT_EQUAL(idx.ndim, 3);
    CU_ASSERT_EQUAL(idx.count, 3);
    CU_ASSERT_EQUAL(idx.dims[0], 3);
    CU_ASSERT_EQUAL(idx.dims[1], 2);
    CU_ASSERT_EQUAL(idx.dims[2], 4);
    CU_ASSERT_EQUAL(memcmp(idx.data, image_data, sizeof image_data), 0);
    nn_idx_free(&idx);
    CU_ASSERT_PTR_NULL(idx.data);
    remove(path);
}

static void test_roundtrip_raw(void) {
    char path[512];
    size_t n = make_images_file();
    write_raw(tmp_path("good-idx3-ubyte", path, sizeof path), file_bytes, n);
    check_images(path);
}

static void test_roundtrip_gzip(void) {
    char path[512];
    size_t n = make_images_file();
    write_gzip(tmp_path("good-idx3-ubyte.gz", path, sizeof path), file_bytes, n);
    check_images(path);
}

static void test_labels_1d(void) {
    char path[512];
    const uint8_t labels[5] = {7, 2, 1, 0, 4};
    const uint32_t dims[1] = {5};
    size_t n = make_idx(file_bytes, 1, dims, labels);
    write_gzip(tmp_path("labels-idx1-ubyte.gz", path, sizeof path), file_bytes, n);
    nn_idx idx;
    nn_error err = {0};
    CU_ASSERT_EQUAL_FATAL(nn_idx_read(path, 1, &idx, &err), NN_OK);
    CU_ASSERT_EQUAL(idx.ndim, 1);
    CU_ASSERT_EQUAL(idx.count, 5);
    CU_ASSERT_EQUAL(memcmp(idx.data, labels, 5), 0);
    nn_idx_free(&idx);
    remove(path);
}

static void test_bad_magic(void) {
    char path[512];
    size_t n = make_images_file();
    file_bytes[0] = 0x01;
    write_raw(tmp_path("badmagic", path, sizeof path), file_bytes, n);
    expect_input_error(path, 3);

    n = make_images_file();
    file_bytes[2] = 0x0D; /* IDX float data: not what we read */
    write_raw(path, file_bytes, n);
    expect_input_error(path, 3);

    write_raw(path, (const uint8_t *)"hello world, not IDX", 20);
    expect_input_error(path, 3);
}

static void test_wrong_ndim(void) {
    char path[512];
    size_t n = make_images_file();
    write_raw(tmp_path("ndim", path, sizeof path), file_bytes, n);
    expect_input_error(path, 1);
}

static void test_zero_dimension(void) {
    char path[512];
    const uint32_t dims[3] = {3, 0, 4};
    size_t n = make_idx(file_bytes, 3, dims, image_data);
    write_raw(tmp_path("zerodim", path, sizeof path), file_bytes, n);
    expect_input_error(path, 3);
}

static void test_truncated(void) {
    char path[512];
    size_t n = make_images_file();
    write_raw(tmp_path("truncated", path, sizeof path), file_bytes, n - 1);
    expect_input_error(path, 3);

    write_raw(path, file_bytes, 10); /* inside the header */
    expect_input_error(path, 3);

    write_raw(path, file_bytes, 0); /* empty */
    expect_input_error(path, 3);

    write_gzip(tmp_path("truncated.gz", path, sizeof path), file_bytes, n - 5);
    expect_input_error(path, 3);
}

/* An IDX file of 16x128x128 poorly compressible bytes (larger than the reader's input
 * buffer once compressed), gzipped into `gz`; returns the compressed size. */
#define BIG_DATA_BYTES (16 * 128 * 128)
static uint8_t big_data[BIG_DATA_BYTES], big_idx[16 + BIG_DATA_BYTES], gz[BIG_DATA_BYTES + 4096];

static size_t make_big_gzip(void) {
    uint32_t x = 12345;
    for (size_t i = 0; i < BIG_DATA_BYTES; i++) {
        x = x * 1664525u + 1013904223u;
        big_data[i] = (uint8_t)(x >> 24);
    }
    const uint32_t dims[3] = {16, 128, 128};
    size_t n = make_idx(big_idx, 3, dims, big_data);
    char path[512];
    write_gzip(tmp_path("whole.gz", path, sizeof path), big_idx, n);
    FILE *f = fopen(path, "rb");
    CU_ASSERT_FATAL(f != NULL);
    size_t size = fread(gz, 1, sizeof gz, f);
    fclose(f);
    remove(path);
    CU_ASSERT_FATAL(size > 65536 && size < sizeof gz);
    return size;
}

static void test_big_gzip(void) {
    char path[512];
    size_t size = make_big_gzip();
    write_raw(tmp_path("big.gz", path, sizeof path), gz, size);
    nn_idx idx;
    nn_error err = {0};
    CU_ASSERT_EQUAL_FATAL(nn_idx_read(path, 3, &idx, &err), NN_OK);
    CU_ASSERT_EQUAL(idx.count, 16);
    CU_ASSERT_EQUAL(memcmp(idx.data, big_data, BIG_DATA_BYTES), 0);
    nn_idx_free(&idx);
    remove(path);
}

/* The gzip stream itself is damaged: cut in the middle, cut just before its 8-byte
 * trailer (CRC and length), with a wrong CRC, or followed by garbage. */
static void test_broken_gzip_stream(void) {
    char path[512];
    size_t size = make_big_gzip();
    tmp_path("broken.gz", path, sizeof path);

    write_raw(path, gz, size / 2);
    expect_input_error(path, 3);

    write_raw(path, gz, size - 8);
    expect_input_error(path, 3);

    write_raw(path, gz, size - 3);
    expect_input_error(path, 3);

    memcpy(gz + size, "garbage", 7);
    write_raw(path, gz, size + 7);
    expect_input_error(path, 3);

    gz[size - 8] ^= 0xFF;
    write_raw(path, gz, size);
    expect_input_error(path, 3);
}

/* Concatenated gzip members read as one stream (as gunzip does). */
static void test_concatenated_gzip(void) {
    char path[512];
    size_t n = make_images_file();
    tmp_path("concat.gz", path, sizeof path);
    gzFile f = gzopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_FATAL(gzwrite(f, file_bytes, 10) == 10);
    CU_ASSERT_FATAL(gzclose(f) == Z_OK);
    f = gzopen(path, "ab");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_FATAL(gzwrite(f, file_bytes + 10, (unsigned)(n - 10)) == (int)(n - 10));
    CU_ASSERT_FATAL(gzclose(f) == Z_OK);
    check_images(path);
}

static void test_trailing_bytes(void) {
    char path[512];
    size_t n = make_images_file();
    file_bytes[n] = 0xAB;
    write_raw(tmp_path("trailing", path, sizeof path), file_bytes, n + 1);
    expect_input_error(path, 3);

    write_gzip(tmp_path("trailing.gz", path, sizeof path), file_bytes, n + 1);
    expect_input_error(path, 3);
}

static void test_missing_file(void) {
    char path[512];
    tmp_path("does-not-exist", path, sizeof path);
    remove(path);
    expect_input_error(path, 3);
}

/* ---- dataset writing -------------------------------------------------------------- */

static uint8_t train_images[5 * 2 * 3], train_labels[5], test_images[3 * 2 * 3], test_labels[3];

static void make_splits(nn_split_data *train, nn_split_data *test) {
    for (size_t i = 0; i < sizeof train_images; i++) train_images[i] = (uint8_t)(i + 1);
    for (size_t i = 0; i < sizeof test_images; i++) test_images[i] = (uint8_t)(200 - i);
    for (int i = 0; i < 5; i++) train_labels[i] = (uint8_t)(i % 3);
    for (int i = 0; i < 3; i++) test_labels[i] = (uint8_t)(2 - i);
    *train = (nn_split_data){train_images, train_labels, 5, 2, 3};
    *test = (nn_split_data){test_images, test_labels, 3, 2, 3};
}

static void check_dataset(hid_t file, const char *name, int rank, const hsize_t *dims,
                          const uint8_t *expect, size_t n) {
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    CU_ASSERT_FATAL(dset >= 0);
    hid_t space = H5Dget_space(dset);
    hsize_t got[3] = {0};
    CU_ASSERT_EQUAL(H5Sget_simple_extent_ndims(space), rank);
    H5Sget_simple_extent_dims(space, got, NULL);
    for (int d = 0; d < rank; d++) CU_ASSERT_EQUAL(got[d], dims[d]);
    uint8_t buf[64] = {0};
    CU_ASSERT_FATAL(n <= sizeof buf);
    CU_ASSERT(H5Dread(dset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    CU_ASSERT_EQUAL(memcmp(buf, expect, n), 0);
    H5Sclose(space);
    H5Dclose(dset);
}

static void check_attributes(hid_t file, int num_classes, const char *source) {
    int32_t classes = 0;
    hid_t attr = H5Aopen(file, "num_classes", H5P_DEFAULT);
    CU_ASSERT_FATAL(attr >= 0);
    CU_ASSERT(H5Aread(attr, H5T_NATIVE_INT32, &classes) >= 0);
    CU_ASSERT_EQUAL(classes, num_classes);
    H5Aclose(attr);

    attr = H5Aopen(file, "source", H5P_DEFAULT);
    CU_ASSERT_FATAL(attr >= 0);
    hid_t type = H5Aget_type(attr);
    CU_ASSERT_EQUAL(H5Tget_class(type), H5T_STRING);
    char text[128] = {0};
    CU_ASSERT_FATAL(H5Tget_size(type) < sizeof text);
    CU_ASSERT(H5Aread(attr, type, text) >= 0);
    CU_ASSERT_STRING_EQUAL(text, source);
    H5Tclose(type);
    H5Aclose(attr);
}

static void test_dataset_write_roundtrip(void) {
    char path[512], tmp[600];
    nn_split_data train, test;
    make_splits(&train, &test);
    tmp_path("dataset.h5", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    nn_error err = {0};
    CU_ASSERT_EQUAL_FATAL(nn_dataset_write(path, &train, &test, 3, "unit test", &err), NN_OK);
    CU_ASSERT_FALSE(exists(tmp));

    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(file >= 0);
    check_dataset(file, "/train/images", 3, (hsize_t[]){5, 2, 3}, train_images, 30);
    check_dataset(file, "/train/labels", 1, (hsize_t[]){5}, train_labels, 5);
    check_dataset(file, "/test/images", 3, (hsize_t[]){3, 2, 3}, test_images, 18);
    check_dataset(file, "/test/labels", 1, (hsize_t[]){3}, test_labels, 3);
    check_attributes(file, 3, "unit test");
    H5Fclose(file);

    /* Writing again replaces the file. */
    CU_ASSERT_EQUAL(nn_dataset_write(path, &train, &test, 4, "second", &err), NN_OK);
    file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(file >= 0);
    check_attributes(file, 4, "second");
    H5Fclose(file);
    remove(path);
}

static void test_dataset_write_missing_dir_leaves_nothing(void) {
    char dir[512], path[600], tmp[700];
    tmp_path("no-such-dir", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/out.h5", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    nn_split_data train, test;
    make_splits(&train, &test);
    nn_error err = {0};
    int status = nn_dataset_write(path, &train, &test, 3, "x", &err);
    CU_ASSERT_NOT_EQUAL(status, NN_OK);
    CU_ASSERT_EQUAL(err.status, status);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    CU_ASSERT_FALSE(exists(path));
    CU_ASSERT_FALSE(exists(tmp));
}

/* When the temporary file cannot be made, an existing file at `path` stays as it was,
 * and we do not delete what we did not create. */
static void test_dataset_write_failure_keeps_old_file(void) {
    char path[512], tmp[600];
    tmp_path("keep.h5", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    write_raw(path, (const uint8_t *)"old", 3);
    CU_ASSERT_FATAL(mkdir(tmp, 0700) == 0 || exists(tmp)); /* blocks creating <path>.tmp */

    nn_split_data train, test;
    make_splits(&train, &test);
    nn_error err = {0};
    CU_ASSERT_NOT_EQUAL(nn_dataset_write(path, &train, &test, 3, "x", &err), NN_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));

    char buf[8] = {0};
    FILE *f = fopen(path, "rb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(fread(buf, 1, sizeof buf, f), 3);
    fclose(f);
    CU_ASSERT_STRING_EQUAL(buf, "old");
    CU_ASSERT_EQUAL(rmdir(tmp), 0);
    remove(path);
}

/* A failure after the temporary file exists (here: the rename, since `path` is a
 * directory) removes the temporary file. */
static void test_dataset_write_failed_rename_removes_tmp(void) {
    char path[512], tmp[600];
    tmp_path("dir.h5", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CU_ASSERT_FATAL(mkdir(path, 0700) == 0 || exists(path));

    nn_split_data train, test;
    make_splits(&train, &test);
    nn_error err = {0};
    CU_ASSERT_EQUAL(nn_dataset_write(path, &train, &test, 3, "x", &err), NN_ERR_RUNTIME);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    CU_ASSERT_FALSE(exists(tmp));
    CU_ASSERT_EQUAL(rmdir(path), 0);
}

static void test_dataset_write_rejects_bad_shape(void) {
    char path[512];
    tmp_path("badshape.h5", path, sizeof path);
    nn_split_data train, test;
    make_splits(&train, &test);
    test.count = 0;
    nn_error err = {0};
    CU_ASSERT_EQUAL(nn_dataset_write(path, &train, &test, 3, "x", &err), NN_ERR_INPUT);
    CU_ASSERT_FALSE(exists(path));
}

int main(void) {
    CU_TestInfo tests[] = {
        {"IDX raw file round-trips", test_roundtrip_raw},
        {"IDX gzip file round-trips", test_roundtrip_gzip},
        {"IDX 1-D labels", test_labels_1d},
        {"IDX bad magic", test_bad_magic},
        {"IDX wrong number of dimensions", test_wrong_ndim},
        {"IDX zero dimension", test_zero_dimension},
        {"IDX truncated", test_truncated},
        {"IDX large gzip file", test_big_gzip},
        {"IDX broken gzip stream", test_broken_gzip_stream},
        {"IDX concatenated gzip members", test_concatenated_gzip},
        {"IDX trailing bytes", test_trailing_bytes},
        {"IDX missing file", test_missing_file},
        {"dataset write and read back", test_dataset_write_roundtrip},
        {"dataset write into missing dir leaves nothing", test_dataset_write_missing_dir_leaves_nothing},
        {"dataset write failure keeps old file", test_dataset_write_failure_keeps_old_file},
        {"dataset write failed rename removes tmp", test_dataset_write_failed_rename_removes_tmp},
        {"dataset write rejects empty split", test_dataset_write_rejects_bad_shape},
        CU_TEST_INFO_NULL,
    };
    return nn_run_suite("idx", tests);
}
