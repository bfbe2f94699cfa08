#define _GNU_SOURCE /* sched_getaffinity */
#include "nn/placement.h"

#include <omp.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "nn/comm.h"

/* Cores this rank may run on; 0 when unknown. With OMP_PROC_BIND the OpenMP runtime
 * has already pinned this, the initial, thread to one place: the cores it may spread
 * the team over are then those of its places (built from the rank's mask). */
static int bound_cores(void) {
    if (omp_get_proc_bind() != omp_proc_bind_false && omp_get_num_places() > 0) {
        int cores = 0;
        for (int p = 0; p < omp_get_num_places(); p++) cores += omp_get_place_num_procs(p);
        return cores;
    }
    cpu_set_t mask;
    return sched_getaffinity(0, sizeof mask, &mask) == 0 ? CPU_COUNT(&mask) : 0;
}

int nn_placement_threads(int requested, MPI_Comm comm) {
    int local_ranks;
    nn_comm_node_layout(comm, &local_ranks, NULL); /* collective: call on every rank */
    if (requested > 0) return requested;
    if (getenv("OMP_NUM_THREADS")) return omp_get_max_threads();
    int share = (int)(sysconf(_SC_NPROCESSORS_ONLN) / local_ranks);
    int cores = bound_cores();
    if (cores > 0 && cores < share) share = cores;
    return share > 0 ? share : 1;
}

void nn_placement_warn(FILE *log, int threads) {
    int cores = bound_cores();
    if (cores > 0 && cores < threads)
        fprintf(log, "nntrain: warning: %d threads per rank but rank 0 is bound to %d core%s: "
                     "run mpirun with --bind-to none or --map-by slot:PE=%d\n",
                threads, cores, cores == 1 ? "" : "s", threads);
}
