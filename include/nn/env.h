/* nntrain's environment variables: choices between code paths that give the same
 * results (for measurements and tests: NN_NODE_SUM, NN_NODE_PARAMS, NN_EXACT_SUM,
 * NN_GEMM_PACK, NN_TUNE_BLOCK, NN_FACTOR_ITEMS, NN_FACTOR_MIN_TILE), a test hook
 * (NNTRAIN_STOP_AT_STEP). The tools check them all at startup (nn_env_check), so a
 * misspelt value, or a misspelt name (within two typing slips of a knob's, or in
 * another case), stops the run with a one-line error instead of quietly taking the
 * default. OpenMP's OMP_NUM_THREADS is checked too: a count, or a list of counts,
 * each 1..1024 as --threads. An empty value counts as unset (job scripts export VAR=
 * for "no choice"). */
#ifndef NN_ENV_H
#define NN_ENV_H

#include <mpi.h>

#include "nn/error.h"

/* The variable's value; NULL where it is unset or empty. */
const char *nn_env(const char *name);

/* A count-valued variable (NN_TUNE_BLOCK, NN_FACTOR_ITEMS, NN_FACTOR_MIN_TILE,
 * NNTRAIN_STOP_AT_STEP): its value, or `unset` where it is unset, empty or not a
 * valid value (nn_env_check reports those). */
long nn_env_count(const char *name, long unset);

/* NN_ERR_INPUT with "environment: NAME: no such variable; did you mean KNOB?" for the
 * first name that misspells a knob, or "environment: NAME=VALUE: ..." for the first
 * knob whose value is not one it takes; NN_OK when all are fine. */
int nn_env_check(nn_error *err);

/* Collective: NN_OK where every rank has the same value (or none; "auto" is none) of
 * each knob that picks a collective path (NN_NODE_SUM, NN_NODE_PARAMS, NN_EXACT_SUM); else
 * NN_ERR_INPUT on every rank, naming the knob. */
int nn_env_agree(MPI_Comm comm, nn_error *err);

#endif
