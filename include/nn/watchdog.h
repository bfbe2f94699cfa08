/* A watchdog per rank: a thread that ends the job when no progress has been made for
 * --timeout seconds (a stopped or hung peer, a lost link, a FIFO given as a file),
 * instead of letting a wait hold the allocation until its wall-time limit. It covers
 * the whole life of a process: main starts it before MPI_Init (watching this process
 * alone) and ends it after MPI_Finalize; in between, the ranks of a node post their
 * progress on a shared-memory board, so the rank that gives up can name the ranks it
 * waited for, and a rank waiting on a busy neighbour (a checkpoint being written)
 * does not give up. */
#ifndef NN_WATCHDOG_H
#define NN_WATCHDOG_H

#include <mpi.h>

#include "nn/error.h"

/* Below this, a --timeout would end healthy jobs: MPI_Init and reading the data take
 * seconds on a busy machine, and they are watched too. */
#define NN_WATCHDOG_MIN_TIMEOUT 5.0

typedef enum nn_phase {
    NN_PHASE_IDLE,   /* not watched */
    NN_PHASE_STEP,   /* computing a step */
    NN_PHASE_SUM,    /* waiting in the gradient sum */
    NN_PHASE_EPOCH,  /* evaluating, reporting or writing a checkpoint */
    NN_PHASE_START,  /* MPI_Init, reading the checkpoint and the data, building the run */
    NN_PHASE_FINISH  /* tearing down, MPI_Finalize */
} nn_phase;

/* Process-local, before MPI_Init: starts the thread, in phase START; `program`
 * ("nntrain") begins the line that ends the job. timeout_s 0: no watchdog. */
void nn_watchdog_begin(const char *program, double timeout_s);

/* Collective over comm: the node's shared board (and the thread, if not begun).
 * timeout_s 0: no watchdog (the other calls do nothing). */
int nn_watchdog_start(MPI_Comm comm, double timeout_s, nn_error *err);

/* Progress: this rank entered `phase` of global step `step` (-1: the same step).
 * Cheap (a clock read and three stores): call it at every phase change. */
void nn_watchdog_beat(long step, nn_phase phase);

/* Progress within a phase (an evaluation chunk, a checkpoint dataset written). */
void nn_watchdog_alive(void);

/* A file the job leaves half-written if the watchdog ends it (a checkpoint's .tmp):
 * removed before the end. "" or NULL for none. Name it only while this run holds the
 * output's lock: another run's file of that name is not this run's to remove. It is
 * removed in its directory as opened now, and only where that is the directory the
 * lock is in (`lock_dir`: its device and inode): one moved away and made anew since is
 * where another run may write a file of that name. */
void nn_watchdog_remove_on_timeout(const char *path, const unsigned long long lock_dir[2]);

/* Collective: frees the board; the thread goes on watching this process alone (phase
 * FINISH) if nn_watchdog_begin started it, else it stops. */
void nn_watchdog_stop(void);

/* After MPI_Finalize: stops the thread. */
void nn_watchdog_end(void);

#endif
