/* How many threads this rank's steps run fastest on (see thread_tuning.h). */
#include "nn/thread_tuning.h"

#include <math.h>
#include <omp.h>

enum {
    WARMUP = 3,      /* first steps on all the threads, untimed: caches, pages and the team start cold */
    ROUNDS = 2,      /* then this many rounds of one block per candidate count (drift in the
                        machine's speed hits every count alike) */
    MIN_BLOCK = 8,   /* a block: at least this many steps, */
    MAX_BLOCK = 256  /* at most this many (steps under 0.1 ms are too little work for threads), */
};
static const double BLOCK_SECONDS = 0.025; /* and at least this long: a few scheduler time slices */

/* A larger count must beat the best smaller one by this much: fewer threads leave
 * the cores to others. */
static const double MARGIN = 0.97;

void nn_thread_tuning_start(nn_thread_tuning *tt, int threads, bool measure) {
    *tt = (nn_thread_tuning){.threads = threads, .done = !measure || threads < 2, .warm = -1.0};
    for (int c = threads; c >= 1 && tt->n_counts < NN_TUNE_MAX_COUNTS; c /= 2) tt->counts[tt->n_counts++] = c;
    tt->total = tt->done ? 0 : -1;
    omp_set_num_threads(threads);
}

/* The candidate step number `step` (from the start) runs on; -1 in the warm-up. */
static int candidate_of(const nn_thread_tuning *tt, long step) {
    return step < WARMUP ? -1 : (int)((step - WARMUP) / tt->block % tt->n_counts);
}

void nn_thread_tuning_begin_step(nn_thread_tuning *tt) {
    if (tt->done) return;
    int c = candidate_of(tt, tt->steps);
    omp_set_num_threads(c < 0 ? tt->threads : tt->counts[c]);
}

/* After the warm-up: blocks long enough for the slowest rank's steps. */
static void size_blocks(nn_thread_tuning *tt, MPI_Comm comm) {
    double step_time;
    MPI_Allreduce(&tt->warm, &step_time, 1, MPI_DOUBLE, MPI_MAX, comm);
    double steps = step_time > 0.0 ? ceil(BLOCK_SECONDS / step_time) : MIN_BLOCK;
    tt->block = steps < MIN_BLOCK ? MIN_BLOCK : steps > MAX_BLOCK ? MAX_BLOCK : (int)steps;
    tt->total = WARMUP + (long)ROUNDS * tt->n_counts * tt->block;
}

static void report(const nn_thread_tuning *tt, const double *mean, FILE *log) {
    fprintf(log, "nntrain: mean step on");
    for (int c = 0; c < tt->n_counts; c++) fprintf(log, "%s %d", c ? "," : "", tt->counts[c]);
    fprintf(log, " threads:");
    for (int c = 0; c < tt->n_counts; c++)
        if (mean[c] < 0.0) fprintf(log, "%s -", c ? "," : "");
        else fprintf(log, "%s %.0f", c ? "," : "", mean[c] * 1e6);
    fprintf(log, " us (blocks of %d steps): training goes on with %d thread%s per rank\n", tt->block, tt->threads,
            tt->threads > 1 ? "s" : "");
    fflush(log);
}

static void choose(nn_thread_tuning *tt, MPI_Comm comm, FILE *log) {
    double mine[NN_TUNE_MAX_COUNTS], slowest[NN_TUNE_MAX_COUNTS];
    for (int c = 0; c < tt->n_counts; c++) mine[c] = tt->timed[c] ? tt->seconds[c] / (double)tt->timed[c] : -1.0;
    MPI_Allreduce(mine, slowest, tt->n_counts, MPI_DOUBLE, MPI_MAX, comm); /* the slowest rank sets the pace */
    int best = -1; /* from one thread up: more threads must pay for themselves */
    for (int c = tt->n_counts - 1; c >= 0; c--)
        if (slowest[c] >= 0.0 && (best < 0 || slowest[c] < MARGIN * slowest[best])) best = c;
    tt->threads = best < 0 ? tt->counts[0] : tt->counts[best]; /* nothing timed: keep them all */
    tt->done = true;
    if (log) report(tt, slowest, log);
}

int nn_thread_tuning_end_step(nn_thread_tuning *tt, double seconds, bool disturbed, MPI_Comm comm, FILE *log) {
    if (tt->done) return tt->threads;
    long step = tt->steps++;
    if (step < WARMUP) {
        if (!disturbed && (tt->warm < 0.0 || seconds < tt->warm)) tt->warm = seconds;
        if (step == WARMUP - 1) size_blocks(tt, comm);
    } else if ((step - WARMUP) % tt->block >= tt->block / 4 && !disturbed) { /* a block's first quarter settles */
        int c = candidate_of(tt, step);
        tt->seconds[c] += seconds;
        tt->timed[c]++;
    }
    if (tt->steps == tt->total) choose(tt, comm, log);
    omp_set_num_threads(tt->threads); /* what runs between steps */
    return tt->threads;
}
