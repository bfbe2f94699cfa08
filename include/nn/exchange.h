/* The gradient exchange: every way the ranks sum their gradients, behind one small
 * interface. The exchange owns the buffer the model writes its gradients into:
 *
 *     [ gradients: n floats ][ control words: NN_CONTROL_WORDS floats ]
 *
 * The control words travel with the gradients, so one sum also tells every rank
 * what any rank saw (a stop request, a non-finite loss, ...) at no extra latency.
 *
 * Per step:   nn_exchange_begin  -> the model computes into nn_exchange_grads,
 *             calling nn_exchange_slice_final as each slice is final (overlap
 *             mode starts summing it at once) -> nn_exchange_finish -> read the
 *             summed gradients and control words. */
#ifndef NN_EXCHANGE_H
#define NN_EXCHANGE_H

#include <mpi.h>
#include <stddef.h>

#include "nn/compress.h"
#include "nn/error.h"
#include "nn/reduce.h" /* nn_reduce_phases */

typedef enum nn_exchange_mode {
    NN_EXCHANGE_SHM,    /* ranks of a node sum in shared memory, nodes with MPI_Allreduce */
    NN_EXCHANGE_MPI,    /* one MPI_Allreduce after backward */
    NN_EXCHANGE_OVERLAP /* one MPI_Iallreduce per slice, started during backward */
} nn_exchange_mode;
const char *nn_exchange_mode_name(nn_exchange_mode mode);
int nn_exchange_mode_parse(const char *text, nn_exchange_mode *out); /* NN_OK or NN_ERR_INPUT */

/* Control words: summed over the ranks like the gradients (so a word is > 0 after
 * the sum when any rank set it). Room is left for more. */
enum nn_control_word {
    NN_CONTROL_STOP,      /* a rank was asked to stop (signal) */
    NN_CONTROL_NONFINITE, /* a rank's loss was NaN or infinite */
    NN_CONTROL_WORDS = 4
};

typedef struct nn_exchange nn_exchange;

/* Collective over comm; n_grads floats of gradient per rank. `compress` is how the
 * sum travels between nodes (shm mode: only that stage; mpi and overlap: the whole
 * sum). On failure every rank returns the same status. */
int nn_exchange_create(nn_exchange **out, MPI_Comm comm, nn_exchange_mode mode, nn_compress compress,
                       size_t n_grads, nn_error *err);
void nn_exchange_free(nn_exchange *ex); /* collective; NULL is allowed */

/* This rank's gradient buffer (n_grads floats, 64-byte aligned; in shm mode it
 * lies in memory the node's ranks share). Valid for the exchange's life. */
float *nn_exchange_grads(nn_exchange *ex);

/* Starts a step: clears the control words. */
void nn_exchange_begin(nn_exchange *ex);
void nn_exchange_set_control(nn_exchange *ex, enum nn_control_word word, float value);

/* Backward's hook: grads[offset, offset + count) is final on this rank. Overlap
 * mode starts its sum now; the others wait for nn_exchange_finish. `ctx` is the
 * exchange (the signature is the model's nn_slice_final_fn). */
void nn_exchange_slice_final(void *ctx, size_t offset, size_t count);

/* Collective: completes the sum. Afterwards the gradients and control words hold
 * the sum over all ranks, bit-identical on every rank. Returns the seconds this
 * rank spent inside the sum that backward did not hide. */
double nn_exchange_finish(nn_exchange *ex);
float nn_exchange_control(const nn_exchange *ex, enum nn_control_word word);

/* The training loop's way, which lets the ranks of a node split the SGD step:
 *
 *   nn_exchange_finish_owned   completes the sum of this rank's share only
 *   nn_exchange_owned          that share: [offset, offset + count) of the gradients
 *   ... update params (and the optimizer state) in the share ...
 *   nn_exchange_publish        every rank's params become the updated ones
 *
 * In shm mode with several ranks on a node each rank owns one slice of the node's
 * vector (every rank then runs 1/L of the update, and touches 1/L of the momentum);
 * in the other modes the share is everything and publish does nothing. The control
 * words can be read after publish. Returns: seconds spent inside the exchange. */
double nn_exchange_finish_owned(nn_exchange *ex);
void nn_exchange_owned(const nn_exchange *ex, size_t *offset, size_t *count);
/* Collective. Sets *nonfinite when a value it copied from another rank's share is
 * NaN or infinite (the owner's update saw it too: all ranks agree); with shared
 * parameters (below), when any owner's *nonfinite was set. */
double nn_exchange_publish(nn_exchange *ex, float *params, int *nonfinite);

/* One copy of the parameters per node. Where the node's ranks split the update (shm,
 * several ranks on the node), returns n_grads floats of shared memory holding a
 * copy of `params` (the same values on every rank): keep the parameters there from
 * now on (nn_model_place_params) and pass it to publish, which then moves no
 * parameters at all: each owner updates its share in place, and one barrier later
 * every rank reads them all. Saves each rank a copy of the vector and two passes
 * over it a step. Elsewhere returns NULL: keep your own. Collective. */
#define NN_EXCHANGE_HAS_SHARED_PARAMS 1
float *nn_exchange_share_params(nn_exchange *ex, const float *params);

/* After share_params, shm on one node: the momentum gets one copy a node too, and
 * then (nn_exchange_fused) a step is nn_exchange_finish_update instead of
 * finish_owned + the update of the share + publish: the node's ranks sum the
 * gradient chunk by chunk, each chunk taken by whichever rank is free (its own
 * slice's first), and fn updates parameters and momentum for each chunk as it is
 * summed (see nn_reducer_sum_chunks); then the barrier publish would be, OR-ing the
 * non-finite flags. Returns NULL (and nothing changes) where it does not apply, or
 * with NN_NODE_SUM=static. */
#define NN_EXCHANGE_HAS_FUSED 1
float *nn_exchange_share_velocity(nn_exchange *ex, const float *velocity);
int nn_exchange_fused(const nn_exchange *ex);
void nn_exchange_name_fused(nn_exchange *ex, const char *name); /* the header's name of the fused sum (static string) */
double nn_exchange_finish_update(nn_exchange *ex, nn_chunk_fn fn, void *ctx, int *nonfinite);
/* The same with other work handed out beside the chunks (nn_reducer_sum_chunks_with):
 * the node's factored sum (factor_sum.h). */
double nn_exchange_finish_update_with(nn_exchange *ex, const nn_chunk_work *work, nn_chunk_fn fn, void *ctx,
                                      int *nonfinite);
/* Fused, on one node (unless NN_NODE_SUM=chunked): that sum begins during backward. Give the
 * model nn_exchange_final_from (model.h, final_from, ctx the exchange): it posts
 * how much of this rank's gradient is final, and ranks done with backward sum and
 * update what every rank has posted (nn_reducer_set_early). Same bits. */
int nn_exchange_early(const nn_exchange *ex);
void nn_exchange_final_from(void *ctx, size_t offset);

/* Collective: max-norm (nn_model_max_norm) on the model's parameters; on shared ones
 * the node's ranks split the columns, then wait for one another. Returns the
 * seconds of that wait. */
struct nn_model;
double nn_exchange_max_norm(nn_exchange *ex, struct nn_model *model, float c);

/* Where the time in the node's sum went (see nn_reducer_phases; zeros without one). */
void nn_exchange_phases(const nn_exchange *ex, nn_reduce_phases *out);
double nn_exchange_wait_seconds(const nn_exchange *ex); /* the phases' wait */
/* Collective: a vector updated share by share (the momentum) made whole on every
 * rank, as publish does for the parameters (before a checkpoint). Clobbers the
 * gradients. */
void nn_exchange_gather(nn_exchange *ex, float *values);

/* For the run's header: "shm (shared memory, 1 node)", "mpi (2 nodes, bf16)", ... */
void nn_exchange_describe(const nn_exchange *ex, char *out, size_t cap);

#endif
