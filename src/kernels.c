/* SGEMM for the small, skinny products of a training step, in portable C11 with
 * GCC vector extensions, so that -march picks SSE, AVX2 or AVX-512 code.
 *
 * Most of C is computed in register tiles of up to MR x NR floats (6 x 16 with AVX2:
 * 12 accumulators, 2 vectors of B and a broadcast of A fill the 16 ymm registers).
 * For each NR-column panel of C and each KC-deep slice of K, op(B) is packed into a
 * small per-thread buffer in the order the tile kernel reads it (zero-padded to the
 * panel width), except where few tiles of rows read it and it is stored as is: then
 * the kernel reads B in place (see run_block). op(A) is not packed at all: the
 * kernel broadcasts its elements straight from A, MR rows side by side when A is
 * stored as is, or MR consecutive floats of one row per k when it is stored
 * transposed. There are tile kernels for every row count 1..MR and for
 * one-vector-wide panels, so edges take no slow path; with AVX-512 (32 registers) a
 * last one or two rows join the tile before them (7 or 8 rows), rather than take a
 * tile of their own that reads the whole B panel again.
 * A last panel of only a few columns (N = 50, 100 or 10 in the networks) goes to the
 * narrow kernels further down, which vectorise along K or along M instead.
 *
 * Threads: a product big enough to pay for waking the team is cut into one
 * rectangle of whole panels per thread (the grid that balances the work best); each
 * thread packs what it needs into its own buffer, so there is no barrier but the
 * one at the end. Small products run on the calling thread, and so does a product
 * called from inside a parallel region (with a buffer of that thread's own).
 *
 * Determinism: which kernel computes an element of C, and the order of its
 * operations, depend on N, K, the transposes and the element's column only (the KC
 * slices are fixed by K), never on how the rows and panels are shared out, so the
 * result is bitwise the same for any thread count. No K sum is ever split. */
#include "nn/kernels.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "nn/env.h"
#include "nn/parallel.h"

#include "simd.h"

enum {
    MR = 6,          /* rows of the register tile */
#if NN_VL == 16
    LAST_MAX = 8,    /* rows of the last tile: a remainder of 1 or 2 rows joins the one before */
#else
    LAST_MAX = 6,
#endif
    NV = 2,          /* vectors across the register tile */
    NR = NV * NN_VL, /* columns of the register tile */
    KC = 256,        /* deepest slice of K: a packed B panel (KC x NR) stays in L1 */
    A_BLOCK = 65536, /* floats of A (rows x K) swept per B panel: about L2 / 2 */
    IN_PLACE_MAX_TILES = 6,  /* B read in place for at most this many tiles of rows, */
    IN_PLACE_LDB_AVOID = 512 /* unless its rows lie a multiple of this many floats apart */
};

/* Products below this many flops run on the calling thread alone: waking the team
 * costs a few microseconds. */
#define NN_GEMM_PAR_MIN_FLOPS 1.0e6

int nn_simd_floats(void) { return NN_VL; }
int nn_gemm_unsplit_depth(void) { return KC; }

/* ---- packing buffers: grown on demand, reused across calls ----
 * One block for nn_gemm's own team, a slice per thread; and one buffer for each thread
 * of a caller's team that calls nn_gemm from inside its parallel region (the node's sum
 * runs its work items so, one product per thread at once): each grown by its own thread
 * alone. */
static float *team_buffers;
static size_t team_cap; /* floats */

enum { CALLER_SLOTS = 1024 };
static struct {
    _Alignas(64) float *buf; /* a cache line each: a thread's growth writes only its own */
    size_t cap;
} caller_buffers[CALLER_SLOTS];

static float *grow(float **buf, size_t *cap, size_t need) {
    if (need > *cap) {
        free(*buf);
        *buf = aligned_alloc(64, need * sizeof(float));
        if (!*buf) abort(); /* tens of KB; nothing sensible to do without them */
        *cap = need;
    }
    return *buf;
}

/* threads buffers of per_thread floats each (a multiple of 16: 64-byte aligned). */
static float *reserve_buffers(int threads, size_t per_thread) {
    return grow(&team_buffers, &team_cap, (size_t)threads * per_thread);
}

/* The buffer of thread `slot` of a caller's team; NULL past the slots (the caller
 * then allocates one for the call). */
static float *caller_buffer(int slot, size_t floats) {
    if (slot < 0 || slot >= CALLER_SLOTS) return NULL;
    return grow(&caller_buffers[slot].buf, &caller_buffers[slot].cap, floats);
}

void nn_gemm_release(void) {
    free(team_buffers);
    team_buffers = NULL;
    team_cap = 0;
    for (int s = 0; s < CALLER_SLOTS; s++) {
        free(caller_buffers[s].buf);
        caller_buffers[s].buf = NULL;
        caller_buffers[s].cap = 0;
    }
}

/* ---- the register tile ---- */

/* One row of a tile to C: x0 and x1 are its two vectors (x1 unused when nv == 1). */
static inline __attribute__((always_inline)) void
store_row(float *restrict ci, vfloat x0, vfloat x1, const int nv, int cols, bool add) {
    if (cols == nv * NN_VL) {
        if (add) x0 += vload(ci);
        vstore(ci, x0);
        if (nv > 1) {
            if (add) x1 += vload(ci + NN_VL);
            vstore(ci + NN_VL, x1);
        }
    } else { /* narrower than its vectors: the last one (or two) partly */
        if (cols >= NN_VL) {
            if (add) x0 += vload(ci);
            vstore(ci, x0);
            ci += NN_VL;
            cols -= NN_VL;
            x0 = x1;
        }
        if (add) x0 += vload_part(ci, cols);
        vstore_part(ci, x0, cols);
    }
}

/* C[rows x cols] (+)= op(A)[rows x kc] * Bpanel[kc x nv*VL]. a points at op(A)[0][0]:
 * element (i, k) is a[i*lda + k], or a[k*lda + i] when at (A stored transposed). Row k
 * of the B panel starts at b + k*ldb: the packed panel (ldb = nv*VL), or B itself when
 * it is read in place (see run_block); part: B is read in place and the panel is
 * narrower than its vectors, so the last one is loaded masked to cols (the lanes past
 * it are zero, as in a packed panel). rows, nv, at and part are compile-time constants
 * in every instantiation below. The accumulators are named variables rather than an
 * array, which GCC would keep in memory around the loop. */
_Static_assert(MR == 6 && LAST_MAX <= 8 && NV == 2, "tile_kernel is written out for up to 8 rows of 2 vectors");
static inline __attribute__((always_inline)) void
tile_kernel(const int rows, const int nv, const bool at, const bool part, int kc,
            const float *restrict a, size_t lda, const float *restrict b, size_t ldb,
            float *restrict c, size_t ldc, int cols, bool add) {
    vfloat c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
    vfloat c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
    vfloat c60 = {0}, c61 = {0}, c70 = {0}, c71 = {0};
    const lane_mask last = first_lanes(part ? cols - (nv - 1) * NN_VL : 1);
#define NN_A(i, k) (at ? a[(size_t)(k) * lda + (i)] : a[(size_t)(i) * lda + (k)])
#define NN_ROW(i)                                                                            \
    if (rows > i) {                                                                          \
        vfloat ai = vbroadcast(NN_A(i, k));                                                  \
        c##i##0 = vfma(ai, b0, c##i##0);                                                     \
        if (nv > 1) c##i##1 = vfma(ai, b1, c##i##1);                                         \
    }
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        const float *bk = b + (size_t)k * ldb;
        vfloat b0 = part && nv == 1 ? vload_masked(bk, last) : vload(bk);
        vfloat b1 = nv == 1 ? b0 : part ? vload_masked(bk + NN_VL, last) : vload(bk + NN_VL);
        NN_ROW(0) NN_ROW(1) NN_ROW(2) NN_ROW(3) NN_ROW(4) NN_ROW(5) NN_ROW(6) NN_ROW(7)
    }
#undef NN_ROW
#undef NN_A
#define NN_STORE(i) \
    if (rows > i) store_row(c + (size_t)i * ldc, c##i##0, c##i##1, nv, cols, add);
    NN_STORE(0) NN_STORE(1) NN_STORE(2) NN_STORE(3) NN_STORE(4) NN_STORE(5) NN_STORE(6) NN_STORE(7)
#undef NN_STORE
}

typedef void kernel_fn(int kc, const float *restrict a, size_t lda, const float *restrict b,
                       size_t ldb, float *restrict c, size_t ldc, int cols, bool add);

#define NN_KERNEL(R, V, T, P)                                                                \
    static void kernel_##R##_##V##_##T##_##P(int kc, const float *restrict a, size_t lda,    \
                                             const float *restrict b, size_t ldb,            \
                                             float *restrict c, size_t ldc, int cols, bool add) { \
        tile_kernel(R, V, T, P, kc, a, lda, b, ldb, c, ldc, cols, add);                      \
    }
#define NN_KERNELS(R)                                                                        \
    NN_KERNEL(R, 1, 0, 0) NN_KERNEL(R, 2, 0, 0) NN_KERNEL(R, 1, 1, 0) NN_KERNEL(R, 2, 1, 0)  \
    NN_KERNEL(R, 1, 0, 1) NN_KERNEL(R, 2, 0, 1) NN_KERNEL(R, 1, 1, 1) NN_KERNEL(R, 2, 1, 1)
NN_KERNELS(1)
NN_KERNELS(2)
NN_KERNELS(3)
NN_KERNELS(4)
NN_KERNELS(5)
NN_KERNELS(6)
#if NN_VL == 16
NN_KERNELS(7)
NN_KERNELS(8)
#endif
#undef NN_KERNELS
#undef NN_KERNEL

/* kernels[part][at][nv - 1][rows - 1] */
#if NN_VL == 16
#define NN_ROWS(V, T, P)                                                                     \
    {kernel_1_##V##_##T##_##P, kernel_2_##V##_##T##_##P, kernel_3_##V##_##T##_##P,           \
     kernel_4_##V##_##T##_##P, kernel_5_##V##_##T##_##P, kernel_6_##V##_##T##_##P,           \
     kernel_7_##V##_##T##_##P, kernel_8_##V##_##T##_##P}
#else
#define NN_ROWS(V, T, P)                                                                     \
    {kernel_1_##V##_##T##_##P, kernel_2_##V##_##T##_##P, kernel_3_##V##_##T##_##P,           \
     kernel_4_##V##_##T##_##P, kernel_5_##V##_##T##_##P, kernel_6_##V##_##T##_##P}
#endif
static kernel_fn *const kernels[2][2][NV][LAST_MAX] = {
    {{NN_ROWS(1, 0, 0), NN_ROWS(2, 0, 0)}, {NN_ROWS(1, 1, 0), NN_ROWS(2, 1, 0)}},
    {{NN_ROWS(1, 0, 1), NN_ROWS(2, 0, 1)}, {NN_ROWS(1, 1, 1), NN_ROWS(2, 1, 1)}}};
#undef NN_ROWS

#if NN_VL == 8 && defined(__GNUC__) && !defined(__clang__)
#define NN_TRANSPOSE8 1
typedef int vint __attribute__((vector_size(8 * sizeof(int))));

/* r[0..7] = rows of an 8x8 block; on return r[k] holds column k. */
static inline void transpose_block(vfloat r[8]) {
    const vint lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
    const vint lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
    const vint lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
    vfloat t[8], u[8];
    for (int p = 0; p < 8; p += 2) {
        t[p] = __builtin_shuffle(r[p], r[p + 1], lo);
        t[p + 1] = __builtin_shuffle(r[p], r[p + 1], hi);
    }
    for (int q = 0; q < 8; q += 4) {
        u[q] = __builtin_shuffle(t[q], t[q + 2], lo2);
        u[q + 1] = __builtin_shuffle(t[q], t[q + 2], hi2);
        u[q + 2] = __builtin_shuffle(t[q + 1], t[q + 3], lo2);
        u[q + 3] = __builtin_shuffle(t[q + 1], t[q + 3], hi2);
    }
    for (int k = 0; k < 4; k++) {
        r[k] = __builtin_shuffle(u[k], u[k + 4], lo4);
        r[k + 4] = __builtin_shuffle(u[k], u[k + 4], hi4);
    }
}
#endif

#if NN_VL == 16 && defined(__GNUC__) && !defined(__clang__)
#define NN_TRANSPOSE16 1
typedef int vint16 __attribute__((vector_size(16 * sizeof(int))));

/* r[0..15] = rows of a 16x16 block; on return r[k] holds column k. Four rounds, each
 * swapping the off-diagonal b x b blocks of every 2b x 2b block (b = 8, 4, 2, 1):
 * 64 two-source shuffles instead of 256 element copies. */
static inline void transpose_block(vfloat r[16]) {
#define NN_SWAP_BLOCKS(b, lo, hi)                                                  \
    for (int i = 0; i < 16; i++)                                                   \
        if (!(i & (b))) {                                                          \
            vfloat x = r[i], y = r[i + (b)];                                       \
            r[i] = __builtin_shuffle(x, y, (vint16)lo);                            \
            r[i + (b)] = __builtin_shuffle(x, y, (vint16)hi);                      \
        }
    /* lane j of lo: (j & b) ? 16 + j - b : j; of hi: (j & b) ? 16 + j : j + b */
    NN_SWAP_BLOCKS(8, ((vint16){0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}),
                   ((vint16){8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}))
    NN_SWAP_BLOCKS(4, ((vint16){0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27}),
                   ((vint16){4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31}))
    NN_SWAP_BLOCKS(2, ((vint16){0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29}),
                   ((vint16){2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31}))
    NN_SWAP_BLOCKS(1, ((vint16){0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}),
                   ((vint16){1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}))
#undef NN_SWAP_BLOCKS
}
#endif

/* ---- narrow last panels ----
 * On a last panel of a few columns (N = 50, 100 or 10 in the networks) a 6 x 16
 * tile wastes most of its multiply-adds, and a one-vector-wide tile is no faster:
 * its broadcasts of A, not its FMAs, are the bottleneck. A last panel of at most
 * NARROW columns therefore takes kernels that vectorise along another dimension:
 *  - A as stored (rows contiguous in k): dot products along k, R rows x CC columns
 *    at a time, against the rows of op(B)^T (B itself when it is stored transposed,
 *    else a packed copy), each summed horizontally at the end;
 *  - A transposed (columns of op(A) contiguous in i): vectors along i, multiplied
 *    by broadcast elements of op(B), CC columns at a time.
 * Which kernel computes an element of C depends on N and K only.
 * (With masked partial vectors, a tile would now beat the dot products on A as stored
 * at K = 100, 1.1 against 3.1 us for 50x10x100; it sums in another order, though, and
 * the dot products stay so that results match earlier builds bit for bit.) */
enum {
    NARROW = 12,   /* widest last panel taken by the narrow kernels */
    DOT_MIN_K = 32 /* the dot products need some depth to pay for their sums */
};

/* Sum of the lanes, pairwise: lane l + lane l + VL/2, and so on down to one. */
static inline float hsum(vfloat v) {
#ifdef NN_TRANSPOSE8
    const vint half = {4, 5, 6, 7, 0, 1, 2, 3}, quarter = {2, 3, 0, 1, 6, 7, 4, 5},
               eighth = {1, 0, 3, 2, 5, 4, 7, 6};
    v += __builtin_shuffle(v, half);
    v += __builtin_shuffle(v, quarter);
    v += __builtin_shuffle(v, eighth);
    return v[0];
#else
    float t[NN_VL];
    memcpy(t, &v, sizeof t);
    for (int n = NN_VL / 2; n > 0; n /= 2)
        for (int l = 0; l < n; l++) t[l] += t[l + n];
    return t[0];
#endif
}

/* C[r][j] (+)= sum_k a[r*lda + k] * bt[j*ldbt + k] for r < R, j < CC, k < K: lane l
 * of a vector sum takes the k = l (mod NN_VL), then the lanes are summed. */
static inline __attribute__((always_inline)) void
dot_kernel(const int R, const int CC, int K, const float *restrict a, size_t lda,
           const float *restrict bt, size_t ldbt, float *restrict c, size_t ldc, bool add) {
    vfloat acc[3][4];
    for (int r = 0; r < 3; r++)
        for (int j = 0; j < 4; j++) acc[r][j] = (vfloat){0};
    int k = 0;
#pragma GCC unroll 2
    for (; k + NN_VL <= K; k += NN_VL) {
        vfloat av[3];
        for (int r = 0; r < R; r++) av[r] = vload(a + (size_t)r * lda + k);
        for (int j = 0; j < CC; j++) {
            vfloat bj = vload(bt + (size_t)j * ldbt + k);
            for (int r = 0; r < R; r++) acc[r][j] = vfma(av[r], bj, acc[r][j]);
        }
    }
    if (k < K) {
        int n = K - k;
        vfloat av[3];
        for (int r = 0; r < R; r++) av[r] = vload_part(a + (size_t)r * lda + k, n);
        for (int j = 0; j < CC; j++) {
            vfloat bj = vload_part(bt + (size_t)j * ldbt + k, n);
            for (int r = 0; r < R; r++) acc[r][j] = vfma(av[r], bj, acc[r][j]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int j = 0; j < CC; j++) {
            float x = hsum(acc[r][j]), *cij = c + (size_t)r * ldc + j;
            *cij = add ? x + *cij : x;
        }
}

/* C[i][j] (+)= sum_k a[k*lda + i] * b[k*bsk + j*bsj] for i < rows <= V * NN_VL,
 * j < CC, k < K, with V vectors along i (all V * NN_VL of them are read). */
static inline __attribute__((always_inline)) void
col_kernel(const int CC, const int V, int rows, int K, const float *restrict a,
           size_t lda, const float *restrict b, size_t bsk, size_t bsj, float *restrict c,
           size_t ldc, bool add) {
    vfloat acc[4][6];
    for (int j = 0; j < 4; j++)
        for (int v = 0; v < 6; v++) acc[j][v] = (vfloat){0};
#pragma GCC unroll 2
    for (int k = 0; k < K; k++) {
        const float *ak = a + (size_t)k * lda, *bk = b + (size_t)k * bsk;
        vfloat av[6];
        for (int v = 0; v < V; v++) av[v] = vload(ak + v * NN_VL);
        for (int j = 0; j < CC; j++) {
            vfloat bj = vbroadcast(bk[(size_t)j * bsj]);
            for (int v = 0; v < V; v++) acc[j][v] = vfma(av[v], bj, acc[j][v]);
        }
    }
    for (int v = 0; v < V; v++)
        for (int l = 0; l < NN_VL && v * NN_VL + l < rows; l++) {
            float *ci = c + (size_t)(v * NN_VL + l) * ldc;
            for (int j = 0; j < CC; j++) {
                float x = acc[j][v][l];
                ci[j] = add ? x + ci[j] : x;
            }
        }
}

typedef void dot_fn(int K, const float *restrict a, size_t lda, const float *restrict bt,
                    size_t ldbt, float *restrict c, size_t ldc, bool add);
typedef void col_fn(int rows, int K, const float *restrict a, size_t lda,
                    const float *restrict b, size_t bsk, size_t bsj, float *restrict c,
                    size_t ldc, bool add);

#define NN_DOT(R, CC)                                                                        \
    static void dot_##R##_##CC(int K, const float *restrict a, size_t lda,                   \
                               const float *restrict bt, size_t ldbt, float *restrict c,     \
                               size_t ldc, bool add) {                                       \
        dot_kernel(R, CC, K, a, lda, bt, ldbt, c, ldc, add);                                 \
    }
#define NN_DOTS(R) NN_DOT(R, 1) NN_DOT(R, 2) NN_DOT(R, 3) NN_DOT(R, 4)
NN_DOTS(1)
NN_DOTS(2)
NN_DOTS(3)
#undef NN_DOTS
#undef NN_DOT
/* dot_kernels[R - 1][CC - 1] */
static dot_fn *const dot_kernels[3][4] = {{dot_1_1, dot_1_2, dot_1_3, dot_1_4},
                                          {dot_2_1, dot_2_2, dot_2_3, dot_2_4},
                                          {dot_3_1, dot_3_2, dot_3_3, dot_3_4}};

/* vectors along i per column count: CC * V accumulators + V + 1 within 16 registers */
static const int col_vectors[4] = {6, 5, 3, 3};
#define NN_COL(CC, V, NAME)                                                                  \
    static void col_##NAME##_##CC(int rows, int K, const float *restrict a, size_t lda,      \
                                  const float *restrict b, size_t bsk, size_t bsj,           \
                                  float *restrict c, size_t ldc, bool add) {                 \
        col_kernel(CC, V, rows, K, a, lda, b, bsk, bsj, c, ldc, add);                        \
    }
#define NN_COLS(CC, V) NN_COL(CC, V, main) NN_COL(CC, 1, one)
NN_COLS(1, 6)
NN_COLS(2, 5)
NN_COLS(3, 3)
NN_COLS(4, 3)
#undef NN_COLS
#undef NN_COL
static col_fn *const col_main[4] = {col_main_1, col_main_2, col_main_3, col_main_4};
static col_fn *const col_one[4] = {col_one_1, col_one_2, col_one_3, col_one_4};

/* ---- packing op(B) ---- */

/* dst[k*w + j] = op(B)[k0 + k][j0 + j] for k < kc, j < cols; zero for cols <= j < w. */
static void pack_b(const float *B, size_t ldb, bool tb, int k0, int kc, int j0, int cols, int w,
                   float *restrict dst) {
    if (!tb) {
        const float *src = B + (size_t)k0 * ldb + j0;
        if (cols == w) { /* the loop below would do, but this one is measurably faster */
            for (int k = 0; k < kc; k++, src += ldb)
                for (int j = 0; j < w; j += NN_VL)
                    *(vfloat *)(dst + (size_t)k * w + j) = vload(src + j);
        } else { /* the panel's last vector partly, and zeros after it */
            for (int k = 0; k < kc; k++, src += ldb) {
                float *d = dst + (size_t)k * w;
                int j = 0;
                for (; j + NN_VL <= cols; j += NN_VL) *(vfloat *)(d + j) = vload(src + j);
                if (j < cols) {
                    *(vfloat *)(d + j) = vload_part(src + j, cols - j);
                    j += NN_VL;
                }
                for (; j < w; j += NN_VL) *(vfloat *)(d + j) = (vfloat){0};
            }
        }
        return;
    }
    /* op(B)[k][j] = B[j][k]: a transpose */
    const float *src = B + (size_t)j0 * ldb + k0;
    int k = 0;
#if defined(NN_TRANSPOSE8) || defined(NN_TRANSPOSE16)
    /* NN_VL x NN_VL blocks through the registers; the rows of op(B)^T past cols are
     * zeros, so a partial panel takes the same path */
    for (; k + NN_VL <= kc; k += NN_VL)
        for (int jg = 0; jg < w; jg += NN_VL) {
            vfloat r[NN_VL];
            for (int q = 0; q < NN_VL; q++)
                r[q] = jg + q < cols ? vload(src + (size_t)(jg + q) * ldb + k) : (vfloat){0};
            transpose_block(r);
            for (int q = 0; q < NN_VL; q++) *(vfloat *)(dst + (size_t)(k + q) * w + jg) = r[q];
        }
#endif
    for (; k < kc; k++) {
        float *d = dst + (size_t)k * w;
        int j = 0;
        for (; j < cols; j++) d[j] = src[(size_t)j * ldb + k];
        for (; j < w; j++) d[j] = 0.0f;
    }
}

/* ---- the blocked product over a rectangle of tiles ---- */

typedef struct {
    bool ta, tb;
    int M, N, K, kc;
    const float *A, *B;
    size_t lda, ldb, ldc;
    float *C;
    bool add;    /* beta != 0 */
    bool narrow; /* the last panel takes the narrow kernels */
    int mc;      /* M panels swept per packed B panel */
    int m_panels; /* tiles of rows: MR rows each, the last up to LAST_MAX */
    bool b_in_place; /* B may be read in place, where few tiles read a panel (run_block) */
} gemm_job;

/* Rows [i0, i1) of a narrow last panel: columns [j0, j0 + cols) of C, full depth. */
static void run_narrow(const gemm_job *g, int i0, int i1, int j0, int cols, float *buf) {
    const size_t lda = g->lda, ldb = g->ldb, ldc = g->ldc;
    if (!g->ta) { /* dot products along k against the rows of op(B)^T */
        const float *bt = g->B + (size_t)j0 * ldb;
        size_t ldbt = ldb;
        if (!g->tb) { /* op(B)^T is not stored: pack it */
            for (int k = 0; k < g->K; k++) {
                const float *src = g->B + (size_t)k * ldb + j0;
                for (int j = 0; j < cols; j++) buf[(size_t)j * g->K + k] = src[j];
            }
            bt = buf;
            ldbt = (size_t)g->K;
        }
        for (int i = i0; i < i1; i += 3) {
            int r = i1 - i < 3 ? i1 - i : 3;
            for (int j = 0; j < cols; j += 4) {
                int cc = cols - j < 4 ? cols - j : 4;
                dot_kernels[r - 1][cc - 1](g->K, g->A + (size_t)i * lda, lda,
                                           bt + (size_t)j * ldbt, ldbt,
                                           g->C + (size_t)i * ldc + j0 + j, ldc, g->add);
            }
        }
        return;
    }
    /* vectors along i: op(A)[i][k] = A[k][i]. The last rows short of a vector are
     * copied, zero-padded, to buf so as not to read past them; they take the same
     * lane operations as any other row. */
    size_t bsk = g->tb ? 1 : ldb, bsj = g->tb ? ldb : 1;
    int tail = (i1 - i0) % NN_VL, i_tail = i1 - tail;
    if (tail)
        for (int k = 0; k < g->K; k++)
            for (int l = 0; l < NN_VL; l++)
                buf[(size_t)k * NN_VL + l] = l < tail ? g->A[(size_t)k * lda + i_tail + l] : 0.0f;
    for (int j = 0; j < cols; j += 4) {
        int cc = cols - j < 4 ? cols - j : 4, step = col_vectors[cc - 1] * NN_VL;
        const float *b = g->B + (size_t)(j0 + j) * bsj;
        float *c = g->C + j0 + j;
        int i = i0;
        for (; i + step <= i_tail; i += step)
            col_main[cc - 1](step, g->K, g->A + i, lda, b, bsk, bsj, c + (size_t)i * ldc, ldc,
                             g->add);
        for (; i + NN_VL <= i_tail; i += NN_VL)
            col_one[cc - 1](NN_VL, g->K, g->A + i, lda, b, bsk, bsj, c + (size_t)i * ldc, ldc,
                            g->add);
        if (tail)
            col_one[cc - 1](tail, g->K, buf, NN_VL, b, bsk, bsj, c + (size_t)i_tail * ldc, ldc,
                            g->add);
    }
}

/* NN_GEMM_PACK=always packs every B panel, as before B was read in place: a switch
 * for measurements (bench/scaling), read once. */
static bool may_read_b_in_place(void) {
    static atomic_int allowed = -1; /* unknown yet */
    int a = atomic_load_explicit(&allowed, memory_order_relaxed);
    if (a < 0) {
        const char *pack = nn_env("NN_GEMM_PACK");
        a = !(pack && !strcmp(pack, "always"));
        atomic_store_explicit(&allowed, a, memory_order_relaxed);
    }
    return a;
}

/* Tiles [ip0, ip1) x [jp0, jp1) of C, in MR x NR units. */
static void run_block(const gemm_job *g, int ip0, int ip1, int jp0, int jp1, float *buf) {
    int n_panels = (g->N + NR - 1) / NR;
    for (int ib = ip0; ib < ip1; ib += g->mc) {
        int ie = ib + g->mc < ip1 ? ib + g->mc : ip1;
        for (int jp = jp0; jp < jp1; jp++) {
            int j0 = jp * NR, cols = g->N - j0 < NR ? g->N - j0 : NR;
            if (g->narrow && jp == n_panels - 1) {
                run_narrow(g, ib * MR, ie == g->m_panels ? g->M : ie * MR, j0, cols, buf);
                continue;
            }
            int nv = (cols + NN_VL - 1) / NN_VL, w = nv * NN_VL;
            /* Packing reads the panel once and writes it once, to be read by every
             * tile of rows. For a few tiles (a rank's share of the batch at 16 ranks:
             * 6 or 32 rows) reading a full panel of B stored as is in place is faster:
             * a forward product of 784-800-800-10 at 32 rows 1.12x, of the reference
             * network at 6 rows 1.74x on an AVX-512 core (1.0x and 1.4x with AVX2);
             * at 11 tiles AVX2 lost 5-12% (docs/performance.md).
             * Rows a multiple of 2 KB apart would crowd a few cache sets (1024 x 1024
             * lost 13% read so). A narrower last panel is read with masked loads,
             * where there are such. The same values in the same order: the same bits. */
            bool masked = cols < w, in_place = g->b_in_place && ie - ib <= IN_PLACE_MAX_TILES;
#ifndef NN_MASKED_LOADS
            if (masked) in_place = false;
#endif
            for (int k0 = 0; k0 < g->K; k0 += g->kc) {
                int kc = g->K - k0 < g->kc ? g->K - k0 : g->kc;
                bool add = g->add || k0 > 0;
                const float *b = buf;
                size_t ldb = (size_t)w;
                if (in_place) {
                    b = g->B + (size_t)k0 * g->ldb + j0;
                    ldb = g->ldb;
                } else {
                    pack_b(g->B, g->ldb, g->tb, k0, kc, j0, cols, w, buf);
                }
                for (int ip = ib; ip < ie; ip++) {
                    int i0 = ip * MR, rows = ip == g->m_panels - 1 ? g->M - i0 : MR;
                    const float *a = g->ta ? g->A + (size_t)k0 * g->lda + i0
                                           : g->A + (size_t)i0 * g->lda + k0;
                    kernels[in_place && masked][g->ta][nv - 1][rows - 1](kc, a, g->lda, b, ldb,
                                                     g->C + (size_t)i0 * g->ldc + j0, g->ldc,
                                                     cols, add);
                }
            }
        }
    }
}

/* Split [0, count) panels into parts contiguous groups of about equal weight, where
 * every panel weighs full except the last, which weighs last; bounds[g]..bounds[g+1]. */
static void split_panels(int count, int full, int last, int parts, int *bounds) {
    long total = (long)(count - 1) * full + last;
    bounds[0] = 0;
    for (int g = 1; g < parts; g++) {
        long target = total * g / parts;
        int p = (int)((target + full / 2) / full); /* nearest panel boundary */
        if (p > count) p = count;
        if (p < bounds[g - 1]) p = bounds[g - 1];
        bounds[g] = p;
    }
    bounds[parts] = count;
}

static long group_weight(const int *bounds, int g, int count, int full, int last) {
    int n = bounds[g + 1] - bounds[g];
    if (n == 0) return 0;
    return bounds[g + 1] == count ? (long)(n - 1) * full + last : (long)n * full;
}

/* The rectangle of tiles thread t of nt computes: the grid tm x tn (tm * tn = nt)
 * whose busiest thread has the least work (multiply-adds plus B packing). last_cols
 * is what the last panel costs, in columns. */
static void thread_block(int m_panels, int n_panels, int M, int K, int last_cols, int t,
                         int nt, int *ip0, int *ip1, int *jp0, int *jp1) {
    int last_rows = M - (m_panels - 1) * MR;
    double best = -1.0;
    int best_tm = 1;
    for (int tm = 1; tm <= nt; tm++) {
        if (nt % tm) continue;
        int tn = nt / tm, mb[65], nb[65];
        if (tm > 64 || tn > 64) continue;
        split_panels(m_panels, MR, last_rows, tm, mb);
        split_panels(n_panels, NR, last_cols, tn, nb);
        long rows = 0, cols = 0;
        for (int g = 0; g < tm; g++) {
            long r = group_weight(mb, g, m_panels, MR, last_rows);
            rows = r > rows ? r : rows;
        }
        for (int g = 0; g < tn; g++) {
            long c = group_weight(nb, g, n_panels, NR, last_cols);
            cols = c > cols ? c : cols;
        }
        /* a tile's k step costs ~MR/2 cycles per NR columns; packing ~1/4 cycle a float */
        double cost = (double)K * cols * (rows / (2.0 * NR) + 0.25);
        if (best < 0 || cost < best) {
            best = cost;
            best_tm = tm;
        }
    }
    int tm = best_tm, tn = nt / tm, mb[65], nb[65];
    if (tm > 64 || tn > 64) { /* absurd team sizes: thread 0 does everything */
        *ip0 = *jp0 = 0;
        *ip1 = t == 0 ? m_panels : 0;
        *jp1 = n_panels;
        return;
    }
    split_panels(m_panels, MR, last_rows, tm, mb);
    split_panels(n_panels, NR, last_cols, tn, nb);
    *ip0 = mb[t / tn];
    *ip1 = mb[t / tn + 1];
    *jp0 = nb[t % tn];
    *jp1 = nb[t % tn + 1];
}

bool nn_gemm_tiles_only(bool trans_a, int N, int K) {
    int last_cols = N - (N - 1) / NR * NR;
    return !(last_cols <= NARROW && (trans_a || K >= DOT_MIN_K));
}

void nn_gemm(bool trans_a, bool trans_b, int M, int N, int K,
             const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* empty product: C = beta * C */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = beta != 0.0f ? C[(size_t)i * ldc + j] : 0.0f;
        return;
    }
    /* a remainder of rows that the last tile can take joins it: a tile of one or two
     * rows would read its B panel for little work */
    int m_panels = M > MR && M % MR != 0 && M % MR <= LAST_MAX - MR ? M / MR : (M + MR - 1) / MR;
    int n_panels = (N + NR - 1) / NR;
    int slices = (K + KC - 1) / KC, last_cols = N - (n_panels - 1) * NR;
    gemm_job g = {.ta = trans_a, .tb = trans_b, .M = M, .N = N, .K = K,
                  .kc = (K + slices - 1) / slices, /* equal slices: no thin last one */
                  .A = A, .B = B, .lda = (size_t)lda, .ldb = (size_t)ldb, .ldc = (size_t)ldc,
                  .C = C, .add = beta != 0.0f, .m_panels = m_panels};
    g.narrow = !nn_gemm_tiles_only(trans_a, N, K);
    g.b_in_place = !trans_b && (size_t)ldb % IN_PLACE_LDB_AVOID != 0 && may_read_b_in_place();
    long a_rows = A_BLOCK / K / MR; /* keep the swept part of A in L2 */
    g.mc = a_rows < 1 ? 1 : a_rows > m_panels ? m_panels : (int)a_rows;
    if (g.narrow) g.mc = m_panels; /* the narrow kernels do not pack B per slice */

    /* per thread: one packed B panel, or op(B)^T of a narrow panel */
    size_t per_thread = (size_t)KC * NR, narrow_floats = (size_t)K * (trans_a ? NN_VL : NARROW);
    if (g.narrow && narrow_floats > per_thread) per_thread = narrow_floats;
    per_thread = (per_thread + 16 + 15) / 16 * 16; /* a spare line between threads */

    if (omp_in_parallel()) { /* one thread of a caller's team: on it alone, in its own buffer */
        float *own = caller_buffer(omp_get_thread_num(), per_thread), *spare = NULL;
        if (!own && !(own = spare = aligned_alloc(64, per_thread * sizeof(float)))) abort();
        run_block(&g, 0, m_panels, 0, n_panels, own);
        free(spare);
        return;
    }
    int threads = omp_get_max_threads();
    if (2.0 * M * N * K < NN_GEMM_PAR_MIN_FLOPS) threads = 1;
    if ((long)threads > (long)m_panels * n_panels) threads = (int)((long)m_panels * n_panels);
    float *buf = reserve_buffers(threads, per_thread);
    if (threads == 1) {
        run_block(&g, 0, m_panels, 0, n_panels, buf);
        return;
    }
    int last_weight = g.narrow ? last_cols : (last_cols + NN_VL - 1) / NN_VL * NN_VL;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads(), ip0, ip1, jp0, jp1;
        thread_block(m_panels, n_panels, M, K, last_weight, t, nt, &ip0, &ip1, &jp0, &jp1);
        if (ip0 < ip1 && jp0 < jp1) run_block(&g, ip0, ip1, jp0, jp1, buf + (size_t)t * per_thread);
    }
}

/* op(X)[r][c] for a row-major X with row stride ld. */
static inline float element(const float *X, int ld, bool trans, int r, int c) {
    return trans ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
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

/* Columns [c0, c1): rows in order for every column, the same sum whatever the
 * thread count. */
static void column_sums_range(const float *x, float *sums, int rows, int cols, bool accumulate, long c0, long c1) {
    if (!accumulate)
        for (long c = c0; c < c1; c++) sums[c] = 0.0f;
    for (int r = 0; r < rows; r++) {
        const float *row = x + (size_t)r * cols;
        for (long c = c0; c < c1; c++) sums[c] += row[c];
    }
}

void nn_column_sums(const float *x, float *sums, int rows, int cols, bool accumulate) {
    NN_PARALLEL_RANGES(cols, 64, (long)rows * cols > 100000,
                       column_sums_range(x, sums, rows, cols, accumulate, begin, end));
}
