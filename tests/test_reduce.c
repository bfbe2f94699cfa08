/* Under mpiexec -n P: nn_reducer_sum gives the element-wise sum of every rank's
 * buffer (checked against a double-precision reference), bit-identical on every
 * rank, again and again with changing inputs, for sizes that do and do not split
 * evenly into slices, and on fake two-"node" layouts that take the cross-node path. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <mpi.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cunit_mpi.h"
#include "nn/placement.h"
#include "nn/reduce.h"

static int rank, nranks;

/* A float of rank r's input at element i in round `iter`: any sign, exponents over
 * 2^-8..2^8 so that the order of the additions shows in the low bits. */
static float input(int r, size_t i, int iter) {
    uint64_t z = ((uint64_t)iter << 48) ^ ((uint64_t)r << 40) ^ i;
    z += 0x9e3779b97f4a7c15ull; /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    float u = (float)(z >> 40) / (float)(1 << 24) * 2.0f - 1.0f; /* [-1, 1) */
    return ldexpf(u, (int)((z >> 8) % 17) - 8);
}

static void fill(float *buf, size_t n, int iter) {
    for (size_t i = 0; i < n; i++) buf[i] = input(rank, i, iter);
}

/* The exact sum over the ranks of element i in round `iter`, and the sum of the
 * magnitudes (what any rounding error is relative to, whatever the cancellation). */
static double reference(size_t i, int iter, double *mag) {
    double ref = 0;
    *mag = 0;
    for (int r = 0; r < nranks; r++) {
        double x = input(r, i, iter);
        ref += x;
        *mag += fabs(x);
    }
    return ref;
}

/* Every element within 1e-6 of the reference, relative to the sum of magnitudes.
 * Returns the number of misses. */
static size_t check_sum(const float *got, size_t n, int iter) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double mag, ref = reference(i, iter, &mag);
        if (!(fabs(got[i] - ref) <= 1e-6 * mag)) {
            if (bad++ < 3) fprintf(stderr, "rank %d iter %d: [%zu] = %.9g, expected %.9g\n", rank, iter, i, got[i], ref);
        }
    }
    return bad;
}

/* 1 when every rank holds the same bits as rank 0 (on every rank: the answer is agreed). */
static int identical_everywhere(const float *buf, size_t n) {
    float *root = malloc(n * sizeof(float));
    if (rank == 0) memcpy(root, buf, n * sizeof(float));
    MPI_Bcast(root, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    int same = memcmp(root, buf, n * sizeof(float)) == 0;
    MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    free(root);
    return same;
}

static nn_reducer *make(size_t n, const nn_reducer_opts *opts) {
    nn_reducer *red = NULL;
    nn_error err = {0};
    int status = nn_reducer_create_opts(&red, MPI_COMM_WORLD, n, opts, &err);
    if (status) fprintf(stderr, "rank %d: %s\n", rank, err.msg);
    return red;
}

static void sleep_us(long us) {
    struct timespec t = {0, us * 1000};
    nanosleep(&t, NULL);
}

static const size_t sizes[] = {1, 15, 16, 17, 45361, 1276811};

/* Like check_sum, for a bf16 sum. bf16 keeps 8 significant bits, so each rounding
 * errs by at most 2^-8 of its value, itself at most the sum of magnitudes: at most
 * P rounded inputs (node sums) and P - 1 rounded additions give the bound below.
 * Every value must also be a bf16 (low 16 bits zero): the sum did travel compressed. */
static size_t check_bf16_sum(const float *got, size_t n, int iter) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double mag, ref = reference(i, iter, &mag);
        uint32_t bits;
        memcpy(&bits, &got[i], sizeof bits);
        if (!(fabs(got[i] - ref) <= 2.0 * nranks * 0x1p-8 * mag) || (bits & 0xffffu)) {
            if (bad++ < 3) fprintf(stderr, "rank %d bf16: [%zu] = %.9g, expected %.9g\n", rank, i, got[i], ref);
        }
    }
    return bad;
}

static void sum_and_check(const nn_reducer_opts *opts, int iters) {
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        nn_reducer *red = make(n, opts);
        CU_ASSERT_PTR_NOT_NULL_FATAL(red);
        float *buf = nn_reducer_buffer(red);
        CU_ASSERT_EQUAL((uintptr_t)buf % 64, 0);
        for (int it = 0; it < iters; it++) {
            fill(buf, n, it);
            nn_reducer_sum(red);
            CU_ASSERT_EQUAL(check_sum(buf, n, it), 0);
            CU_ASSERT(identical_everywhere(buf, n));
        }
        nn_reducer_free(red);
    }
}

static void test_mode(void) {
    nn_reducer *red = make(100, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(red);
    /* mpiexec on one machine: one node */
    CU_ASSERT_EQUAL(nn_reducer_mode(red), nranks == 1 ? NN_REDUCE_SERIAL : NN_REDUCE_SHARED);
    CU_ASSERT_EQUAL(nn_reducer_nodes(red), 1);
    nn_reducer_free(red);
}

static void test_sum_matches_reference(void) { sum_and_check(NULL, 2); }

static void test_bf16_rounding(void) {
    CU_ASSERT_EQUAL(nn_bf16_from_float(1.0f), 0x3f80);
    CU_ASSERT_EQUAL(nn_bf16_from_float(1.0f + 0x1p-8f), 0x3f80);                /* a tie: to even */
    CU_ASSERT_EQUAL(nn_bf16_from_float(1.0f + 0x1p-7f + 0x1p-8f), 0x3f82);      /* a tie: to even, up */
    CU_ASSERT_EQUAL(nn_bf16_from_float(1.0f + 0x1p-8f + 0x1p-12f), 0x3f81);     /* above the tie: up */
    CU_ASSERT_EQUAL(nn_bf16_from_float(-2.5f), 0xc020);
    CU_ASSERT_EQUAL(nn_bf16_to_float(0x3f81), 1.0f + 0x1p-7f);
    CU_ASSERT(isinf(nn_bf16_to_float(nn_bf16_from_float(INFINITY))));
    CU_ASSERT(isnan(nn_bf16_to_float(nn_bf16_from_float(NAN))));
    CU_ASSERT(isnan(nn_bf16_to_float(nn_bf16_from_float(nanf("0x1"))))); /* a NaN whose payload is in the low bits */
    CU_ASSERT_EQUAL(nn_bf16_to_float(nn_bf16_from_float(3.0f)), 3.0f);  /* small integers (control words) are exact */
}

/* --compress bf16 between fake nodes (or on the flat path, where the whole sum is
 * compressed): within bf16's rounding, bit-identical on every rank. */
static void test_bf16_between_nodes(void) {
    if (nranks == 1) return; /* nothing is sent */
    nn_reducer_opts opts = {.fake_node = 2, .compress = NN_COMPRESS_BF16};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        nn_reducer *red = make(sizes[k], &opts);
        CU_ASSERT_PTR_NOT_NULL_FATAL(red);
        float *buf = nn_reducer_buffer(red);
        fill(buf, sizes[k], 7);
        nn_reducer_sum(red);
        CU_ASSERT_EQUAL(check_bf16_sum(buf, sizes[k], 7), 0);
        CU_ASSERT(identical_everywhere(buf, sizes[k]));
        nn_reducer_free(red);
    }
}

static void test_mpi_barrier_variant(void) { sum_and_check(&(nn_reducer_opts){.mpi_barrier = 1}, 1); }

static void test_flat_variant(void) { sum_and_check(&(nn_reducer_opts){.force_flat = 1}, 1); }

/* Two fake nodes (ranks split by parity): uniform with an even rank count >= 4, so
 * the slices cross "nodes" through MPI_Allreduce; uneven otherwise (flat). */
static void test_fake_nodes(void) {
    nn_reducer_opts opts = {.fake_node = 2};
    nn_reducer *red = make(10, &opts);
    CU_ASSERT_PTR_NOT_NULL_FATAL(red);
    int expect = nranks == 1 ? NN_REDUCE_SERIAL : nranks % 2 == 0 && nranks >= 4 ? NN_REDUCE_SHARED : NN_REDUCE_FLAT;
    CU_ASSERT_EQUAL(nn_reducer_mode(red), expect);
    if (expect == NN_REDUCE_SHARED) CU_ASSERT_EQUAL(nn_reducer_nodes(red), 2);
    nn_reducer_free(red);
    sum_and_check(&opts, 2);
    opts.mpi_barrier = 1;
    sum_and_check(&opts, 1);
}

/* 100 rounds, inputs changing every round, with one rank late now and then (before
 * writing, or before summing) so that a missing barrier would show as a wrong sum. */
static void test_repeated_no_race(void) {
    const size_t ns[] = {17, 45361};
    for (int v = 0; v < 2; v++) {
        size_t n = ns[v];
        nn_reducer *red = make(n, v ? &(nn_reducer_opts){.fake_node = 2} : NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(red);
        float *buf = nn_reducer_buffer(red);
        size_t bad = 0;
        int same = 1;
        for (int it = 0; it < 100; it++) {
            int late = it % (nranks + 1); /* nranks: nobody */
            if (rank == late && it % 3 == 0) sleep_us(500);
            fill(buf, n, 1000 + it);
            if (rank == late && it % 3 == 1) sleep_us(500);
            nn_reducer_sum(red);
            if (rank == late && it % 3 == 2) sleep_us(500); /* the others race ahead into the next round */
            bad += check_sum(buf, n, 1000 + it);
            same &= identical_everywhere(buf, n);
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT(same);
        nn_reducer_free(red);
    }
}

/* CPU seconds this process has used so far. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A rank that waits long for a late one sleeps between looks: over a 1 s wait it
 * uses far less than 1 s of CPU (a stopped peer must not cost a core). */
static void test_waiting_rank_sleeps(void) {
    nn_reducer *red = make(45361, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(red);
    fill(nn_reducer_buffer(red), 45361, 7);
    int late = nranks - 1;
    double before = cpu_seconds();
    if (rank == late) sleep_us(1000000);
    nn_reducer_sum(red);
    double used = cpu_seconds() - before;
    if (rank != late && nn_reducer_mode(red) == NN_REDUCE_SHARED) {
        if (used >= 0.3) printf("\n  rank %d used %.3f s of CPU waiting 1 s\n", rank, used);
        CU_ASSERT(used < 0.3);
    }
    CU_ASSERT_EQUAL(check_sum(nn_reducer_buffer(red), 45361, 7), 0);
    nn_reducer_free(red);
}

/* A wait spins only while the node's ranks x threads fit its cores, asked at each wait:
 * a run whose thread tuning settles on fewer threads spins again. */
static void test_spins_follow_threads(void) {
    nn_reducer *red = make(100, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(red);
    if (nn_reducer_mode(red) == NN_REDUCE_SHARED) {
        long cores = nn_placement_node_cores(MPI_COMM_WORLD); /* one node (test_mode) */
        int saved = omp_get_max_threads();
        omp_set_num_threads((int)cores + 1);
        CU_ASSERT_EQUAL(nn_reducer_spins(red), 0);
        omp_set_num_threads(1);
        CU_ASSERT_EQUAL(nn_reducer_spins(red) == 0, nranks > cores);
        omp_set_num_threads(saved);
    }
    nn_reducer_free(red);
}

/* Two reducers on one communicator, used in turns: independent and the same bits. */
static void test_two_reducers_agree(void) {
    size_t n = 45361;
    nn_reducer *a = make(n, NULL), *b = make(n, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    float *x = nn_reducer_buffer(a), *y = nn_reducer_buffer(b);
    CU_ASSERT_PTR_NOT_EQUAL(x, y);
    for (int it = 0; it < 10; it++) {
        fill(x, n, 2000 + it);
        fill(y, n, 2000 + it);
        nn_reducer_sum(a);
        CU_ASSERT_EQUAL(check_sum(x, n, 2000 + it), 0);
        nn_reducer_sum(b);
        CU_ASSERT_EQUAL(memcmp(x, y, n * sizeof(float)), 0);
        /* summing a again from the same inputs repeats the bits exactly */
        fill(x, n, 2000 + it);
        nn_reducer_sum(a);
        CU_ASSERT_EQUAL(memcmp(x, y, n * sizeof(float)), 0);
    }
    nn_reducer_free(a);
    nn_reducer_free(b);
}

/* The early chunked sum (nn_reducer_set_early): what the fn of each rank received. */
typedef struct early_record {
    float *sums;           /* the sums this rank was handed, at their offsets (0 elsewhere) */
    int *handed;           /* how often each element was handed to this rank */
    size_t half;           /* where the late rank's input stops being final */
    long chunks, chunks_above; /* chunks handed here; of them, starting at or above half */
} early_record;

static unsigned record_chunk(void *ctx, const float *sums, size_t offset, size_t count) {
    early_record *rec = ctx;
    memcpy(rec->sums + offset, sums, count * sizeof(float));
    for (size_t i = offset; i < offset + count; i++) rec->handed[i]++;
    rec->chunks++;
    rec->chunks_above += offset >= rec->half;
    return 0;
}

/* Each round one rank is late: it posts its top half final, sleeps 0.2 s, and only
 * then writes its bottom half and joins the sum. The others must sum the top half's
 * chunks while it sleeps (it is handed none of them), must not touch the bottom half
 * before it is written (a stale value would show in the sum), and every element must
 * be handed exactly once, with the sum of every rank's input; the control words
 * (the tail) reach every rank after the closing barrier. */
static void test_early_chunked_sum(void) {
    const size_t n = 45361, n_chunked = n - 4;
    nn_reducer *red = make(n, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(red);
    nn_reducer_set_early(red, 1);
    if (!nn_reducer_can_sum_chunks(red)) { /* one rank: nothing to sum */
        CU_ASSERT_FALSE(nn_reducer_early(red));
        nn_reducer_free(red);
        return;
    }
    CU_ASSERT_TRUE_FATAL(nn_reducer_early(red));
    float *buf = nn_reducer_buffer(red);
    early_record rec = {malloc(n * sizeof(float)), malloc(n * sizeof(int)), n_chunked / 2, 0, 0};
    size_t bad = 0, handed_wrong = 0, tail_bad = 0;
    long late_above = 0, above = 0;
    for (int it = 0; it < 2 * nranks; it++) {
        int late = it % nranks, round = 3000 + it;
        memset(rec.sums, 0, n * sizeof(float));
        memset(rec.handed, 0, n * sizeof(int));
        rec.chunks = rec.chunks_above = 0;
        for (size_t i = rec.half; i < n; i++) buf[i] = input(rank, i, round);
        nn_reducer_post_ready(red, rec.half);
        if (rank == late) sleep_us(200000);
        for (size_t i = 0; i < rec.half; i++) buf[i] = input(rank, i, round);
        nn_reducer_sum_chunks(red, n_chunked, record_chunk, &rec);
        nn_reducer_barrier_or(red, 0);
        if (rank == late) late_above += rec.chunks_above;
        MPI_Allreduce(MPI_IN_PLACE, &rec.chunks_above, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
        above += rec.chunks_above;
        /* each element was handed to one rank: the others hold 0, and x + 0 == x */
        MPI_Allreduce(MPI_IN_PLACE, rec.sums, (int)n_chunked, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(MPI_IN_PLACE, rec.handed, (int)n_chunked, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        for (size_t i = 0; i < n_chunked; i++) handed_wrong += rec.handed[i] != 1;
        bad += check_sum(rec.sums, n_chunked, round);
        for (size_t i = n_chunked; i < n; i++) { /* the tail, in this rank's own buffer */
            double mag, ref = reference(i, round, &mag);
            tail_bad += !(fabs(buf[i] - ref) <= 1e-6 * mag);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(handed_wrong, 0);
    CU_ASSERT_EQUAL(tail_bad, 0);
    CU_ASSERT_EQUAL(late_above, 0); /* the others had summed the top half while it slept */
    CU_ASSERT(above > 0);
    free(rec.sums);
    free(rec.handed);
    nn_reducer_free(red);
}

/* Work items in an early sum (item_ready): what the items of each rank saw. */
typedef struct item_record {
    nn_reducer *red;
    size_t half, n;
    int round;
    long ran[4];   /* items run on this rank, by item */
    long stale;    /* items that found an input of another round in some rank's buffer */
} item_record;

static unsigned record_item(void *ctx, int item) {
    item_record *rec = ctx;
    size_t lo = item < 2 ? rec->half : 0, hi = item < 2 ? rec->n - 4 : rec->half; /* what it may read */
    long stale = 0;
    for (int r = 0; r < nranks; r++) {
        const float *seg = nn_reducer_segment(rec->red, r);
        for (size_t i = lo; i < hi; i += 97) stale += seg[i] != input(r, i, rec->round);
    }
    /* a rank's threads may run items side by side */
    __atomic_add_fetch(&rec->stale, stale, __ATOMIC_RELAXED);
    __atomic_add_fetch(&rec->ran[item], 1, __ATOMIC_RELAXED);
    return 0;
}

static unsigned ignore_chunk(void *ctx, const float *sums, size_t offset, size_t count) {
    (void)ctx, (void)sums, (void)offset, (void)count;
    return 0;
}

/* As above, with 4 work items: two that may start once the top half is posted, two
 * once everything is. The late rank runs none of the first two (the others take them
 * while it sleeps), no item reads a buffer before its owner posted it final (stale
 * inputs would show), and each item runs once a sum. */
/* Items 0 and 1 read the top half, 2 and 3 the bottom; a late rank posts the top half,
 * sleeps 0.2 s, then writes the bottom: the others run the top items meanwhile, and no
 * item runs before every rank has posted what it reads. With `threads` a rank, its
 * threads take the items side by side. */
static void early_items(int threads) {
    const size_t n = 45361;
    nn_reducer *red = make(n, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(red);
    nn_reducer_set_early(red, 1);
    if (!nn_reducer_early(red)) {
        nn_reducer_free(red);
        return;
    }
    float *buf = nn_reducer_buffer(red);
    item_record rec = {.red = red, .half = (n - 4) / 2, .n = n};
    const size_t ready[4] = {rec.half, rec.half, 0, 0};
    nn_chunk_work work = {.n_items = 4, .item = record_item, .item_ctx = &rec, .item_ready = ready};
    long late_top = 0, runs[4] = {0};
    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    for (int it = 0; it < 2 * nranks; it++) {
        int late = it % nranks;
        rec.round = 5000 + it;
        memset(rec.ran, 0, sizeof rec.ran);
        for (size_t i = rec.half; i < n; i++) buf[i] = input(rank, i, rec.round);
        nn_reducer_post_ready(red, rec.half);
        if (rank == late) sleep_us(200000);
        for (size_t i = 0; i < rec.half; i++) buf[i] = input(rank, i, rec.round);
        nn_reducer_sum_chunks_with(red, n - 4, &work, ignore_chunk, NULL);
        nn_reducer_barrier_or(red, 0);
        if (rank == late) late_top += rec.ran[0] + rec.ran[1];
        MPI_Allreduce(MPI_IN_PLACE, rec.ran, 4, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
        for (int k = 0; k < 4; k++) runs[k] += rec.ran[k];
    }
    omp_set_num_threads(saved);
    MPI_Allreduce(MPI_IN_PLACE, &rec.stale, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    CU_ASSERT_EQUAL(rec.stale, 0);
    CU_ASSERT_EQUAL(late_top, 0);
    for (int k = 0; k < 4; k++) CU_ASSERT_EQUAL(runs[k], 2 * nranks);
    nn_reducer_free(red);
}

static void test_early_items(void) { early_items(1); }
static void test_early_items_threads(void) { early_items(3); }

static void test_free_null(void) { nn_reducer_free(NULL); }

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    CU_TestInfo tests[] = {
        {"one node on one machine (serial with one rank)", test_mode},
        {"sum equals the double reference, identical on every rank", test_sum_matches_reference},
        {"same with MPI_Barrier instead of the spin barrier", test_mpi_barrier_variant},
        {"same with the flat MPI_Allreduce fallback", test_flat_variant},
        {"two fake nodes: cross-node path or flat fallback", test_fake_nodes},
        {"bfloat16 rounding: nearest even, NaN and infinity kept", test_bf16_rounding},
        {"bf16 between two fake nodes: within bf16 rounding, identical on every rank", test_bf16_between_nodes},
        {"100 rounds with changing inputs and late ranks: no race", test_repeated_no_race},
        {"a rank waiting 1 s for a late one sleeps rather than spins", test_waiting_rank_sleeps},
        {"two reducers on one communicator agree bit for bit", test_two_reducers_agree},
        {"a wait spins only while ranks x threads fit the node's cores", test_spins_follow_threads},
        {"early chunked sum: the top half summed while a late rank sleeps, every chunk once", test_early_chunked_sum},
        {"early sum with work items: each once, none before every rank posted its input", test_early_items},
        {"the same with 3 threads a rank taking items side by side", test_early_items_threads},
        {"freeing NULL is a no-op", test_free_null},
        CU_TEST_INFO_NULL};
    int failed = nn_run_suite_all_ranks("gradient reducer", tests);
    MPI_Finalize();
    return failed;
}
