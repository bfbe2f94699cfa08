/* CUnit under MPI: every rank runs the suite; the run fails when ANY rank failed. */
#ifndef NN_CUNIT_MPI_H
#define NN_CUNIT_MPI_H

#include <mpi.h>

#include "cunit_run.h"

static inline int nn_run_suite_all_ranks(const char *name, CU_TestInfo *tests) {
    int failed = nn_run_suite(name, tests);
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return failed;
}

#endif
