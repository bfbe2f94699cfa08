/* Whether a rank's steps run faster on its OpenMP threads or on one, measured.
 *
 * Waking a team of threads pays only for enough work, and how much is enough
 * depends on the machine more than on the code: on the 2-core VM this project is
 * built on, the reference network trains at 1 rank x 2 threads at ~340,000 samples/s
 * against ~550,000 on one thread (each parallel region costs ~10 us there, and the
 * work after it runs slower on data the other core touched), while the 784-800-800-10
 * network gains 1.4x from its second thread. Timing one GEMM alone misses the second
 * cost, and so does alternating single steps (each pays for the one before), so
 * whole steps are timed in blocks: after a few warm-up steps, 8 on all the threads,
 * 8 on one, 8 on all, 8 on one (the first 2 of each untimed); training goes on with
 * whichever had the lower median on the slowest rank (every rank makes the same
 * choice). The
 * results do not depend on the thread count at all (see kernels.h), so only the speed
 * does on the choice. */
#ifndef NN_THREAD_TUNING_H
#define NN_THREAD_TUNING_H

#include <mpi.h>
#include <stdbool.h>
#include <stdio.h>

enum { NN_THREAD_TUNING_TIMED = 16 }; /* room for the timed steps of each kind */

typedef struct nn_thread_tuning {
    int threads;          /* the threads asked for; after the choice, those in use */
    int steps;            /* steps run since the start */
    double times[2][NN_THREAD_TUNING_TIMED]; /* timed steps: [0] on one thread, [1] on all */
    int timed[2];
    bool done;            /* chosen (or nothing to choose) */
} nn_thread_tuning;

/* Start measuring for `threads` threads (measure false, or one thread: no choice to
 * make). Sets the OpenMP thread count. */
void nn_thread_tuning_start(nn_thread_tuning *tt, int threads, bool measure);

/* After each training step, with its wall time: sets the thread count for the next
 * one. Collective over comm on the step that ends the measurement (the same step on
 * every rank, as every rank runs every step); the choice is then written to log
 * (when not NULL). Returns the threads in use from the next step on. */
int nn_thread_tuning_step(nn_thread_tuning *tt, double seconds, MPI_Comm comm, FILE *log);

#endif
