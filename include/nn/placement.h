/* Where a rank runs: how many OpenMP threads it uses, given the cores of its node
 * and the cores mpirun bound it to; the cores the job has on a node; and the memory
 * a node can give its ranks (RAM, a cgroup's limit, swap), checked before a run. */
#ifndef NN_PLACEMENT_H
#define NN_PLACEMENT_H

#include <mpi.h>
#include <stdio.h>

#include "nn/error.h"

/* Collective over comm. Threads per rank: `requested` if > 0, else OMP_NUM_THREADS
 * if set, else this rank's share of the cores the job may use on its node, never
 * more than the cores it is bound to, so that ranks x threads does not oversubscribe
 * the node. *node_cores gets those cores (nn_placement_node_cores). */
int nn_placement_threads(int requested, MPI_Comm comm, long *node_cores);

/* Collective over `node`, a node's ranks: the cores they may run on together (the
 * union of their masks: mpirun's bindings, a Slurm job's cpuset, taskset), or the
 * node's online cores where a mask is unknown. Fewer than the machine's cores in a
 * batch job that holds part of a node. */
long nn_placement_node_cores(MPI_Comm node);

/* Warns on `log` when `threads` exceed the cores this rank is bound to (mpirun
 * binds each rank to one core by default), with the mpirun option that fixes it;
 * and notes when the node's ranks x threads exceed its `node_cores`. */
void nn_placement_warn(FILE *log, int threads, int ranks_per_node, long node_cores);

/* Local. The most memory this node can give its ranks, in bytes: its RAM, or less
 * where a cgroup limits it (Slurm's --mem, a container), plus the swap it may use.
 * An upper bound, so a run that needs more cannot finish here. `source` gets what the
 * figure is ("RAM and swap", "its cgroup limit", ...); 0 where unknown. */
double nn_placement_node_memory(char *source, size_t cap);

/* Local: NN_OK where `ranks` ranks of `rank_bytes` each fit in the node's memory
 * (nn_placement_node_memory), else NN_ERR_RUNTIME: "out of memory: NEED 2.0 GiB a
 * rank (WHAT), 4.0 GiB for this node's 2 ranks; the node has 1.0 GiB (RAM)". */
int nn_placement_check_memory(double rank_bytes, int ranks, const char *need, const char *what, nn_error *err);

/* The lowest memory limit (-1: none) over a cgroup and its ancestors, and the same
 * for swap: `self` is /proc/self/cgroup's text, `v2_root` and `v1_root` where the
 * hierarchies are mounted (/sys/fs/cgroup, /sys/fs/cgroup/memory; the tests give a
 * tree of their own). Slurm puts --mem on the job's and the step's groups, not the
 * task's; v2 is walked from the group up (a group not visible, as a container's own,
 * finds no file and the root is read), v1 folds the ancestors into the group's
 * hierarchical_memory_limit (and memory with swap into hierarchical_memsw_limit). */
double nn_placement_cgroup_limit(const char *self, const char *v2_root, const char *v1_root, double *swap_limit);

#endif
