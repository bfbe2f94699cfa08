/* Which of a few ways of running the training steps is fastest, measured on the
 * steps themselves.
 *
 * Some choices change only the speed, never the results: how many threads a rank's
 * steps take (thread_tuning.h), how the node's ranks sum their gradients (the chunked
 * sum begun in backward, or the factored sum: trainer_tuning.c). Which is fastest
 * depends on the machine, the network and the layout more than on the code, and a
 * part timed alone misses what it leaves to the work after it; so whole steps are
 * timed, in blocks: after 3 warm-up steps, one block on each candidate in turn, then
 * the same round again. A block lasts at least 8 steps and at least 25 ms, but at
 * most 256 steps (the ranks agree on its length after the warm-up; NN_TUNE_BLOCK=S
 * sets it to S steps, for tests), so that it sees what a scheduler's time slice does;
 * its first quarter is not timed. Each rank takes each candidate's mean step time
 * (the slow steps are part of the price); the ranks agree on the largest of each (the
 * slowest rank sets the pace). The last candidate is the one preferred: going from it
 * to the first, a candidate is taken only when at least 3% faster than the best so
 * far. The warm-up runs on the `fallback` candidate, which stays when nothing could
 * be timed (a run too short to finish measuring). */
#ifndef NN_TUNER_H
#define NN_TUNER_H

#include <mpi.h>
#include <stdbool.h>
#include <stdio.h>

enum { NN_TUNER_MAX = 12 };

typedef struct nn_tuner {
    int n;          /* candidates, 0..n-1 */
    int fallback;   /* run in the warm-up, and kept when nothing was timed */
    int chosen;     /* the choice, once done (fallback until then) */
    int block;      /* steps per block; 0 until the warm-up is over */
    long total;     /* steps the measurement takes; 0: nothing to choose; -1: not known yet */
    long steps;     /* steps run since the start */
    double warm;    /* fastest warm-up step (s) */
    double seconds[NN_TUNER_MAX]; /* timed steps' total time, by candidate */
    long timed[NN_TUNER_MAX];     /* and their number */
    double slowest[NN_TUNER_MAX]; /* once done: the slowest rank's mean step by candidate (s; -1: not timed) */
    bool done;      /* chosen (or nothing to choose) */
} nn_tuner;

/* Start choosing among n candidates (measure false, or fewer than 2: nothing to
 * choose, fallback stays). */
void nn_tuner_start(nn_tuner *tu, int n, int fallback, bool measure);

/* The candidate the next step runs on. */
int nn_tuner_candidate(const nn_tuner *tu);

/* After a step, with its wall time; `disturbed`: other work (evaluation, a checkpoint)
 * ran just before it, so its time is not counted. Collective over comm on the step
 * that ends the warm-up and on the one that ends the measurement (the same steps on
 * every rank, as every rank runs every step). Returns true on the step the choice is
 * made. */
bool nn_tuner_end_step(nn_tuner *tu, double seconds, bool disturbed, MPI_Comm comm);

/* Once done: " t0, t1, ... us (blocks of B steps)" to log, each candidate's slowest-rank
 * mean step in microseconds ("-" for one not timed), for the caller's one line. */
void nn_tuner_print_means(const nn_tuner *tu, FILE *log);

#endif
