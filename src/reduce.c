/* Node-aware gradient sum through one shared-memory window per node (see reduce.h).
 *
 * Layout of a node's window (allocated by local rank 0, found by the others with
 * MPI_Win_shared_query):  [header][shared][shared2][segment 0]...[segment L-1]: the
 * header (the barrier's flags, a cache-line pair per local rank; the chunk queues;
 * the readiness words), then twice n floats the ranks share (the exchange keeps the
 * node's one copy of the parameters and momentum there), then the segments, each n
 * floats rounded up to 64 bytes: segment l is local rank l's buffer.
 *
 * One sum: barrier (every input written) -> local rank l sums slice l over all
 * segments in the order 0..L-1 and writes the result into slice l of every segment
 * (with several nodes: into its own segment, Allreduce with the same slice on the
 * other nodes, then into the other segments) -> barrier (every slice written). Only
 * local rank l ever touches slice l between the barriers, so no locks are needed. */
#include "reduce_node.h"

#include <limits.h>
#include <omp.h>
#include <stdalign.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nn/comm.h"
#include "nn/placement.h"

static int mpi_check(int rc, nn_error *err, const char *what) {
    if (rc == MPI_SUCCESS) return NN_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return nn_fail(err, NN_ERR_RUNTIME, "gradient reducer: %s failed: %s", what, msg);
}

/* ---------------------------------------------------------------------------
 * node barrier */

/* Waits until *word holds barrier `target` or later (its flag is returned). `*polls`
 * counts over the whole barrier, not per rank. */
static unsigned wait_slot(atomic_ullong *word, uint64_t target, long *polls, int max_spins) {
    for (;;) {
        unsigned long long w = atomic_load_explicit(word, memory_order_acquire);
        if (w >> 1 >= target) return (unsigned)(w & 1u);
        pause_poll(polls, max_spins);
    }
}

/* Returns the OR of every local rank's flag. The release store publishes this rank's
 * writes; the acquire loads take everyone's. */
static int flag_barrier(nn_reducer *red, int flag) {
    uint64_t target = ++red->barriers;
    int parity = (int)(target & 1u);
    atomic_store_explicit(&red->flags[red->local_rank].slot[parity], target << 1 | (flag != 0), memory_order_release);
    unsigned any = flag != 0;
    long polls = 0;
    int spins = node_spins(red, omp_get_max_threads());
    for (int l = 0; l < red->local_size; l++)
        if (l != red->local_rank) any |= wait_slot(&red->flags[l].slot[parity], target, &polls, spins);
    return (int)any;
}

static int node_sync_or(nn_reducer *red, int flag) {
    double t = MPI_Wtime();
    /* MPI_Win_sync: the MPI-side memory barrier for the passive epoch (unified model);
     * the atomics already order the hardware, this keeps it legal MPI. */
    MPI_Win_sync(red->win);
    int any = flag;
    if (red->mpi_barrier) MPI_Allreduce(&flag, &any, 1, MPI_INT, MPI_LOR, red->node);
    else any = flag_barrier(red, flag);
    MPI_Win_sync(red->win);
    if (red->tail_len) { /* every rank has read the tail of this rank's buffer: its sum can go there */
        memcpy(red->buf + red->tail_off, red->tail, red->tail_len * sizeof(float));
        red->tail_len = 0;
    }
    red->phases.wait += MPI_Wtime() - t;
    red->phases.barriers++;
    return any;
}

static void node_sync(nn_reducer *red) { node_sync_or(red, 0); }

int nn_reducer_node_sync_or(nn_reducer *red, int flag) { return node_sync_or(red, flag); }

/* ---------------------------------------------------------------------------
 * the sum */

/* One cache line (m <= 16 floats) at offset i: the sum over all segments in the
 * order 0, 1, ..., L-1 (the same on every rank and every run), stored into segments
 * first..last-1. With m a constant 16 the loops become a few AVX instructions. */
static inline __attribute__((always_inline)) void sum_line(float *const *seg, int nl, int first, int last, size_t i, size_t m) {
    float acc[SLICE_ALIGN];
    for (size_t k = 0; k < m; k++) acc[k] = seg[0][i + k] + seg[1][i + k];
    for (int j = 2; j < nl; j++)
        for (size_t k = 0; k < m; k++) acc[k] += seg[j][i + k];
    for (int j = first; j < last; j++)
        for (size_t k = 0; k < m; k++) seg[j][i + k] = acc[k];
}

/* Sum [off, off+len) over the segments into segments first..last-1, line by line.
 * The other ranks' segments sit modified in their caches: prefetching the lines
 * this loop will write for writing moves each over once, instead of a read and
 * later an invalidation (3x faster on two ranks). Lines it only reads are
 * prefetched for reading: taking them exclusive would make their owner's next
 * write (the next backward) fetch them back. Inlined so that constant arguments
 * specialise it. */
static inline __attribute__((always_inline)) void sum_lines(float *const *seg, int nl, int first, int last,
                                                            size_t off, size_t len) {
    enum { AHEAD = 8 * SLICE_ALIGN }; /* 8 lines ahead */
    size_t i = off, end = off + len;
    for (; i + SLICE_ALIGN <= end; i += SLICE_ALIGN) {
        if (i + AHEAD < end)
            for (int j = 0; j < nl; j++) {
                if (j >= first && j < last) __builtin_prefetch(seg[j] + i + AHEAD, 1);
                else __builtin_prefetch(seg[j] + i + AHEAD, 0);
            }
        sum_line(seg, nl, first, last, i, SLICE_ALIGN);
    }
    if (i < end) sum_line(seg, nl, first, last, i, end - i);
}

/* Two ranks on a node, the common case: a + b into both, restrict-qualified (the
 * general loops above run at half this speed here). */
static void sum2_both(float *restrict a, float *restrict b, size_t n) {
    enum { AHEAD = 8 * SLICE_ALIGN };
    size_t i = 0;
    for (; i + SLICE_ALIGN <= n; i += SLICE_ALIGN) {
        if (i + AHEAD < n) {
            __builtin_prefetch(a + i + AHEAD, 1);
            __builtin_prefetch(b + i + AHEAD, 1);
        }
        for (size_t k = i; k < i + SLICE_ALIGN; k++) {
            float v = a[k] + b[k];
            a[k] = v;
            b[k] = v;
        }
    }
    for (; i < n; i++) {
        float v = a[i] + b[i];
        a[i] = v;
        b[i] = v;
    }
}

/* Two ranks, the sum into one of them: dst += other (a + b == b + a exactly, so it
 * agrees with the order the other loops use). */
static void add_into(float *restrict dst, const float *restrict other, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += other[i];
}

static void sum_range(const nn_reducer *red, size_t off, size_t len, int first, int last) {
    if (red->local_size == 2 && first == 0 && last == 2)
        sum2_both(red->segs[0] + off, red->segs[1] + off, len);
    else if (red->local_size == 2 && last == first + 1)
        add_into(red->segs[first] + off, red->segs[1 - first] + off, len);
    else
        sum_lines(red->segs, red->local_size, first, last, off, len);
}

static void copy_slice_to_others(nn_reducer *red, size_t off, size_t len) {
    double t = MPI_Wtime();
    const float *src = segment(red, red->local_rank) + off;
    for (int j = 0; j < red->local_size; j++)
        if (j != red->local_rank) memcpy(segment(red, j) + off, src, len * sizeof(float));
    red->phases.copy += MPI_Wtime() - t;
}

/* ---------------------------------------------------------------------------
 * API */

float *nn_reducer_buffer(nn_reducer *red) { return red->buf; }
nn_reduce_mode nn_reducer_mode(const nn_reducer *red) { return red->mode; }
const char *nn_reducer_note(const nn_reducer *red) { return red->note; }
int nn_reducer_nodes(const nn_reducer *red) { return red->nodes; }
int nn_reducer_spins(const nn_reducer *red) { return node_spins(red, omp_get_max_threads()); }

void nn_reducer_sum(nn_reducer *red) {
    if (red->mode == NN_REDUCE_SERIAL || red->n == 0) return;
    if (red->mode == NN_REDUCE_FLAT) {
        nn_codec_allreduce(red->codec, red->buf, 0, red->n, red->comm);
        return;
    }
    size_t off, len;
    slice_of(red, red->local_rank, &off, &len);
    node_sync(red); /* every rank's input is written */
    double t = MPI_Wtime();
    if (len > 0) {
        if (red->cross == MPI_COMM_NULL) {
            sum_range(red, off, len, 0, red->local_size);
        } else {
            /* same slice bounds on every node (nodes are uniform): combine the node sums */
            sum_range(red, off, len, red->local_rank, red->local_rank + 1);
            nn_codec_allreduce(red->codec, red->buf, off, len, red->cross);
            copy_slice_to_others(red, off, len);
        }
    }
    red->phases.sum += MPI_Wtime() - t;
    node_sync(red); /* every slice is in every segment */
}

/* ---------------------------------------------------------------------------
 * the sum in two halves, with the caller's update of its slice in between */

void nn_reducer_slice(const nn_reducer *red, size_t *offset, size_t *count) {
    if (red->mode == NN_REDUCE_SHARED) {
        slice_of(red, red->local_rank, offset, count);
    } else {
        *offset = 0;
        *count = red->n;
    }
}

void nn_reducer_reduce_scatter(nn_reducer *red) {
    if (red->mode != NN_REDUCE_SHARED) {
        nn_reducer_sum(red);
        return;
    }
    size_t off, len;
    slice_of(red, red->local_rank, &off, &len);
    node_sync(red); /* every rank's input is written */
    if (len == 0) return;
    double t = MPI_Wtime();
    sum_range(red, off, len, red->local_rank, red->local_rank + 1);
    if (red->cross != MPI_COMM_NULL) nn_codec_allreduce(red->codec, red->buf, off, len, red->cross);
    red->phases.sum += MPI_Wtime() - t;
}

void nn_reducer_local(const nn_reducer *red, int *local_rank, int *local_size) {
    int shared = red->mode == NN_REDUCE_SHARED;
    *local_rank = shared ? red->local_rank : 0;
    *local_size = shared ? red->local_size : 1;
}

void nn_reducer_barrier(nn_reducer *red) {
    if (red->mode == NN_REDUCE_SHARED) node_sync(red);
}

void nn_reducer_allgather(nn_reducer *red, const float *src, size_t n_src) {
    if (red->mode != NN_REDUCE_SHARED) return;
    size_t off, len;
    slice_of(red, red->local_rank, &off, &len);
    size_t split = n_src < off ? off : n_src > off + len ? off + len : n_src; /* src below, own segment above */
    double t = MPI_Wtime();
    for (int j = 0; j < red->local_size; j++) {
        if (j == red->local_rank) continue; /* the owner has its slice already */
        float *seg = segment(red, j);
        if (split > off) memcpy(seg + off, src + off, (split - off) * sizeof(float));
        if (off + len > split) memcpy(seg + split, red->buf + split, (off + len - split) * sizeof(float));
    }
    red->phases.copy += MPI_Wtime() - t;
    node_sync(red); /* every slice is in every segment */
}

const float *nn_reducer_segment(const nn_reducer *red, int local_rank) {
    return red->mode == NN_REDUCE_SHARED ? segment(red, local_rank) : NULL;
}

float *nn_reducer_shared(nn_reducer *red) { return red->mode == NN_REDUCE_SHARED ? red->shared : NULL; }
float *nn_reducer_shared2(nn_reducer *red) { return red->mode == NN_REDUCE_SHARED ? red->shared + red->stride : NULL; }

int nn_reducer_barrier_or(nn_reducer *red, int flag) {
    return red->mode == NN_REDUCE_SHARED ? node_sync_or(red, flag) : flag;
}

void nn_reducer_spread(nn_reducer *red, size_t offset, size_t count) {
    if (red->mode != NN_REDUCE_SHARED) return;
    size_t off, len;
    slice_of(red, red->local_rank, &off, &len);
    size_t begin = offset > off ? offset : off, end = offset + count < off + len ? offset + count : off + len;
    if (begin < end) copy_slice_to_others(red, begin, end - begin);
}

void nn_reducer_phases(const nn_reducer *red, nn_reduce_phases *out) { *out = red->phases; }

static int alloc_private(nn_reducer *red, nn_error *err) {
    red->private_buf = aligned_alloc(ALIGN, round_up(red->n * sizeof(float), ALIGN) + ALIGN);
    if (!red->private_buf) return nn_fail(err, NN_ERR_RUNTIME, "gradient reducer: out of memory (%zu floats)", red->n);
    memset(red->private_buf, 0, red->n * sizeof(float));
    red->buf = red->private_buf;
    return NN_OK;
}

/* The bytes of the node's shared window: a segment per local rank, the barrier, room to align. */
static size_t header_bytes(const nn_reducer *red) {
    return (size_t)red->local_size * (sizeof(node_flag) + sizeof(node_ready)) +
           2 * (size_t)(red->local_size + 1) * sizeof(node_queue);
}

static size_t window_bytes(const nn_reducer *red) {
    size_t header = header_bytes(red);
    return alignof(node_flag) + header + (size_t)(red->local_size + 2) * round_up(red->n, SLICE_ALIGN) * sizeof(float);
}

/* Collective over comm: does every node's window fit in the free space of OpenMPI's
 * backing directory (/dev/shm)? When it does not, MPI_Win_allocate_shared fails with
 * "MPI_ERR_INTERN: internal error" (Docker's default /dev/shm is 64 MiB), so the sum
 * goes through MPI instead, and red->note says why. Local rank 0 of a node looks. */
static int shm_fits(nn_reducer *red, MPI_Comm comm) {
    nn_shm_room room = nn_comm_shm_room(comm, red->node, (double)window_bytes(red));
    if (room.unmappable >= 0)
        snprintf(red->note, sizeof red->note, "as rank %d's address-space limit (ulimit -v) leaves no room to map "
                 "the shared-memory sum's %.0f MiB", room.unmappable, room.need / 1048576.0);
    else if (!room.here)
        snprintf(red->note, sizeof red->note, "as %s has %.0f MiB free and a shared-memory sum needs %.0f MiB",
                 room.dir, room.free / 1048576.0, room.need / 1048576.0);
    else if (!room.everywhere)
        snprintf(red->note, sizeof red->note, "as another node's %s is too small for a shared-memory sum", room.dir);
    return room.everywhere;
}

/* The shared window of this node: local rank 0 allocates all of it, with room to align. */
static int alloc_shared(nn_reducer *red, nn_error *err) {
    red->stride = round_up(red->n, SLICE_ALIGN);
    size_t header = header_bytes(red);
    MPI_Aint bytes = 0;
    if (red->local_rank == 0) bytes = (MPI_Aint)window_bytes(red);
    /* first what may fail on one rank alone, agreed on by the node: a rank that returned
     * here alone would leave the others waiting in the window's collectives */
    red->segs = malloc((size_t)red->local_size * sizeof *red->segs);
    int short_of_memory = !red->segs, any_short;
    MPI_Allreduce(&short_of_memory, &any_short, 1, MPI_INT, MPI_LOR, red->node);
    if (any_short) return nn_fail(err, NN_ERR_RUNTIME, "gradient reducer: out of memory");
    void *mine = NULL, *base = NULL;
    int status = mpi_check(MPI_Win_allocate_shared(bytes, 1, MPI_INFO_NULL, red->node, &mine, &red->win), err,
                           "MPI_Win_allocate_shared");
    if (status) return status;
    MPI_Aint size;
    int disp;
    status = mpi_check(MPI_Win_shared_query(red->win, 0, &size, &disp, &base), err, "MPI_Win_shared_query");
    if (status) return status;
    status = mpi_check(MPI_Win_lock_all(MPI_MODE_NOCHECK, red->win), err, "MPI_Win_lock_all");
    if (status) return status;
    red->locked = 1; /* one passive epoch for the reducer's life: MPI_Win_sync needs one */
    uintptr_t p = round_up((uintptr_t)base, alignof(node_flag));
    red->flags = (node_flag *)p;
    red->queues = (node_queue *)(p + (size_t)red->local_size * sizeof(node_flag));
    red->ready = (node_ready *)(red->queues + 2 * (red->local_size + 1));
    /* for node_spins: the job's cores on this node, not the machine's (a batch job may
     * hold a few) */
    red->cores = nn_placement_node_cores(red->node);
    red->shared = (float *)(p + header);
    red->seg0 = red->shared + 2 * red->stride; /* two shared vectors */
    for (int l = 0; l < red->local_size; l++) red->segs[l] = segment(red, l);
    red->buf = red->segs[red->local_rank];
    atomic_init(&red->flags[red->local_rank].slot[0], 0);
    atomic_init(&red->flags[red->local_rank].slot[1], 0);
    for (int set = 0; set < 2; set++) {
        node_queue *queues = queue_set(red, (uint64_t)set);
        atomic_init(&queues[red->local_rank].next, 0);
        if (red->local_rank == 0) atomic_init(&queues[red->local_size].next, 0);
    }
    atomic_init(&red->ready[red->local_rank].word, 0);
    memset(red->buf, 0, red->stride * sizeof(float)); /* first touch by the owner (NUMA) */
    size_t off, len;
    slice_of(red, red->local_rank, &off, &len);
    memset(red->shared + off, 0, len * sizeof(float)); /* the shared vectors' slices too */
    memset(red->shared + red->stride + off, 0, len * sizeof(float));
    MPI_Win_sync(red->win);
    MPI_Barrier(red->node);
    MPI_Win_sync(red->win);
    return NN_OK;
}

/* Splits comm into nodes; fills local rank/size and the node count. Returns whether
 * the nodes all have the same number of ranks. */
static int split_nodes(nn_reducer *red, MPI_Comm comm, int rank, const nn_reducer_opts *opts, nn_error *err,
                       int *uniform) {
    int rc = opts->fake_node > 0
                 ? MPI_Comm_split(comm, rank % opts->fake_node, rank, &red->node)
                 : MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &red->node);
    int status = mpi_check(rc, err, "splitting the communicator by node");
    if (status) return status;
    MPI_Comm_rank(red->node, &red->local_rank);
    MPI_Comm_size(red->node, &red->local_size);
    int v[2] = {red->local_size, -red->local_size}; /* max, -min */
    int leaders = red->local_rank == 0;
    MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_MAX, comm);
    MPI_Allreduce(MPI_IN_PLACE, &leaders, 1, MPI_INT, MPI_SUM, comm);
    red->nodes = leaders;
    *uniform = v[0] == -v[1];
    return NN_OK;
}

int nn_reducer_create_opts(nn_reducer **out, MPI_Comm comm, size_t n, const nn_reducer_opts *opts,
                           nn_error *err) {
    static const nn_reducer_opts defaults = {0};
    if (!opts) opts = &defaults;
    *out = NULL;
    int status = NN_OK, rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    nn_reducer *red = calloc(1, sizeof *red);
    if (!red) status = nn_fail(err, NN_ERR_RUNTIME, "gradient reducer: out of memory");
    if (!status && n > INT_MAX) status = nn_fail(err, NN_ERR_INPUT, "gradient reducer: %zu floats is too many for MPI", n);
    status = nn_comm_agree(comm, status, err); /* no rank enters the collectives below alone */
    if (status) {
        free(red);
        return status;
    }
    *red = (nn_reducer){.n = n, .nodes = 1, .comm = MPI_COMM_NULL, .node = MPI_COMM_NULL,
                        .cross = MPI_COMM_NULL, .win = MPI_WIN_NULL, .mpi_barrier = opts->mpi_barrier};

    int uniform = 1;
    if (size > 1 && !opts->force_flat) status = split_nodes(red, comm, rank, opts, err, &uniform);
    int shared = !status && size > 1 && !opts->force_flat && uniform && red->local_size > 1;
    if (shared) shared = shm_fits(red, comm); /* else MPI_Allreduce: the note says why */
    if (status) {
        /* nothing more */
    } else if (size == 1) {
        red->mode = NN_REDUCE_SERIAL;
        status = alloc_private(red, err);
    } else if (!shared) {
        red->mode = NN_REDUCE_FLAT;
        status = mpi_check(MPI_Comm_dup(comm, &red->comm), err, "MPI_Comm_dup");
        if (!status) status = alloc_private(red, err);
    } else {
        red->mode = NN_REDUCE_SHARED;
        if (red->nodes > 1)
            status = mpi_check(MPI_Comm_split(comm, red->local_rank, rank, &red->cross), err,
                               "splitting the communicator by local rank");
        if (!status) status = alloc_shared(red, err);
    }
    if (!shared && red->node != MPI_COMM_NULL) MPI_Comm_free(&red->node); /* not needed */
    if (!status && (red->mode == NN_REDUCE_FLAT || red->cross != MPI_COMM_NULL))
        status = nn_codec_create(&red->codec, opts->compress, n, err);
    status = nn_comm_agree(comm, status, err);
    if (status) {
        nn_reducer_free(red);
        return status;
    }
    *out = red;
    return NN_OK;
}

int nn_reducer_create(nn_reducer **out, MPI_Comm comm, size_t n, nn_error *err) {
    return nn_reducer_create_opts(out, comm, n, NULL, err);
}

void nn_reducer_free(nn_reducer *red) {
    if (!red) return;
    if (red->win != MPI_WIN_NULL) {
        if (red->locked) MPI_Win_unlock_all(red->win);
        MPI_Win_free(&red->win);
    }
    if (red->cross != MPI_COMM_NULL) MPI_Comm_free(&red->cross);
    if (red->node != MPI_COMM_NULL) MPI_Comm_free(&red->node);
    if (red->comm != MPI_COMM_NULL) MPI_Comm_free(&red->comm);
    nn_codec_free(red->codec);
    free(red->private_buf);
    free(red->segs);
    free(red);
}
