#include "nn/comm.h"

int nn_comm_agree(MPI_Comm comm, int status, nn_error *err) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int worst = status, first_failing = status != NN_OK ? rank : size;
    MPI_Allreduce(MPI_IN_PLACE, &worst, 1, MPI_INT, MPI_MAX, comm);
    if (worst == NN_OK) return NN_OK;
    MPI_Allreduce(MPI_IN_PLACE, &first_failing, 1, MPI_INT, MPI_MIN, comm);
    MPI_Bcast(err->msg, (int)sizeof err->msg, MPI_CHAR, first_failing, comm);
    err->msg[sizeof err->msg - 1] = '\0';
    err->status = worst;
    return worst;
}

void nn_comm_node_layout(MPI_Comm comm, int *local_ranks, int *nodes) {
    MPI_Comm node;
    int local_rank = 0, local_size = 1;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &local_rank);
        MPI_Comm_size(node, &local_size);
        MPI_Comm_free(&node);
    }
    int leaders = local_rank == 0; /* one per node */
    MPI_Allreduce(MPI_IN_PLACE, &leaders, 1, MPI_INT, MPI_SUM, comm);
    if (local_ranks) *local_ranks = local_size;
    if (nodes) *nodes = leaders;
}
