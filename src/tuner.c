/* Which candidate runs the steps fastest (see tuner.h). */
#include "nn/tuner.h"

#include <math.h>

#include "nn/env.h"

enum {
    WARMUP = 3,      /* first steps on the fallback, untimed: caches, pages and thread teams start cold */
    ROUNDS = 2,      /* then this many rounds of one block per candidate (drift in the
                        machine's speed hits every candidate alike) */
    MIN_BLOCK = 8,   /* a block: at least this many steps, */
    MAX_BLOCK = 256  /* at most this many (steps under 0.1 ms are too little work to tell apart), */
};
static const double BLOCK_SECONDS = 0.025; /* and at least this long: a few scheduler time slices */

/* A candidate must beat the best of those after it (the preferred ones) by this much. */
static const double MARGIN = 0.97;

void nn_tuner_start(nn_tuner *tu, int n, int fallback, bool measure) {
    n = n < NN_TUNER_MAX ? n : NN_TUNER_MAX;
    *tu = (nn_tuner){.n = n, .fallback = fallback, .chosen = fallback, .done = !measure || n < 2, .warm = -1.0};
    tu->total = tu->done ? 0 : -1;
}

/* The candidate step number `step` (from the start) runs on; -1 in the warm-up. */
static int candidate_of(const nn_tuner *tu, long step) {
    return step < WARMUP ? -1 : (int)((step - WARMUP) / tu->block % tu->n);
}

int nn_tuner_candidate(const nn_tuner *tu) {
    if (tu->done || tu->steps < WARMUP) return tu->chosen;
    return candidate_of(tu, tu->steps);
}

/* After the warm-up: blocks long enough for the slowest rank's steps (or NN_TUNE_BLOCK
 * steps; the largest any rank was given, so that all agree). */
static void size_blocks(nn_tuner *tu, MPI_Comm comm) {
    double mine[2] = {tu->warm, (double)nn_env_count("NN_TUNE_BLOCK", 0)}, all[2];
    MPI_Allreduce(mine, all, 2, MPI_DOUBLE, MPI_MAX, comm);
    double steps = all[0] > 0.0 ? ceil(BLOCK_SECONDS / all[0]) : MIN_BLOCK;
    tu->block = steps < MIN_BLOCK ? MIN_BLOCK : steps > MAX_BLOCK ? MAX_BLOCK : (int)steps;
    if (all[1] > 0) tu->block = (int)all[1];
    tu->total = WARMUP + (long)ROUNDS * tu->n * tu->block;
}

static void choose(nn_tuner *tu, MPI_Comm comm) {
    double mine[NN_TUNER_MAX];
    for (int c = 0; c < tu->n; c++) mine[c] = tu->timed[c] ? tu->seconds[c] / (double)tu->timed[c] : -1.0;
    MPI_Allreduce(mine, tu->slowest, tu->n, MPI_DOUBLE, MPI_MAX, comm); /* the slowest rank sets the pace */
    int best = -1; /* from the preferred one on: the others must pay for themselves */
    for (int c = tu->n - 1; c >= 0; c--)
        if (tu->slowest[c] >= 0.0 && (best < 0 || tu->slowest[c] < MARGIN * tu->slowest[best])) best = c;
    tu->chosen = best < 0 ? tu->fallback : best; /* nothing timed: the fallback stays */
    tu->done = true;
}

bool nn_tuner_end_step(nn_tuner *tu, double seconds, bool disturbed, MPI_Comm comm) {
    if (tu->done) return false;
    long step = tu->steps++;
    if (step < WARMUP) {
        if (!disturbed && (tu->warm < 0.0 || seconds < tu->warm)) tu->warm = seconds;
        if (step == WARMUP - 1) size_blocks(tu, comm);
    } else if ((step - WARMUP) % tu->block >= tu->block / 4 && !disturbed) { /* a block's first quarter settles */
        int c = candidate_of(tu, step);
        tu->seconds[c] += seconds;
        tu->timed[c]++;
    }
    if (tu->steps != tu->total) return false;
    choose(tu, comm);
    return true;
}

void nn_tuner_print_means(const nn_tuner *tu, FILE *log) {
    for (int c = 0; c < tu->n; c++)
        if (tu->slowest[c] < 0.0) fprintf(log, "%s -", c ? "," : "");
        else fprintf(log, "%s %.0f", c ? "," : "", tu->slowest[c] * 1e6);
    fprintf(log, " us (blocks of %d steps)", tu->block);
}
