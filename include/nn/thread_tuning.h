/* Whether a rank's steps run faster on its OpenMP threads or on one, measured.
 *
 * Waking a team of threads pays only for enough work, and how much is enough
 * depends on the machine more than on the code: on the 2-core VM this project is
 * built on, the reference network trains at 1 rank x 2 threads at ~340,000 samples/s
 * against ~570,000 on one thread (each parallel region costs ~10 us there, and the
 * work after it runs slower on data the other core touched), while the 784-800-800-10
 * network gains 1.4x from its second thread. Timing one GEMM alone misses the second
 * cost, and so does alternating single steps (each pays for the one before), so
 * whole steps are timed in blocks: after 3 warm-up steps, 8 on all the threads, 8 on
 * one, 8 on all, 8 on one, the first 2 of each block untimed. Each rank takes the
 * median of each kind; the ranks agree on the largest of each (the slowest rank sets
 * the pace); training goes on with all the threads only if they were at least 3%
 * faster. The results do not depend on the thread count at all (see kernels.h): the
 * choice changes only the speed.
 *
 * Only the steps run on one thread while measuring: evaluation, checkpoints and
 * whatever runs between steps use the threads in use (all of them until the choice).
 * A run of fewer than 35 steps makes no choice and keeps all the threads. */
#ifndef NN_THREAD_TUNING_H
#define NN_THREAD_TUNING_H

#include <mpi.h>
#include <stdbool.h>
#include <stdio.h>

enum { NN_THREAD_TUNING_TIMED = 16 }; /* room for the timed steps of each kind */
enum { NN_TUNE_ONE, NN_TUNE_ALL };    /* the two kinds of step */

typedef struct nn_thread_tuning {
    int threads;          /* in use: those asked for, then the choice */
    int asked;            /* the threads asked for */
    int steps;            /* steps run since the start */
    double times[2][NN_THREAD_TUNING_TIMED]; /* timed steps, by kind */
    int timed[2];
    bool done;            /* chosen (or nothing to choose) */
} nn_thread_tuning;

/* Start measuring for `threads` threads (measure false, or one thread: nothing to
 * choose). Sets the OpenMP thread count to `threads`. */
void nn_thread_tuning_start(nn_thread_tuning *tt, int threads, bool measure);

/* Before a training step: sets the OpenMP thread count it runs on. */
void nn_thread_tuning_begin_step(nn_thread_tuning *tt);

/* After it, with its wall time; `disturbed`: other work (evaluation, a checkpoint)
 * ran just before it, so its time is not counted. Sets the OpenMP thread count back
 * to the threads in use. Collective over comm on the step that ends the measurement
 * (the same step on every rank, as every rank runs every step); the choice is then
 * written to log (when not NULL). Returns the threads in use. */
int nn_thread_tuning_end_step(nn_thread_tuning *tt, double seconds, bool disturbed, MPI_Comm comm, FILE *log);

#endif
