/* A watchdog per rank: a thread that ends the job when this rank has made no
 * progress for --timeout seconds (a stopped or hung peer, a lost link), instead of
 * letting a collective wait hold the allocation until its wall-time limit. The
 * ranks of a node post their progress on a shared-memory board, so the rank that
 * gives up can name the ranks it waited for. */
#ifndef NN_WATCHDOG_H
#define NN_WATCHDOG_H

#include <mpi.h>

#include "nn/error.h"

typedef enum nn_phase {
    NN_PHASE_IDLE,  /* not watched */
    NN_PHASE_STEP,  /* computing a step */
    NN_PHASE_SUM,   /* waiting in the gradient sum */
    NN_PHASE_EPOCH  /* evaluating, reporting or writing a checkpoint */
} nn_phase;

/* Collective over comm. timeout_s 0: no watchdog (the other calls do nothing). */
int nn_watchdog_start(MPI_Comm comm, double timeout_s, nn_error *err);

/* Progress: this rank entered `phase` of global step `step`. Cheap (a clock read
 * and three stores): call it at every phase change. */
void nn_watchdog_beat(long step, nn_phase phase);

/* Collective: stops the thread and frees the board. */
void nn_watchdog_stop(void);

#endif
