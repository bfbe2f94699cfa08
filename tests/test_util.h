/* Small helpers shared by the test suites. */
#ifndef NN_TEST_UTIL_H
#define NN_TEST_UTIL_H

#include <math.h>
#include <stdlib.h>

#include "nn/rng.h"

static inline float *random_floats(nn_rng *rng, size_t n, float lo, float hi) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * nn_rng_uniform(rng);
    return p;
}

/* Largest |a - b| / (|b| + floor) over n elements. */
static inline double max_rel_diff(const float *a, const float *b, size_t n, double floor) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (fabs((double)b[i]) + floor);
        if (d > worst || isnan(d)) worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

#endif
