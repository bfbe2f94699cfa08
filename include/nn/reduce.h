/* Node-aware gradient sum. The ranks of one node write their gradients into
 * segments of one shared-memory window; each local rank sums its slice of the
 * vector over all segments of the node (in a fixed order, so the result is
 * deterministic and bit-identical on every rank) and writes it back into every
 * segment. With several nodes, each slice is then MPI_Allreduce'd with the ranks
 * of the same local index on the other nodes (hierarchical reduce-scatter /
 * allgather). With one rank per node (or uneven nodes) it falls back to
 * MPI_Allreduce on a private buffer. */
#ifndef NN_REDUCE_H
#define NN_REDUCE_H

#include <mpi.h>
#include <stddef.h>

#include "nn/compress.h"
#include "nn/error.h"

typedef struct nn_reducer nn_reducer;

/* Collective over comm. n floats per rank (n <= INT_MAX). On failure every rank
 * returns the same status and *out is NULL. */
int nn_reducer_create(nn_reducer **out, MPI_Comm comm, size_t n, nn_error *err);

/* This rank's input/output buffer: n floats, 64-byte aligned, possibly in shared
 * memory. Write the local gradient here before nn_reducer_sum. */
float *nn_reducer_buffer(nn_reducer *red);

/* Collective: afterwards every rank's buffer holds the element-wise sum over all
 * ranks, bit-identical on every rank. */
void nn_reducer_sum(nn_reducer *red);

/* The same sum in two halves, so that each rank can update only its share of the
 * parameters (the SGD step sharded over the node's ranks, as ZeRO stage 1 shards the
 * optimizer state) between them:
 *
 *   nn_reducer_reduce_scatter  afterwards buffer[offset, offset + count) (from
 *                              nn_reducer_slice) holds the sum over all ranks;
 *                              the rest of the buffer is undefined
 *   ... the rank updates its slice ...
 *   nn_reducer_allgather(src, n_src)   every rank's slice goes to every other rank:
 *                              outside its own slice, a rank's buffer then holds
 *                              the owners' src below n_src and their sums above
 *                              (its own slice keeps the sum)
 *
 * Shared mode: the slices differ per local rank (and are the same on every node);
 * other modes: the slice is the whole vector, reduce_scatter is nn_reducer_sum and
 * allgather does nothing. All are collective. allgather writes into the other
 * ranks' buffers at once: call it after a reduce_scatter or nn_reducer_barrier,
 * whose barrier keeps it from overwriting what a rank still reads of the last one. */
void nn_reducer_slice(const nn_reducer *red, size_t *offset, size_t *count);
void nn_reducer_reduce_scatter(nn_reducer *red);
void nn_reducer_allgather(nn_reducer *red, const float *src, size_t n_src);
void nn_reducer_barrier(nn_reducer *red); /* the node's ranks (shared mode; else nothing) */
void nn_reducer_local(const nn_reducer *red, int *local_rank, int *local_size); /* on the node; 0, 1 if not shared */

/* Shared mode: n more floats that all ranks of the node share (one copy a node: the
 * exchange keeps the parameters there), zeroed at creation; NULL in other modes.
 * Who writes what, and when, is the caller's business: a rank may write its slice
 * between a reduce_scatter and the next barrier, when no rank reads. */
float *nn_reducer_shared(nn_reducer *red);
float *nn_reducer_shared2(nn_reducer *red); /* a second such vector (the momentum) */

/* The sum in chunks, handed out as the node's ranks come free (shared mode, one node):
 * after a barrier (every input written), the ranks take chunks of [0, n_chunked) --
 * each its own slice's first, then whatever is left of the others' -- sum each over
 * the node's buffers (in the order 0..L-1, as every sum here: the same values
 * whoever sums) into a block of at most 1024 floats and call fn(ctx, sums, offset,
 * count) for it, from OpenMP threads when the rank has several. No buffer is
 * written, so a rank slower to sum does not hold up the node: the others take its
 * chunks. The tail [n_chunked, n) (at most NN_REDUCER_TAIL_MAX floats: control
 * words) every rank sums itself into its own buffer, where it is after the next
 * barrier. Returns the OR of fn's results (~0u where it cannot: see
 * nn_reducer_can_sum_chunks). fn must give the same result whoever calls it. A node
 * barrier (nn_reducer_barrier_or) must come between two chunked sums. */
enum { NN_REDUCER_TAIL_MAX = 16 };
typedef unsigned (*nn_chunk_fn)(void *ctx, const float *sums, size_t offset, size_t count);
int nn_reducer_can_sum_chunks(const nn_reducer *red);
unsigned nn_reducer_sum_chunks(nn_reducer *red, size_t n_chunked, nn_chunk_fn fn, void *ctx);

/* The chunked sum begun early: each rank posts, as its backward goes down the
 * layers, from which offset on its input is final (the layers above it done: their
 * gradients written and their parameters no longer read this step), and a rank that
 * has finished its own backward sums the chunks that every rank has posted, from the
 * top down, instead of waiting for the slowest at a barrier: the waiting ranks do the
 * top layers' sums while the last ones finish the bottom layers. The same chunks, the
 * same order over the ranks: the same bits as the sum after a barrier.
 * nn_reducer_set_early is collective over the node (the node takes it only if every
 * rank asks); then nn_reducer_sum_chunks (without work items) needs no opening
 * barrier, and posts offset 0 itself. nn_reducer_post_ready is for the input of the
 * next chunked sum; offsets only go down within a sum; nothing when not early. Work
 * items (below) join an early sum only where they say when each may start
 * (item_ready). */
void nn_reducer_set_early(nn_reducer *red, int early);
int nn_reducer_early(const nn_reducer *red);
void nn_reducer_post_ready(nn_reducer *red, size_t offset);

/* The chunked sum with other work beside it: n_items work items, taken one at a time
 * by whichever rank asks first (before the chunks: the items are the big pieces, the
 * chunks fill in), each called on the rank's own thread after an opening barrier (it
 * may use the rank's OpenMP threads), or on any of its threads in an early sum
 * (below); and the ranges the items cover, n_skip (offset, count) pairs sorted by
 * offset, which the chunks then leave out. item must give the same result whoever
 * calls it; its results are OR-ed with fn's. With item_ready (an early sum), there is
 * no opening barrier: item i starts once every rank has posted an offset at or below
 * item_ready[i] (non-increasing over the items), taken before the chunks as they come
 * ready, by any of a rank's threads (inside their parallel region, as the chunks:
 * item must then be safe to call from several threads at once). */
typedef struct nn_chunk_work {
    int n_items;
    unsigned (*item)(void *ctx, int item);
    void *item_ctx;
    const size_t *skip;
    int n_skip;
    const size_t *item_ready; /* NULL: the items start after the opening barrier */
} nn_chunk_work;
unsigned nn_reducer_sum_chunks_with(nn_reducer *red, size_t n_chunked, const nn_chunk_work *work, nn_chunk_fn fn,
                                    void *ctx);

/* Collective node barrier that also ORs a flag over the node's ranks; returns the
 * OR (shared mode; other modes return `flag`). */
int nn_reducer_barrier_or(nn_reducer *red, int flag);

/* After a reduce_scatter: the part of [offset, offset + count) in this rank's slice
 * goes from its buffer into every other rank's (the other ranks then find every sum
 * of that range in their own buffers after the next barrier). For a few words that
 * every rank reads (the exchange's control words); shared mode, else nothing. */
void nn_reducer_spread(nn_reducer *red, size_t offset, size_t count);

/* Where this rank's time in the reducer went, summed since its creation: waiting
 * in the node's barriers (for the slowest rank, mostly), summing its slice (with
 * the sum between nodes), copying slices to the other ranks. */
typedef struct nn_reduce_phases {
    double wait, sum, copy; /* seconds */
    long barriers;
} nn_reduce_phases;
#define NN_REDUCER_HAS_PHASES 1
void nn_reducer_phases(const nn_reducer *red, nn_reduce_phases *out);

/* Shared mode: local rank l's buffer (n floats), which every rank of the node may
 * read between barriers; NULL in other modes. */
const float *nn_reducer_segment(const nn_reducer *red, int local_rank);

/* Collective. NULL is allowed (and then it is not collective). */
void nn_reducer_free(nn_reducer *red);

/* How the reducer works, for logs and tests. */
typedef enum nn_reduce_mode {
    NN_REDUCE_SERIAL, /* one rank: nothing to do */
    NN_REDUCE_FLAT,   /* MPI_Allreduce on a private buffer */
    NN_REDUCE_SHARED  /* shared-memory sum on the node (+ Allreduce across nodes) */
} nn_reduce_mode;
nn_reduce_mode nn_reducer_mode(const nn_reducer *red);
/* Why the node's ranks sum through MPI rather than shared memory ("/dev/shm has 60 MiB
 * free, ..."); "" when they do not need to say. */
const char *nn_reducer_note(const nn_reducer *red);
int nn_reducer_nodes(const nn_reducer *red); /* number of nodes seen (1 in FLAT mode) */
/* Busy polls a wait in the node's sum spends now, before it yields its core: 0 while
 * the node's ranks at the current OpenMP thread count outnumber the job's cores there. */
int nn_reducer_spins(const nn_reducer *red);

/* Options for tests and benchmarks; nn_reducer_create uses the defaults (all 0). */
typedef struct nn_reducer_opts {
    int fake_node;   /* > 0: ranks with rank % fake_node equal form one "node"
                        (must still share memory: for testing on one machine) */
    int mpi_barrier; /* synchronise the node with MPI_Barrier instead of a spin barrier */
    int force_flat;  /* always MPI_Allreduce on a private buffer */
    nn_compress compress; /* how the sum between nodes travels (FLAT: the whole sum) */
} nn_reducer_opts;
int nn_reducer_create_opts(nn_reducer **out, MPI_Comm comm, size_t n,
                           const nn_reducer_opts *opts, nn_error *err);

#endif
