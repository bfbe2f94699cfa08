/* All the threads, or one: the faster for this rank's steps (see thread_tuning.h). */
#include "nn/thread_tuning.h"

#include <omp.h>
#include <stdlib.h>

enum {
    WARMUP = 3, /* first steps on all the threads, untimed: caches, pages and the team start cold */
    BLOCK = 8,  /* then blocks of this many steps: all threads, one, all, one */
    BLOCKS = 4,
    SETTLE = 2  /* steps at the start of a block, untimed: the switch's own cost (data the
                   other core touched last) is not what the block measures */
};

_Static_assert(BLOCKS / 2 * (BLOCK - SETTLE) <= NN_THREAD_TUNING_TIMED, "room for the timed steps");

/* All the threads must beat one by this much: one thread leaves the cores to others. */
static const double MARGIN = 0.97;

void nn_thread_tuning_start(nn_thread_tuning *tt, int threads, bool measure) {
    *tt = (nn_thread_tuning){.threads = threads, .asked = threads, .done = !measure || threads < 2};
    omp_set_num_threads(threads);
}

/* Which kind step number `step` (from the start) is. */
static int kind_of(int step) {
    int in_blocks = step - WARMUP;
    return in_blocks < 0 || in_blocks / BLOCK % 2 == 0 ? NN_TUNE_ALL : NN_TUNE_ONE;
}

void nn_thread_tuning_begin_step(nn_thread_tuning *tt) {
    if (!tt->done) omp_set_num_threads(kind_of(tt->steps) == NN_TUNE_ALL ? tt->asked : 1);
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
    double mine[2], slowest[2];
    for (int k = 0; k < 2; k++) mine[k] = tt->timed[k] ? median(tt->times[k], tt->timed[k]) : -1.0;
    MPI_Allreduce(mine, slowest, 2, MPI_DOUBLE, MPI_MAX, comm); /* the slowest rank sets the pace */
    tt->done = true;
    if (slowest[NN_TUNE_ONE] < 0.0 || slowest[NN_TUNE_ALL] < 0.0) { /* every step disturbed: keep them all */
        if (log) fprintf(log, "nntrain: steps could not be timed undisturbed: training goes on with %d threads\n", tt->asked);
        return;
    }
    tt->threads = slowest[NN_TUNE_ALL] < MARGIN * slowest[NN_TUNE_ONE] ? tt->asked : 1;
    if (log) {
        fprintf(log, "nntrain: a step took %.0f us on %d threads and %.0f us on one (medians of %d and %d steps): %s\n",
                slowest[NN_TUNE_ALL] * 1e6, tt->asked, slowest[NN_TUNE_ONE] * 1e6, tt->timed[NN_TUNE_ALL],
                tt->timed[NN_TUNE_ONE],
                tt->threads > 1 ? "training goes on with all of them" : "training goes on with one thread per rank");
        fflush(log);
    }
}

int nn_thread_tuning_end_step(nn_thread_tuning *tt, double seconds, bool disturbed, MPI_Comm comm, FILE *log) {
    if (tt->done) return tt->threads;
    int step = tt->steps++, in_blocks = step - WARMUP;
    if (in_blocks >= 0 && in_blocks % BLOCK >= SETTLE && !disturbed) {
        int kind = kind_of(step);
        tt->times[kind][tt->timed[kind]++] = seconds;
    }
    if (in_blocks + 1 == BLOCKS * BLOCK) choose(tt, comm, log);
    omp_set_num_threads(tt->threads); /* what runs between steps */
    return tt->threads;
}
