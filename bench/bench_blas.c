/* The machine's limit for one training step: OpenBLAS SGEMM on the exact shapes of the
 * dense layers of a network, plus a large square SGEMM for reference.
 *
 *   bench_blas --info
 *       which OpenBLAS kernel runs: {"corename": ..., "config": ..., "max_threads": N}
 *   bench_blas --layers 784,50,100,10 --batch 100 --threads T [--procs R] [--min-time S]
 *       per dense layer (in -> out), row-major, batch b:
 *         forward       Y[b,out]  = X[b,in] . W[in,out]      (M=b,   N=out, K=in)
 *         weight grad   dW[in,out] = X^T[in,b] . dY[b,out]   (M=in,  N=out, K=b)
 *         input grad    dX[b,in]  = dY[b,out] . W^T          (M=b,   N=in,  K=out), not for
 *                                                            the first layer
 *       one "step" runs them all in training order; prints the FLOP of a step
 *       (2*M*N*K summed), FLOP per sample, and the best GFLOP/s over several trials.
 *       --procs R: R processes (fork) run the same step at the same time, as R ranks of
 *       T threads each would; "gflops" is then their sum (the limit of R x T cores,
 *       with every core busy, so no single-core turbo bonus)
 *   bench_blas --square N --threads T [--min-time S]
 *       one N x N x N SGEMM, best GFLOP/s
 *
 * Output: one JSON object on stdout. Built by bench/bench.sh:
 *   gcc -O2 bench_blas.c $(pkg-config --cflags --libs openblas)
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LAYERS 32
#define MAX_GEMMS (3 * MAX_LAYERS)

typedef struct {
    const char *what;
    int layer;
    CBLAS_TRANSPOSE ta, tb;
    int m, n, k;
    const float *a, *b;
    float *c;
    int lda, ldb, ldc;
} gemm_t;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *msg) {
    fprintf(stderr, "bench_blas: %s\n", msg);
    exit(2);
}

static long parse_long(const char *s, const char *what) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0) {
        fprintf(stderr, "bench_blas: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

static float *alloc_rand(size_t n, unsigned *seed) {
    float *p = aligned_alloc(64, ((n * sizeof(float)) + 63) / 64 * 64);
    if (!p) die("out of memory");
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)((*seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    return p;
}

static void run_gemm(const gemm_t *g) {
    cblas_sgemm(CblasRowMajor, g->ta, g->tb, g->m, g->n, g->k, 1.0f, g->a, g->lda, g->b,
                g->ldb, 0.0f, g->c, g->ldc);
}

/* Best seconds per call of fn over trials of about 50 ms (at least one call) filling about
 * min_time seconds in all: the best of many short trials is what the machine can do
 * when nothing else disturbs it. */
static double best_time(void (*fn)(void *), void *arg, double min_time) {
    fn(arg); /* warm up: thread pool, caches, page faults */
    double t0 = now();
    fn(arg);
    double once = now() - t0;
    if (once <= 0) once = 1e-9;
    long reps = (long)(0.05 / once);
    if (reps < 1) reps = 1;
    int trials = (int)(min_time / (reps * once));
    if (trials < 3) trials = 3;
    double best = 1e300;
    for (int t = 0; t < trials; t++) {
        double s = now();
        for (long r = 0; r < reps; r++) fn(arg);
        double per = (now() - s) / (double)reps;
        if (per < best) best = per;
    }
    return best;
}

typedef struct {
    gemm_t *g;
    int n;
} step_t;

static void run_step(void *arg) {
    step_t *s = arg;
    for (int i = 0; i < s->n; i++) run_gemm(&s->g[i]);
}

static void run_one(void *arg) { run_gemm(arg); }

static void print_json_string(const char *s) {
    putchar('"');
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        if ((unsigned char)*s >= 0x20) putchar(*s);
    }
    putchar('"');
}

int main(int argc, char **argv) {
    const char *layers_arg = NULL;
    long batch = 0, threads = 1, square = 0, procs = 1;
    double min_time = 1.0;
    int info = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--info")) {
            info = 1;
            continue;
        }
        if (i + 1 >= argc) die("usage: bench_blas --info | --layers L --batch B --threads T "
                               "| --square N --threads T  [--min-time S]");
        const char *v = argv[++i];
        if (!strcmp(a, "--layers")) layers_arg = v;
        else if (!strcmp(a, "--batch")) batch = parse_long(v, "batch");
        else if (!strcmp(a, "--threads")) threads = parse_long(v, "threads");
        else if (!strcmp(a, "--square")) square = parse_long(v, "square");
        else if (!strcmp(a, "--procs")) procs = parse_long(v, "procs");
        else if (!strcmp(a, "--min-time")) {
            min_time = strtod(v, NULL);
            if (!(min_time > 0)) die("bad --min-time");
        } else {
            fprintf(stderr, "bench_blas: unknown option %s\n", a);
            return 2;
        }
    }

    if (info) {
        printf("{\"corename\": ");
        print_json_string(openblas_get_corename());
        printf(", \"config\": ");
        print_json_string(openblas_get_config());
        printf(", \"max_threads\": %d}\n", openblas_get_num_threads());
        return 0;
    }

    openblas_set_num_threads((int)threads);
    unsigned seed = 12345;

    if (square) {
        size_t n = (size_t)square;
        float *a = alloc_rand(n * n, &seed), *b = alloc_rand(n * n, &seed),
              *c = alloc_rand(n * n, &seed);
        gemm_t g = {"square", 0, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n,
                    a, b, c, (int)n, (int)n, (int)n};
        double t = best_time(run_one, &g, min_time);
        double flop = 2.0 * (double)n * (double)n * (double)n;
        printf("{\"square\": %zu, \"threads\": %ld, \"openblas_threads\": %d, "
               "\"seconds\": %.6g, \"gflops\": %.4g}\n",
               n, threads, openblas_get_num_threads(), t, flop / t * 1e-9);
        free(a);
        free(b);
        free(c);
        return 0;
    }

    if (!layers_arg || batch <= 0) die("need --layers and --batch (or --square N, or --info)");
    int w[MAX_LAYERS + 1], nw = 0;
    {
        char *copy = strdup(layers_arg), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (nw > MAX_LAYERS) die("too many layers");
            w[nw++] = (int)parse_long(tok, "layer width");
        }
        free(copy);
    }
    if (nw < 2) die("need at least two layer widths");

    gemm_t g[MAX_GEMMS];
    int ng = 0;
    const int b = (int)batch;
    /* forward pass, layer by layer */
    float *act[MAX_LAYERS + 1], *grad[MAX_LAYERS + 1], *W[MAX_LAYERS], *dW[MAX_LAYERS];
    for (int l = 0; l < nw; l++) {
        act[l] = alloc_rand((size_t)b * w[l], &seed);
        grad[l] = alloc_rand((size_t)b * w[l], &seed);
    }
    for (int l = 0; l + 1 < nw; l++) {
        W[l] = alloc_rand((size_t)w[l] * w[l + 1], &seed);
        dW[l] = alloc_rand((size_t)w[l] * w[l + 1], &seed);
    }
    for (int l = 0; l + 1 < nw; l++) {
        int in = w[l], out = w[l + 1];
        g[ng++] = (gemm_t){"forward", l + 1, CblasNoTrans, CblasNoTrans, b, out, in,
                           act[l], W[l], act[l + 1], in, out, out};
    }
    /* backward pass, last layer first */
    for (int l = nw - 2; l >= 0; l--) {
        int in = w[l], out = w[l + 1];
        g[ng++] = (gemm_t){"weight_grad", l + 1, CblasTrans, CblasNoTrans, in, out, b,
                           act[l], grad[l + 1], dW[l], in, out, out};
        if (l > 0)
            g[ng++] = (gemm_t){"input_grad", l + 1, CblasNoTrans, CblasTrans, b, in, out,
                               grad[l + 1], W[l], grad[l], out, out, in};
    }

    double flop = 0;
    for (int i = 0; i < ng; i++) flop += 2.0 * g[i].m * g[i].n * g[i].k;
    step_t step = {g, ng};

    if (procs > 1) {
        /* R copies, released together once all have set up; each reports its best step
         * time through a pipe */
        int go[2], back[2];
        if (pipe(go) || pipe(back)) die("pipe failed");
        fflush(stdout);
        for (long p = 0; p < procs; p++) {
            pid_t pid = fork();
            if (pid < 0) die("fork failed");
            if (pid == 0) {
                close(go[1]);
                close(back[0]);
                run_step(&step); /* touch the pages before the start */
                char c;
                if (read(go[0], &c, 1) < 0) _exit(1); /* EOF when the parent closes go[1] */
                double tp = best_time(run_step, &step, min_time);
                if (write(back[1], &tp, sizeof tp) != (ssize_t)sizeof tp) _exit(1);
                _exit(0);
            }
        }
        close(go[0]);
        close(back[1]);
        struct timespec settle = {0, 200000000};
        nanosleep(&settle, NULL); /* let every child set up */
        close(go[1]);
        double sum = 0, worst = 0;
        printf("{\"layers\": \"%s\", \"batch\": %d, \"threads\": %ld, \"procs\": %ld, "
               "\"gemms\": %d, \"flop_per_step\": %.0f, \"flop_per_sample\": %.0f, "
               "\"proc_gflops\": [",
               layers_arg, b, threads, procs, ng, flop, flop / b);
        for (long p = 0; p < procs; p++) {
            double tp;
            if (read(back[0], &tp, sizeof tp) != (ssize_t)sizeof tp) die("a child failed");
            sum += flop / tp * 1e-9;
            if (tp > worst) worst = tp;
            printf("%s%.4g", p ? ", " : "", flop / tp * 1e-9);
        }
        int status, bad = 0;
        while (wait(&status) > 0)
            if (!WIFEXITED(status) || WEXITSTATUS(status)) bad = 1;
        if (bad) die("a child failed");
        printf("], \"step_seconds\": %.6g, \"gflops\": %.4g}\n", worst, sum);
        return 0;
    }

    double t = best_time(run_step, &step, min_time);
    printf("{\"layers\": \"%s\", \"batch\": %d, \"threads\": %ld, \"procs\": 1, "
           "\"openblas_threads\": %d, "
           "\"gemms\": %d, \"flop_per_step\": %.0f, \"flop_per_sample\": %.0f, "
           "\"step_seconds\": %.6g, \"gflops\": %.4g, \"per_gemm\": [",
           layers_arg, b, threads, openblas_get_num_threads(), ng, flop, flop / b, t,
           flop / t * 1e-9);
    /* each GEMM on its own, for the record (short trials) */
    for (int i = 0; i < ng; i++) {
        double ti = best_time(run_one, &g[i], min_time / ng);
        double fi = 2.0 * g[i].m * g[i].n * g[i].k;
        printf("%s{\"layer\": %d, \"kind\": \"%s\", \"m\": %d, \"n\": %d, \"k\": %d, "
               "\"gflops\": %.4g}",
               i ? ", " : "", g[i].layer, g[i].what, g[i].m, g[i].n, g[i].k, fi / ti * 1e-9);
    }
    printf("]}\n");
    for (int l = 0; l < nw; l++) {
        free(act[l]);
        free(grad[l]);
    }
    for (int l = 0; l + 1 < nw; l++) {
        free(W[l]);
        free(dW[l]);
    }
    return 0;
}
