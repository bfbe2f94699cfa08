/* Under mpiexec -n P (P = 1..8): each rank reads exactly its hyperslab of the file,
 * and a bad label found by one rank stops every rank with the same message. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_mpi.h"
#include "nn/dataset.h"
#include "nn/dataset_write.h"

enum { N_TRAIN = 1003, N_TEST = 17, ROWS = 4, COLS = 5, DIM = ROWS * COLS };

static int rank, nranks;
static char good_path[512], bad_path[512];

static uint8_t pixel(long i, int d) { return (uint8_t)((i * 31 + d * 7) % 256); }
static uint8_t label(long i) { return (uint8_t)((i * 3) % 10); }

/* Rank 0 writes the files; the others wait for it. */
static void write_files(void) {
    const char *dir = getenv("NN_TEST_TMP") ? getenv("NN_TEST_TMP") : "/tmp";
    snprintf(good_path, sizeof good_path, "%s/shards-np%d.h5", dir, nranks);
    snprintf(bad_path, sizeof bad_path, "%s/shards-badlabel-np%d.h5", dir, nranks);
    if (rank == 0) {
        uint8_t *images = malloc((size_t)N_TRAIN * DIM), *labels = malloc(N_TRAIN);
        for (long i = 0; i < N_TRAIN; i++) {
            for (int d = 0; d < DIM; d++) images[i * DIM + d] = pixel(i, d);
            labels[i] = label(i);
        }
        nn_split_data train = {images, labels, N_TRAIN, ROWS, COLS}, test = {images, labels, N_TEST, ROWS, COLS};
        nn_error err;
        int rc = nn_dataset_write(good_path, &train, &test, 10, "synthetic", &err);
        labels[N_TRAIN - 1] = 12; /* out of range, in the LAST rank's slab */
        rc |= nn_dataset_write(bad_path, &train, &test, 10, "synthetic", &err);
        if (rc) fprintf(stderr, "writing test files failed: %s\n", err.msg);
        free(images);
        free(labels);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

static void check_shard(long limit) {
    nn_shard s;
    nn_error err = {0};
    int rc = nn_shard_read(good_path, "train", limit, MPI_COMM_WORLD, &s, &err);
    if (rc) printf("\n  rank %d: %s\n", rank, err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, NN_OK);
    long total = limit > 0 ? limit : N_TRAIN;
    long expect_offset = (long)rank * total / nranks, expect_end = (long)(rank + 1) * total / nranks;
    CU_ASSERT_EQUAL(s.total, total);
    CU_ASSERT_EQUAL(s.offset, expect_offset);
    CU_ASSERT_EQUAL(s.count, expect_end - expect_offset);
    CU_ASSERT_EQUAL(s.dim, DIM);
    CU_ASSERT_EQUAL(s.num_classes, 10);
    long wrong = 0;
    for (long i = 0; i < s.count; i++) {
        wrong += s.labels[i] != label(s.offset + i);
        for (int d = 0; d < DIM; d++) wrong += s.images[i * DIM + d] != pixel(s.offset + i, d);
    }
    CU_ASSERT_EQUAL(wrong, 0);
    /* together the shards cover every sample exactly once */
    long covered = s.count;
    MPI_Allreduce(MPI_IN_PLACE, &covered, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    CU_ASSERT_EQUAL(covered, total);
    nn_shard_free(&s);
}

static void test_each_rank_reads_its_hyperslab(void) { check_shard(0); }
static void test_train_limit(void) { check_shard(500); }

static void test_test_split(void) {
    nn_shard s;
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_shard_read(good_path, "test", 0, MPI_COMM_WORLD, &s, &err), NN_OK);
    CU_ASSERT_EQUAL(s.total, N_TEST);
    long wrong = 0;
    for (long i = 0; i < s.count; i++) wrong += s.images[i * DIM + 3] != pixel(s.offset + i, 3);
    CU_ASSERT_EQUAL(wrong, 0);
    nn_shard_free(&s);
}

static void test_bad_label_on_one_rank_stops_all(void) {
    nn_shard s;
    nn_error err = {0};
    CU_ASSERT_EQUAL(nn_shard_read(bad_path, "train", 0, MPI_COMM_WORLD, &s, &err), NN_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/train/labels[1002] = 12 is outside 0..9"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, bad_path));
    CU_ASSERT_PTR_NULL(s.images); /* nothing half-loaded is left behind */
}

static void test_missing_file_and_split(void) {
    nn_shard s;
    nn_error err = {0};
    CU_ASSERT_EQUAL(nn_shard_read("/nonexistent/x.h5", "train", 0, MPI_COMM_WORLD, &s, &err), NN_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent/x.h5: cannot read"));
    CU_ASSERT_EQUAL(nn_shard_read(good_path, "validation", 0, MPI_COMM_WORLD, &s, &err), NN_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no dataset /validation/images"));
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    write_files();
    CU_TestInfo tests[] = {
        {"each rank reads exactly its hyperslab", test_each_rank_reads_its_hyperslab},
        {"--train-limit shards the first N samples", test_train_limit},
        {"the test split is sharded too", test_test_split},
        {"a bad label on the last rank stops every rank", test_bad_label_on_one_rank_stops_all},
        {"missing file and missing split", test_missing_file_and_split},
        CU_TEST_INFO_NULL};
    int failed = nn_run_suite_all_ranks("dataset shards", tests);
    if (rank == 0) {
        remove(good_path);
        remove(bad_path);
    }
    MPI_Finalize();
    return failed;
}
