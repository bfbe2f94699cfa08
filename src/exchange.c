/* The gradient exchange (see exchange.h). shm delegates to the node-aware reducer
 * (reduce.c); mpi is one MPI_Allreduce over gradients and control words; overlap
 * starts one MPI_Iallreduce per slice as backward hands it over. The top layer's
 * slice ends the gradients, so its sum also carries the control words behind it. */
#include "nn/exchange.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/comm.h"
#include "nn/env.h"
#include "nn/fastmath.h"
#include "nn/model.h" /* NN_MAX_LAYERS: at most one slice per layer */
#include "nn/reduce.h"
#include "nn/names.h"

enum { MAX_SLICES = NN_MAX_LAYERS, ALIGN = 64 };

struct nn_exchange {
    nn_exchange_mode mode;
    MPI_Comm comm;
    size_t n;              /* gradient floats; control words follow */
    float *buf;            /* n + NN_CONTROL_WORDS floats */
    float *own_buf;        /* buf when this exchange allocated it (mpi, overlap) */
    nn_reducer *reducer;   /* shm */
    nn_codec *codec;       /* mpi, overlap: the sum, maybe compressed */
    nn_compress compress;
    int nodes;             /* nodes the ranks span (for the run's header) */
    MPI_Request requests[MAX_SLICES]; /* overlap: sums in flight */
    size_t pending_off[MAX_SLICES], pending_len[MAX_SLICES];
    int pending;
    double seconds;        /* this step's time inside MPI */
    float *shared_params;  /* shm: the node's one copy of the parameters, once shared */
    float *shared_velocity; /* shm: and of the momentum: the sum and update go chunk by chunk */
    const char *fused_name; /* for the header: how the fused step sums */
};

static const char *const mode_names[] = {"shm", "mpi", "overlap"};

const char *nn_exchange_mode_name(nn_exchange_mode mode) { return mode_names[mode]; }

int nn_exchange_mode_parse(const char *text, nn_exchange_mode *out) {
    int i = nn_name_index(text, mode_names, NN_COUNT_OF(mode_names));
    if (i < 0) return NN_ERR_INPUT;
    *out = (nn_exchange_mode)i;
    return NN_OK;
}

int nn_exchange_create(nn_exchange **out, MPI_Comm comm, nn_exchange_mode mode, nn_compress compress,
                       size_t n_grads, nn_error *err) {
    *out = NULL;
    nn_exchange *ex = calloc(1, sizeof *ex);
    size_t total = n_grads + NN_CONTROL_WORDS;
    int status = ex ? NN_OK : nn_fail(err, NN_ERR_RUNTIME, "gradient exchange: out of memory");
    if (!status && mode != NN_EXCHANGE_SHM) {
        ex->own_buf = aligned_alloc(ALIGN, (total * sizeof(float) + ALIGN - 1) / ALIGN * ALIGN);
        if (!ex->own_buf) status = nn_fail(err, NN_ERR_RUNTIME, "gradient exchange: out of memory (%zu floats)", total);
        else memset(ex->own_buf, 0, total * sizeof(float));
        if (!status) status = nn_codec_create(&ex->codec, compress, total, err);
    }
    status = nn_comm_agree(comm, status, err);
    if (!status && mode == NN_EXCHANGE_SHM) { /* agreed */
        nn_reducer_opts opts = {.compress = compress};
        status = nn_reducer_create_opts(&ex->reducer, comm, total, &opts, err);
    }
    if (status) {
        nn_exchange_free(ex); /* not collective: no reducer was made */
        return status;
    }
    ex->compress = compress;
    ex->mode = mode;
    ex->comm = comm;
    if (ex->reducer) ex->nodes = nn_reducer_nodes(ex->reducer);
    else nn_comm_node_layout(comm, NULL, &ex->nodes, NULL);
    ex->n = n_grads;
    ex->buf = ex->reducer ? nn_reducer_buffer(ex->reducer) : ex->own_buf;
    *out = ex;
    return NN_OK;
}

void nn_exchange_free(nn_exchange *ex) {
    if (!ex) return;
    nn_reducer_free(ex->reducer);
    nn_codec_free(ex->codec);
    free(ex->own_buf);
    free(ex);
}

float *nn_exchange_grads(nn_exchange *ex) { return ex->buf; }

void nn_exchange_begin(nn_exchange *ex) {
    memset(ex->buf + ex->n, 0, NN_CONTROL_WORDS * sizeof(float));
    ex->seconds = 0.0;
}

void nn_exchange_set_control(nn_exchange *ex, enum nn_control_word word, float value) { ex->buf[ex->n + word] = value; }

float nn_exchange_control(const nn_exchange *ex, enum nn_control_word word) { return ex->buf[ex->n + word]; }

/* Without a progress thread, MPI moves data only inside MPI calls: each handover
 * also gives the sums already in flight a push. */
static void push_pending(nn_exchange *ex) {
    int done;
    if (ex->pending) MPI_Testall(ex->pending, ex->requests, &done, MPI_STATUSES_IGNORE);
}

static void complete_pending(nn_exchange *ex) {
    MPI_Waitall(ex->pending, ex->requests, MPI_STATUSES_IGNORE);
    for (int i = 0; i < ex->pending; i++) nn_codec_finish(ex->codec, ex->buf, ex->pending_off[i], ex->pending_len[i]);
    ex->pending = 0;
}

void nn_exchange_final_from(void *ctx, size_t offset) {
    nn_exchange *ex = ctx;
    nn_reducer_post_ready(ex->reducer, offset);
}

int nn_exchange_early(const nn_exchange *ex) { return ex->reducer && nn_reducer_early(ex->reducer); }

void nn_exchange_slice_final(void *ctx, size_t offset, size_t count) {
    nn_exchange *ex = ctx;
    if (ex->mode != NN_EXCHANGE_OVERLAP) return;
    double t = MPI_Wtime();
    if (offset + count == ex->n) count += NN_CONTROL_WORDS; /* the top slice carries the control words */
    if (ex->pending == MAX_SLICES) complete_pending(ex); /* more slices than layers: finish the old ones first */
    ex->pending_off[ex->pending] = offset;
    ex->pending_len[ex->pending] = count;
    nn_codec_iallreduce(ex->codec, ex->buf, offset, count, ex->comm, &ex->requests[ex->pending++]);
    push_pending(ex);
    ex->seconds += MPI_Wtime() - t;
}

double nn_exchange_finish(nn_exchange *ex) {
    double t = MPI_Wtime();
    switch (ex->mode) {
    case NN_EXCHANGE_SHM: nn_reducer_sum(ex->reducer); break;
    case NN_EXCHANGE_MPI: nn_codec_allreduce(ex->codec, ex->buf, 0, ex->n + NN_CONTROL_WORDS, ex->comm); break;
    case NN_EXCHANGE_OVERLAP: complete_pending(ex); break;
    }
    ex->seconds += MPI_Wtime() - t;
    return ex->seconds;
}

double nn_exchange_finish_owned(nn_exchange *ex) {
    if (ex->mode != NN_EXCHANGE_SHM) return nn_exchange_finish(ex);
    double t = MPI_Wtime();
    nn_reducer_reduce_scatter(ex->reducer);
    ex->seconds += MPI_Wtime() - t;
    return ex->seconds;
}

void nn_exchange_owned(const nn_exchange *ex, size_t *offset, size_t *count) {
    size_t off = 0, len = ex->n + NN_CONTROL_WORDS;
    if (ex->reducer) nn_reducer_slice(ex->reducer, &off, &len);
    if (off > ex->n) off = ex->n;
    if (off + len > ex->n) len = ex->n - off; /* the control words are no parameters */
    *offset = off;
    *count = len;
}

/* dst[i] = src[i] over [begin, end); returns whether any value is NaN or infinite. */
static uint32_t copy_checked(float *restrict dst, const float *restrict src, size_t begin, size_t end) {
    uint32_t bad = 0;
    for (size_t i = begin; i < end; i++) {
        bad |= nn_nonfinite_bits(src[i]);
        dst[i] = src[i];
    }
    return bad;
}

/* values[i] = the exchange buffer's, outside this rank's share (which it has). */
static uint32_t take_others(const nn_exchange *ex, float *values) {
    size_t off, len;
    nn_exchange_owned(ex, &off, &len);
    return copy_checked(values, ex->buf, 0, off) | copy_checked(values, ex->buf, off + len, ex->n);
}

/* Whether the node's ranks split the update (shm mode over a shared window). */
static int update_split(const nn_exchange *ex) {
    return ex->mode == NN_EXCHANGE_SHM && nn_reducer_mode(ex->reducer) == NN_REDUCE_SHARED;
}

/* The node's one copy of the parameters: each owner has updated its share in place,
 * so publishing is one barrier (which also ORs the owners' non-finite flags); only
 * the control words' sums travel, from their owner into every rank's buffer. */
static double publish_shared(nn_exchange *ex, int *nonfinite) {
    double t = MPI_Wtime();
    nn_reducer_spread(ex->reducer, ex->n, NN_CONTROL_WORDS);
    *nonfinite = nn_reducer_barrier_or(ex->reducer, *nonfinite);
    return MPI_Wtime() - t;
}

double nn_exchange_publish(nn_exchange *ex, float *params, int *nonfinite) {
    if (!update_split(ex)) return 0.0;
    if (params == ex->shared_params) return publish_shared(ex, nonfinite);
    double t = MPI_Wtime();
    nn_reducer_allgather(ex->reducer, params, ex->n);
    if (take_others(ex, params)) *nonfinite = 1;
    return MPI_Wtime() - t;
}

/* Whether the node's ranks keep one shared copy of the parameters: NN_NODE_PARAMS=
 * shared or private decides (for measurements); by default shared from 3 ranks a
 * node. With 2 ranks private copies measured faster (README, "Performance": each
 * rank then reads the other core's freshly written half of the weights); with many,
 * the private copies cost every rank two more passes over the whole vector a step
 * and a copy of it in memory. */
static int share_params(const nn_exchange *ex) {
    const char *choice = nn_env("NN_NODE_PARAMS");
    if (choice && !strcmp(choice, "shared")) return 1;
    if (choice && !strcmp(choice, "private")) return 0;
    int local_rank, local_size;
    nn_reducer_local(ex->reducer, &local_rank, &local_size);
    return local_size >= 3;
}

/* Each rank copies its share of `values` (the same on every rank) into the node's
 * shared vector; after the barrier the whole vector is there. */
static float *fill_shared(nn_exchange *ex, float *shared, const float *values) {
    size_t off, len;
    nn_exchange_owned(ex, &off, &len);
    memcpy(shared + off, values + off, len * sizeof(float));
    nn_reducer_barrier(ex->reducer);
    return shared;
}

float *nn_exchange_share_params(nn_exchange *ex, const float *params) {
    if (!update_split(ex) || !share_params(ex)) return NULL;
    return ex->shared_params = fill_shared(ex, nn_reducer_shared(ex->reducer), params);
}

/* NN_NODE_SUM=static keeps each rank to its slice (for measurements); otherwise the
 * chunks go to whichever rank is free (nn_reducer_sum_chunks), by default begun
 * during backward (nn_reducer_set_early; NN_NODE_SUM=chunked: after a barrier; auto,
 * the default, also times it against the factored sum: trainer_tuning.c). On
 * 2 ranks with one copy of the weights the early start measured 0-3% faster (medians)
 * on an idle machine, 0-8% with one core busy elsewhere (docs/performance.md); the
 * same bits either way. */
float *nn_exchange_share_velocity(nn_exchange *ex, const float *velocity) {
    const char *choice = nn_env("NN_NODE_SUM");
    if (!ex->shared_params || !nn_reducer_can_sum_chunks(ex->reducer) || (choice && !strcmp(choice, "static")))
        return NULL;
    ex->shared_velocity = fill_shared(ex, nn_reducer_shared2(ex->reducer), velocity);
    nn_reducer_set_early(ex->reducer, !choice || !strcmp(choice, "early") || !strcmp(choice, "auto") ||
                                          !strcmp(choice, "factors"));
    return ex->shared_velocity;
}

int nn_exchange_fused(const nn_exchange *ex) { return ex->shared_velocity != NULL; }

void nn_exchange_name_fused(nn_exchange *ex, const char *name) { ex->fused_name = name; }

double nn_exchange_finish_update(nn_exchange *ex, nn_chunk_fn fn, void *ctx, int *nonfinite) {
    return nn_exchange_finish_update_with(ex, NULL, fn, ctx, nonfinite);
}

double nn_exchange_finish_update_with(nn_exchange *ex, const nn_chunk_work *work, nn_chunk_fn fn, void *ctx,
                                      int *nonfinite) {
    double t = MPI_Wtime();
    if (nn_reducer_sum_chunks_with(ex->reducer, ex->n, work, fn, ctx)) *nonfinite = 1;
    *nonfinite = nn_reducer_barrier_or(ex->reducer, *nonfinite); /* every chunk updated; the control words summed */
    ex->seconds += MPI_Wtime() - t;
    return ex->seconds;
}

double nn_exchange_max_norm(nn_exchange *ex, nn_model *model, float c) {
    if (!ex->shared_params) {
        nn_model_max_norm(model, c);
        return 0.0;
    }
    int part, parts;
    nn_reducer_local(ex->reducer, &part, &parts);
    nn_model_max_norm_part(model, c, part, parts);
    double t = MPI_Wtime();
    nn_reducer_barrier(ex->reducer); /* every column is done before anyone reads them */
    return MPI_Wtime() - t;
}

double nn_exchange_wait_seconds(const nn_exchange *ex) {
    nn_reduce_phases ph;
    nn_exchange_phases(ex, &ph);
    return ph.wait;
}

void nn_exchange_phases(const nn_exchange *ex, nn_reduce_phases *out) {
    if (ex->reducer) nn_reducer_phases(ex->reducer, out);
    else *out = (nn_reduce_phases){0};
}

void nn_exchange_gather(nn_exchange *ex, float *values) {
    if (!update_split(ex)) return;
    nn_reducer_barrier(ex->reducer); /* every rank has read its buffer since the last publish */
    if (values == ex->shared_velocity) return; /* one copy a node, up to date */
    nn_reducer_allgather(ex->reducer, values, ex->n);
    take_others(ex, values);
}

void nn_exchange_describe(const nn_exchange *ex, char *out, size_t cap) {
    static const char *const reducer_modes[] = {"one rank, ", "MPI_Allreduce, ", "shared memory, "};
    const char *how = ex->reducer ? reducer_modes[nn_reducer_mode(ex->reducer)] : "";
    const char *note = ex->reducer ? nn_reducer_note(ex->reducer) : "";
    snprintf(out, cap, "%s (%s%s%s%d node%s%s%s%s%s)", mode_names[ex->mode], how, note, note[0] ? "; " : "", ex->nodes,
             ex->nodes == 1 ? "" : "s", ex->compress ? ", " : "", ex->compress ? nn_compress_name(ex->compress) : "",
             ex->shared_velocity ? ", one copy of the weights, " : ex->shared_params ? ", one copy of the weights" : "",
             ex->shared_velocity ? (ex->fused_name ? ex->fused_name
                                    : nn_exchange_early(ex) ? "chunked sum begun in backward" : "chunked sum") : "");
}
