/* Virtual shards (deterministic mode): the training set cut into V fixed contiguous
 * row ranges, V independent of the rank count. Each shard has its own permutation
 * per epoch, from (seed, epoch, shard); global micro-batch m takes batch / V samples
 * from each shard, positions [m * s, (m + 1) * s) of its permutation. So the samples
 * of every batch, and which shard each belongs to, depend on (seed, epoch, step)
 * only; a rank owns whole shards and reads only their rows. */
#ifndef NN_VIRTUAL_SHARDS_H
#define NN_VIRTUAL_SHARDS_H

#include <stdint.h>

#include "nn/rng.h"

enum { NN_VSHARDS_MAX = 4096, NN_VSHARDS_MIN_DEFAULT = 8 };

/* The default V for a batch: its smallest divisor >= 8 (the batch itself when it
 * has none and is under NN_VSHARDS_MAX; 1 for a larger one with none), so runs of
 * up to 8 ranks work with no choice to make, and the shards' batches stay as large
 * as possible (fewer, larger products: cheaper). */
int nn_vshards_default(int batch);

/* Rows [*begin, *begin + *count) of shard v of V over `total` rows. */
void nn_vshard_rows(long total, int shards, int v, long *begin, long *count);

/* The shards of `rank` of `nranks`: [*first, *end) (empty when nranks > shards). */
void nn_vshards_of_rank(int shards, int rank, int nranks, int *first, int *end);

/* Shard v's permutation for `epoch`: order[0..count) gets 0..count-1 shuffled. */
void nn_vshard_shuffle(uint64_t seed, int epoch, int v, uint32_t *order, uint32_t count);

#endif
