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
#define _POSIX_C_SOURCE 200809L /* sched_yield, nanosleep */
#include "nn/reduce.h"

#include <limits.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nn/comm.h"
#ifdef _OPENMP
#include <omp.h>
#endif

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
    int spins;            /* busy polls per barrier wait: 0 when the node is oversubscribed */
    int locked;           /* inside MPI_Win_lock_all */
    char note[160];       /* why a node's ranks do not sum in shared memory ("": they do, or one rank) */
};

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

static int mpi_check(int rc, nn_error *err, const char *what) {
    if (rc == MPI_SUCCESS) return NN_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return nn_fail(err, NN_ERR_RUNTIME, "gradient reducer: %s failed: %s", what, msg);
}

/* ---------------------------------------------------------------------------
 * node barrier */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* One more look gone by: spins while the others are probably running; then yields,
 * as the rank waited for may need this core; and a rank that late may be stopped or
 * hung: then sleeps between looks rather than burn a core until the watchdog ends
 * the job. */
static void pause_poll(long *polls, int max_spins) {
    const struct timespec nap = {0, 100000}; /* 0.1 ms */
    if (*polls < max_spins) cpu_relax();
    else if (*polls < max_spins + YIELDS) sched_yield();
    else nanosleep(&nap, NULL);
    ++*polls;
}

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
    for (int l = 0; l < red->local_size; l++)
        if (l != red->local_rank) any |= wait_slot(&red->flags[l].slot[parity], target, &polls, red->spins);
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

/* ---------------------------------------------------------------------------
 * the sum */

static float *segment(const nn_reducer *red, int l) { return red->seg0 + (size_t)l * red->stride; }

/* Slice l of [0, n): equal shares rounded up to whole cache lines; the last may be
 * short and trailing ones empty. */
static void slice_of(const nn_reducer *red, int l, size_t *off, size_t *len) {
    size_t share = round_up((red->n + (size_t)red->local_size - 1) / (size_t)red->local_size, SLICE_ALIGN);
    size_t begin = (size_t)l * share, end = begin + share;
    if (begin > red->n) begin = red->n;
    if (end > red->n) end = red->n;
    *off = begin;
    *len = end - begin;
}

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

/* ---------------------------------------------------------------------------
 * the sum in chunks, each handed to the caller as it is summed, the chunks shared
 * out as the ranks come free */

/* The sum over all segments of [off, off+len) (len <= one block), in the order
 * 0, 1, ..., L-1 as sum_line, into out[0..len). Reads only: every line it reads is
 * prefetched for reading (its owner writes it again in the next backward). */
static void sum_into(float *const *seg, int nl, size_t off, size_t len, size_t pf_end, float *restrict out) {
    enum { AHEAD = 8 * SLICE_ALIGN };
    /* one cache line as one vector (GCC's vector extension: one AVX-512 register, or
     * pieces of it on narrower targets); lanes are added in the same order as above */
    typedef float line_t __attribute__((vector_size(SLICE_ALIGN * sizeof(float))));
    size_t i = 0;
    if ((off % SLICE_ALIGN) == 0) /* lines start on cache lines: every chunk but the tail */
        for (; i + SLICE_ALIGN <= len; i += SLICE_ALIGN) {
            size_t p = off + i;
            if (p + AHEAD < pf_end)
                for (int j = 0; j < nl; j++) __builtin_prefetch(seg[j] + p + AHEAD, 0);
            line_t acc = *(const line_t *)(seg[0] + p) + *(const line_t *)(seg[1] + p);
            for (int j = 2; j < nl; j++) acc += *(const line_t *)(seg[j] + p);
            *(line_t *)(out + i) = acc;
        }
    for (; i < len; i++) {
        float acc = seg[0][off + i] + seg[1][off + i];
        for (int j = 2; j < nl; j++) acc += seg[j][off + i];
        out[i] = acc;
    }
}

/* Floats per chunk: about 8 chunks a slice, whole cache lines, 512-8192 floats. */
static size_t chunk_floats(size_t share) {
    size_t c = round_up(share / 8 + 1, SLICE_ALIGN);
    return c < 512 ? 512 : c > 8192 ? 8192 : c;
}

/* The queues of chunked sum number `sum` (one set by its parity): L chunk queues and
 * the work items' counter. */
static node_queue *queue_set(const nn_reducer *red, uint64_t sum) {
    return red->queues + (size_t)(sum & 1u) * (size_t)(red->local_size + 1);
}

/* A readiness word: sum number + 1 above (0: nothing posted yet), an offset below. */
static unsigned long long ready_tag(uint64_t sum) { return (sum + 1) & 0xffffffffu; }

/* From which offset on every rank's input to chunked sum `sum` is final: the highest
 * offset the ranks have posted, n while one has posted nothing for this sum. The
 * acquire loads take the posters' writes below their words. */
static size_t ready_from(const nn_reducer *red, uint64_t sum) {
    size_t from = 0;
    for (int l = 0; l < red->local_size; l++) {
        unsigned long long w = atomic_load_explicit(&red->ready[l].word, memory_order_acquire);
        if (w >> 32 != ready_tag(sum)) return red->n;
        size_t off = (size_t)(w & 0xffffffffu);
        if (off > from) from = off;
    }
    return from;
}

void nn_reducer_post_ready(nn_reducer *red, size_t offset) {
    if (!red->early) return;
    MPI_Win_sync(red->win);
    atomic_store_explicit(&red->ready[red->local_rank].word, ready_tag(red->chunk_sums) << 32 | offset,
                          memory_order_release);
}

void nn_reducer_set_early(nn_reducer *red, int early) {
    if (red->mode != NN_REDUCE_SHARED) return;
    int all = early && nn_reducer_can_sum_chunks(red);
    MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_LAND, red->node); /* one choice for the node */
    red->early = all;
}

int nn_reducer_early(const nn_reducer *red) { return red->early; }

typedef enum take_result { TAKEN, NONE_READY, ALL_TAKEN } take_result;

/* Takes the next chunk of [0, n_chunked) that lies at or above `ready` (where every
 * rank's input is final): from this rank's own queue first, then the others' from
 * the next rank on. A queue hands out its slice's chunks from the top down, the order
 * in which backward finishes them (chunk boundaries stay on whole cache lines). */
static take_result take_chunk(node_queue *queues, const nn_reducer *red, size_t n_chunked, size_t chunk,
                              size_t ready, size_t *off, size_t *len) {
    take_result none = ALL_TAKEN;
    for (int i = 0; i < red->local_size; i++) {
        int q = (red->local_rank + i) % red->local_size;
        size_t s_off, s_len;
        slice_of(red, q, &s_off, &s_len);
        if (s_off >= n_chunked) continue;
        if (s_off + s_len > n_chunked) s_len = n_chunked - s_off;
        size_t count = (s_len + chunk - 1) / chunk;
        atomic_ullong *next = &queues[q].next;
        unsigned long long k = atomic_load_explicit(next, memory_order_relaxed);
        while (k < count) {
            size_t lo = s_off + (count - 1 - (size_t)k) * chunk;
            if (lo < ready) {
                none = NONE_READY;
                break;
            }
            if (atomic_compare_exchange_weak_explicit(next, &k, k + 1, memory_order_relaxed, memory_order_relaxed)) {
                *off = lo;
                *len = s_off + s_len - lo < chunk ? s_off + s_len - lo : chunk;
                return TAKEN;
            }
        }
    }
    return none;
}

int nn_reducer_can_sum_chunks(const nn_reducer *red) {
    return red->mode == NN_REDUCE_SHARED && red->cross == MPI_COMM_NULL && red->local_size >= 2;
}

/* The work items, one at a time to whichever rank asks first; on this thread. */
static unsigned run_items(atomic_ullong *next, const nn_chunk_work *work) {
    unsigned bad = 0;
    for (;;) {
        unsigned long long i = atomic_fetch_add_explicit(next, 1, memory_order_relaxed);
        if (i >= (unsigned long long)work->n_items) return bad;
        bad |= work->item(work->item_ctx, (int)i);
    }
}

/* Sums [b, b + m) over the node's buffers and hands it to fn, except the parts in
 * the skip ranges (sorted by offset). */
static unsigned sum_block(nn_reducer *red, size_t b, size_t m, size_t pf_end, const nn_chunk_work *work,
                          nn_chunk_fn fn, void *ctx, float *sums) {
    unsigned bad = 0;
    size_t at = b, end = b + m;
    for (int k = 0; work && k < work->n_skip && at < end; k++) {
        size_t s0 = work->skip[2 * k], s1 = s0 + work->skip[2 * k + 1];
        if (s1 <= at || s0 >= end) continue;
        if (s0 > at) {
            sum_into(red->segs, red->local_size, at, s0 - at, pf_end, sums);
            bad |= fn(ctx, sums, at, s0 - at);
        }
        at = s1;
    }
    if (at < end) {
        sum_into(red->segs, red->local_size, at, end - at, pf_end, sums);
        bad |= fn(ctx, sums, at, end - at);
    }
    return bad;
}

/* The few words every rank reads: each rank sums them itself, into its own buffer
 * after the next barrier (node_sync_or). */
static void sum_tail(nn_reducer *red, size_t n_chunked) {
    size_t tail = red->n - n_chunked;
    if (!tail) return;
    float sums[NN_REDUCER_TAIL_MAX] __attribute__((aligned(64))); /* sum_into's lines are aligned */
    sum_into(red->segs, red->local_size, n_chunked, tail, 0, sums);
    memcpy(red->tail, sums, tail * sizeof(float));
    red->tail_off = n_chunked;
    red->tail_len = tail;
}

/* Chunks of sum `sum` until every one is taken, summed and handed to fn; waits (in
 * the barrier's manner) while the chunks left are not ready. Returns the OR of fn's
 * results; *waited: the seconds spent waiting. */
static unsigned take_and_sum(nn_reducer *red, uint64_t sum, size_t n_chunked, const nn_chunk_work *work,
                             nn_chunk_fn fn, void *ctx, int early, double *waited) {
    enum { BLOCK = 1024 };
    float sums[BLOCK] __attribute__((aligned(64)));
    size_t share, ignored;
    slice_of(red, 0, &ignored, &share);
    const size_t chunk = chunk_floats(share);
    node_queue *queues = queue_set(red, sum);
    size_t ready = early ? ready_from(red, sum) : 0, off, len;
    unsigned bad = 0;
    long polls = 0;
    double since = -1.0;
    *waited = 0.0;
    for (take_result got; (got = take_chunk(queues, red, n_chunked, chunk, ready, &off, &len)) != ALL_TAKEN;) {
        if (got == NONE_READY) { /* the ranks still in backward have not finished these layers */
            if (since < 0.0) since = MPI_Wtime();
            pause_poll(&polls, red->spins);
            ready = ready_from(red, sum);
            continue;
        }
        if (since >= 0.0) *waited += MPI_Wtime() - since;
        since = -1.0;
        polls = 0;
        for (size_t b = off; b < off + len; b += BLOCK) {
            size_t m = off + len - b < BLOCK ? off + len - b : BLOCK;
            bad |= sum_block(red, b, m, off + len, work, fn, ctx, sums);
        }
    }
    return bad;
}

unsigned nn_reducer_sum_chunks(nn_reducer *red, size_t n_chunked, nn_chunk_fn fn, void *ctx) {
    return nn_reducer_sum_chunks_with(red, n_chunked, NULL, fn, ctx);
}

/* Sum number s takes its chunks from queue set s % 2 and refills set (s + 1) % 2 for
 * the next: every rank took its last chunk from that set (in sum s - 1) before sum
 * s - 1's closing barrier, and the refill reaches the others with this sum's closing
 * barrier. Early (nn_reducer_set_early, and no work items): no opening barrier; this
 * rank posts its whole input final and sums whatever chunks every rank has posted. */
unsigned nn_reducer_sum_chunks_with(nn_reducer *red, size_t n_chunked, const nn_chunk_work *work, nn_chunk_fn fn,
                                    void *ctx) {
    size_t tail = red->n - n_chunked;
    if (!nn_reducer_can_sum_chunks(red) || tail > NN_REDUCER_TAIL_MAX) return ~0u;
    int early = red->early && !work;
    node_queue *refill = queue_set(red, red->chunk_sums + 1);
    atomic_store_explicit(&refill[red->local_rank].next, 0, memory_order_relaxed);
    if (red->local_rank == 0) atomic_store_explicit(&refill[red->local_size].next, 0, memory_order_relaxed);
    if (early) nn_reducer_post_ready(red, 0);
    uint64_t sum = red->chunk_sums++;
    if (!early) node_sync(red); /* every rank's input is written */
    double t = MPI_Wtime(), waited = 0.0;
    unsigned bad = 0;
    if (!early) {
        if (work && work->n_items) bad = run_items(&queue_set(red, sum)[red->local_size].next, work); /* big items first */
        sum_tail(red, n_chunked);
    }
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
#pragma omp parallel if (threads > 1) reduction(| : bad) reduction(max : waited)
    bad |= take_and_sum(red, sum, n_chunked, work, fn, ctx, early, &waited);
    if (early) { /* every chunk taken: every rank has posted all of its input, the tail too */
        long polls = 0;
        double since = MPI_Wtime();
        while (ready_from(red, sum) > n_chunked) pause_poll(&polls, red->spins);
        waited += MPI_Wtime() - since;
        sum_tail(red, n_chunked);
    }
    red->phases.wait += waited;
    red->phases.sum += MPI_Wtime() - t - waited;
    return bad;
}

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
    if (!room.here)
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
    /* more ranks than cores: a spinning rank would only delay the one it waits for */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    red->spins = cores > 0 && red->local_size > cores ? 0 : SPINS;
    red->shared = (float *)(p + header);
    red->seg0 = red->shared + 2 * red->stride; /* two shared vectors */
    red->segs = malloc((size_t)red->local_size * sizeof *red->segs);
    if (!red->segs) return nn_fail(err, NN_ERR_RUNTIME, "gradient reducer: out of memory");
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
