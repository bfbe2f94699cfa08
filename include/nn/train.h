/* The data-parallel training loop as a library function. */
#ifndef NN_TRAIN_H
#define NN_TRAIN_H

#include <mpi.h>
#include <stdio.h>

#include "nn/error.h"
#include "nn/options.h"

typedef struct nn_train_result {
    int epochs_run;            /* epochs completed, counting those before a resume */
    double final_accuracy, best_accuracy;
    int best_epoch;
    double train_seconds;      /* sum of epoch_seconds */
    double samples_per_second; /* over all epochs, whole job */
    double allreduce_seconds;  /* sum of the epochs' allreduce_seconds */
    double allreduce_wait_seconds; /* and of their allreduce_wait_seconds */
    int threads;
    long node_cores;           /* the cores the job may use on rank 0's node */
    int ranks_per_node;        /* the ranks sharing rank 0's node, as node_cores */
    int checkpoints;           /* checkpoints written */
    double checkpoint_seconds; /* their total write time */
    int stopped;               /* stopped by a signal (status NN_STOPPED) */
    int complete;              /* resumed a finished run: nothing done, nothing written (said in one line) */
} nn_train_result;

/* Which samples of its shard rank `rank` uses at `step`. The global batch's slots
 * s*batch .. s*batch+batch-1 are dealt round-robin to the ranks, so over an epoch
 * each rank consumes about N/P samples, its own share, even when P does not divide
 * the batch. Returns the local batch size; *first is the position of the first
 * one in the rank's (shuffled) order. */
int nn_local_batch(long step, int batch, int rank, int nranks, long *first);

/* Collective over comm. Rank 0 writes its per-epoch lines to `log` (may be NULL).
 * Returns NN_OK, NN_STOPPED (a signal asked for a stop; the checkpoint is written),
 * or the agreed error status; err holds the message on every rank. */
int nn_train(const nn_train_options *opt, MPI_Comm comm, FILE *log, nn_train_result *result,
             nn_error *err);

#endif
