/* nntrain: parse the command line, run the training loop, map errors to exit codes.
 * Every rank parses its argv; they agree that it is the same, and so reach the same
 * verdict; only rank 0 prints. */
#include <mpi.h>
#include <stdio.h>

#include "nn/cli.h"
#include "nn/comm.h"
#include "nn/dataset.h"
#include "nn/env.h"
#include "nn/hint.h"
#include "nn/options.h"
#include "nn/signals.h"
#include "nn/train.h"
#include "nn/version.h"
#include "nn/watchdog.h"

static int finish(int status) {
    status = nn_cli_stdout_status("nntrain", status); /* before a wait that the watchdog may end with _exit */
    nn_watchdog_beat(-1, NN_PHASE_FINISH); /* a lost node can hold MPI_Finalize too */
    MPI_Finalize();
    nn_watchdog_end();
    return status;
}

int main(int argc, char **argv) {
    /* Before MPI_Init, which can wait forever for a lost node: a stop signal from now
     * on is a stop request, and the watchdog watches this process alone until the
     * node's board exists (with the default timeout if the options are bad). */
    nn_signals_install();
    nn_train_options opt;
    nn_error err = {0};
    int bad_options = nn_options_parse(argc, argv, &opt, &err); /* needs no MPI */
    nn_train_options defaults;
    nn_options_defaults(&defaults);
    nn_watchdog_begin("nntrain", bad_options ? defaults.timeout : opt.timeout);
    nn_dataset_before_mpi_init(); /* no lock file beside the dataset (nn/dataset.h) */
    int provided; /* OpenMP threads compute, only the main thread calls MPI (the watchdog's thread never does) */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    nn_signals_install(); /* again: MPI_Init may install handlers of its own */
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);

    /* every rank parsed its own argv: they agree only if they were given the same */
    int status = nn_comm_agree_argv(MPI_COMM_WORLD, argc, argv, &err);
    if (status || bad_options) {
        if (rank == 0) fprintf(stderr, "nntrain: %s\n", err.msg);
        return finish(NN_ERR_INPUT);
    }
    if (opt.show_help || opt.show_version) {
        if (rank == 0 && opt.show_help) nn_options_print_help(stdout);
        if (rank == 0 && opt.show_version) printf("nntrain %s\n", NN_VERSION);
        return finish(NN_OK);
    }

    /* every rank checks its own environment (mpirun -x may give some ranks other values) */
    status = nn_comm_agree(MPI_COMM_WORLD, nn_env_check(&err), &err);
    if (!status) status = nn_env_agree(MPI_COMM_WORLD, &err);
    if (status) {
        if (rank == 0) fprintf(stderr, "nntrain: %s\n", err.msg);
        return finish(status);
    }
    nn_train_result result;
    status = nn_train(&opt, MPI_COMM_WORLD, rank == 0 ? stdout : NULL, &result, &err);
    char shown[NN_ONE_LINE_MAX];
    if (rank == 0 && result.checkpoints)
        printf("checkpoints: %d written to %s, %.3fs each on average\n", result.checkpoints,
               nn_one_line(opt.checkpoint, shown, sizeof shown), result.checkpoint_seconds / result.checkpoints);
    if (status) {
        if (rank == 0) fprintf(stderr, "nntrain: %s\n", err.msg);
        return finish(status);
    }
    if (rank == 0 && !result.complete) { /* else it said "nothing to do" */
        printf("done: %d epoch%s, final test accuracy %.2f%%, best %.2f%% (epoch %d), "
               "%.2fs training, %.0f samples/s\n",
               result.epochs_run, result.epochs_run == 1 ? "" : "s", 100.0 * result.final_accuracy, 100.0 * result.best_accuracy,
               result.best_epoch, result.train_seconds, result.samples_per_second);
        nn_hint_input hint = {result.train_seconds, result.allreduce_seconds, result.allreduce_wait_seconds,
                              result.ranks_per_node, result.threads, result.node_cores};
        nn_layout_hint(stdout, &hint);
    }
    return finish(NN_OK);
}
