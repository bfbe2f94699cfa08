/* The node's factored sum: the dense layers' weight gradients summed over the ranks
 * of one node without any rank making its own.
 *
 * A dense layer's weight gradient is a product, dW = x^T dy, of the layer's input
 * rows x and its output gradient rows dy, and the node's sum is the sum of its
 * ranks' products. The chunked sum has every rank write its whole dW (a product of
 * depth b that touches every weight) and then reads L of them back. Here each rank
 * leaves its factors x and dy (b x (in + out) floats a layer, where dW has in x out)
 * in memory the node shares, and tiles of the summed dW are handed out as work
 * items: whoever takes one multiplies every rank's factors for its rows and columns,
 * adding them in rank order 0..L-1, and applies the SGD step to it. With the same
 * arithmetic as the per-rank products and their sum, operation for operation
 * (nn_gemm_unsplit_depth), the result is bit-identical to the chunked sum's. This is
 * "sufficient factor broadcasting" (Xie et al., 2015) inside one node's memory.
 *
 * Per step: nn_factor_sum_rows (this rank's rows, before the sum), then
 * nn_exchange_finish_update with nn_factor_sum_work: the biases, convolutions and
 * control words go through the chunked sum as before. In a sum begun early
 * (nn_reducer_set_early) an item starts as soon as every rank has finished its
 * layer's backward, and a rank's threads take items side by side. */
#ifndef NN_FACTOR_SUM_H
#define NN_FACTOR_SUM_H

#include <mpi.h>

#include "nn/error.h"
#include "nn/model.h"
#include "nn/reduce.h"

typedef struct nn_factor_sum nn_factor_sum;

/* Collective over comm (the ranks of one node, as the exchange's chunked sum needs).
 * Places the model's factors in a shared window (nn_model_place_factors); from then
 * on backward leaves the dense weight gradients to this sum. *out is NULL (and
 * NN_OK) where the node's ranks cannot share the memory; every rank agrees. */
int nn_factor_sum_create(nn_factor_sum **out, MPI_Comm comm, nn_model *model, nn_error *err);
void nn_factor_sum_free(nn_factor_sum *fs); /* collective; NULL is allowed */

/* This step's rows on this rank (its part of the batch; 0 is allowed). */
void nn_factor_sum_rows(nn_factor_sum *fs, int rows);

/* The work of this step for nn_exchange_finish_update_with: its items compute the
 * summed weight gradient tile by tile and hand each to fn(ctx, sums, offset, count)
 * (a tile's part of one weight row at a time, or the whole tile when it spans whole
 * rows); the weights are left out of the chunks. */
const nn_chunk_work *nn_factor_sum_work(nn_factor_sum *fs, nn_chunk_fn fn, void *ctx);

/* Seconds this rank spent in the items' products since creation: the backward's
 * work that moved into the sum (the run's report counts it as computing); where its
 * threads took items side by side, their seconds over their count. 0 for NULL. */
double nn_factor_sum_product_seconds(const nn_factor_sum *fs);

/* The tile of a layer's in x out weight gradient: about `target` weights, near
 * square; columns in whole register panels (NR = two SIMD vectors, as nn_gemm's
 * tiles: a tile then computes each element as the whole product would), all of
 * them where the layer is at most two panels wide; rows a multiple of 8 (or all). */
void nn_factor_tile_shape(int in, int out, size_t target, int *rows, int *cols);

/* Work items a step (for reports and tests). */
int nn_factor_sum_items(const nn_factor_sum *fs);

#endif
