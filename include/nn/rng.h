/* A small, fully reproducible random number generator (xoshiro128** seeded with
 * splitmix64). Its whole state is four 32-bit words, so a checkpoint can save it. */
#ifndef NN_RNG_H
#define NN_RNG_H

#include <stdint.h>

typedef struct nn_rng {
    uint32_t s[4];
} nn_rng;

/* Derive an independent stream from a seed and up to two stream ids
 * (e.g. epoch and rank), so every rank shuffles differently but reproducibly. */
void nn_rng_seed(nn_rng *rng, uint64_t seed, uint64_t stream_a, uint64_t stream_b);
uint32_t nn_rng_u32(nn_rng *rng);
float nn_rng_uniform(nn_rng *rng);            /* [0, 1) */
float nn_rng_normal(nn_rng *rng);             /* mean 0, variance 1 */
uint32_t nn_rng_below(nn_rng *rng, uint32_t n); /* uniform in [0, n) */
void nn_rng_shuffle(nn_rng *rng, uint32_t *items, uint32_t n);

#endif
