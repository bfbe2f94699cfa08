/* Virtual shards (see virtual_shards.h): pure functions of the run's settings. */
#include "nn/virtual_shards.h"

#include "nn/dataset.h"

int nn_vshards_default(int batch) {
    for (int v = NN_VSHARDS_MIN_DEFAULT; v < batch && v <= NN_VSHARDS_MAX; v++)
        if (batch % v == 0) return v;
    return batch < NN_VSHARDS_MAX ? batch : 1; /* a large prime batch: only 1 rank */
}

void nn_vshard_rows(long total, int shards, int v, long *begin, long *count) {
    nn_shard_range(total, v, shards, begin, count);
}

void nn_vshards_of_rank(int shards, int rank, int nranks, int *first, int *end) {
    *first = (int)((long long)rank * shards / nranks);
    *end = (int)((long long)(rank + 1) * shards / nranks);
}

/* Stream ids with the top bit set: never a rank's (normal mode seeds with the rank). */
void nn_vshard_shuffle(uint64_t seed, int epoch, int v, uint32_t *order, uint32_t count) {
    nn_rng rng;
    nn_rng_seed(&rng, seed, (uint64_t)epoch, (1ull << 63) | (uint64_t)v);
    for (uint32_t i = 0; i < count; i++) order[i] = i;
    nn_rng_shuffle(&rng, order, count);
}
