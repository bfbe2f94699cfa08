/* MPI helpers: agreeing on errors so that no rank ever waits for a rank that gave up. */
#ifndef NN_COMM_H
#define NN_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/error.h"

/* Collective. Every rank passes its own status (and err holding its message when
 * status != NN_OK). Returns the worst status of all ranks; when it is not NN_OK,
 * every rank's err holds the message of the lowest-numbered failing rank, so rank 0
 * can print it. Where rank 0 itself did not fail and the failure was local
 * (nn_fail_local), the message begins with the rank and host that met it ("rank 5 on
 * node12: ..."): a file missing on another node's disk is named by a path that rank
 * 0's user sees. */
int nn_comm_agree(MPI_Comm comm, int status, nn_error *err);

/* FNV-1a over `n` bytes, 64 bits, carried on from `h` (NN_COMM_HASH_START to begin):
 * to tell copies apart, not to resist forgery. Local. */
#define NN_COMM_HASH_START 14695981039346656037ULL
uint64_t nn_comm_hash(uint64_t h, const void *bytes, size_t n);

/* Collective: NN_OK where the `n` bytes are the same on every rank (a hash of them,
 * compared with rank 0's), else NN_ERR_INPUT on every rank: "WHAT differs between
 * ranks: rank R's is not rank 0's" (R the lowest such rank), followed by `hint`.
 * Every rank must be given the same options, data and checkpoint: one that reads
 * another file (a node-local copy, a relative path in another directory) would
 * train another model or wait forever in a collective the others never reach. */
int nn_comm_agree_same(MPI_Comm comm, const void *bytes, size_t n, const char *what, const char *hint, nn_error *err);

/* Collective: nn_comm_agree_same on argv[1..argc-1] (an MPMD launch may give ranks
 * different options, and every rank parses its own). */
int nn_comm_agree_argv(MPI_Comm comm, int argc, char **argv, nn_error *err);

/* Collective: how many ranks share this node (for a default thread count), how many
 * nodes (shared-memory domains) the ranks of comm span, and whether this rank shares
 * a node with rank 0; any may be NULL. One split of comm answers all three. */
void nn_comm_node_layout(MPI_Comm comm, int *local_ranks, int *nodes, int *on_root_node);

/* Whether a node's shared window of `bytes` fits where OpenMPI backs it
 * (OMPI_MCA_osc_sm_backing_directory, else /dev/shm; Docker's default is 64 MiB):
 * there, `free` bytes (-1 when unknown: then it is tried), with 1 MiB left for
 * OpenMPI's own; and in the address space of each of the node's ranks, every one
 * of which maps the whole window (`unmappable`: the first rank of comm, on any node,
 * whose limit, `ulimit -v`, leaves too little, else -1: OpenMPI crashes in the
 * window's set-up where one rank's mmap fails). `everywhere`: on every node of comm. */
typedef struct nn_shm_room {
    const char *dir;
    double need, free;
    int unmappable;
    int here, everywhere;
} nn_shm_room;

/* Collective over comm; `node` is this node's communicator (its rank 0 looks).
 * bytes <= 0: this node needs no window (a rank alone), so it has room. */
nn_shm_room nn_comm_shm_room(MPI_Comm comm, MPI_Comm node, double bytes);

#endif
