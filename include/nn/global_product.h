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
 * node's ranks take tiles of dW (and db) from a shared counter. From 3 ranks a node
 * (and for a rank alone) each tile's SGD step is applied at once to the node's one
 * copy of the parameters and momentum, kept here too; with 2, each rank steps its
 * own copy with the summed gradient (measured faster there); the bits are the same.
 * Every node computes the whole product (the price of needing no sum between
 * nodes; every node's copy is then the same); on one node the ranks share it out,
 * so it costs what each rank's own product would.
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
#include "nn/optim.h"

typedef struct nn_global_product nn_global_product;

/* Whether the model's parameters are all in dense layers (this product's networks). */
int nn_global_product_fits(const nn_model *model);

/* A run's step: rank r's rows of each micro-batch of `batch` rows and where they
 * start in the global order (rows[r], first_row[r]); `micro_steps` micro-batches a
 * step; `words` int64 words a rank adds per step (loss, flags), summed exactly.
 * pixels: the first dense layer's input is the data's uint8 pixels times 1/255 as
 * they are (no input dropout, no --shift), so the node keeps those bytes for it, a
 * quarter of the floats, and the tiles unpack them (the same floats). */
typedef struct nn_global_step_shape {
    int batch, micro_steps, words, pixels;
    const int *rows, *first_row;
} nn_global_step_shape;

/* Collective over comm, with the model's parameters and the momentum set (the same
 * on every rank): with one copy a node they move into the node's memory
 * (nn_model_place_params, nn_sgd_place_velocity) until nn_global_product_free.
 * NN_EXACT_SUM=mpi in the environment makes every rank its own node (tests reach the
 * path between nodes on one host). */
int nn_global_product_create(nn_global_product **out, MPI_Comm comm, nn_model *model, nn_sgd *sgd,
                             const nn_global_step_shape *shape, nn_error *err);
/* Collective; NULL is allowed. Call it last before freeing the model and the SGD
 * state: their parameters and momentum go with it. */
void nn_global_product_free(nn_global_product *gp);

/* Points the model's dense inputs and output gradients at this rank's rows of
 * micro-batch `micro` in the shared factors (backward then leaves the dense layers'
 * parameter gradients to the product); detach gives the model its own buffers back
 * (evaluation uses more rows than a rank's part of a step). */
void nn_global_product_attach(nn_global_product *gp, int micro);
void nn_global_product_detach(nn_global_product *gp);

/* With shape->pixels: where this rank's rows of micro-batch `micro` go, as the
 * data's bytes (rows x the input width); NULL without. */
uint8_t *nn_global_product_pixels(nn_global_product *gp, int micro);

/* This rank's words for this step (set them before the sum). */
int64_t *nn_global_product_words(nn_global_product *gp);

/* Collective, after every micro-batch's backward: the step's gradient, tile by tile,
 * and the SGD step with learning rate lr (and the sgd's momentum and weight decay)
 * on the parameters; sums[w] = word w summed over all ranks; *nonfinite set
 * when an updated weight is NaN or infinite (on every rank alike). Returns the
 * seconds spent waiting and exchanging; *product_seconds gets those in this rank's
 * tiles (the backward's work). */
double nn_global_product_update(nn_global_product *gp, float lr, int64_t *sums, int *nonfinite,
                                double *product_seconds);

/* Collective over the node: the max-norm constraint on the node's weights, its
 * columns shared out. Returns the seconds waiting for the others. */
double nn_global_product_max_norm(nn_global_product *gp, float c);

/* For the run's header: where the factors meet ("shared memory, 1 node", ...). */
const char *nn_global_product_where(const nn_global_product *gp);

#endif
