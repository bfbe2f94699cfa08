/* Per-epoch measurements: gathered over the ranks, printed as a line on stdout and,
 * on request, written as JSON Lines (one object per epoch) for scripts and plots. */
#ifndef NN_METRICS_H
#define NN_METRICS_H

#include <mpi.h>
#include <stdio.h>

/* One rank's clock over an epoch's training steps (seconds). */
typedef struct nn_epoch_clock {
    double steps;      /* the steps, checkpoints excluded */
    double exchange;   /* inside the gradient sum, what backward did not hide */
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
    double data_seconds;       /* the ranks' mean time assembling batches */
    double checkpoint_seconds; /* writing the end-of-epoch checkpoint (0: none) */
    double lr;                 /* learning rate at the end of the epoch */
    int has_validation;        /* --validation: the held-out samples' scores below */
    double validation_loss, validation_accuracy;
    int ranks, threads;
} nn_epoch_stats;

/* Collective: fills the times (the epoch's: the slowest rank's, it sets the pace; the
 * sum's and the data's: the mean over the ranks, so the shares add up), the mean
 * training loss from the ranks' loss sums over `epoch_samples`, and samples/s for
 * `batch` samples per step. */
void nn_metrics_gather(nn_epoch_stats *st, const nn_epoch_clock *clock, double loss_sum, double epoch_samples,
                       int batch, MPI_Comm comm);

void nn_metrics_print_line(FILE *out, const nn_epoch_stats *s);
/* Returns non-zero when the record could not be written (disk full, say). */
int nn_metrics_write_json(FILE *out, const nn_epoch_stats *s);

#endif
