/* Compute kernels: a packed, cache-blocked SGEMM and the element-wise loops of the
 * layers. All matrices are row-major. The loops are OpenMP-parallel over OUTPUT
 * elements only (never over a reduction), so results do not depend on the thread
 * count at all. */
#ifndef NN_KERNELS_H
#define NN_KERNELS_H

#include <stdbool.h>
#include <stddef.h>

/* C[M,N] = op(A)[M,K] * op(B)[K,N] + beta * C, with op(X) = X or X^T.
 * lda/ldb/ldc are the row strides of A, B and C as stored. beta is 0 or 1
 * (beta 0 ignores what C held, NaNs included). Packing buffers are kept between
 * calls and only grow, so steady-state training allocates nothing. Outside a parallel
 * region it parallelises internally: call it from one thread at a time there. Inside
 * one, every thread of the team may call it at once: each product then runs on its
 * calling thread alone, in a buffer of that thread's own. */
void nn_gemm(bool trans_a, bool trans_b, int M, int N, int K,
             const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);

/* The deepest product that nn_gemm does not cut into slices of K. Up to it, beta 1
 * gives every element as fl(C + S), where S is the element's sum exactly as beta 0
 * would store it: a sum over several products added into C one by one is then
 * bit-identical to adding their beta-0 results in the same order (the node's
 * factored sum relies on it). Deeper products add each slice into C in turn. */
int nn_gemm_unsplit_depth(void);

/* C[M,N] = A_0^T B_0 + A_1^T B_1 + ... over `terms` products (the node's factored sum:
 * a term a rank), each A_r stored K[r] x M (row stride lda) and B_r K[r] x N (ldb),
 * with the running total kept in registers. The same bits as nn_gemm(A_0^T B_0, beta
 * 0), then nn_gemm(A_r^T B_r, beta 1) into C for r = 1, 2, ... in order (a term of
 * depth 0 adds its +0, where nn_gemm would leave C, a -0 included, as it was); where it
 * could not promise that (a K[r] above nn_gemm_unsplit_depth, or N's last panel left
 * to nn_gemm's narrow kernels: nn_gemm_tiles_only), for more than 256 terms, or on a
 * target without AVX-512 (nn_simd_floats() < 16: too few registers to gain), it
 * returns false and leaves C alone. On the calling thread. */
bool nn_gemm_sum(int M, int N, int terms, const float *const *A, int lda, const float *const *B, int ldb,
                 const int *K, float *C, int ldc);

/* Whether every column of an nn_gemm product with N columns and depth K (and A
 * transposed or not) goes through the register-tile kernels, whose elements are each
 * one chain of fused multiply-adds over k, rather than the narrow kernels for a last
 * panel of a few columns (dot products, summed in another order). Two products whose
 * elements have the same chains give the same bits when both are tiles only. */
bool nn_gemm_tiles_only(bool trans_a, int N, int K);

/* Release the packing buffers (for leak checkers; optional; outside any parallel region). */
void nn_gemm_release(void);

/* Plain triple loop with double accumulation: the reference the tests compare against. */
void nn_gemm_reference(bool trans_a, bool trans_b, int M, int N, int K,
                       const float *A, int lda, const float *B, int ldb,
                       float beta, float *C, int ldc);

/* y[r, :] = bias for every row r of a rows x cols matrix (the dense layer's
 * output starts from its bias, then the GEMM accumulates into it). */
void nn_fill_rows(float *y, const float *bias, int rows, int cols);

/* sums[c] = sum over rows of x[r, c] (the bias gradient); with accumulate, the
 * column sums are added to what sums held. */
void nn_column_sums(const float *x, float *sums, int rows, int cols, bool accumulate);

/* SIMD width the kernels were compiled for, in floats (for reports). */
int nn_simd_floats(void);

#endif
