/* Per-epoch measurements: gathered over the ranks, printed as a line on stdout and,
 * on request, written as JSON Lines (one object per epoch) for scripts and plots. */
#ifndef NN_METRICS_H
#define NN_METRICS_H

#include <mpi.h>
#include <stddef.h>
#include <stdio.h>

#include "nn/error.h"

/* One rank's clock over an epoch's training steps (seconds). */
typedef struct nn_epoch_clock {
    double steps;      /* the steps, checkpoints excluded */
    double exchange;   /* inside the gradient sum, what backward did not hide */
    double exchange_wait; /* of which waiting in the node's barriers (shm mode) */
    double data;       /* assembling batches */
    long steps_done;   /* steps this run took in the epoch (fewer after a resume) */
} nn_epoch_clock;

typedef struct nn_epoch_stats {
    int epoch, epochs;
    double train_loss, test_loss, test_accuracy; /* accuracy in [0, 1] */
    double epoch_seconds;      /* training steps only, slowest rank */
    double eval_seconds;
    double samples_per_second; /* the whole job: all ranks together */
    double allreduce_seconds;  /* the ranks' mean time in the gradient sum (any --allreduce mode) */
    double allreduce_wait_seconds; /* of allreduce_seconds, waiting in the node's barriers (shm; mean over ranks) */
    double data_seconds;       /* the ranks' mean time assembling batches */
    double compute_seconds;    /* the ranks' mean time in their steps outside the sum and the data */
    double compute_max_seconds, compute_min_seconds; /* the same, the busiest and the idlest rank's */
    double checkpoint_seconds; /* writing the end-of-epoch checkpoint (0: none) */
    double lr;                 /* learning rate at the end of the epoch */
    int has_validation;        /* --validation: the held-out samples' scores below */
    double validation_loss, validation_accuracy;
    int ranks, threads;
    const char *node_sum;      /* the node's sum the epoch's steps ended on, as NN_NODE_SUM names it
                                  (factors, early, chunked); NULL where the node sums no chunks */
} nn_epoch_stats;

/* Collective: fills the times (the epoch's: the slowest rank's, it sets the pace; the
 * sum's, the data's and the computing's: the mean over the ranks, so the shares add up;
 * the computing's also its maximum and minimum over the ranks: how unequal the ranks'
 * work was, and what a step costs a rank when all compute at once), the mean
 * training loss from the ranks' loss sums over `epoch_samples`, and samples/s for
 * `batch` samples per step. */
void nn_metrics_gather(nn_epoch_stats *st, const nn_epoch_clock *clock, double loss_sum, double epoch_samples,
                       int batch, MPI_Comm comm);

void nn_metrics_print_line(FILE *out, const nn_epoch_stats *s);

/* The metrics file (JSON Lines, one record per epoch). It stays valid JSONL through
 * any failure: a record is written whole or not at all (a write cut short, by a full
 * disk say, is undone), and a resumed run first cuts the file back to the
 * checkpoint's epoch, so the epochs redone after it appear once. */
typedef struct nn_metrics_file {
    int fd; /* -1: closed */
    const char *path;
    int last_epoch; /* after opening: the epoch of the last record kept (0: none) */
    long keep;      /* after opening: the bytes nn_metrics_cut keeps */
} nn_metrics_file;

/* Opens `path` for a run (created if missing; read and written through one
 * descriptor, so a file this process may not read is refused) and reads what it
 * holds, changing nothing else: a file holding anything else than nntrain's records is refused
 * (NN_ERR_INPUT). nn_metrics_cut, once the run has passed every check, then makes
 * it the run's: keep_epochs < 0 (a fresh run), emptied; keep_epochs >= 0 (a resumed
 * run), records of later epochs and a cut-off last line removed, the rest kept. So
 * a run refused after opening leaves the file as it was. */
int nn_metrics_open(nn_metrics_file *f, const char *path, int keep_epochs, nn_error *err);
int nn_metrics_cut(nn_metrics_file *f, nn_error *err);
/* NN_ERR_RUNTIME (the file left as it was before the call) when it cannot be written. */
int nn_metrics_append(nn_metrics_file *f, const nn_epoch_stats *s, nn_error *err);
void nn_metrics_close(nn_metrics_file *f);

/* The record as one line, newline included; returns its length (as snprintf). */
int nn_metrics_format_json(char *out, size_t cap, const nn_epoch_stats *s);

#endif
