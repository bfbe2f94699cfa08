/* The node's gradient sum alone, without a network around it: for each message size,
 * the mean time of one sum (the slowest rank's) and its bus bandwidth
 * 2 (P-1)/P * bytes / time (the bytes each rank would move in a ring allreduce, so
 * that sums of different sizes and rank counts compare against memory bandwidth).
 *
 *   mpirun -np P bench_reduce [--label NAME] [--seconds S] [--modes step,sum,mpi]
 *                             [--sizes BYTES,...]
 *
 * Modes, all through the gradient exchange the trainer uses:
 *   step  the training step's path: finish_owned (the sum of this rank's share), an
 *         SGD-like update of that share, publish (every rank gets every share)
 *   sum   the whole sum at once (nn_exchange_finish)
 *   mpi   one MPI_Allreduce (--allreduce mpi), for reference
 * Each iteration first rewrites this rank's gradient (as backward does, untimed), so
 * the sum finds the lines modified in their owners' caches, as in training.
 * With a library that keeps the node's one copy of the parameters in shared memory,
 * the step mode updates it there, as the trainer does.
 * Rank 0 prints one CSV row per mode and size:
 *   reduce_bench,LABEL,ranks,mode,bytes,iterations,us_per_sum,busbw_GBps[,wait,sum,copy]
 * where wait, sum, copy (when the library keeps them) are the slowest rank's mean
 * microseconds per sum waiting in the node's barriers, summing, and copying. */
#define _POSIX_C_SOURCE 200809L /* strtok_r */
#include <mpi.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/exchange.h"

enum { MAX_SIZES = 32 };

typedef struct bench_opts {
    const char *label;
    double seconds;  /* per mode and size */
    char modes[64];
    size_t sizes[MAX_SIZES];
    int n_sizes;
} bench_opts;

static int parse_sizes(const char *text, bench_opts *o) {
    o->n_sizes = 0;
    for (const char *p = text; *p && o->n_sizes < MAX_SIZES;) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || v < 4) return 0;
        o->sizes[o->n_sizes++] = (size_t)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return 0;
    }
    return o->n_sizes > 0;
}

static int parse(int argc, char **argv, bench_opts *o) {
    /* 1 KB - 8 MB, and the two benchmark networks' vectors: 784-50-100-10 (45,360
     * floats) and 784-800-800-10 (1,276,810 floats) */
    *o = (bench_opts){.label = "nntrain", .seconds = 0.2, .modes = "step,sum"};
    parse_sizes("1024,4096,16384,65536,181440,262144,1048576,4194304,5107240,8388608", o);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--label")) o->label = argv[i + 1];
        else if (!strcmp(argv[i], "--seconds")) o->seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--modes")) snprintf(o->modes, sizeof o->modes, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--sizes")) {
            if (!parse_sizes(argv[i + 1], o)) return 0;
        } else return 0;
    }
    return argc % 2 == 1 && o->seconds > 0.0;
}

#ifdef NN_EXCHANGE_HAS_FUSED
/* the step's update of one chunk, as the trivial one below */
static unsigned bench_update(void *ctx, const float *sums, size_t offset, size_t count) {
    float *params = (float *)ctx + offset;
    for (size_t i = 0; i < count; i++) params[i] -= 1e-6f * sums[i];
    return 0;
}
#endif

/* One timed sum of the given mode; returns its seconds on this rank. */
static double one_sum(nn_exchange *ex, const char *mode, float *params, size_t n) {
    float *g = nn_exchange_grads(ex);
    nn_exchange_begin(ex);
    for (size_t i = 0; i < n; i++) g[i] = 1e-3f * (float)(i & 1023); /* backward's writes */
    double t0 = MPI_Wtime();
#ifdef NN_EXCHANGE_HAS_FUSED
    if (!strcmp(mode, "step") && nn_exchange_fused(ex)) {
        int nonfinite = 0;
        nn_exchange_finish_update(ex, bench_update, params, &nonfinite);
        return MPI_Wtime() - t0;
    }
#endif
    if (!strcmp(mode, "step")) {
        nn_exchange_finish_owned(ex);
        size_t off, cnt;
        nn_exchange_owned(ex, &off, &cnt);
        for (size_t i = off; i < off + cnt; i++) params[i] -= 1e-6f * g[i];
        int nonfinite = 0;
        nn_exchange_publish(ex, params, &nonfinite);
    } else {
        nn_exchange_finish(ex);
    }
    return MPI_Wtime() - t0;
}

/* This rank's seconds so far in the reducer's phases (wait, sum, copy), if kept. */
static void phases_now(nn_exchange *ex, double out[3]) {
    out[0] = out[1] = out[2] = 0.0;
#ifdef NN_REDUCER_HAS_PHASES
    nn_reduce_phases ph;
    nn_exchange_phases(ex, &ph);
    out[0] = ph.wait;
    out[1] = ph.sum;
    out[2] = ph.copy;
#else
    (void)ex;
#endif
}

/* Mean seconds per sum (the slowest rank's), over a count of iterations chosen so
 * that the run lasts about `seconds`; phase[] the slowest rank's mean per phase. */
static double time_sums(nn_exchange *ex, const char *mode, float *params, size_t n, double seconds, long *iters,
                        double phase[3]) {
    double probe = 0.0;
    for (int i = 0; i < 3; i++) probe += one_sum(ex, mode, params, n); /* also the warm-up */
    MPI_Allreduce(MPI_IN_PLACE, &probe, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    long count = (long)(seconds / (probe / 3.0 + 1e-7));
    if (count < 5) count = 5;
    if (count > 100000) count = 100000;
    double before[3], after[3];
    phases_now(ex, before);
    double total = 0.0;
    for (long i = 0; i < count; i++) total += one_sum(ex, mode, params, n);
    phases_now(ex, after);
    double mean[4] = {total / (double)count};
    for (int k = 0; k < 3; k++) mean[k + 1] = (after[k] - before[k]) / (double)count;
    MPI_Allreduce(MPI_IN_PLACE, mean, 4, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    for (int k = 0; k < 3; k++) phase[k] = mean[k + 1];
    *iters = count;
    return mean[0];
}

static int run_mode(const bench_opts *o, const char *mode, size_t bytes, int rank, int ranks) {
    size_t n = bytes / sizeof(float);
    nn_exchange *ex;
    nn_error err;
    nn_exchange_mode xm = !strcmp(mode, "mpi") ? NN_EXCHANGE_MPI : NN_EXCHANGE_SHM;
    if (nn_exchange_create(&ex, MPI_COMM_WORLD, xm, NN_COMPRESS_NONE, n, &err)) {
        if (rank == 0) fprintf(stderr, "bench_reduce: %s\n", err.msg);
        return 1;
    }
    float *own = calloc(n, sizeof *own), *params = own;
#ifdef NN_EXCHANGE_HAS_SHARED_PARAMS
    float *shared = nn_exchange_share_params(ex, own);
    if (shared) params = shared;
#endif
#ifdef NN_EXCHANGE_HAS_FUSED
    float *velocity = calloc(n, sizeof *velocity);
    if (shared) nn_exchange_share_velocity(ex, velocity); /* the training step's path: chunks */
    free(velocity);
#endif
    long iters = 0;
    double phase[3];
    double t = time_sums(ex, mode, params, n, o->seconds, &iters, phase);
    char phases[96] = "";
#ifdef NN_REDUCER_HAS_PHASES
    snprintf(phases, sizeof phases, ",%.2f,%.2f,%.2f", phase[0] * 1e6, phase[1] * 1e6, phase[2] * 1e6);
#endif
    if (rank == 0) {
        double busbw = ranks > 1 ? 2.0 * (ranks - 1) / ranks * (double)bytes / t / 1e9 : 0.0;
        printf("reduce_bench,%s,%d,%s,%zu,%ld,%.2f,%.2f%s\n", o->label, ranks, mode, bytes, iters, t * 1e6, busbw, phases);
        fflush(stdout);
    }
    free(own);
    nn_exchange_free(ex);
    return 0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    /* the library's OpenMP regions (the chunked sum): one thread a rank unless told */
    if (!getenv("OMP_NUM_THREADS")) omp_set_num_threads(1);
    int rank, ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    bench_opts o;
    if (!parse(argc, argv, &o)) {
        if (rank == 0) fprintf(stderr, "usage: bench_reduce [--label NAME] [--seconds S] [--modes step,sum,mpi] [--sizes B,...]\n");
        MPI_Finalize();
        return 2;
    }
    int status = 0;
    for (int s = 0; s < o.n_sizes && !status; s++) {
        char modes[64];
        snprintf(modes, sizeof modes, "%s", o.modes);
        for (char *save = NULL, *m = strtok_r(modes, ",", &save); m && !status; m = strtok_r(NULL, ",", &save))
            status = run_mode(&o, m, o.sizes[s], rank, ranks);
    }
    MPI_Finalize();
    return status;
}
