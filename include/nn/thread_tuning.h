/* How many of a rank's OpenMP threads its steps run fastest on, measured.
 *
 * Waking a team of threads pays only for enough work, and how much is enough
 * depends on the machine more than on the code: on the 2-core VM this project is
 * built on, the reference network trains at 1 rank x 2 threads at ~340,000 samples/s
 * against ~570,000 on one thread (each parallel region costs ~10 us there, and the
 * work after it runs slower on data the other core touched), while the 784-800-800-10
 * network gains 1.4x from its second thread; on a 16-core node the best count for a
 * small network can lie in between, and with another process on a core fewer threads
 * win (a team waits for its slowest thread).
 *
 * Timing one GEMM alone misses the cost it leaves to the work after it, and
 * alternating single steps misses it too (each pays for the one before), so whole
 * steps are timed in blocks, as tuner.h describes: the candidates are the threads
 * asked for, halved down to one (16, 8, 4, 2, 1); the warm-up runs on all of them;
 * one thread is preferred, and a larger count is taken only when at least 3% faster
 * than the best of fewer. The results do not depend on the thread count at all (see
 * kernels.h): the choice changes only the speed.
 *
 * Only the steps change their thread count while measuring: evaluation, checkpoints
 * and whatever runs between steps use the threads in use (all of them until the
 * choice). A run too short to finish measuring keeps all the threads. */
#ifndef NN_THREAD_TUNING_H
#define NN_THREAD_TUNING_H

#include <mpi.h>
#include <stdbool.h>
#include <stdio.h>

#include "nn/tuner.h"

typedef struct nn_thread_tuning {
    int threads;  /* in use: those asked for, then the choice */
    int counts[NN_TUNER_MAX]; /* the candidates, from the threads asked for down to 1 */
    int n_counts;
    nn_tuner tuner; /* which of them */
} nn_thread_tuning;

/* Collective: whether every rank of comm runs `threads` threads (OMP_NUM_THREADS,
 * or nodes of different sizes, may differ between ranks): the tuning's blocks are
 * agreed over the ranks, so ranks that try different counts would wait for each
 * other for good. */
bool nn_thread_tuning_alike(int threads, MPI_Comm comm);

/* Start measuring for `threads` threads (measure false, or one thread: nothing to
 * choose). Sets the OpenMP thread count to `threads`. */
void nn_thread_tuning_start(nn_thread_tuning *tt, int threads, bool measure);

/* Before a training step: sets the OpenMP thread count it runs on. */
void nn_thread_tuning_begin_step(nn_thread_tuning *tt);

/* After it, with its wall time; `disturbed`: other work (evaluation, a checkpoint)
 * ran just before it, so its time is not counted. Sets the OpenMP thread count back
 * to the threads in use. Collective over comm on the step that ends the warm-up and
 * on the one that ends the measurement (the same steps on every rank, as every rank
 * runs every step); the choice is then written to log (when not NULL). Returns the
 * threads in use. */
int nn_thread_tuning_end_step(nn_thread_tuning *tt, double seconds, bool disturbed, MPI_Comm comm, FILE *log);

#endif
