/* The dataset file (HDF5) and each rank's shard of it.
 *
 * Layout (see README.md): /train/images uint8 [N, ...] whose trailing dims multiply
 * to the input width, /train/labels uint8 [N], the same under /test, and root
 * attributes num_classes (int) and source (string). */
#ifndef NN_DATASET_H
#define NN_DATASET_H

#include <mpi.h>
#include <stdint.h>

#include "nn/error.h"

typedef struct nn_shard {
    uint8_t *images; /* [count * dim], row per sample */
    uint8_t *labels; /* [count] */
    long count;      /* samples held by this rank */
    long offset;     /* index in the file of this rank's first sample */
    long total;      /* samples in the whole split (after any limit) */
    int dim;         /* values per sample */
    int image[3];    /* a sample as an image, c x h x w: [..., H, W] -> (the rest) x H x W, [D] -> 1 x 1 x D */
    int num_classes; /* from the file's root attribute */
} nn_shard;

/* The contiguous block of `total` samples that rank `rank` of `nranks` owns:
 * [floor(rank*total/nranks), floor((rank+1)*total/nranks)). */
void nn_shard_range(long total, int rank, int nranks, long *offset, long *count);

/* Local, before MPI_Init. OpenMPI's MPI-IO (OMPIO) opens a shared-file-pointer
 * component with every file, and across nodes the one it picks (lockedfile) makes
 * FILE-JOBID-PID.lock beside the dataset: with a node-local copy at the same path on
 * each node (a dataset staged to local disks) the other nodes cannot see it, and the
 * start hung until --timeout, the lock file left in the user's directory; a read-only
 * directory cannot hold it at all. The ranks read with explicit offsets, never a
 * shared file pointer, so that component is left out (OMPI_MCA_sharedfp=^lockedfile),
 * unless the user chose the components (OMPI_MCA_sharedfp set). */
void nn_dataset_before_mpi_init(void);

/* Collective over comm: every rank opens `path` with the MPI-IO driver and reads
 * only its hyperslab of /<split>/images and /<split>/labels (split is "train" or
 * "test"). limit > 0 uses only the first `limit` samples. Validates shapes, label
 * range and that every rank gets at least one sample; the status is agreed across
 * ranks, so all ranks return the same status (and rank 0 the message). */
int nn_shard_read(const char *path, const char *split, long limit, MPI_Comm comm,
                  nn_shard *out, nn_error *err);

/* The same for rows [first, end) of the split's first `limit` rows (limit <= 0: all),
 * where a negative first or end counts back from that end (end 0: up to it): a
 * training set without its last N rows is (limit, 0, -N), those N rows (limit, -N, 0).
 * Sample indices (offset, messages) stay those of the file. */
int nn_shard_read_rows(const char *path, const char *split, long limit, long first, long end, MPI_Comm comm,
                       nn_shard *out, nn_error *err);

/* The same, but this rank's rows are whole parts of the split cut into `parts`
 * contiguous parts (as nn_shard_range cuts it): parts [rank * parts / nranks,
 * (rank + 1) * parts / nranks), the virtual shards of deterministic mode; `parts`
 * 0 is nn_shard_read_rows. */
int nn_shard_read_parts(const char *path, const char *split, long limit, long first, long end, int parts,
                        MPI_Comm comm, nn_shard *out, nn_error *err);
void nn_shard_free(nn_shard *shard);

/* dst[d] = src[d] / 255 as the network sees its input (the one conversion: the
 * deterministic mode's factors unpack the bytes with it, and must match the gather). */
void nn_pixels_to_floats(const uint8_t *src, float *dst, int dim);

/* Asks the memory system for row `row` of the shard's images, without waiting. */
void nn_shard_prefetch(const nn_shard *shard, uint32_t row);

/* Gather samples order[0..n) of the shard into x (pixel / 255, row per sample) and
 * their labels: the batch assembly of one training or evaluation step. */
void nn_shard_gather(const nn_shard *shard, const uint32_t *order, int n, float *x, uint8_t *labels);

#endif
