#define _GNU_SOURCE /* sched_getaffinity */
#include "nn/placement.h"

#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
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

/* A cgroup's memory limit file, in bytes; 0 where absent or unlimited ("max"). */
static double limit_in(const char *root, const char *group, const char *file) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s/%s", root, group, file);
    FILE *f = fopen(path, "r");
    double bytes = 0;
    if (f && fscanf(f, "%lf", &bytes) != 1) bytes = 0;
    if (f) fclose(f);
    return bytes > 0 && bytes < 1e18 ? bytes : 0; /* v1 writes "unlimited" as about 2^63 */
}

/* The lowest limit on this process's cgroup (v2 and v1), 0 for none. Both the
 * group's own file and the mount's root are tried: inside a container the group's
 * path is often not visible, and the root is then the container's own group. */
static double cgroup_limit(void) {
    char line[4096], v2[4096] = "", v1[4096] = "";
    FILE *f = fopen("/proc/self/cgroup", "r");
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "0::", 3)) snprintf(v2, sizeof v2, "%s", line + 3);
        char *memory = strstr(line, ":memory:");
        if (memory) snprintf(v1, sizeof v1, "%s", memory + 8);
    }
    if (f) fclose(f);
    double found[] = {limit_in("/sys/fs/cgroup", v2, "memory.max"), limit_in("/sys/fs/cgroup", "", "memory.max"),
                      limit_in("/sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"),
                      limit_in("/sys/fs/cgroup/memory", "", "memory.limit_in_bytes")};
    double lowest = 0;
    for (size_t i = 0; i < sizeof found / sizeof found[0]; i++)
        if (found[i] > 0 && (lowest == 0 || found[i] < lowest)) lowest = found[i];
    return lowest;
}

double nn_placement_node_memory(const char **source) {
    struct sysinfo info;
    if (sysinfo(&info) != 0) return 0;
    double ram = (double)info.totalram * info.mem_unit, swap = (double)info.totalswap * info.mem_unit;
    double limit = cgroup_limit();
    *source = limit > 0 && limit < ram ? "cgroup limit" : "RAM";
    return (limit > 0 && limit < ram ? limit : ram) + swap;
}
