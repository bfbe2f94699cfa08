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
 * checkpoint's epoch, so the epochs redone after it appear once -- where the file
 * shows it is the resumed run's (nn_metrics_resume). */
typedef struct nn_metrics_file {
    int fd; /* -1: closed */
    const char *path;
    int last_epoch; /* after opening: the epoch of the last record kept (0: none) */
    long keep;      /* after opening: the bytes nn_metrics_cut keeps */
    unsigned long long dev, ino; /* the file opened: each append checks the path still names it */
} nn_metrics_file;

/* What a resumed run's checkpoint knows of its last completed epoch, which the
 * record of that epoch kept in the file must match bit for bit (the record has
 * both with all 17 digits). */
typedef struct nn_metrics_resume {
    int epoch;            /* the checkpoint's completed epochs: the records of later ones are cut */
    double train_loss;    /* that epoch's mean training loss; < 0: not recorded (older checkpoints) */
    double test_accuracy; /* that epoch's; < 0: not recorded */
} nn_metrics_resume;

/* Opens `path` for a run (created if missing; read and written through one
 * descriptor, so a file this process may not read is refused) and reads what it
 * holds, changing nothing else: a file holding anything else than nntrain's records is refused
 * (NN_ERR_INPUT). nn_metrics_cut, once the run has passed every check, then makes
 * it the run's: resume NULL (a fresh run), emptied; else (a resumed run), records
 * of epochs after resume->epoch and a cut-off last line removed, the rest kept.
 * A resumed run's file is refused (NN_ERR_INPUT) where it is another run's: its
 * record of resume->epoch differs from what the checkpoint knows of that epoch;
 * or it has no record of that epoch (nor, for epoch 0, any to compare) but has
 * records of later ones, which nothing shows to be this run's. A file with no
 * records of that epoch or later (new, empty, or missing the last records, whose
 * writes failed) is kept and appended to. So a run refused after opening leaves
 * the file as it was. `dir_fd`: the directory the run locked the file in, held (the
 * lock's), where the file is opened or made; never one put at the path since, where
 * another run may lock a file of that name (-1: none held, the path is opened). */
int nn_metrics_open(nn_metrics_file *f, int dir_fd, const char *path, const nn_metrics_resume *resume,
                    nn_error *err);
int nn_metrics_cut(nn_metrics_file *f, nn_error *err);
/* NN_ERR_RUNTIME (the file left as it was before the call) when it cannot be
 * written, or when the path no longer names the file opened (removed or replaced
 * during the run: nothing is written, neither to the file opened nor to the new one). */
int nn_metrics_append(nn_metrics_file *f, const nn_epoch_stats *s, nn_error *err);
void nn_metrics_close(nn_metrics_file *f);

/* The record as one line, newline included; returns its length (as snprintf). */
int nn_metrics_format_json(char *out, size_t cap, const nn_epoch_stats *s);

#endif
