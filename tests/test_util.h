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

/* The loss finite differences are taken of: probe(y) = sum y_i r_i, so dL/dy = r. */
static inline double probe(const float *y, const float *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)y[i] * r[i];
    return s;
}

/* Largest relative error of analytic[i] against the central difference of loss(ctx)
 * with respect to v[i] (step eps), over n values; a NaN counts as the worst. */
static inline double worst_fd_error(double (*loss)(void *), void *ctx, float *v, const float *analytic, size_t n,
                                    float eps) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float saved = v[i];
        v[i] = saved + eps;
        double up = loss(ctx);
        v[i] = saved - eps;
        double down = loss(ctx);
        v[i] = saved;
        double fd = (up - down) / (2 * eps);
        double rel = fabs(fd - analytic[i]) / (fabs(fd) + 1e-2);
        worst = rel > worst || isnan(rel) ? rel : worst;
    }
    return worst;
}

#endif
