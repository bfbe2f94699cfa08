/* The node-aware reducer's insides, shared by reduce.c (the window, the barrier, the
 * sum by slices) and reduce_chunks.c (the sum in chunks, begun early or after a
 * barrier). Not part of the API: see nn/reduce.h. */
#ifndef NN_REDUCE_NODE_H
#define NN_REDUCE_NODE_H

#define _POSIX_C_SOURCE 200809L /* sched_yield, nanosleep */
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "nn/reduce.h"

enum {
    ALIGN = 64,        /* bytes: buffers and slices start on a cache line */
    SLICE_ALIGN = 16,  /* floats per cache line */
    SPINS = 1000,      /* busy polls before the barrier yields the core (~25 us) */
    YIELDS = 20000     /* then yields (several ms) before it sleeps between polls */
};

/* The node barrier: each local rank posts its arrivals in a cache line of its own and
 * waits until every rank's line shows the same barrier. A central counter takes one
 * contended atomic add per rank, serialised on one line (16 ranks arriving together
 * wait in line for all 16); here an arrival is one plain store, and the waiters read
 * the L lines in parallel. (For much larger L a tree would read fewer lines; one
 * node's ranks are few.) Two slots a rank, by the barrier's parity: a rank can run
 * at most one barrier ahead of a waiter, so the slot a waiter reads is not
 * overwritten before it has read it, and a flag posted with an arrival (OR-ed over
 * the node: "a weight went non-finite") survives until every rank has seen it.
 * A slot holds barrier number * 2 + flag; 64 bits never wrap. */
typedef struct node_flag {
    _Alignas(128) atomic_ullong slot[2]; /* 128: the adjacent-line prefetcher pairs lines */
} node_flag;
/* nn_reducer_sum_chunks: local rank l's queue of the chunks of its slice; the next
 * chunk to take (by l first, then by any rank that has run out of its own). Two sets
 * by the sum's parity, so that a queue can be refilled for the next sum while the
 * node's ranks still take from this one (see nn_reducer_sum_chunks_with). */
typedef struct node_queue {
    _Alignas(128) atomic_ullong next;
} node_queue;
/* nn_reducer_post_ready: from which offset on local rank l's input to the coming
 * chunked sum is final, tagged with that sum's number (upper 32 bits). */
typedef struct node_ready {
    _Alignas(128) atomic_ullong word;
} node_ready;
struct nn_reducer {
    nn_reduce_mode mode;
    size_t n;
    float *buf;           /* this rank's buffer */
    int nodes;
    /* FLAT / SERIAL */
    MPI_Comm comm;        /* a dup of the caller's comm (FLAT) */
    float *private_buf;
    /* SHARED */
    MPI_Comm node;        /* ranks sharing this node's window */
    MPI_Comm cross;       /* same local rank on every node; MPI_COMM_NULL with one node */
    nn_codec *codec;      /* the sum between nodes (FLAT: the whole sum), maybe compressed */
    MPI_Win win;
    int local_rank, local_size;
    size_t stride;        /* floats from one segment to the next */
    float *seg0;
    float **segs;         /* segs[l] = segment l */
    float *shared;        /* n more floats the node's ranks share (nn_reducer_shared) */
    node_flag *flags;     /* flags[l]: local rank l's arrivals */
    node_queue *queues;   /* queues[set * (L + 1) + l]: local rank l's chunks (nn_reducer_sum_chunks); [L]: the work items */
    node_ready *ready;    /* ready[l]: local rank l's final input (nn_reducer_post_ready) */
    uint64_t chunk_sums;  /* chunked sums this rank has begun */
    int early;            /* chunked sums begin as the input comes ready, without a barrier */
    float tail[NN_REDUCER_TAIL_MAX]; /* nn_reducer_sum_chunks: the tail's sum, stored into */
    size_t tail_off, tail_len;       /* this rank's buffer after the next barrier */
    uint64_t barriers;    /* barriers this rank has passed */
    nn_reduce_phases phases;
    int mpi_barrier;
    long cores;           /* the cores the job may use on this node (nn_placement_node_cores) */
    int locked;           /* inside MPI_Win_lock_all */
    char note[160];       /* why a node's ranks do not sum in shared memory ("": they do, or one rank) */
};

static inline size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* One more look gone by: spins while the others are probably running; then yields,
 * as the rank waited for may need this core; and a rank that late may be stopped or
 * hung: then sleeps between looks rather than burn a core until the watchdog ends
 * the job. */
/* Busy polls a wait may spend before it yields: none when the node's ranks, `threads`
 * each (they all run as many as this one), outnumber the job's cores there, as a
 * spinning rank would only delay the one it waits for. Asked at each wait, so that a
 * run whose thread tuning settles on fewer threads spins again. */
static inline int node_spins(const struct nn_reducer *red, int threads) {
    return red->cores > 0 && (long)red->local_size * threads > red->cores ? 0 : SPINS;
}

static inline void pause_poll(long *polls, int max_spins) {
    const struct timespec nap = {0, 100000}; /* 0.1 ms */
    if (*polls < max_spins) cpu_relax();
    else if (*polls < max_spins + YIELDS) sched_yield();
    else nanosleep(&nap, NULL);
    ++*polls;
}

static inline float *segment(const nn_reducer *red, int l) { return red->seg0 + (size_t)l * red->stride; }

/* Slice l of [0, n): equal shares rounded up to whole cache lines; the last may be
 * short and trailing ones empty. */
static inline void slice_of(const nn_reducer *red, int l, size_t *off, size_t *len) {
    size_t share = round_up((red->n + (size_t)red->local_size - 1) / (size_t)red->local_size, SLICE_ALIGN);
    size_t begin = (size_t)l * share, end = begin + share;
    if (begin > red->n) begin = red->n;
    if (end > red->n) end = red->n;
    *off = begin;
    *len = end - begin;
}

/* The queues of chunked sum number `sum` (one set by its parity): L chunk queues and
 * the work items' counter. */
static inline node_queue *queue_set(const nn_reducer *red, uint64_t sum) {
    return red->queues + (size_t)(sum & 1u) * (size_t)(red->local_size + 1);
}

/* The node barrier (reduce.c), timed as waiting; it also ORs `flag` over the node. */
int nn_reducer_node_sync_or(nn_reducer *red, int flag);

#endif
