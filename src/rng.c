#include "nn/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void nn_rng_seed(nn_rng *rng, uint64_t seed, uint64_t stream_a, uint64_t stream_b) {
    uint64_t x = seed;
    x ^= splitmix64(&(uint64_t){stream_a + 0x632BE59BD9B4E019ull});
    x ^= splitmix64(&(uint64_t){stream_b + 0x85157AF5ull}) * 3;
    uint64_t a = splitmix64(&x), b = splitmix64(&x);
    rng->s[0] = (uint32_t)a;
    rng->s[1] = (uint32_t)(a >> 32);
    rng->s[2] = (uint32_t)b;
    rng->s[3] = (uint32_t)(b >> 32);
    if (!(rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3])) rng->s[0] = 1; /* all-zero state is stuck */
}

static inline uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

uint32_t nn_rng_u32(nn_rng *rng) {
    uint32_t *s = rng->s;
    uint32_t result = rotl(s[1] * 5, 7) * 9; /* xoshiro128** */
    uint32_t t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
}

float nn_rng_uniform(nn_rng *rng) { return (float)(nn_rng_u32(rng) >> 8) * (1.0f / 16777216.0f); }

float nn_rng_normal(nn_rng *rng) {
    /* Box-Muller; u1 in (0, 1] so the log is finite. */
    float u1 = 1.0f - nn_rng_uniform(rng);
    float u2 = nn_rng_uniform(rng);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}

uint32_t nn_rng_below(nn_rng *rng, uint32_t n) {
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t m = (uint64_t)nn_rng_u32(rng) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = -n % n;
        while (low < threshold) {
            m = (uint64_t)nn_rng_u32(rng) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void nn_rng_shuffle(nn_rng *rng, uint32_t *items, uint32_t n) {
    for (uint32_t i = n; i > 1; i--) { /* Fisher-Yates */
        uint32_t j = nn_rng_below(rng, i);
        uint32_t t = items[i - 1];
        items[i - 1] = items[j];
        items[j] = t;
    }
}
