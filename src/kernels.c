/* Packed SGEMM in the style of GotoBLAS/BLIS, written in portable C with GCC
 * vector extensions so that -march picks SSE, AVX2 or AVX-512 code.
 *
 * C is computed in MR x NR register tiles. For each KC-deep slice of K, op(A) is
 * packed into MR-row panels and op(B) into NR-column panels laid out in the order
 * the micro-kernel reads them (unit stride, zero-padded at the edges), so the inner
 * loop is one broadcast and NR/VL fused multiply-adds per row of the tile. */
#include "nn/kernels.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__)
#define NN_VL 16
#elif defined(__AVX__)
#define NN_VL 8
#else
#define NN_VL 4
#endif

typedef float vfloat __attribute__((vector_size(NN_VL * sizeof(float))));

enum {
    MR = 6,          /* rows of the register tile */
    NV = 2,          /* vectors across the register tile */
    NR = NV * NN_VL, /* columns of the register tile */
    KC = 256,        /* depth of one packed slice: an A panel and a B panel fit in L1+L2 */
    NC = 4096        /* columns of B packed at once */
};

int nn_simd_floats(void) { return NN_VL; }

/* ---- packing buffers: grown on demand, reused across calls ---- */
static float *packed_a, *packed_b;
static size_t packed_a_cap, packed_b_cap;

static float *reserve(float **buf, size_t *cap, size_t need) {
    if (need > *cap) {
        free(*buf);
        size_t bytes = (need * sizeof(float) + 63) / 64 * 64;
        *buf = aligned_alloc(64, bytes);
        if (!*buf) abort(); /* a few MB at most; nothing sensible to do without them */
        *cap = bytes / sizeof(float);
    }
    return *buf;
}

void nn_gemm_release(void) {
    free(packed_a);
    free(packed_b);
    packed_a = packed_b = NULL;
    packed_a_cap = packed_b_cap = 0;
}

/* op(X)[r][c] for a row-major X with row stride ld. */
static inline float element(const float *X, int ld, bool trans, int r, int c) {
    return trans ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
}

/* Pack rows [i0, i0+MR) x depth [k0, k0+kc) of op(A) as dst[k*MR + i]. */
static void pack_a_panel(const float *A, int lda, bool trans, int M, int i0, int k0, int kc,
                         float *restrict dst) {
    int rows = M - i0 < MR ? M - i0 : MR;
    if (!trans) {
        for (int i = 0; i < rows; i++) {
            const float *src = A + (size_t)(i0 + i) * lda + k0;
            for (int k = 0; k < kc; k++) dst[k * MR + i] = src[k];
        }
    } else {
        for (int k = 0; k < kc; k++) {
            const float *src = A + (size_t)(k0 + k) * lda + i0;
            for (int i = 0; i < rows; i++) dst[k * MR + i] = src[i];
        }
    }
    for (int i = rows; i < MR; i++)
        for (int k = 0; k < kc; k++) dst[k * MR + i] = 0.0f;
}

/* Pack depth [k0, k0+kc) x columns [j0, j0+NR) of op(B) as dst[k*NR + j]. */
static void pack_b_panel(const float *B, int ldb, bool trans, int N, int j0, int k0, int kc,
                         float *restrict dst) {
    int cols = N - j0 < NR ? N - j0 : NR;
    if (!trans) {
        for (int k = 0; k < kc; k++) {
            const float *src = B + (size_t)(k0 + k) * ldb + j0;
            int j = 0;
            for (; j < cols; j++) dst[k * NR + j] = src[j];
            for (; j < NR; j++) dst[k * NR + j] = 0.0f;
        }
    } else {
        for (int j = 0; j < cols; j++) {
            const float *src = B + (size_t)(j0 + j) * ldb + k0;
            for (int k = 0; k < kc; k++) dst[k * NR + j] = src[k];
        }
        for (int j = cols; j < NR; j++)
            for (int k = 0; k < kc; k++) dst[k * NR + j] = 0.0f;
    }
}

/* The register tile: acc = a_panel * b_panel over kc, then C = acc + beta * C for
 * the rows x cols corner that lies inside C. */
static void micro_kernel(int kc, const float *restrict a, const float *restrict b,
                         float beta, float *C, int ldc, int rows, int cols) {
    vfloat acc[MR][NV];
    memset(acc, 0, sizeof acc);
    for (int k = 0; k < kc; k++) {
        vfloat bv[NV];
        for (int v = 0; v < NV; v++) bv[v] = *(const vfloat *)(b + k * NR + v * NN_VL);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            vfloat ai = (vfloat){0} + a[k * MR + i]; /* broadcast */
            for (int v = 0; v < NV; v++) acc[i][v] += ai * bv[v];
        }
    }
    if (rows == MR && cols == NR) {
        for (int i = 0; i < MR; i++) {
            float *c = C + (size_t)i * ldc;
            for (int v = 0; v < NV; v++) {
                vfloat out = acc[i][v];
                if (beta != 0.0f) {
                    vfloat old;
                    memcpy(&old, c + v * NN_VL, sizeof old);
                    out += old;
                }
                memcpy(c + v * NN_VL, &out, sizeof out);
            }
        }
    } else {
        float tile[MR][NR];
        memcpy(tile, acc, sizeof tile);
        for (int i = 0; i < rows; i++) {
            float *c = C + (size_t)i * ldc;
            for (int j = 0; j < cols; j++) c[j] = tile[i][j] + (beta != 0.0f ? c[j] : 0.0f);
        }
    }
}

void nn_gemm(bool trans_a, bool trans_b, int M, int N, int K,
             const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* empty product: C = beta * C */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta != 0.0f ? C[(size_t)i * ldc + j] : 0.0f;
        return;
    }
    int m_panels = (M + MR - 1) / MR;
    int nc_max = N < NC ? N : NC;
    int n_panels_max = (nc_max + NR - 1) / NR;
    float *pa = reserve(&packed_a, &packed_a_cap, (size_t)m_panels * MR * KC);
    float *pb = reserve(&packed_b, &packed_b_cap, (size_t)n_panels_max * NR * KC);
    /* Small products do not pay for waking the thread team. */
    double flops = 2.0 * M * N * K;
    int parallel = flops > 2e5 && omp_get_max_threads() > 1;

#pragma omp parallel if (parallel)
    for (int j0 = 0; j0 < N; j0 += NC) {
        int nc = N - j0 < NC ? N - j0 : NC;
        int n_panels = (nc + NR - 1) / NR;
        for (int k0 = 0; k0 < K; k0 += KC) {
            int kc = K - k0 < KC ? K - k0 : KC;
            float beta_here = k0 == 0 ? beta : 1.0f;
#pragma omp for schedule(static)
            for (int p = 0; p < n_panels; p++)
                pack_b_panel(B, ldb, trans_b, N, j0 + p * NR, k0, kc, pb + (size_t)p * NR * kc);
#pragma omp for schedule(static)
            for (int p = 0; p < m_panels; p++)
                pack_a_panel(A, lda, trans_a, M, p * MR, k0, kc, pa + (size_t)p * MR * kc);
#pragma omp for collapse(2) schedule(static)
            for (int ip = 0; ip < m_panels; ip++)
                for (int jp = 0; jp < n_panels; jp++) {
                    int i0 = ip * MR, jj = jp * NR;
                    int rows = M - i0 < MR ? M - i0 : MR;
                    int cols = nc - jj < NR ? nc - jj : NR;
                    micro_kernel(kc, pa + (size_t)ip * MR * kc, pb + (size_t)jp * NR * kc,
                                 beta_here, C + (size_t)i0 * ldc + j0 + jj, ldc, rows, cols);
                }
        }
    }
}

void nn_gemm_reference(bool trans_a, bool trans_b, int M, int N, int K,
                       const float *A, int lda, const float *B, int ldb,
                       float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double sum = 0.0;
            for (int k = 0; k < K; k++)
                sum += (double)element(A, lda, trans_a, i, k) * element(B, ldb, trans_b, k, j);
            float *c = C + (size_t)i * ldc + j;
            *c = (float)sum + (beta != 0.0f ? *c : 0.0f);
        }
}

void nn_fill_rows(float *y, const float *bias, int rows, int cols) {
    for (int r = 0; r < rows; r++) memcpy(y + (size_t)r * cols, bias, (size_t)cols * sizeof *y);
}

void nn_column_sums(const float *x, float *sums, int rows, int cols) {
    /* Rows in order for every column: the same sum whatever the thread count. */
#pragma omp parallel for schedule(static) if ((long)rows * cols > 100000)
    for (int c0 = 0; c0 < cols; c0 += 64) {
        int c1 = c0 + 64 < cols ? c0 + 64 : cols;
        for (int c = c0; c < c1; c++) sums[c] = 0.0f;
        for (int r = 0; r < rows; r++) {
            const float *row = x + (size_t)r * cols;
            for (int c = c0; c < c1; c++) sums[c] += row[c];
        }
    }
}
