#define _DEFAULT_SOURCE /* MAP_ANONYMOUS and MAP_NORESERVE; gethostname */
/* MPI helpers (see nn/comm.h). */
#include "nn/comm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* "rank N on HOST: " before the message of a local failure (nn_fail_local). */
static void say_where(nn_error *err) {
    int world_rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    char where[128];
    size_t n = (size_t)snprintf(where, sizeof where, "rank %d%s%s: ", world_rank, host[0] ? " on " : "", host);
    size_t cap = sizeof err->msg;
    if (n >= cap / 2) return;
    memmove(err->msg + n, err->msg, cap - n - 1); /* the message's end may be cut, not its start */
    memcpy(err->msg, where, n);
    err->msg[cap - 1] = '\0';
}

int nn_comm_agree(MPI_Comm comm, int status, nn_error *err) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int worst = status, first_failing = status != NN_OK ? rank : size;
    MPI_Allreduce(MPI_IN_PLACE, &worst, 1, MPI_INT, MPI_MAX, comm);
    if (worst == NN_OK) return NN_OK;
    MPI_Allreduce(MPI_IN_PLACE, &first_failing, 1, MPI_INT, MPI_MIN, comm);
    if (rank == first_failing && first_failing != 0 && err->local) say_where(err);
    MPI_Bcast(err->msg, (int)sizeof err->msg, MPI_CHAR, first_failing, comm);
    err->msg[sizeof err->msg - 1] = '\0';
    err->status = worst;
    return worst;
}

uint64_t nn_comm_hash(uint64_t h, const void *bytes, size_t n) {
    const unsigned char *b = bytes;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* Every rank's `mine` against rank 0's. */
static int agree_on_hash(MPI_Comm comm, uint64_t mine, const char *what, const char *hint, nn_error *err) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    uint64_t root = mine;
    MPI_Bcast(&root, 1, MPI_UINT64_T, 0, comm);
    int status = mine == root ? NN_OK
                              : nn_fail(err, NN_ERR_INPUT, "%s differs between ranks: rank %d's is not rank 0's%s%s",
                                        what, rank, hint && *hint ? "; " : "", hint ? hint : "");
    return nn_comm_agree(comm, status, err);
}

int nn_comm_agree_same(MPI_Comm comm, const void *bytes, size_t n, const char *what, const char *hint, nn_error *err) {
    return agree_on_hash(comm, nn_comm_hash(NN_COMM_HASH_START, bytes, n) ^ n, what, hint, err);
}

int nn_comm_agree_argv(MPI_Comm comm, int argc, char **argv, nn_error *err) {
    uint64_t h = NN_COMM_HASH_START; /* each argument with its '\0': "a b" is not "ab" */
    size_t n = 0;
    for (int i = 1; i < argc; i++) {
        size_t len = strlen(argv[i]) + 1;
        h = nn_comm_hash(h, argv[i], len);
        n += len;
    }
    return agree_on_hash(comm, h ^ n, "the command line", "every rank must be given the same options", err);
}

void nn_comm_node_layout(MPI_Comm comm, int *local_ranks, int *nodes, int *on_root_node) {
    MPI_Comm node;
    int rank, local_rank = 0, local_size = 1;
    MPI_Comm_rank(comm, &rank);
    int root_here = rank == 0;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &local_rank);
        MPI_Comm_size(node, &local_size);
        MPI_Allreduce(MPI_IN_PLACE, &root_here, 1, MPI_INT, MPI_MAX, node);
        MPI_Comm_free(&node);
    }
    int leaders = local_rank == 0; /* one per node */
    MPI_Allreduce(MPI_IN_PLACE, &leaders, 1, MPI_INT, MPI_SUM, comm);
    if (local_ranks) *local_ranks = local_size;
    if (nodes) *nodes = leaders;
    if (on_root_node) *on_root_node = root_here;
}

/* Whether this process may map `bytes` more of address space now: reserved, never
 * touched, and given back (RLIMIT_AS counts the reservation; RAM does not). */
static int can_map(double bytes) {
    if (bytes <= 0 || bytes > (double)SIZE_MAX) return bytes <= 0;
    void *p = mmap(NULL, (size_t)bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return 0;
    munmap(p, (size_t)bytes);
    return 1;
}

nn_shm_room nn_comm_shm_room(MPI_Comm comm, MPI_Comm node, double bytes) {
    nn_shm_room room = {.dir = getenv("OMPI_MCA_osc_sm_backing_directory"), .need = bytes + (1 << 20), .free = -1.0};
    if (!room.dir || !*room.dir) room.dir = "/dev/shm";
    int local, rank, ranks;
    MPI_Comm_rank(node, &local);
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &ranks);
    struct statvfs st;
    if (local == 0 && statvfs(room.dir, &st) == 0) room.free = (double)st.f_bavail * (double)st.f_frsize;
    MPI_Bcast(&room.free, 1, MPI_DOUBLE, 0, node);
    int unmappable = bytes <= 0 || can_map(room.need) ? ranks : rank, on_node;
    MPI_Allreduce(&unmappable, &on_node, 1, MPI_INT, MPI_MIN, node);
    room.here = bytes <= 0 || (on_node == ranks && (room.free < 0 || room.free >= room.need));
    room.everywhere = room.here;
    MPI_Allreduce(MPI_IN_PLACE, &room.everywhere, 1, MPI_INT, MPI_MIN, comm);
    MPI_Allreduce(&unmappable, &room.unmappable, 1, MPI_INT, MPI_MIN, comm); /* any node's, for the note */
    if (room.unmappable == ranks) room.unmappable = -1;
    return room;
}
