/* nntrain's command line: what the run is (nn_run_config, which a checkpoint
 * records) plus how this launch runs it (files, threads, the gradient exchange).
 * The same parse runs on every rank, so every rank reaches the same verdict
 * without talking. */
#ifndef NN_OPTIONS_H
#define NN_OPTIONS_H

#include <stdio.h>

#include "nn/error.h"
#include "nn/exchange.h"
#include "nn/run.h"

typedef struct nn_train_options {
    nn_run_config run;
    unsigned given;               /* nn_given bits: settings the command line set */
    char metrics[NN_PATH_MAX];    /* empty: none */
    char checkpoint[NN_PATH_MAX]; /* empty: none */
    char resume[NN_PATH_MAX];     /* empty: start afresh */
    long checkpoint_every;        /* steps; 0: only at epoch ends */
    int threads;                  /* 0: OMP_NUM_THREADS, else cores / ranks on the node */
    int thread_tuning;            /* time the steps on all threads and on one, keep the faster */
    nn_exchange_mode exchange;    /* --allreduce: how the ranks sum their gradients */
    double timeout;               /* seconds without progress before the job ends; 0: never */
    int show_help, show_version;
} nn_train_options;

void nn_options_defaults(nn_train_options *opt);

/* NN_OK (possibly with show_help/show_version set) or NN_ERR_INPUT with a message. */
int nn_options_parse(int argc, char **argv, nn_train_options *opt, nn_error *err);

void nn_options_print_help(FILE *out);

/* One run setting, by its long option name ("batch-size"), from text, checked exactly
 * as the command line checks it (a checkpoint's stored settings go through here too,
 * so a file cannot hold what the command line would refuse). `label` names the value
 * in the message ("--lr", "/optimizer/lr"). NN_ERR_INPUT for an unknown option. */
int nn_run_setting_parse(nn_run_config *run, const char *option, const char *label, const char *value,
                         nn_error *err);

#endif
