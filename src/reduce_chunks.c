/* The node's sum in chunks (see nn/reduce.h): after a barrier, or begun early as the
 * ranks post their input final; each chunk summed over the node's buffers in rank
 * order and handed to the caller (the SGD step), the chunks taken by whichever rank
 * is free. */
#include "reduce_node.h"

#include <assert.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "nn/clock.h"

/* The sum over all segments of [off, off+len) (len <= one block), in the order
 * 0, 1, ..., L-1 as the sum by slices (reduce.c, sum_line), into out[0..len). Reads only: every line it reads is
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
    /* offsets only go down within a sum: one taken back up would let the other ranks
     * read input this rank still writes (checked in the sanitizer build) */
    unsigned long long mine = atomic_load_explicit(&red->ready[red->local_rank].word, memory_order_relaxed);
    assert(offset <= 0xffffffffu);
    assert(mine >> 32 != ready_tag(red->chunk_sums) || offset <= (mine & 0xffffffffu));
    (void)mine;
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

/* Takes the next work item if every rank has posted an offset at or below its
 * item_ready (the items in that order, so one not ready stops the others). */
static take_result take_item(atomic_ullong *next, const nn_chunk_work *work, size_t ready, int *item) {
    unsigned long long k = atomic_load_explicit(next, memory_order_relaxed);
    while (k < (unsigned long long)work->n_items) {
        if (work->item_ready[k] < ready) return NONE_READY;
        if (atomic_compare_exchange_weak_explicit(next, &k, k + 1, memory_order_relaxed, memory_order_relaxed)) {
            *item = (int)k;
            return TAKEN;
        }
    }
    return ALL_TAKEN;
}

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
 * the barrier's manner, spinning at most `spins` polls) while the chunks left are not
 * ready. Returns the OR of fn's results; *waited: the seconds spent waiting. */
static unsigned take_and_sum(nn_reducer *red, uint64_t sum, size_t n_chunked, const nn_chunk_work *work,
                             nn_chunk_fn fn, void *ctx, int early, int spins, double *waited) {
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
    /* early, the work items (the big pieces) go first as they come ready */
    int items = early && work && work->n_items;
    for (take_result got;;) {
        int item;
        take_result got_item = items ? take_item(&queues[red->local_size].next, work, ready, &item) : ALL_TAKEN;
        if (got_item == TAKEN) {
            if (since >= 0.0) *waited += nn_seconds() - since;
            since = -1.0;
            polls = 0;
            bad |= work->item(work->item_ctx, item);
            continue;
        }
        got = take_chunk(queues, red, n_chunked, chunk, ready, &off, &len);
        if (got == ALL_TAKEN && got_item == ALL_TAKEN) break;
        if (got != TAKEN) { /* the ranks still in backward have not finished these layers */
            if (since < 0.0) since = nn_seconds();
            pause_poll(&polls, spins);
            ready = ready_from(red, sum);
            continue;
        }
        if (since >= 0.0) *waited += nn_seconds() - since;
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
 * barrier. Early (nn_reducer_set_early; with work items only where they have their
 * item_ready): no opening barrier; this rank posts its whole input final and its
 * threads take whatever items and chunks every rank has posted. */
unsigned nn_reducer_sum_chunks_with(nn_reducer *red, size_t n_chunked, const nn_chunk_work *work, nn_chunk_fn fn,
                                    void *ctx) {
    size_t tail = red->n - n_chunked;
    if (!nn_reducer_can_sum_chunks(red) || tail > NN_REDUCER_TAIL_MAX) return ~0u;
    int early = red->early && (!work || !work->n_items || work->item_ready);
    node_queue *refill = queue_set(red, red->chunk_sums + 1);
    atomic_store_explicit(&refill[red->local_rank].next, 0, memory_order_relaxed);
    if (red->local_rank == 0) atomic_store_explicit(&refill[red->local_size].next, 0, memory_order_relaxed);
    if (early) nn_reducer_post_ready(red, 0);
    uint64_t sum = red->chunk_sums++;
    if (!early) nn_reducer_node_sync_or(red, 0); /* every rank's input is written */
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
    int spins = node_spins(red, threads); /* none where a thread would delay one still in backward */
    /* the rank's wait: its threads' mean, as the items' products count theirs
     * (factor_sum.c), so that the wait and the products stay within the sum's time */
    int team = 1;
#pragma omp parallel if (threads > 1) reduction(| : bad) reduction(+ : waited)
    {
        double mine;
        bad |= take_and_sum(red, sum, n_chunked, work, fn, ctx, early, spins, &mine);
        waited += mine;
#ifdef _OPENMP
        if (omp_get_thread_num() == 0) team = omp_get_num_threads();
#endif
    }
    waited /= team;
    if (early) { /* every chunk taken: every rank has posted all of its input, the tail too */
        long polls = 0;
        double since = MPI_Wtime();
        while (ready_from(red, sum) > n_chunked) pause_poll(&polls, spins);
        waited += MPI_Wtime() - since;
        sum_tail(red, n_chunked);
    }
    red->phases.wait += waited;
    red->phases.sum += MPI_Wtime() - t - waited;
    return bad;
}
