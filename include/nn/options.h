/* nntrain's command line: parsed into one struct, validated strictly (a malformed
 * number is an error, not a zero). The same parse runs on every rank, so every rank
 * reaches the same verdict without talking. */
#ifndef NN_OPTIONS_H
#define NN_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "nn/error.h"
#include "nn/model.h"
#include "nn/optim.h"

#define NN_PATH_MAX 1024

/* Which options the command line set explicitly: a resumed run takes the rest from
 * the checkpoint, and an explicit value that conflicts with it is an error. */
enum nn_given {
    NN_GIVEN_DATA = 1 << 0,
    NN_GIVEN_LAYERS = 1 << 1,
    NN_GIVEN_ACTIVATION = 1 << 2,
    NN_GIVEN_LOSS = 1 << 3,
    NN_GIVEN_EPOCHS = 1 << 4,
    NN_GIVEN_BATCH = 1 << 5,
    NN_GIVEN_LR = 1 << 6,
    NN_GIVEN_SCHEDULE = 1 << 7,
    NN_GIVEN_MOMENTUM = 1 << 8,
    NN_GIVEN_WEIGHT_DECAY = 1 << 9,
    NN_GIVEN_SEED = 1 << 10,
    NN_GIVEN_TRAIN_LIMIT = 1 << 11
};

/* How the ranks sum their gradients each step. */
typedef enum nn_allreduce {
    NN_ALLREDUCE_SHM,    /* shared memory within a node, MPI_Allreduce between nodes */
    NN_ALLREDUCE_MPI,    /* one MPI_Allreduce after backward */
    NN_ALLREDUCE_OVERLAP /* one MPI_Iallreduce per layer, started during backward */
} nn_allreduce;
const char *nn_allreduce_name(nn_allreduce a);

typedef struct nn_train_options {
    char data[NN_PATH_MAX];
    char metrics[NN_PATH_MAX];    /* empty: none */
    char checkpoint[NN_PATH_MAX]; /* empty: none */
    char resume[NN_PATH_MAX];     /* empty: start afresh */
    long checkpoint_every;        /* steps; 0: only at epoch ends */
    nn_model_spec spec;
    int epochs;
    int batch_size;            /* global, split over the ranks */
    float lr, momentum, weight_decay;
    nn_schedule schedule;
    uint64_t seed;
    long train_limit;          /* 0: all */
    int threads;               /* 0: OMP_NUM_THREADS, else cores / ranks on the node */
    nn_allreduce allreduce;    /* how the ranks sum their gradients */
    int show_help, show_version;
    unsigned given;            /* nn_given bits */
} nn_train_options;

void nn_options_defaults(nn_train_options *opt);

/* NN_OK (possibly with show_help/show_version set) or NN_ERR_INPUT with a message. */
int nn_options_parse(int argc, char **argv, nn_train_options *opt, nn_error *err);

void nn_options_print_help(FILE *out);

#endif
