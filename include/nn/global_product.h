/* Deterministic mode's weight gradients as one product over the global batch.
 *
 * A dense layer's gradient of the mean loss is dW = X^T dY and db = the column sums
 * of dY, where X holds the layer's input rows and dY its output-gradient rows (the
 * loss's 1/batch already in them) for every sample of the step. A row's values do
 * not depend on the rows computed beside it (kernels.c), so X and dY, laid out in the
 * global batch's order, are the same matrices at every rank count and layout; one
 * product of a fixed shape over them gives the same bits wherever it runs, and no
 * sum over ranks is left to round differently. nn_gemm's element order depends on
 * N, K and the column only, so the product may be cut into tiles of whole register
 * panels and shared out.
 *
 * Each node keeps the whole step's factors in memory its ranks share: every rank
 * writes its rows there during forward and backward (its layers' buffers point into
 * them), the nodes' leaders broadcast their ranks' rows to each other, and the
 * node's ranks take tiles of dW (and db) from a shared counter, writing the summed
 * gradient into a shared vector that each rank then reads. Every node computes the
 * whole product (the price of needing no sum between nodes); on one node the
 * ranks share it out, so it costs what each rank's own product would.
 *
 * Versus the per-shard fixed-point sum (exact_sum.h), which convolutional networks
 * keep: no rounding of V shard gradients onto an int64 grid and no int64 sum; the
 * trajectory is its own (another rounding). Dense networks only. With --accumulate k
 * the k micro-batches' rows are one product of depth k * batch. */
#ifndef NN_GLOBAL_PRODUCT_H
#define NN_GLOBAL_PRODUCT_H

#include <mpi.h>
#include <stdint.h>

#include "nn/error.h"
#include "nn/model.h"

typedef struct nn_global_product nn_global_product;

/* Whether the model's parameters are all in dense layers (this product's networks). */
int nn_global_product_fits(const nn_model *model);

/* Collective over comm. rows[r], first_row[r]: rank r's rows of each micro-batch of
 * `batch` rows and where they start in the global order (contiguous, in rank order
 * or not); `micro_steps` micro-batches a step; `words` int64 words a rank adds per
 * step (loss, flags), summed exactly. NN_EXACT_SUM=mpi in the environment makes
 * every rank its own node (tests reach the path between nodes on one host). */
int nn_global_product_create(nn_global_product **out, MPI_Comm comm, nn_model *model, int batch, int micro_steps,
                             const int *rows, const int *first_row, int words, nn_error *err);
void nn_global_product_free(nn_global_product *gp); /* collective; NULL is allowed */

/* Points the model's dense inputs and output gradients at this rank's rows of
 * micro-batch `micro` in the shared factors (backward then leaves the dense layers'
 * parameter gradients to the product); detach gives the model its own buffers back
 * (evaluation uses more rows than a rank's part of a step). */
void nn_global_product_attach(nn_global_product *gp, int micro);
void nn_global_product_detach(nn_global_product *gp);

/* This rank's words for this step (set them before the sum). */
int64_t *nn_global_product_words(nn_global_product *gp);

/* Collective, after every micro-batch's backward: the step's summed gradient (then
 * at nn_global_product_grads) and sums[w] = word w summed over all ranks. Returns
 * the seconds spent waiting and exchanging; *product_seconds gets the seconds in
 * this rank's tiles. */
double nn_global_product_sum(nn_global_product *gp, int64_t *sums, double *product_seconds);
/* The summed gradient (n_params floats, the model's layout), valid from the sum
 * until this rank's next call of it: read it in place, do not write it. */
const float *nn_global_product_grads(const nn_global_product *gp);

/* For the run's header: where the factors meet ("shared memory, 1 node", ...). */
const char *nn_global_product_where(const nn_global_product *gp);

#endif
