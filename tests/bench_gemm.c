/* GEMM benchmark on the shapes of one training step (not a test: run it by hand).
 *
 *   bench_gemm [threads] [repetitions]
 *
 * For the reference networks 784-50-100-10 (per-rank batch 6 and 7, a rank's share of
 * 100 at 16 ranks, and 50 and 100) and 784-800-800-10 (batch 32, a rank's share of 512
 * at 16 ranks, 64 and 128), times every nn_gemm call of a training step
 * (forward, weight gradient, input gradient of each dense layer, with the operand
 * layouts and beta that nn_dense_forward/backward use), prints GFLOP/s per shape
 * (best of the repetitions, after a warm-up) and the GEMM time of one whole step.
 * Then the node's factored-sum items at 16 ranks: nn_gemm's products added one by one
 * against nn_gemm_sum (the running total in registers).
 * B read in place against B always packed (see kernels.c, run_block):
 *   for p in always in-place; do NN_GEMM_PACK=$p build/tests/bench_gemm 1; done */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn/kernels.h"

typedef struct {
    const char *what;
    bool ta, tb;
    int M, N, K;
    float beta;
} shape;

/* The GEMMs of one training step of a dense network; returns how many. */
static int step_shapes(const int *sizes, int layers, int batch, shape *out) {
    int n = 0;
    for (int l = 0; l < layers; l++) {
        int in = sizes[l], o = sizes[l + 1];
        out[n++] = (shape){"forward", false, false, batch, o, in, 1.0f};
        out[n++] = (shape){"weight grad", true, false, in, o, batch, 0.0f};
        if (l > 0) out[n++] = (shape){"input grad", false, true, batch, in, o, 0.0f};
    }
    return n;
}

static float *random_buffer(size_t n, unsigned *state) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        x[i] = (float)(*state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    }
    return x;
}

/* Best time of one call, in seconds. */
static double time_shape(const shape *s, int reps, unsigned *state) {
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N, ldc = s->N;
    size_t a_size = (size_t)(s->ta ? s->K : s->M) * lda;
    size_t b_size = (size_t)(s->tb ? s->N : s->K) * ldb;
    size_t c_size = (size_t)s->M * ldc;
    float *A = random_buffer(a_size, state), *B = random_buffer(b_size, state);
    float *C = random_buffer(c_size, state);
    double flops = 2.0 * s->M * s->N * s->K;
    /* calls per sample: about a millisecond of work at 50 GFLOP/s */
    int calls = (int)(5e7 / (flops + 1.0)) + 1;
    if (calls > 2000) calls = 2000;
    for (int w = 0; w < calls + 2; w++) /* warm-up: buffers, caches, thread team */
        nn_gemm(s->ta, s->tb, s->M, s->N, s->K, A, lda, B, ldb, s->beta, C, ldc);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = omp_get_wtime();
        for (int c = 0; c < calls; c++)
            nn_gemm(s->ta, s->tb, s->M, s->N, s->K, A, lda, B, ldb, s->beta, C, ldc);
        double t = (omp_get_wtime() - t0) / calls;
        if (t < best) best = t;
    }
    free(A);
    free(B);
    free(C);
    return best;
}

/* One work item of the node's factored sum (factor_sum.c) at 16 ranks: a rows x cols
 * tile of a layer's (in x out) summed weight gradient from 16 ranks' factors, depth[r]
 * rows each; best time of the tile made as nn_gemm's products added one by one (as
 * run_item did) and as nn_gemm_sum. */
static void time_item(const char *what, int in, int out, int rows, int cols, const int *depth, int reps,
                      unsigned *state) {
    enum { RANKS = 16 };
    const float *x[RANKS], *dy[RANKS];
    double flops = 0.0;
    for (int r = 0; r < RANKS; r++) {
        x[r] = random_buffer((size_t)depth[r] * in, state);
        dy[r] = random_buffer((size_t)depth[r] * out, state);
        flops += 2.0 * rows * cols * depth[r];
    }
    float *acc = random_buffer((size_t)rows * cols, state);
    int calls = (int)(5e7 / flops) + 1;
    double best[2] = {1e30, 1e30};
    if (!nn_gemm_sum(rows, cols, RANKS, x, in, dy, out, depth, acc, cols)) {
        printf("  %-28s %4d x %-4d (nn_gemm_sum declines)\n", what, rows, cols);
        reps = 0;
    }
    for (int rep = 0; rep < reps; rep++)
        for (int way = 0; way < 2; way++) {
            double t0 = omp_get_wtime();
            for (int c = 0; c < calls; c++)
                if (way == 1)
                    nn_gemm_sum(rows, cols, RANKS, x, in, dy, out, depth, acc, cols);
                else
                    for (int r = 0; r < RANKS; r++)
                        nn_gemm(true, false, rows, cols, depth[r], x[r], in, dy[r], out, r ? 1.0f : 0.0f, acc, cols);
            double t = (omp_get_wtime() - t0) / calls;
            best[way] = t < best[way] ? t : best[way];
        }
    if (reps)
        printf("  %-28s %4d x %-4d %8.2f %8.2f %9.2f %9.2f  %.2fx\n", what, rows, cols, best[0] * 1e6, best[1] * 1e6,
               flops / best[0] * 1e-9, flops / best[1] * 1e-9, best[0] / best[1]);
    for (int r = 0; r < RANKS; r++) {
        free((void *)x[r]);
        free((void *)dy[r]);
    }
    free(acc);
}

static void time_items(int reps, unsigned *state) {
    const int ref[16] = {7, 7, 7, 7, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6}, big[16] = {32, 32, 32, 32, 32, 32, 32, 32,
                                                                                  32, 32, 32, 32, 32, 32, 32, 32};
    printf("\nfactored-sum items, 16 ranks (us: products added one by one, nn_gemm_sum; GFLOP/s the same)\n");
    time_item("784-50-100-10 layer 1", 784, 50, 88, 50, ref, reps, state);
    time_item("784-50-100-10 layer 1, half", 784, 50, 40, 50, ref, reps, state);
    time_item("784-50-100-10 layer 1, 1/4", 784, 50, 24, 50, ref, reps, state); /* finer tiles' cost */
    time_item("784-50-100-10 layer 1, 1/8", 784, 50, 16, 50, ref, reps, state);
    time_item("784-50-100-10 layer 2", 50, 100, 50, 64, ref, reps, state);
    time_item("784-800-800-10 layer 1", 784, 800, 104, 128, big, reps, state);
    time_item("784-800-800-10 layer 2", 800, 800, 104, 128, big, reps, state);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
    int reps = argc > 2 ? atoi(argv[2]) : 15;
    if (threads < 1 || reps < 1) {
        fprintf(stderr, "usage: %s [threads] [repetitions]\n", argv[0]);
        return 2;
    }
    omp_set_num_threads(threads);
    const char *pack = getenv("NN_GEMM_PACK");
    printf("nn_gemm: %d thread(s), best of %d, SIMD width %d floats, NN_GEMM_PACK=%s\n", threads, reps,
           nn_simd_floats(), pack ? pack : "(unset)");

    static const int small_net[] = {784, 50, 100, 10}, large_net[] = {784, 800, 800, 10};
    struct {
        const char *name;
        const int *sizes;
        int batch;
    } nets[] = {{"784-50-100-10", small_net, 6},   {"784-50-100-10", small_net, 7},
                {"784-50-100-10", small_net, 50},  {"784-50-100-10", small_net, 100},
                {"784-800-800-10", large_net, 32}, {"784-800-800-10", large_net, 64},
                {"784-800-800-10", large_net, 128}};
    unsigned state = 12345u;
    double grand_flops = 0.0, grand_time = 0.0;
    for (size_t n = 0; n < sizeof nets / sizeof nets[0]; n++) {
        shape shapes[16];
        int count = step_shapes(nets[n].sizes, 3, nets[n].batch, shapes);
        printf("\n%s, batch %d\n", nets[n].name, nets[n].batch);
        printf("  %-12s %2s %2s %5s %5s %5s %10s %9s\n", "gemm", "tA", "tB", "M", "N", "K",
               "time(us)", "GFLOP/s");
        double step_time = 0.0, step_flops = 0.0;
        for (int i = 0; i < count; i++) {
            const shape *s = &shapes[i];
            double t = time_shape(s, reps, &state), flops = 2.0 * s->M * s->N * s->K;
            printf("  %-12s %2d %2d %5d %5d %5d %10.2f %9.2f\n", s->what, s->ta, s->tb, s->M,
                   s->N, s->K, t * 1e6, flops / t * 1e-9);
            step_time += t;
            step_flops += flops;
        }
        printf("  step total: %.1f us, %.2f GFLOP/s\n", step_time * 1e6,
               step_flops / step_time * 1e-9);
        grand_time += step_time;
        grand_flops += step_flops;
    }
    printf("\nall the steps: %.1f us, %.2f GFLOP/s\n", grand_time * 1e6,
           grand_flops / grand_time * 1e-9);
    time_items(reps, &state);
    nn_gemm_release();
    return 0;
}
