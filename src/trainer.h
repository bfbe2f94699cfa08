/* Internal to the trainer (train.c, the loop; trainer_setup.c, building and
 * tearing down): everything one training run holds. */
#ifndef NN_TRAINER_H
#define NN_TRAINER_H

#include <mpi.h>
#include <stdio.h>

#include "nn/checkpoint.h"
#include "nn/dataset.h"
#include "nn/evaluate.h"
#include "nn/exact_sum.h"
#include "nn/exchange.h"
#include "nn/factor_sum.h"
#include "nn/global_product.h"
#include "nn/model.h"
#include "nn/optim.h"
#include "nn/metrics.h"
#include "nn/options.h"
#include "nn/outputs.h"
#include "nn/rng.h"
#include "nn/thread_tuning.h"
#include "nn/tuner.h"

typedef struct trainer {
    nn_train_options opt; /* as given */
    nn_run_config cfg;    /* the run: opt.run, or merged with the checkpoint on resume */
    MPI_Comm comm;
    int rank, nranks, threads; /* threads: in use (the tuning may settle on one) */
    int ranks_per_node;        /* this rank's node: how many ranks share its memory */
    int on_root_node;          /* and whether rank 0 is one of them */
    long node_cores;           /* the cores the job may use on this rank's node */
    nn_thread_tuning tuning;
    nn_tuner sum_tuning;  /* the chunked or the factored sum (trainer_tuning.c), once the threads are chosen */
    bool timing_sums;     /* this step is timed for sum_tuning */
    FILE *log;            /* rank 0 only (NULL elsewhere) */
    nn_metrics_file metrics;          /* rank 0, if asked (fd -1 otherwise) */
    nn_output_lock checkpoint_lock, metrics_lock; /* rank 0: held for the run's life */
    nn_checkpoint ck;     /* the checkpoint resumed from, if any */
    nn_shard train, test, validation; /* validation: empty without --validation */
    nn_model model;
    nn_sgd sgd;
    nn_exchange *exchange;
    nn_factor_sum *factors; /* the node's factored sum, where it is used (NULL: the chunked sum) */
    char factored_name[96]; /* the header's name for it, its tiles counted */
    nn_evaluator eval;
    uint32_t *order;      /* this epoch's permutation of the local shard */
    uint32_t *batch_rows; /* the shard rows of this step's batch */
    uint8_t *labels;
    uint64_t *sample_ids; /* the global (training-set) index of each batch row: dropout's key */
    long steps_per_epoch;
    nn_progress progress;
    nn_rng shuffle_rng;   /* state after this epoch's shuffle: saved in checkpoints */
    double loss_sum;      /* this rank's summed training loss so far this epoch */
    double samples_trained; /* by this run, all ranks together, in completed epochs */
    int vs_first, vs_end; /* deterministic mode: this rank's virtual shards */
    nn_exact_sum exact;   /* deterministic mode: the step's fixed-point sum (its loss grid only, with `global`) */
    nn_global_product *global; /* deterministic mode on a dense network: the product over the global batch */
    int exact_store;      /* deterministic mode: this micro-step's first parts store (exact_step.c) */
    size_t exact_last;    /* the offset of the last part handed over */
    double first_loss;    /* mean training loss of this run's first epoch (0: none yet): divergence bound */
    double done_loss;     /* mean training loss of the last completed epoch (< 0: unknown): saved in
                             checkpoints, where a resumed run finds its metrics record by it */
    int complete;         /* resumed a run that has no epoch left to train: nothing to do */
} trainer;

/* Before the setup: an output given as a symbolic link to a file becomes
 * that file's path (nn_output_follow_link), so the run writes through the link and
 * keeps it. */
void trainer_follow_output_links(trainer *t);

/* Collective. Merges a resume, reads the shards, builds model, optimizer, exchange
 * and buffers, and restores the checkpoint's state; the status is agreed. On
 * failure call trainer_free all the same. */
int trainer_setup(trainer *t, nn_error *err);
void trainer_free(trainer *t); /* collective */

/* The first steps' measured choices (trainer_tuning.c): around every step; collective
 * on the steps where a choice is made (the same on every rank). */
void trainer_tuning_begin_step(trainer *t);
void trainer_tuning_end_step(trainer *t, double seconds, bool disturbed);
/* Where the factored sum exists: start choosing between it and the chunked sum
 * (measure), or keep one (factored or not); from then on the steps use it. */
void trainer_sum_tuning_start(trainer *t, bool factored, bool measure);
/* The node's sum the steps use now, as NN_NODE_SUM names it (factors, early, chunked);
 * NULL where the node sums no chunks (one rank, 2 ranks with private weights, MPI). */
const char *trainer_node_sum(const trainer *t);
/* This step's sum: whether the factors make the dense weight gradients (where they
 * exist), or backward makes them, freeing each layer to the sum begun early. */
void trainer_use_sum(trainer *t, bool factored);

/* Rank 0: the run's header line on t->log (trainer_report.c). */
void trainer_print_header(const trainer *t);
/* Training has diverged: NN_ERR_RUNTIME, one line naming what, where, and whether a
 * checkpoint (the last good one) is there (trainer_report.c). Any rank. */
int trainer_diverged(const trainer *t, const char *what, long step, nn_error *err);

/* A fresh permutation of the local shard for `epoch`, from (seed, epoch, rank). */
void trainer_shuffle(trainer *t, int epoch);

/* This rank's part of micro-batch `micro` of the epoch (counted from its start):
 * its rows, sample ids, inputs and labels; returns how many. Starts fetching the
 * next one's rows from memory (batch.c). */
int trainer_load_batch(trainer *t, long micro);
/* After loading micro-step `micro` of a step (n rows): the key of dropout and --shift, and the shift made. */
void trainer_key_batch(trainer *t, int n, int micro);

/* Collective, at the start of a resumed run: the epoch in progress continues where
 * it stopped (same permutation, the loss summed so far). */
int trainer_restore_epoch(trainer *t, nn_error *err);

/* Deterministic mode (exact_step.c). A fresh permutation of each of this rank's
 * virtual shards for `epoch`, from (seed, epoch, shard). */
void trainer_exact_shuffle(trainer *t, int epoch);

/* Deterministic mode: step `s` of the epoch up to the summed gradients, every
 * virtual shard on its own, their sum exact (nn/exact_sum.h); leaves the mean
 * gradient in model.grads, the summed control words in the exchange, and adds the
 * step's loss (rank 0). Collective; returns the seconds spent in the sum. */
double trainer_exact_gradients(trainer *t, long s, double *data_seconds);
/* The same on a dense network (`global`), the SGD step with learning rate lr and
 * the max-norm constraint included: the node's one copy of the parameters is
 * updated tile by tile; *nonfinite set as nn_sgd_step's. */
double trainer_global_step(trainer *t, long s, float lr, double *data_seconds, int *nonfinite);

/* Setup's part for deterministic mode: checks (one line each) and the sum's buffers. */
int trainer_exact_setup(trainer *t, nn_error *err);
/* Collective, once the model and the exchange are built: on a dense network, the
 * product over the global batch (global_product.h) replaces the fixed-point sum. */
int trainer_global_setup(trainer *t, nn_error *err);

#endif
