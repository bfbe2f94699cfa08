/* Float helpers for the element-wise loops, written so the compiler vectorises them.
 *
 * nn_expf: libm's expf is a scalar call per element; range reduction x = n ln2 + r, a degree-6
 * polynomial for e^r on |r| <= ln2/2 (Cephes' coefficients), scaling by 2^n through
 * the exponent bits. Relative error within 4 ulp (test_layers checks it over the
 * whole range); inputs are clamped to [-87.3, 88.3], where the result stays a
 * normal float. */
#ifndef NN_FASTMATH_H
#define NN_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float nn_expf(float x) {
    x = x < -87.3f ? -87.3f : x > 88.3f ? 88.3f : x;
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693145751953125f; /* ln 2 in two parts: the first exact in float */
    r = r - n * 1.428606765330187e-6f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } scale = {.i = ((int32_t)n + 127) << 23};
    return p * scale.f;
}

/* 1 when x is NaN or infinite (exponent bits all ones), else 0: an integer test, so
 * a loop can OR it over every value it writes and stay vectorised. */
static inline uint32_t nn_nonfinite_bits(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    return (bits & 0x7f800000u) == 0x7f800000u;
}

#endif
