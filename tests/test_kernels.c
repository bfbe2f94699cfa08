/* The packed GEMM and the element-wise kernels against naive reference loops. */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cunit_run.h"
#include "nn/kernels.h"
#include "test_util.h"

/* One GEMM case: random op(A) [M,K], op(B) [K,N], optional padding in the leading
 * dimensions, beta 0 or 1; compared with the double-accumulating reference. */
static void check_gemm(bool ta, bool tb, int M, int N, int K, int pad, float beta, nn_rng *rng) {
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t a_size = (size_t)(ta ? K : M) * lda, b_size = (size_t)(tb ? N : K) * ldb, c_size = (size_t)M * ldc;
    float *A = random_floats(rng, a_size, -1, 1), *B = random_floats(rng, b_size, -1, 1);
    float *C = random_floats(rng, c_size, -1, 1), *R = malloc(c_size * sizeof *R);
    memcpy(R, C, c_size * sizeof *R);
    nn_gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
    nn_gemm_reference(ta, tb, M, N, K, A, lda, B, ldb, beta, R, ldc);
    double worst = 0.0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            /* float sums of K terms of size <= 1: error grows like sqrt(K) * eps */
            double d = fabs((double)C[(size_t)i * ldc + j] - R[(size_t)i * ldc + j]);
            worst = d > worst || isnan(d) ? d : worst; /* a NaN is the worst error, never skipped */
        }
    double tolerance = 1e-6 * (K + 10);
    if (worst > tolerance)
        printf("\n  gemm ta=%d tb=%d M=%d N=%d K=%d pad=%d beta=%g: max error %g > %g\n", ta, tb, M, N,
               K, pad, beta, worst, tolerance);
    CU_ASSERT(worst <= tolerance);
    /* padding columns of C are never touched */
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++) CU_ASSERT_EQUAL(C[(size_t)i * ldc + j], R[(size_t)i * ldc + j]);
    free(A); free(B); free(C); free(R);
}

static void test_gemm_all_transposes_odd_shapes(void) {
    nn_rng rng;
    nn_rng_seed(&rng, 42, 0, 0);
    const int sizes[] = {1, 2, 5, 7, 13, 17, 31, 33, 50, 65};
    for (int t = 0; t < 4; t++)
        for (int s = 0; s < 10; s++) {
            int M = sizes[s], N = sizes[(s + 3) % 10], K = sizes[(s + 7) % 10];
            check_gemm(t & 1, t & 2, M, N, K, s % 3, s % 2 ? 1.0f : 0.0f, &rng);
        }
}

static void test_gemm_network_shapes(void) {
    /* the shapes of a training step of 784-50-100-10 and 784-800-800-10 (batch 50/64),
     * K larger than one packed slice and N larger than one panel block */
    nn_rng rng;
    nn_rng_seed(&rng, 7, 0, 0);
    check_gemm(false, false, 50, 50, 784, 0, 1.0f, &rng);  /* forward */
    check_gemm(true, false, 784, 50, 50, 0, 0.0f, &rng);   /* weight gradient */
    check_gemm(false, true, 50, 784, 50, 0, 0.0f, &rng);   /* input gradient */
    check_gemm(false, false, 64, 800, 800, 0, 1.0f, &rng);
    check_gemm(true, false, 800, 800, 64, 0, 0.0f, &rng);
    check_gemm(false, true, 64, 800, 800, 0, 0.0f, &rng);
    check_gemm(false, false, 3, 4100, 300, 1, 0.0f, &rng); /* N > one NC block */
}

static void test_gemm_beta_zero_ignores_nan(void) {
    float A[4] = {1, 2, 3, 4}, B[4] = {1, 0, 0, 1}, C[4] = {NAN, NAN, NAN, NAN};
    nn_gemm(false, false, 2, 2, 2, A, 2, B, 2, 0.0f, C, 2);
    CU_ASSERT_EQUAL(C[0], 1); CU_ASSERT_EQUAL(C[1], 2);
    CU_ASSERT_EQUAL(C[2], 3); CU_ASSERT_EQUAL(C[3], 4);
}

static void test_gemm_independent_of_thread_count(void) {
    /* Parallel over output tiles only, so results must be bit-identical. */
    nn_rng rng;
    nn_rng_seed(&rng, 9, 0, 0);
    int M = 97, N = 203, K = 517;
    float *A = random_floats(&rng, (size_t)M * K, -1, 1), *B = random_floats(&rng, (size_t)K * N, -1, 1);
    float *C1 = calloc((size_t)M * N, sizeof(float)), *C3 = calloc((size_t)M * N, sizeof(float));
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    nn_gemm(true, false, M, N, K, A, M, B, N, 0.0f, C1, N);
    omp_set_num_threads(3);
    nn_gemm(true, false, M, N, K, A, M, B, N, 0.0f, C3, N);
    CU_ASSERT_EQUAL(memcmp(C1, C3, (size_t)M * N * sizeof(float)), 0);
    /* A as stored, 38 rows (a last tile of 8 with AVX-512), B read in place */
    int rows = 38;
    omp_set_num_threads(1);
    nn_gemm(false, false, rows, N, K, A, K, B, N, 0.0f, C1, N);
    omp_set_num_threads(3);
    nn_gemm(false, false, rows, N, K, A, K, B, N, 0.0f, C3, N);
    omp_set_num_threads(saved);
    CU_ASSERT_EQUAL(memcmp(C1, C3, (size_t)rows * N * sizeof(float)), 0);
    free(A); free(B); free(C1); free(C3);
}

/* Inside a parallel region every thread may call nn_gemm at once (the node's sum runs
 * its work items so): each product then runs on its calling thread in a buffer of its
 * own. Four threads, each its own product of a different shape (B packed: K > one
 * slice; B read in place; a narrow last panel), many times over, against the same
 * products made one at a time outside: the same bits. Buffers shared between the
 * threads would mix their packed panels. */
static void test_gemm_called_by_every_thread_at_once(void) {
    enum { THREADS = 4, ROUNDS = 20 };
    const int shapes[THREADS][4] = {{64, 96, 600, 1}, {32, 128, 300, 0}, {40, 50, 260, 1}, {104, 64, 32, 1}};
    nn_rng rng;
    nn_rng_seed(&rng, 11, 0, 0);
    float *A[THREADS], *B[THREADS], *want[THREADS], *got[THREADS];
    for (int t = 0; t < THREADS; t++) {
        int M = shapes[t][0], N = shapes[t][1], K = shapes[t][2];
        A[t] = random_floats(&rng, (size_t)M * K, -1, 1);
        B[t] = random_floats(&rng, (size_t)K * N, -1, 1);
        want[t] = calloc((size_t)M * N, sizeof(float));
        got[t] = calloc((size_t)M * N * ROUNDS, sizeof(float));
        bool ta = shapes[t][3];
        nn_gemm(ta, false, M, N, K, A[t], ta ? M : K, B[t], N, 0.0f, want[t], N);
    }
    int saved = omp_get_max_threads(), differ = 0;
    omp_set_num_threads(THREADS);
#pragma omp parallel
    for (int t = omp_get_thread_num(); t < THREADS; t += omp_get_num_threads()) { /* fewer threads: more each */
        int M = shapes[t][0], N = shapes[t][1], K = shapes[t][2];
        bool ta = shapes[t][3];
        for (int r = 0; r < ROUNDS; r++)
            nn_gemm(ta, false, M, N, K, A[t], ta ? M : K, B[t], N, 0.0f, got[t] + (size_t)r * M * N, N);
    }
    omp_set_num_threads(saved);
    for (int t = 0; t < THREADS; t++) {
        size_t floats = (size_t)shapes[t][0] * shapes[t][1];
        for (int r = 0; r < ROUNDS; r++) differ += memcmp(want[t], got[t] + r * floats, floats * sizeof(float)) != 0;
        free(A[t]); free(B[t]); free(want[t]); free(got[t]);
    }
    CU_ASSERT_EQUAL(differ, 0);
}

/* nn_gemm_sum against nn_gemm's products added one by one (beta 0, then beta 1 in
 * order): bit for bit. Terms of depths 0 to 256 (a rank with no rows; deeper ones it
 * declines), every row count of a tile, a whole and a masked last panel, B rows with
 * padding; and tiny first two terms, whose products round to -0 (a total of -0 must
 * stay -0, and term 2, of depth 0, must turn it into +0, as nn_gemm does). */
static long negative_zeros; /* in the sums made: the case the test must reach */

static int gemm_sum_case(int M, int N, int terms, const int *K, int pad, nn_rng *rng) {
    int lda = M + pad, ldb = N + pad, ldc = N + 1;
    float *A[16], *B[16], *C = calloc((size_t)M * ldc, sizeof(float)), *R = calloc((size_t)M * ldc, sizeof(float));
    for (int r = 0; r < terms; r++) {
        A[r] = random_floats(rng, (size_t)(K[r] ? K[r] : 1) * lda, -1, 1);
        B[r] = random_floats(rng, (size_t)(K[r] ? K[r] : 1) * ldb, -1, 1);
        if (r < 2) { /* tiny: products below the smallest float, a -0 total at first */
            for (int e = 0; e < (K[r] ? K[r] : 1) * lda; e++) A[r][e] *= 1e-30f;
            for (int e = 0; e < (K[r] ? K[r] : 1) * ldb; e++) B[r][e] *= 1e-30f;
        }
        if (r && !K[r]) /* an empty product: nn_gemm would leave C, the sum adds its +0 */
            for (size_t e = 0; e < (size_t)M * ldc; e++) R[e] += 0.0f;
        else
            nn_gemm(true, false, M, N, K[r], A[r], lda, B[r], ldb, r ? 1.0f : 0.0f, R, ldc);
    }
    for (size_t e = 0; e < (size_t)M * ldc; e++) C[e] = 7.0f; /* overwritten, but for ldc's spare column */
    for (int i = 0; i < M; i++) R[(size_t)i * ldc + N] = 7.0f;
    bool done = nn_gemm_sum(M, N, terms, (const float *const *)A, lda, (const float *const *)B, ldb, K, C, ldc);
    /* where nn_gemm leaves the last columns to its narrow kernels (N = 100), another
     * order: declined, C untouched; so too everywhere without AVX-512 */
    bool tiles = nn_gemm_tiles_only(true, N, 1) && nn_simd_floats() == 16;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) negative_zeros += R[(size_t)i * ldc + j] == 0.0f && signbit(R[(size_t)i * ldc + j]);
    int bad = done != tiles || (done ? memcmp(C, R, (size_t)M * ldc * sizeof(float)) != 0 : C[0] != 7.0f);
    if (bad) printf("\n  gemm_sum M=%d N=%d terms=%d pad=%d: %s\n", M, N, terms, pad, done ? "bits differ" : "declined");
    for (int r = 0; r < terms; r++) {
        free(A[r]);
        free(B[r]);
    }
    free(C);
    free(R);
    return bad;
}

static void test_gemm_sum_same_bits(void) {
    nn_rng rng;
    nn_rng_seed(&rng, 13, 0, 0);
    const int depths[16] = {6, 7, 0, 6, 1, 32, 6, 256, 7, 6, 6, 0, 31, 6, 7, 6};
    const int widths[] = {13, 16, 18, 32, 50, 64, 100, 128};
    int bad = 0, cases = 0;
    for (int M = 1; M <= 14; M++)
        for (int w = 0; w < 8; w++) {
            bad += gemm_sum_case(M, widths[w], 1 + (M * 5 + w) % 16, depths, w % 2, &rng);
            cases += nn_gemm_tiles_only(true, widths[w], 1) && nn_simd_floats() == 16;
        }
    bad += gemm_sum_case(88, 50, 16, depths, 0, &rng);  /* the reference network's tiles at 16 ranks */
    bad += gemm_sum_case(104, 128, 15, depths + 1, 3, &rng);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(cases >= 98 || nn_simd_floats() < 16);
    CU_ASSERT(negative_zeros > 0);
    /* declined, C untouched: a term deeper than one slice; a last panel of 10 columns */
    float a[300 * 8] = {0}, b[300 * 16] = {0}, c[8 * 16];
    const float *as[2] = {a, a}, *bs[2] = {b, b};
    int deep[2] = {6, 300}, shallow[2] = {6, 6};
    for (int e = 0; e < 8 * 16; e++) c[e] = 5.0f;
    CU_ASSERT_FALSE(nn_gemm_sum(8, 16, 2, as, 8, bs, 16, deep, c, 16));
    CU_ASSERT_FALSE(nn_gemm_sum(8, 10, 2, as, 8, bs, 16, shallow, c, 16));
    if (nn_simd_floats() == 16) {
        CU_ASSERT_TRUE(nn_gemm_sum(8, 16, 2, as, 8, bs, 16, shallow, c, 16));
        CU_ASSERT_EQUAL(c[0], 0.0f);
    }
}

/* op(B) stored as is is read in place for a few tiles of rows and packed otherwise
 * (or when its rows lie a multiple of 512 floats apart): the same loads in the same
 * order, so the same bits. Each product is computed with B's rows N + 3 floats apart
 * (read in place up to 36 rows) and 1024 apart (always packed), and its first rows
 * again as a product of their own. */
static void test_gemm_b_in_place_same_bits(void) {
    nn_rng rng;
    nn_rng_seed(&rng, 11, 0, 0);
    /* full panels, and last panels narrower than their vectors (read with masked
     * loads) of both the AVX-512 (16 floats) and the AVX2 (8) kernels */
    const int shapes[][3] = {{1, 50, 784}, {6, 50, 784},  {7, 100, 50}, {32, 800, 300}, {37, 64, 784},
                             {100, 50, 300}, {6, 30, 784}, {5, 20, 20},  {12, 45, 100}, {3, 13, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], near = N + 3, far = 1024;
        float *A = random_floats(&rng, (size_t)M * K, -1, 1), *Bnear = random_floats(&rng, (size_t)K * near, -1, 1);
        float *Bfar = calloc((size_t)K * far, sizeof(float));
        for (int k = 0; k < K; k++) memcpy(Bfar + (size_t)k * far, Bnear + (size_t)k * near, N * sizeof(float));
        for (int add = 0; add < 2; add++) {
            float *C0 = random_floats(&rng, (size_t)M * N, -1, 1), *C1 = malloc((size_t)M * N * sizeof(float));
            float *C2 = malloc((size_t)M * N * sizeof(float));
            memcpy(C1, C0, (size_t)M * N * sizeof(float));
            memcpy(C2, C0, (size_t)M * N * sizeof(float));
            nn_gemm(false, false, M, N, K, A, K, Bnear, near, add ? 1.0f : 0.0f, C0, N);
            nn_gemm(false, false, M, N, K, A, K, Bfar, far, add ? 1.0f : 0.0f, C1, N);
            int first = M > 5 ? 5 : M; /* the first rows alone: one tile, read in place */
            nn_gemm(false, false, first, N, K, A, K, Bnear, near, add ? 1.0f : 0.0f, C2, N);
            CU_ASSERT_EQUAL(memcmp(C0, C1, (size_t)M * N * sizeof(float)), 0);
            CU_ASSERT_EQUAL(memcmp(C0, C2, (size_t)first * N * sizeof(float)), 0);
            free(C0); free(C1); free(C2);
        }
        free(A); free(Bnear); free(Bfar);
    }
}

static void test_column_sums_and_fill_rows(void) {
    nn_rng rng;
    nn_rng_seed(&rng, 3, 0, 0);
    int rows = 37, cols = 131;
    float *x = random_floats(&rng, (size_t)rows * cols, -1, 1), sums[131], bias[131], y[37 * 131];
    nn_column_sums(x, sums, rows, cols, false);
    for (int c = 0; c < cols; c++) {
        double ref = 0;
        for (int r = 0; r < rows; r++) ref += x[r * cols + c];
        CU_ASSERT_DOUBLE_EQUAL(sums[c], ref, 1e-5);
        bias[c] = (float)c;
    }
    /* accumulating adds the same sums again (micro-batches) */
    float twice[131];
    memcpy(twice, sums, sizeof twice);
    nn_column_sums(x, twice, rows, cols, true);
    for (int c = 0; c < cols; c++) CU_ASSERT_DOUBLE_EQUAL(twice[c], 2.0 * sums[c], 1e-5);
    nn_fill_rows(y, bias, rows, cols);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) CU_ASSERT_EQUAL(y[r * cols + c], (float)c);
    free(x);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"gemm: all transposes, odd shapes, padding, beta", test_gemm_all_transposes_odd_shapes},
        {"gemm: training-step shapes", test_gemm_network_shapes},
        {"gemm: beta 0 overwrites NaN", test_gemm_beta_zero_ignores_nan},
        {"gemm: identical for 1 and 3 threads", test_gemm_independent_of_thread_count},
        {"gemm: B read in place or packed, the same bits", test_gemm_b_in_place_same_bits},
        {"gemm_sum: the products added one by one, the same bits; declines where it cannot", test_gemm_sum_same_bits},
        {"gemm: every thread of a team at once, each its own product, the same bits", test_gemm_called_by_every_thread_at_once},
        {"column sums and bias fill", test_column_sums_and_fill_rows},
        CU_TEST_INFO_NULL};
    int rc = nn_run_suite("kernels", tests);
    nn_gemm_release();
    return rc;
}
