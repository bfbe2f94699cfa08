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
