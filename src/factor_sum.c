#define _POSIX_C_SOURCE 200809L /* clock_gettime, in nn/clock.h */
/* The node's factored sum (see factor_sum.h). A rank's buffer in the shared window:
 *
 *     [ rows: 1 float, padded to 16 ][ the model's factors (nn_model_place_factors) ]
 *
 * An item is a tile of one dense layer's dW: rows [i0, i0 + rows) (inputs) by columns
 * [j0, j0 + cols) (outputs), made as x[:, i0:]^T dy[:, j0:] for every rank. A tile reads
 * its rows of every rank's x and its columns of every rank's dy, so over a layer the
 * factors are read out/cols + in/rows times: tiles near square, of about the work
 * wanted per item, read the least. Columns come in whole register panels (NR = two
 * SIMD vectors, as nn_gemm's tiles), so no item takes the half-width kernels. */
#include "nn/factor_sum.h"

#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/clock.h"
#include "nn/comm.h"
#include "nn/env.h"
#include "nn/kernels.h"

/* MIN_TILE, in weights: below, the calls cost more than the work (NN_FACTOR_MIN_TILE
 * overrides it, as NN_FACTOR_ITEMS does ITEMS_PER_WORKER, for measurements) */
enum { HEADER = 16, ITEMS_PER_WORKER = 6, MIN_TILE = 4096 };

typedef struct item {
    int layer, i0, rows, j0, cols;
    size_t x_off, dy_off; /* the layer's factors, in floats from the start of a rank's factors */
    size_t w_off;         /* the layer's weights in the parameter vector */
} item;

/* A thread's own: an item's sums, a rank's product where it must be added on its own,
 * and the seconds the thread spent in products since creation, over its team's size. */
typedef struct scratch {
    _Alignas(64) float *acc, *tmp;
    double product_seconds;
} scratch;

struct nn_factor_sum {
    nn_reducer *red; /* the node's factor buffers */
    nn_model *model;
    int local_size;
    int per_rank;    /* items a rank, about */
    int min_tile;    /* weights: the smallest tile planned (MIN_TILE) */
    int n_items;
    item *items;
    size_t *skip;    /* (offset, count) of each dense layer's weights */
    size_t *ready;   /* item i may start once every rank has posted an offset <= ready[i]: its layer's */
    int n_threads;   /* the threads a rank may run items on at once: the scratch's slots */
    scratch *scratch;
    size_t tile_floats; /* the largest item's */
    nn_chunk_fn fn;  /* this step's update */
    void *fn_ctx;
    nn_chunk_work work;
};

void nn_factor_tile_shape(int in, int out, size_t target, int *rows, int *cols) {
    const size_t unit = 2 * (size_t)nn_simd_floats();
    size_t side = 1;
    while (side * side < target) side++;
    size_t c = (side + unit / 2) / unit * unit;
    c = c < unit ? unit : c;
    /* a layer at most two panels wide is cut by rows only: cut by columns, its part
     * panel would make tiles of their own, nearly as costly as whole ones */
    if ((size_t)out <= 2 * unit) c = (size_t)out;
    *cols = c >= (size_t)out ? out : (int)c;
    size_t r = (target / (size_t)*cols + 7) / 8 * 8;
    *rows = r >= (size_t)in ? in : (int)(r < 8 ? 8 : r);
}

/* Weights a tile: about per_rank items a rank over all the dense weights (more
 * balance better; fewer re-read the factors less). */
static size_t tile_target(const nn_factor_sum *fs) {
    size_t weights = 0;
    for (int l = 0; l < fs->model->n_layers; l++)
        if (fs->model->layers[l].kind == NN_LAYER_DENSE)
            weights += (size_t)fs->model->layers[l].in * fs->model->layers[l].out;
    size_t target = weights / ((size_t)fs->per_rank * (size_t)fs->local_size) + 1;
    return target < (size_t)fs->min_tile ? (size_t)fs->min_tile : target;
}

/* One pass over the dense layers, the top layer first (backward finishes the layers
 * from the top down: in an early sum their items come ready in that order), each cut
 * into tiles column by column. Counting, it gives the items' and the dense layers'
 * count and the largest tile's floats; filling (after counting, into arrays of those
 * sizes, the factors placed), it writes the items and the layers' weight ranges in the
 * order of their offsets, which the chunks leave out. */
static void plan(nn_factor_sum *fs, bool fill, int *n_items, int *n_dense, size_t *most) {
    nn_model *m = fs->model;
    const size_t target = tile_target(fs);
    int n = 0, dense = 0;
    *most = 0;
    for (int l = m->n_layers - 1; l >= 0; l--) {
        const nn_layer *d = &m->layers[l];
        if (d->kind != NN_LAYER_DENSE) continue;
        size_t w_off = (size_t)(d->weight - m->params);
        if (fill) { /* the lowest layer's range first */
            fs->skip[2 * (fs->work.n_skip - 1 - dense)] = w_off;
            fs->skip[2 * (fs->work.n_skip - 1 - dense) + 1] = (size_t)d->in * d->out;
        }
        dense++;
        int rows, cols;
        nn_factor_tile_shape(d->in, d->out, target, &rows, &cols);
        *most = (size_t)rows * cols > *most ? (size_t)rows * cols : *most;
        for (int j0 = 0; j0 < d->out; j0 += cols)
            for (int i0 = 0; i0 < d->in; i0 += rows, n++)
                if (fill) {
                    fs->items[n] = (item){.layer = l, .i0 = i0, .rows = d->in - i0 < rows ? d->in - i0 : rows,
                                          .j0 = j0, .cols = d->out - j0 < cols ? d->out - j0 : cols,
                                          .x_off = (size_t)(m->acts[l] - m->factors),
                                          .dy_off = (size_t)(m->grad_acts[l + 1] - m->factors), .w_off = w_off};
                    fs->ready[n] = w_off;
                }
    }
    *n_items = n;
    *n_dense = dense;
}

/* Scratch for `threads` threads (the slots there are kept), for tiles of up to
 * fs->tile_floats. */
static int grow_scratch(nn_factor_sum *fs, int threads) {
    if (threads <= fs->n_threads) return NN_OK;
    scratch *more = aligned_alloc(64, (size_t)threads * sizeof *more);
    if (!more) return NN_ERR_RUNTIME;
    memset(more, 0, (size_t)threads * sizeof *more);
    if (fs->n_threads) memcpy(more, fs->scratch, (size_t)fs->n_threads * sizeof *more);
    free(fs->scratch);
    fs->scratch = more;
    size_t bytes = (fs->tile_floats * sizeof(float) + 63) / 64 * 64;
    for (; fs->n_threads < threads; fs->n_threads++) {
        fs->scratch[fs->n_threads].acc = aligned_alloc(64, bytes);
        fs->scratch[fs->n_threads].tmp = aligned_alloc(64, bytes);
        if (!fs->scratch[fs->n_threads].acc || !fs->scratch[fs->n_threads].tmp) {
            fs->n_threads++; /* its pointers are freed with the others */
            return NN_ERR_RUNTIME;
        }
    }
    return NN_OK;
}

/* The plan's arrays and each thread's scratch, before the factors move into the
 * window (so that a failure leaves the model as it was). */
static int allocate(nn_factor_sum *fs) {
    int n_items, n_dense;
    plan(fs, false, &n_items, &n_dense, &fs->tile_floats);
    fs->n_items = n_items;
    fs->work.n_skip = n_dense;
    fs->items = malloc((size_t)(n_items ? n_items : 1) * sizeof *fs->items);
    fs->ready = malloc((size_t)(n_items ? n_items : 1) * sizeof *fs->ready);
    fs->skip = malloc((size_t)(n_dense ? n_dense : 1) * 2 * sizeof *fs->skip);
    if (!fs->items || !fs->ready || !fs->skip) return NN_ERR_RUNTIME;
    return grow_scratch(fs, omp_get_max_threads());
}

/* The item's summed gradient into acc by nn_gemm_sum, the running total in registers;
 * false where it declines (a rank's product deeper than one slice, a last panel left
 * to nn_gemm's narrow kernels, more than 256 ranks). */
static bool sum_in_registers(const nn_factor_sum *fs, const item *it, float *acc) {
    enum { MAX_RANKS = 256 };
    const nn_layer *d = &fs->model->layers[it->layer];
    const float *x[MAX_RANKS], *dy[MAX_RANKS];
    int k[MAX_RANKS];
    if (fs->local_size > MAX_RANKS) return false;
    for (int r = 0; r < fs->local_size; r++) {
        const float *seg = nn_reducer_segment(fs->red, r);
        k[r] = (int)seg[0];
        x[r] = seg + HEADER + it->x_off + it->i0;
        dy[r] = seg + HEADER + it->dy_off + it->j0;
    }
    return nn_gemm_sum(it->rows, it->cols, fs->local_size, x, d->in, dy, d->out, k, acc, it->cols);
}

/* Item i: the summed gradient of its block, rank by rank in order 0..L-1 as the
 * chunked sum adds them (acc = P0, then acc = acc + Pr: by nn_gemm_sum where it can,
 * else with nn_gemm's beta 1 when it adds its whole sum in one addition, else through
 * tmp), then the update, row by row.
 * On any thread of the rank's team (an early sum's threads take items side by side),
 * in that thread's scratch. */
static unsigned run_item(void *ctx, int i) {
    nn_factor_sum *fs = ctx;
    const item *it = &fs->items[i];
    const nn_layer *d = &fs->model->layers[it->layer];
    const int in = d->in, out = d->out, m = it->rows, cols = it->cols;
    const size_t floats = (size_t)m * cols;
    const int team = omp_in_parallel() ? omp_get_num_threads() : 1;
    scratch *own = &fs->scratch[team > 1 ? omp_get_thread_num() : 0];
    float *acc = own->acc, *tmp = own->tmp;
    double t0 = nn_seconds();
    if (!sum_in_registers(fs, it, acc))
        for (int r = 0; r < fs->local_size; r++) {
            const float *seg = nn_reducer_segment(fs->red, r);
            int k = (int)seg[0]; /* that rank's rows of the batch: the products' depth */
            const float *x = seg + HEADER + it->x_off + it->i0, *dy = seg + HEADER + it->dy_off + it->j0;
            if (r == 0) {
                nn_gemm(true, false, m, cols, k, x, in, dy, out, 0.0f, acc, cols);
            } else if (k == 0) { /* its product is +0: the sum turns a -0 into +0 */
                for (size_t e = 0; e < floats; e++) acc[e] += 0.0f;
            } else if (k <= nn_gemm_unsplit_depth()) {
                nn_gemm(true, false, m, cols, k, x, in, dy, out, 1.0f, acc, cols);
            } else {
                nn_gemm(true, false, m, cols, k, x, in, dy, out, 0.0f, tmp, cols);
                for (size_t e = 0; e < floats; e++) acc[e] += tmp[e];
            }
        }
    own->product_seconds += (nn_seconds() - t0) / team; /* the team's threads side by side: the rank's share */
    size_t first = it->w_off + (size_t)it->i0 * out + it->j0;
    if (cols == out) /* whole rows: one stretch of the parameters */
        return fs->fn(fs->fn_ctx, acc, first, floats);
    unsigned bad = 0;
    for (int row = 0; row < m; row++)
        bad |= fs->fn(fs->fn_ctx, acc + (size_t)row * cols, first + (size_t)row * out, (size_t)cols);
    return bad;
}

int nn_factor_sum_create(nn_factor_sum **out, MPI_Comm comm, nn_model *model, nn_error *err) {
    *out = NULL;
    /* the reducer counts floats in MPI's ints: a window beyond them (a batch of tens of
     * thousands a rank through wide layers) leaves the chunked sum, as too little
     * /dev/shm does below. The same on every rank: one spec, one batch. */
    if (HEADER + nn_model_factor_floats(model) > INT_MAX) return NN_OK;
    nn_factor_sum *fs = calloc(1, sizeof *fs);
    int status = nn_comm_agree(comm, fs ? NN_OK : nn_fail(err, NN_ERR_RUNTIME, "factored sum: out of memory"), err);
    if (status) {
        free(fs);
        return status;
    }
    if ((status = nn_reducer_create(&fs->red, comm, HEADER + nn_model_factor_floats(model), err))) {
        free(fs);
        return status;
    }
    int local_rank, ok = nn_reducer_can_sum_chunks(fs->red), all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
    if (!all) { /* the window could not be shared (too little /dev/shm): the chunked sum stays */
        nn_reducer_free(fs->red);
        free(fs);
        return NN_OK;
    }
    nn_reducer_local(fs->red, &local_rank, &fs->local_size);
    /* An early sum's threads take items side by side, each in a scratch of its own;
     * the node's threads together want about ITEMS_PER_WORKER items each. One plan for
     * all: rank 0's. */
    int plan_knobs[2] = {(int)nn_env_count("NN_FACTOR_ITEMS", ITEMS_PER_WORKER * omp_get_max_threads()),
                         (int)nn_env_count("NN_FACTOR_MIN_TILE", MIN_TILE)}; /* measurement knobs */
    MPI_Bcast(plan_knobs, 2, MPI_INT, 0, comm);
    fs->per_rank = plan_knobs[0];
    fs->min_tile = plan_knobs[1];
    fs->model = model;
    status = allocate(fs) ? nn_fail(err, NN_ERR_RUNTIME, "factored sum: out of memory") : NN_OK;
    if ((status = nn_comm_agree(comm, status, err))) {
        nn_factor_sum_free(fs);
        return status;
    }
    nn_model_place_factors(model, nn_reducer_buffer(fs->red) + HEADER);
    int n_items, n_dense;
    plan(fs, true, &n_items, &n_dense, &fs->tile_floats);
    /* In an early sum (nn_reducer_set_early) an item may start as soon as every rank
     * has finished its layer's backward, without the opening barrier. */
    fs->work = (nn_chunk_work){.n_items = n_items, .item = run_item, .item_ctx = fs, .skip = fs->skip,
                               .n_skip = n_dense, .item_ready = fs->ready};
    *out = fs;
    return NN_OK;
}

void nn_factor_sum_free(nn_factor_sum *fs) {
    if (!fs) return;
    nn_reducer_free(fs->red);
    free(fs->items);
    free(fs->skip);
    free(fs->ready);
    for (int t = 0; fs->scratch && t < fs->n_threads; t++) {
        free(fs->scratch[t].acc);
        free(fs->scratch[t].tmp);
    }
    free(fs->scratch);
    free(fs);
}

void nn_factor_sum_rows(nn_factor_sum *fs, int rows) { nn_reducer_buffer(fs->red)[0] = (float)rows; }

const nn_chunk_work *nn_factor_sum_work(nn_factor_sum *fs, nn_chunk_fn fn, void *ctx) {
    /* the sum runs on as many threads as this rank has now: a scratch each */
    if (grow_scratch(fs, omp_get_max_threads())) {
        fprintf(stderr, "nntrain: factored sum: out of memory for %d threads' scratch\n", omp_get_max_threads());
        abort(); /* a few tiles' worth: nothing sensible to do without them */
    }
    fs->fn = fn;
    fs->fn_ctx = ctx;
    return &fs->work;
}

int nn_factor_sum_items(const nn_factor_sum *fs) { return fs->n_items; }

double nn_factor_sum_product_seconds(const nn_factor_sum *fs) {
    double seconds = 0.0;
    for (int t = 0; fs && t < fs->n_threads; t++) seconds += fs->scratch[t].product_seconds;
    return seconds;
}
