/* The convolution layers alone, on the two conv layers of Deep-MNIST (not a test:
 * run it by hand).
 *
 *   bench_conv [threads] [repetitions] [batch]     (defaults: OMP_NUM_THREADS, 5, 64)
 *
 * Layer 1: 1x28x28 -> 32x28x28, k=5, pad 2 (input CHW, as from the dataset; dx not
 * needed). Layer 2: 32x14x14 -> 64x14x14, k=5, pad 2 (HWC, dx needed). For each,
 * the best of the repetitions of forward, backward params, backward input and the
 * sum, in ms per batch, GFLOP/s of the three GEMMs and samples/s; then the same GEMMs
 * alone (their share bounds what a direct convolution could save). Also the 2x2 pools. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn/conv.h"
#include "nn/kernels.h"

static float *filled(size_t n, unsigned *state) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) {
        fprintf(stderr, "bench_conv: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        x[i] = (float)(*state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    }
    return x;
}

static void bench_layer(const char *name, nn_conv_geom g, bool need_dx, int batch, int reps) {
    unsigned state = 12345;
    size_t nx = (size_t)batch * g.in_c * g.in_h * g.in_w, ny = (size_t)batch * nn_conv_out_width(&g);
    float *x = filled(nx, &state), *w = filled(nn_conv_weight_count(&g), &state), *b = filled(g.out_c, &state);
    float *y = filled(ny, &state), *dy = filled(ny, &state), *dx = filled(nx, &state);
    float *dw = filled(nn_conv_weight_count(&g), &state), *db = filled(g.out_c, &state);
    float *ws = filled(nn_conv_workspace_floats(&g, batch), &state);
    double best_f = 1e30, best_p = 1e30, best_i = 1e30;
    for (int r = 0; r < reps + 1; r++) { /* the first is a warm-up */
        double t0 = omp_get_wtime();
        nn_conv_forward(&g, w, b, x, y, ws, batch);
        double t1 = omp_get_wtime();
        nn_conv_backward_params(&g, x, dy, dw, db, ws, batch, false);
        double t2 = omp_get_wtime();
        if (need_dx) nn_conv_backward_input(&g, w, dy, dx, ws, batch);
        double t3 = omp_get_wtime();
        if (r > 0 && t1 - t0 < best_f) best_f = t1 - t0;
        if (r > 0 && t2 - t1 < best_p) best_p = t2 - t1;
        if (r > 0 && t3 - t2 < best_i) best_i = t3 - t2;
    }
    /* the same three products alone, on the scratch as it is: what im2col/col2im (the
     * part a direct convolution would do away with) and the rest add to them */
    const int m = batch * nn_conv_out_h(&g) * nn_conv_out_w(&g), kk = g.k * g.k * g.in_c, oc = g.out_c;
    double gemm_only = 0.0;
    for (int which = 0; which < (need_dx ? 3 : 2); which++) {
        double best = 1e30;
        for (int r = 0; r < reps + 1; r++) {
            double t0 = omp_get_wtime();
            if (which == 0) nn_gemm(false, false, m, oc, kk, ws, kk, w, oc, 1.0f, y, oc);
            else if (which == 1) nn_gemm(false, false, kk, oc, m, ws, m, dy, oc, 0.0f, dw, oc);
            else nn_gemm(false, true, m, kk, oc, dy, oc, w, oc, 0.0f, ws, kk);
            double t = omp_get_wtime() - t0;
            if (r > 0 && t < best) best = t;
        }
        gemm_only += best;
    }
    double best_b = best_p + (need_dx ? best_i : 0.0);
    double gemm_flops = 2.0 * batch * nn_conv_out_h(&g) * nn_conv_out_w(&g) * nn_conv_weight_count(&g);
    double total = best_f + best_b, flops = gemm_flops * (need_dx ? 3 : 2);
    printf("%-6s fwd %7.2f ms  bwd params %7.2f  bwd input %7.2f  fwd+bwd %7.2f ms  %5.1f GFLOP/s  %7.0f samples/s\n",
           name, 1e3 * best_f, 1e3 * best_p, need_dx ? 1e3 * best_i : 0.0, 1e3 * total, flops / total * 1e-9,
           batch / total);
    printf("%-6s its GEMMs alone %7.2f ms (%4.1f%% of fwd+bwd): im2col/col2im, bias and the rest %4.1f%%\n", name,
           1e3 * gemm_only, 100.0 * gemm_only / total, 100.0 * (1.0 - gemm_only / total));
    free(x); free(w); free(b); free(y); free(dy); free(dx); free(dw); free(db); free(ws);
}

static void bench_pool(const char *name, nn_pool_geom g, int batch, int reps) {
    unsigned state = 7;
    size_t nx = (size_t)batch * g.c * g.h * g.w, ny = (size_t)batch * nn_pool_out_width(&g);
    float *x = filled(nx, &state), *y = filled(ny, &state), *dx = filled(nx, &state);
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = omp_get_wtime();
        nn_maxpool_forward(&g, x, y, batch);
        nn_maxpool_backward(&g, x, y, dx, batch);
        double t = omp_get_wtime() - t0;
        if (r > 0 && t < best) best = t;
    }
    printf("%-6s fwd+bwd %7.2f ms  %8.0f samples/s\n", name, 1e3 * best, batch / best);
    free(x); free(y); free(dx);
}

int main(int argc, char **argv) {
    if (argc > 1) omp_set_num_threads(atoi(argv[1]));
    int reps = argc > 2 ? atoi(argv[2]) : 5, batch = argc > 3 ? atoi(argv[3]) : 64;
    if (reps < 1 || batch < 1) {
        fprintf(stderr, "usage: bench_conv [threads] [repetitions] [batch]\n");
        return 2;
    }
    printf("bench_conv: %d threads, batch %d, best of %d\n", omp_get_max_threads(), batch, reps);
    bench_layer("conv1", (nn_conv_geom){1, 28, 28, true, 32, 5, 2}, false, batch, reps);
    bench_pool("pool1", (nn_pool_geom){32, 28, 28, false}, batch, reps);
    bench_layer("conv2", (nn_conv_geom){32, 14, 14, false, 64, 5, 2}, true, batch, reps);
    bench_pool("pool2", (nn_pool_geom){64, 14, 14, false}, batch, reps);
    return 0;
}
