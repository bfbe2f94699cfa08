/* The SIMD vector of the GEMM kernels (kernels.c, gemm_sum.c), private to src/: GCC's
 * vector extension at the width -march allows (AVX-512, AVX2, else SSE), with the few
 * operations the kernels need, each with a plain-C fallback. */
#ifndef NN_SIMD_H
#define NN_SIMD_H

#include <string.h>

#if defined(__AVX512F__)
#define NN_VL 16
#elif defined(__AVX__)
#define NN_VL 8
#else
#define NN_VL 4
#endif

/* ISO C mode (-std=c11) keeps GCC from contracting a * b + c into a fused
 * multiply-add, so use the instruction explicitly where the target has it. Every
 * product of the GEMM goes through vfma, so all of C is rounded alike either way. */
#if defined(__AVX__)
#include <immintrin.h> /* FMA and masked loads, each with a plain-C fallback */
#endif
#if defined(__FMA__) || defined(__AVX512F__)
#define NN_HAVE_FMA 1
#endif

typedef float vfloat __attribute__((vector_size(NN_VL * sizeof(float))));

static inline vfloat vload(const float *p) { /* unaligned */
    vfloat v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vstore(float *p, vfloat v) { memcpy(p, &v, sizeof v); }

static inline vfloat vbroadcast(float x) {
    return x - (vfloat){0}; /* exact for every x, so GCC emits just the broadcast */
}

static inline vfloat vfma(vfloat a, vfloat b, vfloat c) {
#if defined(NN_HAVE_FMA) && NN_VL == 16
    return (vfloat)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(NN_HAVE_FMA) && NN_VL == 8
    return (vfloat)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#elif defined(NN_HAVE_FMA)
    return (vfloat)_mm_fmadd_ps((__m128)a, (__m128)b, (__m128)c);
#else
    return a * b + c;
#endif
}

/* The masks of the first n lanes, for the masked loads and stores below. */
#if NN_VL == 16
static inline __mmask16 first_lanes(int n) { return (__mmask16)((1u << n) - 1); }
#elif NN_VL == 8
static inline __m256i first_lanes(int n) {
    typedef int vmask __attribute__((vector_size(8 * sizeof(int))));
    vmask lanes = {0, 1, 2, 3, 4, 5, 6, 7};
    return (__m256i)(lanes < n);
}
#endif

/* The first n floats at p (0 < n < NN_VL), the rest 0, reading nothing past p[n-1]. */
static inline vfloat vload_part(const float *p, int n) {
#if NN_VL == 16
    return (vfloat)_mm512_maskz_loadu_ps(first_lanes(n), p);
#elif NN_VL == 8
    return (vfloat)_mm256_maskload_ps(p, first_lanes(n));
#else
    vfloat v = {0};
    for (int l = 0; l < n; l++) v[l] = p[l];
    return v;
#endif
}

/* The same with the mask made once, outside a loop (one instruction per load with
 * AVX2 and AVX-512; without them the B panels are always packed, see run_block). */
#if NN_VL == 16 || NN_VL == 8
#define NN_MASKED_LOADS 1
#if NN_VL == 16
typedef __mmask16 lane_mask;
static inline vfloat vload_masked(const float *p, lane_mask m) { return (vfloat)_mm512_maskz_loadu_ps(m, p); }
#else
typedef __m256i lane_mask;
static inline vfloat vload_masked(const float *p, lane_mask m) { return (vfloat)_mm256_maskload_ps(p, m); }
#endif
#else
typedef int lane_mask;
static inline lane_mask first_lanes(int n) { return n; }
static inline vfloat vload_masked(const float *p, lane_mask n) { return vload_part(p, n); }
#endif

/* The first n lanes of v to p (0 < n < NN_VL), writing nothing past p[n-1]: one
 * masked store instead of a loop (or a call to memcpy) per partial row. */
static inline void vstore_part(float *p, vfloat v, int n) {
#if NN_VL == 16
    _mm512_mask_storeu_ps(p, first_lanes(n), (__m512)v);
#elif NN_VL == 8
    _mm256_maskstore_ps(p, first_lanes(n), (__m256)v);
#else
    for (int l = 0; l < n; l++) p[l] = v[l];
#endif
}

#endif
