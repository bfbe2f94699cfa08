/* A sum of products, C = A_0^T B_0 + A_1^T B_1 + ... (see nn_gemm_sum in kernels.h):
 * the node's factored sum makes each tile of a summed weight gradient so, one term a
 * rank. Adding nn_gemm's products one by one stores and reloads the tile of C once a
 * term, which at a rank's few rows (6 at 16 ranks of the reference network) costs
 * about as much as the products; here the running total stays in registers.
 *
 * Bit-identical to nn_gemm's products added in order: a term is the chain of fused
 * multiply-adds over its k from zero that nn_gemm's register tile makes (tile_kernel,
 * kernels.c), and it joins the total with one addition, as nn_gemm's beta 1 store (the
 * first term is the total, as a beta 0 store). That holds where nn_gemm makes every
 * element in one tile chain: no term deeper than one slice of K and no last panel
 * left to the narrow kernels; elsewhere nn_gemm_sum declines, and on targets without
 * AVX-512 (see SUM_MR). */
#include <stdbool.h>
#include <stddef.h>

#include "nn/kernels.h"
#include "simd.h"

/* Rows of a tile: its total and one term's accumulators, two vectors a row each, and
 * B's two vectors and A's broadcast must fit the registers: 6 rows in AVX-512's 32.
 * AVX2's 16 would hold 3, which measured half nn_gemm's speed (784-800-800-10's
 * tiles at 16 ranks, bench_gemm): there nn_gemm_sum declines, and none of this is
 * compiled. */
#if NN_VL == 16
enum { SUM_MR = 6, SUM_NR = 2 * NN_VL };

/* One term's product over its k into the accumulators t (as tile_kernel, A stored
 * transposed: element (i, k) is a[k*lda + i]). */
#define NN_TERM(t, a, kc, b)                                                                 \
    _Pragma("GCC unroll 4") for (int k = 0; k < (kc); k++) {                                 \
        const float *bk = (b) + (size_t)k * ldb;                                             \
        vfloat b0 = part && nv == 1 ? vload_masked(bk, last) : vload(bk);                    \
        vfloat b1 = nv == 1 ? b0 : part ? vload_masked(bk + NN_VL, last) : vload(bk + NN_VL); \
        const float *ak = (a) + (size_t)k * lda;                                             \
        NN_FMA(t, 0) NN_FMA(t, 1) NN_FMA(t, 2) NN_FMA(t, 3) NN_FMA(t, 4) NN_FMA(t, 5)        \
    }
#define NN_FMA(t, i)                                                                         \
    if (rows > i) {                                                                          \
        vfloat ai = vbroadcast(ak[i]);                                                       \
        t##i##0 = vfma(ai, b0, t##i##0);                                                     \
        if (nv > 1) t##i##1 = vfma(ai, b1, t##i##1);                                         \
    }
#define NN_ADD(i)                                                                            \
    if (rows > i) {                                                                          \
        s##i##0 = p##i##0 + s##i##0; /* as nn_gemm's beta 1 store: the product, then C */   \
        if (nv > 1) s##i##1 = p##i##1 + s##i##1;                                             \
    }

/* C[rows x cols] = sum over the terms of a[r]^T b[r] (depth[r] deep), the tile at column
 * offset 0 of each term's b; with `more`, C + that sum, the terms added to C one by one.
 * rows, nv and part (the last vector narrower than cols allows: loaded masked) are
 * compile-time constants in every instantiation. */
static inline __attribute__((always_inline)) void
sum_kernel(const int rows, const int nv, const bool part, int terms, const float *const *a, size_t lda,
           const float *const *b, size_t ldb, const int *depth, float *restrict c, size_t ldc, int cols,
           bool more) {
    _Static_assert(SUM_MR <= 6, "sum_kernel is written out for up to 6 rows");
    const lane_mask last = first_lanes(part ? cols - (nv - 1) * NN_VL : 1);
    vfloat s00 = {0}, s01 = {0}, s10 = {0}, s11 = {0}, s20 = {0}, s21 = {0};
    vfloat s30 = {0}, s31 = {0}, s40 = {0}, s41 = {0}, s50 = {0}, s51 = {0};
#define NN_LOAD(i)                                                                           \
    if (rows > i) {                                                                          \
        const float *ci = c + (size_t)i * ldc;                                               \
        s##i##0 = nv == 1 && part ? vload_masked(ci, last) : vload(ci);                      \
        if (nv > 1) s##i##1 = part ? vload_masked(ci + NN_VL, last) : vload(ci + NN_VL);     \
    }
    int r = 0;
    if (more) { /* the total so far, from C */
        NN_LOAD(0) NN_LOAD(1) NN_LOAD(2) NN_LOAD(3) NN_LOAD(4) NN_LOAD(5)
    } else { /* the first term is the total */
        NN_TERM(s, a[0], depth[0], b[0])
        r = 1;
    }
#undef NN_LOAD
    for (; r < terms; r++) {
        vfloat p00 = {0}, p01 = {0}, p10 = {0}, p11 = {0}, p20 = {0}, p21 = {0};
        vfloat p30 = {0}, p31 = {0}, p40 = {0}, p41 = {0}, p50 = {0}, p51 = {0};
        NN_TERM(p, a[r], depth[r], b[r])
        NN_ADD(0) NN_ADD(1) NN_ADD(2) NN_ADD(3) NN_ADD(4) NN_ADD(5)
    }
#define NN_STORE(i)                                                                          \
    if (rows > i) {                                                                          \
        float *ci = c + (size_t)i * ldc;                                                     \
        if (nv > 1 || !part) vstore(ci, s##i##0);                                            \
        if (nv > 1 && !part) vstore(ci + NN_VL, s##i##1);                                    \
        if (part) vstore_part(ci + (nv - 1) * NN_VL, nv > 1 ? s##i##1 : s##i##0, cols - (nv - 1) * NN_VL); \
    }
    NN_STORE(0) NN_STORE(1) NN_STORE(2) NN_STORE(3) NN_STORE(4) NN_STORE(5)
#undef NN_STORE
}
#undef NN_ADD
#undef NN_FMA
#undef NN_TERM

typedef void sum_fn(int terms, const float *const *a, size_t lda, const float *const *b, size_t ldb,
                    const int *depth, float *restrict c, size_t ldc, int cols, bool more);
#define NN_SUM_KERNEL(R, V, P)                                                                  \
    static void sum_##R##_##V##_##P(int terms, const float *const *a, size_t lda, const float *const *b, \
                                    size_t ldb, const int *depth, float *restrict c, size_t ldc, int cols, \
                                    bool more) {                                                \
        sum_kernel(R, V, P, terms, a, lda, b, ldb, depth, c, ldc, cols, more);                  \
    }
#define NN_SUM_KERNELS(R) NN_SUM_KERNEL(R, 1, 0) NN_SUM_KERNEL(R, 2, 0) NN_SUM_KERNEL(R, 1, 1) NN_SUM_KERNEL(R, 2, 1)
NN_SUM_KERNELS(1)
NN_SUM_KERNELS(2)
NN_SUM_KERNELS(3)
NN_SUM_KERNELS(4)
NN_SUM_KERNELS(5)
NN_SUM_KERNELS(6)
#undef NN_SUM_KERNELS
#undef NN_SUM_KERNEL

/* sum_kernels[part][nv - 1][rows - 1] */
#define NN_ROWS(V, P) {sum_1_##V##_##P, sum_2_##V##_##P, sum_3_##V##_##P, sum_4_##V##_##P, sum_5_##V##_##P, sum_6_##V##_##P}
static sum_fn *const sum_kernels[2][2][SUM_MR] = {{NN_ROWS(1, 0), NN_ROWS(2, 0)}, {NN_ROWS(1, 1), NN_ROWS(2, 1)}};
#undef NN_ROWS

/* The terms [r0, r1) from r0 on whose panels of B (depth x SUM_NR floats) take at most
 * 64 KB together (at least one term), swept by every tile of rows from L2; the next
 * group adds to the total stored in C. At 16 ranks of 32 rows (784-800-800-10) that
 * is all of them: groups of half an L1 measured 3-4% slower there (bench_gemm). A
 * bound for nodes of many ranks, whose panels together would leave L2. */
static int group_end(int r0, int terms, const int *K) {
    enum { GROUP_FLOATS = 65536 / sizeof(float) };
    int r1 = r0 + 1;
    for (long floats = (long)K[r0] * SUM_NR; r1 < terms && floats + (long)K[r1] * SUM_NR <= GROUP_FLOATS; r1++)
        floats += (long)K[r1] * SUM_NR;
    return r1;
}

bool nn_gemm_sum(int M, int N, int terms, const float *const *A, int lda, const float *const *B, int ldb,
                 const int *K, float *C, int ldc) {
    enum { MAX_TERMS = 256 };
    if (M <= 0 || N <= 0 || terms < 1 || terms > MAX_TERMS || !nn_gemm_tiles_only(true, N, 1)) return false;
    for (int r = 0; r < terms; r++)
        if (K[r] < 0 || K[r] > nn_gemm_unsplit_depth()) return false;
    const float *a[MAX_TERMS], *b[MAX_TERMS];
    for (int j0 = 0; j0 < N; j0 += SUM_NR) {
        int cols = N - j0 < SUM_NR ? N - j0 : SUM_NR, nv = (cols + NN_VL - 1) / NN_VL;
        bool part = cols < nv * NN_VL;
        for (int r = 0; r < terms; r++) b[r] = B[r] + j0;
        for (int r0 = 0, r1; r0 < terms; r0 = r1) { /* a group of terms, all the rows, then the next */
            r1 = group_end(r0, terms, K);
            for (int i0 = 0; i0 < M; i0 += SUM_MR) {
                int rows = M - i0 < SUM_MR ? M - i0 : SUM_MR;
                for (int r = r0; r < r1; r++) a[r] = A[r] + i0;
                sum_kernels[part][nv - 1][rows - 1](r1 - r0, a + r0, (size_t)lda, b + r0, (size_t)ldb, K + r0,
                                                     C + (size_t)i0 * ldc + j0, (size_t)ldc, cols, r0 > 0);
            }
        }
    }
    return true;
}
#else
bool nn_gemm_sum(int M, int N, int terms, const float *const *A, int lda, const float *const *B, int ldb,
                 const int *K, float *C, int ldc) {
    (void)M, (void)N, (void)terms, (void)A, (void)lda, (void)B, (void)ldb, (void)K, (void)C, (void)ldc;
    return false;
}
#endif
