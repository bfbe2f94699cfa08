/* Per-epoch measurements: printed as a line on stdout and, on request, written as
 * JSON Lines (one object per epoch) for scripts and plots. */
#ifndef NN_METRICS_H
#define NN_METRICS_H

#include <stdio.h>

typedef struct nn_epoch_stats {
    int epoch, epochs;
    double train_loss, test_loss, test_accuracy; /* accuracy in [0, 1] */
    double epoch_seconds;      /* training steps only, slowest rank */
    double eval_seconds;
    double samples_per_second; /* the whole job: all ranks together */
    double allreduce_seconds;  /* slowest rank's time inside MPI_Allreduce */
    double data_seconds;       /* slowest rank's time assembling batches */
    double checkpoint_seconds; /* writing the end-of-epoch checkpoint (0: none) */
    double lr;                 /* learning rate at the end of the epoch */
    int ranks, threads;
} nn_epoch_stats;

void nn_metrics_print_line(FILE *out, const nn_epoch_stats *s);
void nn_metrics_write_json(FILE *out, const nn_epoch_stats *s);

#endif
