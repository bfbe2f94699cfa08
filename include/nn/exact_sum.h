/* An exact, order-independent sum of float vectors across virtual shards and ranks
 * (deterministic mode): every value is put on a fixed-point grid (value * 2^40,
 * rounded to the nearest int64) and the grids are added as integers, which is exact and
 * associative, so any grouping over any number of ranks gives the same bits.
 *
 * Range: one contribution must satisfy |x| < limit, where limit * 2^40 * (number
 * of contributions) <= 2^62, so the sum cannot overflow, and limit <= 2^11 (the
 * rounding's range). A gradient contribution is a shard's share of the mean
 * gradient, so this means per-sample gradients below ~2^11 * V * accumulate. A value out of range, NaN
 * or infinite is not added; it is counted in `bad` (the caller treats it like a
 * non-finite loss: the step diverged). */
#ifndef NN_EXACT_SUM_H
#define NN_EXACT_SUM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/error.h"

#define NN_EXACT_FRACTION_BITS 40 /* gradients: resolution 2^-40 ~ 9e-13 */
#define NN_EXACT_LOSS_BITS 24     /* loss sums: resolution 2^-24 ~ 6e-8 */

typedef struct nn_exact_sum {
    size_t n;      /* values; `words` integer words follow them */
    int words;
    int64_t *acc;  /* [n + words] */
    float limit;   /* |x| must stay below this (see above) */
    double loss_limit; /* the same for a loss word (its grid is coarser) */
    int64_t bad;   /* values refused since the last clear (this rank) */
    int nranks, rank; /* the layout below was made for (0: none yet); this rank */
    int plain;        /* the last sum was one int64 allreduce (too large a vector for int counts) */
    int *counts, *displs; /* [nranks]: each rank's part of the n + words values */
    struct nn_reducer *node;  /* one node of several ranks: the accumulators live in its shared memory */
    const int64_t **segs;     /* [locals]: every local rank's accumulator */
    float *node_out;          /* the node's shared copy of the summed floats */
    int local, locals;        /* this rank on the node; the node's ranks */
} nn_exact_sum;

/* `contributions`: the most vectors added before one sum (bounds `limit`). */
int nn_exact_create(nn_exact_sum *s, size_t n, int words, long contributions, nn_error *err);
void nn_exact_free(nn_exact_sum *s); /* collective after nn_exact_share */

/* Collective over comm, after create: when all the ranks are on one node (and its
 * /dev/shm has room), the accumulators move into shared memory, and
 * nn_exact_sum_floats sums them there: each rank adds its slice of every rank's
 * accumulator (integer adds, so the order does not matter) instead of an
 * MPI_Reduce_scatter and MPI_Allgatherv through OpenMPI's buffers. Otherwise, or with
 * one rank, nothing changes. NN_EXACT_SUM=mpi in the environment keeps the MPI path
 * (so tests on one host exercise the path between nodes). */
int nn_exact_share(nn_exact_sum *s, MPI_Comm comm, nn_error *err);
void nn_exact_clear(nn_exact_sum *s);

/* acc[offset + i] += grid(x[i]) for i < count (store: = instead of +=, for a
 * stretch's first contribution, so the values need no clearing). Threads may split
 * it: integer sums are exact. */
void nn_exact_add(nn_exact_sum *s, const float *x, size_t offset, size_t count, int store);
/* Clears the words and `bad` only: for callers whose first add of each stretch stores. */
void nn_exact_clear_words(nn_exact_sum *s);

/* A double (a loss sum) on the loss grid, as int64; 0 and *bad set when not finite
 * or out of range (the limit as above, on the loss grid). */
int64_t nn_exact_loss_word(const nn_exact_sum *s, double x, int *bad);
double nn_exact_loss_value(int64_t word);

/* Collective: acc summed over the ranks (MPI_INT64_T), in place. */
void nn_exact_allreduce(nn_exact_sum *s, MPI_Comm comm);

/* out[i] = acc[i] / 2^40 as float, for i < n. */
void nn_exact_to_floats(const nn_exact_sum *s, float *out);

/* Collective: the sum over the ranks, as floats in out[0, n + words): the values
 * on the grid's scale, the words as they are (exact below 2^24). A reduce-scatter
 * sums 1/P of the int64 values on each rank, which converts its part; an allgather
 * of floats completes it: 4 + 4 bytes a value cross the wire where an int64
 * allreduce moves 8 + 8. Afterwards acc holds only this rank's summed part. */
void nn_exact_sum_floats(nn_exact_sum *s, float *out, MPI_Comm comm);

/* After nn_exact_sum_floats: the exact summed word w when this rank holds it
 * (exactly one rank does), else NULL. */
const int64_t *nn_exact_summed_word(const nn_exact_sum *s, int w);

#endif
