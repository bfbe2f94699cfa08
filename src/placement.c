/* Threads per rank, the job's cores on a node and the node's memory (see placement.h). */
#define _GNU_SOURCE /* sched_getaffinity */
#include "nn/placement.h"

#include <omp.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "nn/env.h"

/* The cores this rank may run on, into *mask; their count, 0 when unknown. With
 * OMP_PROC_BIND the OpenMP runtime has already pinned this, the initial, thread to
 * one place: the cores it may spread the team over are then those of its places
 * (built from the rank's mask). */
static int rank_cores(cpu_set_t *mask) {
    CPU_ZERO(mask);
    if (omp_get_proc_bind() != omp_proc_bind_false && omp_get_num_places() > 0) {
        int ids[CPU_SETSIZE]; /* 4 KiB */
        for (int p = 0; p < omp_get_num_places(); p++) {
            int n = omp_get_place_num_procs(p);
            if (n <= 0 || n > CPU_SETSIZE) continue;
            omp_get_place_proc_ids(p, ids);
            for (int i = 0; i < n; i++)
                if (ids[i] >= 0 && ids[i] < CPU_SETSIZE) CPU_SET(ids[i], mask);
        }
        return CPU_COUNT(mask);
    }
    return sched_getaffinity(0, sizeof *mask, mask) == 0 ? CPU_COUNT(mask) : 0;
}

static int bound_cores(void) {
    cpu_set_t mask;
    return rank_cores(&mask);
}

long nn_placement_node_cores(MPI_Comm node) {
    enum { WORDS = sizeof(cpu_set_t) / sizeof(unsigned long) };
    cpu_set_t mask;
    unsigned long words[WORDS];
    int known = rank_cores(&mask) > 0;
    memcpy(words, &mask, sizeof words);
    MPI_Allreduce(MPI_IN_PLACE, words, WORDS, MPI_UNSIGNED_LONG, MPI_BOR, node);
    MPI_Allreduce(MPI_IN_PLACE, &known, 1, MPI_INT, MPI_MIN, node);
    long cores = 0;
    for (int w = 0; w < WORDS; w++) cores += __builtin_popcountl(words[w]);
    return known && cores > 0 ? cores : sysconf(_SC_NPROCESSORS_ONLN);
}

int nn_placement_threads(int requested, MPI_Comm comm, long *node_cores) {
    MPI_Comm node;
    int local_ranks = 1;
    *node_cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &local_ranks);
        *node_cores = nn_placement_node_cores(node); /* collective: every rank, whatever it was asked */
        MPI_Comm_free(&node);
    }
    if (requested > 0) return requested;
    if (nn_env("OMP_NUM_THREADS")) return omp_get_max_threads(); /* empty counts as unset, as for the knobs */
    int share = (int)(*node_cores / local_ranks);
    int cores = bound_cores();
    if (cores > 0 && cores < share) share = cores;
    return share > 0 ? share : 1;
}

void nn_placement_warn(FILE *log, int threads, int ranks_per_node, long node_cores) {
    int cores = bound_cores();
    if (cores > 0 && cores < threads)
        fprintf(log, "nntrain: warning: %d threads per rank but rank 0 is bound to %d core%s: "
                     "run mpirun with --bind-to none or --map-by slot:PE=%d\n",
                threads, cores, cores == 1 ? "" : "s", threads);
    if (node_cores > 0 && (long)ranks_per_node * threads > node_cores)
        fprintf(log, "nntrain: note: %d rank%s x %d thread%s share the %ld core%s this job may use on rank 0's node "
                     "(oversubscribed): a rank that waits for another yields its core\n",
                ranks_per_node, ranks_per_node == 1 ? "" : "s", threads, threads == 1 ? "" : "s", node_cores,
                node_cores == 1 ? "" : "s");
}

/* A number in a cgroup file, or in its line "key N" when key is given; -1 where the
 * file or line is absent or says there is no limit ("max", or v1's ~2^63). */
static double cgroup_value(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    char line[256];
    double value = -1;
    while (f && fgets(line, sizeof line, f)) {
        size_t n = key ? strlen(key) : 0;
        if (key && (strncmp(line, key, n) || line[n] != ' ')) continue;
        if (sscanf(line + n, "%lf", &value) != 1) value = -1;
        break;
    }
    if (f) fclose(f);
    return value >= 0 && value < 1e18 ? value : -1;
}

/* The lower of two limits, -1 standing for none. */
static double lower(double a, double b) { return a < 0 ? b : b < 0 ? a : a < b ? a : b; }

/* The cgroup paths in /proc/self/cgroup's text: v2's ("0::/a/b") and that of the v1
 * hierarchy holding the memory controller ("4:memory:/a/b", or co-mounted
 * "4:cpu,memory:/a/b"). */
static void cgroup_paths(const char *self, char *v2, char *v1, size_t cap) {
    v2[0] = v1[0] = '\0';
    for (const char *line = self; *line; line += strcspn(line, "\n"), line += *line == '\n') {
        char entry[4096];
        snprintf(entry, sizeof entry, "%.*s", (int)strcspn(line, "\n"), line);
        char *controllers = strchr(entry, ':'), *path = controllers ? strchr(controllers + 1, ':') : NULL;
        if (!path) continue;
        *controllers++ = '\0'; /* entry: the hierarchy's number; controllers: its list */
        *path++ = '\0';
        if (!strcmp(entry, "0") && !controllers[0]) snprintf(v2, cap, "%s", path);
        char *rest;
        for (char *c = strtok_r(controllers, ",", &rest); c; c = strtok_r(NULL, ",", &rest))
            if (!strcmp(c, "memory")) snprintf(v1, cap, "%s", path);
    }
}

/* A v1 group's limits, lowered into *limit and *swap: v1 folds the ancestors' limits
 * into the group's memory.stat, and limits memory and swap together ("memsw"; only
 * where the kernel accounts swap), so the swap it may use is the difference. */
static void v1_limits(const char *stat_file, double *limit, double *swap) {
    double memory = cgroup_value(stat_file, "hierarchical_memory_limit");
    double memsw = cgroup_value(stat_file, "hierarchical_memsw_limit");
    *limit = lower(memory, *limit);
    if (memory >= 0 && memsw >= memory) *swap = lower(memsw - memory, *swap);
}

double nn_placement_cgroup_limit(const char *self, const char *v2_root, const char *v1_root, double *swap_limit) {
    char v2[4096], v1[4096], file[8400];
    cgroup_paths(self, v2, v1, sizeof v2);
    double limit = -1;
    *swap_limit = -1;
    for (;;) { /* the group, then each parent: "/a/b", "/a", then the root "" */
        snprintf(file, sizeof file, "%s%s/memory.max", v2_root, v2);
        limit = lower(cgroup_value(file, NULL), limit);
        snprintf(file, sizeof file, "%s%s/memory.swap.max", v2_root, v2);
        *swap_limit = lower(cgroup_value(file, NULL), *swap_limit);
        char *slash = strrchr(v2, '/');
        if (!slash) break;
        *slash = '\0';
    }
    snprintf(file, sizeof file, "%s%s/memory.stat", v1_root, v1);
    v1_limits(file, &limit, swap_limit);
    snprintf(file, sizeof file, "%s/memory.stat", v1_root);
    v1_limits(file, &limit, swap_limit);
    return limit;
}

double nn_placement_node_memory(char *source, size_t cap) {
    struct sysinfo info;
    if (sysinfo(&info) != 0) return 0;
    char self[8192] = "";
    FILE *f = fopen("/proc/self/cgroup", "r");
    size_t n = f ? fread(self, 1, sizeof self - 1, f) : 0;
    self[n] = '\0';
    if (f) fclose(f);
    double swap_limit, limit = nn_placement_cgroup_limit(self, "/sys/fs/cgroup", "/sys/fs/cgroup/memory", &swap_limit);
    double ram = (double)info.totalram * info.mem_unit, swap = (double)info.totalswap * info.mem_unit;
    bool limited = limit >= 0 && limit < ram;
    if (swap_limit >= 0 && swap_limit < swap) swap = swap_limit;
    snprintf(source, cap, "%s%s", limited ? "its cgroup limit" : "RAM", swap > 0 ? " and swap" : "");
    return (limited ? limit : ram) + swap;
}

int nn_placement_check_memory(double rank_bytes, int ranks, const char *need, const char *what, nn_error *err) {
    char source[64];
    double node_bytes = nn_placement_node_memory(source, sizeof source), gib = 1024.0 * 1024.0 * 1024.0;
    if (node_bytes <= 0 || rank_bytes * ranks <= node_bytes) return NN_OK; /* unknown: let it try */
    return nn_fail(err, NN_ERR_RUNTIME, "out of memory: %s %.1f GiB a rank (%s), %.1f GiB for this node's %d rank%s; "
                   "the node has %.1f GiB (%s)", need, rank_bytes / gib, what, rank_bytes * ranks / gib, ranks,
                   ranks == 1 ? "" : "s", node_bytes / gib, source);
}
