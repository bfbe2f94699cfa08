/* All the threads, or one: the faster for this rank's steps (see thread_tuning.h). */
#include "nn/thread_tuning.h"

#include <omp.h>
#include <stdlib.h>

enum {
    WARMUP = 3, /* first steps on all the threads, untimed: caches, pages and the team start cold */
    BLOCK = 8,  /* then blocks of this many steps: all threads, one, all, one */
    BLOCKS = 4,
    SETTLE = 2  /* steps at the start of a block, untimed: the change's own cost (data the other
                   core touched last) is not what the block measures */
};

_Static_assert(BLOCKS / 2 * (BLOCK - SETTLE) <= NN_THREAD_TUNING_TIMED, "room for the timed steps");

/* All the threads must beat one by this much: one thread leaves the cores to others. */
static const double MARGIN = 0.97;

void nn_thread_tuning_start(nn_thread_tuning *tt, int threads, bool measure) {
    *tt = (nn_thread_tuning){.threads = threads, .done = !measure || threads < 2};
    omp_set_num_threads(threads);
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void choose(nn_thread_tuning *tt, MPI_Comm comm, FILE *log) {
    double mine[2] = {median(tt->times[0], tt->timed[0]), median(tt->times[1], tt->timed[1])}, slowest[2];
    MPI_Allreduce(mine, slowest, 2, MPI_DOUBLE, MPI_MAX, comm); /* the ranks wait for the slowest */
    int all = tt->threads;
    tt->threads = slowest[1] < MARGIN * slowest[0] ? all : 1;
    tt->done = true;
    if (log) {
        fprintf(log, "nntrain: a step took %.0f us on %d threads and %.0f us on one (median of %d each): %s\n",
                slowest[1] * 1e6, all, slowest[0] * 1e6, tt->timed[1],
                tt->threads > 1 ? "training goes on with all of them" : "training goes on with one thread per rank");
        fflush(log);
    }
}

int nn_thread_tuning_step(nn_thread_tuning *tt, double seconds, MPI_Comm comm, FILE *log) {
    if (tt->done) return tt->threads;
    int s = tt->steps++ - WARMUP; /* the step just run, counted from the first block */
    if (s >= 0 && s % BLOCK >= SETTLE) {
        int all = s / BLOCK % 2 == 0; /* blocks 0 and 2 on all the threads */
        tt->times[all][tt->timed[all]++] = seconds;
    }
    if (s + 1 == BLOCKS * BLOCK) choose(tt, comm, log);
    int next = s + 1; /* the next step, counted the same way */
    omp_set_num_threads(tt->done || next < 0 || next / BLOCK % 2 == 0 ? tt->threads : 1);
    return tt->threads;
}
