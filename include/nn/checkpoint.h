/* Checkpoints: everything needed to continue training exactly, in one HDF5 file
 * (layout in docs/formats.md and src/checkpoint_format.h's table, readable with h5dump). Written to a
 * temporary file beside the target, flushed to disk, then renamed into place: a
 * crash at any moment leaves either the old checkpoint or the new one, never a
 * broken file. This module knows the file format only; when to save is the
 * trainer's business (nn_checkpoint_due in run.h). */
#ifndef NN_CHECKPOINT_H
#define NN_CHECKPOINT_H

#include <mpi.h>
#include <stdint.h>

#include "nn/error.h"
#include "nn/model.h"
#include "nn/optim.h"
#include "nn/rng.h"
#include "nn/run.h"

#define NN_CHECKPOINT_FORMAT 1
/* Networks with convolutions are written as format 2 (format 1 plus the layer kinds
 * and shapes), every other network still as format 1: older builds read those and
 * refuse a format-2 file by its version. This build reads both. */
#define NN_CHECKPOINT_FORMAT_CONV 2

/* Where training stands. */
typedef struct nn_progress {
    int epochs_completed; /* the epoch in progress is epochs_completed + 1 */
    long step_in_epoch;   /* steps already taken in the epoch in progress */
    long global_step;     /* steps taken since the start of training */
} nn_progress;

/* What a save records, as this rank holds it (rank 0's model and optimizer are
 * written; every rank contributes its shuffle generator and loss sum). */
typedef struct nn_train_state {
    const nn_run_config *config;
    const nn_model *model;
    const nn_sgd *sgd;
    const nn_progress *progress;
    const nn_rng *shuffle_rng;
    double loss_partial; /* this rank's training-loss sum so far this epoch */
    double test_accuracy; /* of the last completed epoch; < 0: none yet */
    double train_loss;    /* the same epoch's mean training loss, as its metrics record has it; < 0: none */
    double best_accuracy; /* the run's best test accuracy so far, of epoch best_epoch; < 0: none yet */
    int best_epoch;
} nn_train_state;

/* A checkpoint as read back. */
typedef struct nn_checkpoint {
    int format_version;
    char version[32];       /* nntrain version that wrote it */
    nn_run_config config;   /* the run it belongs to */
    nn_progress progress;
    double test_accuracy;   /* of its last completed epoch; < 0: not recorded */
    double train_loss;      /* the same epoch's mean training loss; < 0: not recorded (older files) */
    double best_accuracy;   /* the run's best test accuracy, of epoch best_epoch; older files: the last
                               epoch's (all they record); < 0: none */
    int best_epoch;
    int ranks;              /* rank count it was written with */
    int rows;               /* of the two below: ranks, or 1 (deterministic mode: the run's) */
    uint32_t *rng_states;   /* [rows][4]: each rank's shuffle generator */
    double *loss_partials;  /* [rows]: each rank's training-loss sum so far this epoch */
    size_t n_params;
    float *params, *velocity;
} nn_checkpoint;

/* Collective. Rank 0 gathers the ranks' generator states and loss sums and writes
 * `path` atomically; all ranks return the same status. *seconds (may be NULL) gets
 * the wall time of the whole operation. */
int nn_checkpoint_save(const char *path, const nn_train_state *state, MPI_Comm comm, double *seconds, nn_error *err);

/* Local: may a checkpoint replace what `path` holds now? Yes when nothing (or an
 * empty file) is there or it is an nntrain checkpoint (of any format); any other
 * file is NN_ERR_INPUT, so --checkpoint never destroys a file of another kind. The
 * path rule itself (not an input, a regular file, a writable directory) is
 * nn/outputs.h's. The file found replaceable and its directory are what this
 * process's saves may write: nn_checkpoint_save replaces only that file (or the one
 * it wrote last), unchanged, in that directory, and fails (NN_ERR_RUNTIME, the file
 * kept) where another was put there, it was written into, or the directory moved. */
int nn_checkpoint_check_replaceable(const char *path, nn_error *err);

/* Collective, after every rank loaded `path` into `ck`: NN_OK where they all read the
 * same checkpoint (its progress, generators, loss sums and arrays), else NN_ERR_INPUT
 * on every rank. Each rank opens the file itself: a node-local copy that differs, or a
 * relative path from another directory, would start ranks at other steps. */
int nn_checkpoint_agree(const char *path, const nn_checkpoint *ck, MPI_Comm comm, nn_error *err);

/* Local, with the checkpoint's lock held: removes `tmp`, a killed write's temporary
 * file of checkpoint `path`, where it is one (nn_output_remove_hdf5_leftover). */
int nn_checkpoint_remove_leftover(const char *path, const char *tmp, nn_error *err);

/* Local (any rank, no MPI). Validates format version, structure and checksums;
 * NN_ERR_INPUT with a message naming the file and the problem otherwise.
 * `readers_on_node`: how many ranks of this node load it at once, each into its own
 * memory; NN_ERR_RUNTIME, before any array is read, when their copies of the
 * parameters and momentum cannot fit in the node's memory. */
int nn_checkpoint_load(const char *path, int readers_on_node, nn_checkpoint *ck, nn_error *err);
void nn_checkpoint_free(nn_checkpoint *ck);

/* CRC-32 of a float buffer, as stored in the file. */
uint32_t nn_checksum(const float *data, size_t n);

#endif
