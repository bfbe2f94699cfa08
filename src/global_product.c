/* The product over the global batch (see global_product.h). A node's memory:
 *
 *     [ tile counter ][ words: 2 x ranks x words int64 ][ flags: 2 x ranks int ]
 *     [ the parameters ][ the momentum ]   (or, with a copy a rank: [ the summed gradient ])
 *     [ for each dense layer: X, (micro_steps * batch) x in; dY, (micro_steps * batch) x out ]
 *
 * (the first layer's X in bytes, the data's pixels, where the step shape says so)
 * each part on 64 bytes. The words and flags alternate between two sets by step, so
 * a rank already writing the next step's never meets one still reading this step's.
 * A step: each rank writes its rows and words; barrier; between nodes, the leaders
 * broadcast their ranks' rows to each other; barrier; tiles from the counter, each
 * updating its weights and biases at once (or writing its part of the gradient);
 * barrier; each rank adds the words and the node's flags (or steps its own copy).
 * The next step's tiles begin after a barrier every rank reaches after it has read
 * what it needs of this one. */
#include "nn/global_product.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/comm.h"
#include "nn/dataset.h" /* nn_pixels_to_floats */
#include "nn/env.h"
#include "nn/factor_sum.h" /* nn_factor_tile_shape */
#include "nn/kernels.h"
#include "nn/optim.h"

/* A tile's product should be worth its call (packing dY's panels, the narrow last
 * one): on the reference network at -np 2, four tiles of >= 4 Mflop a step trained
 * 3-6% faster than fourteen smaller ones. */
enum { ALIGN = 64, TILES_PER_RANK = 2, MIN_TILE_FLOPS = 1 << 22 };

typedef struct dense_factors {
    int layer, in, out;
    size_t x, dy;         /* bytes from the base: the layer's input rows and output-gradient rows */
    size_t weight, bias;  /* the layer's weights and biases in the parameter vector, in floats */
} dense_factors;

typedef struct tile { int dense, i0, rows, j0, cols; } tile;

struct nn_global_product {
    MPI_Comm node, leaders;    /* this node's ranks; its leader among the others (local rank 0 only) */
    MPI_Win win;               /* MPI_WIN_NULL: a node of one rank, in private memory */
    char *base;
    int rank, nranks, local, locals, nodes;
    int batch, micro_steps, words, parity, pixels;
    float *unpacked;           /* pixels: a tile's rows of the first layer's input, as floats */
    int my_rows, my_first;
    nn_model *model;
    int n_dense;
    dense_factors dense[NN_MAX_LAYERS];
    float *own_x[NN_MAX_LAYERS], *own_dy[NN_MAX_LAYERS]; /* the model's buffers while attached */
    int attached;
    size_t words_at[2], flags_at[2], params_at, velocity_at, grads_at, bytes;
    int shared;                /* the node keeps one copy of the weights (else each rank its own) */
    nn_sgd *sgd;
    float *acc;                /* one tile's gradient: its weights, then its biases */
    float lr;                  /* this step's */
    int bad;                   /* a non-finite weight from this rank's tiles this step */
    tile *tiles;
    int n_tiles;
    MPI_Datatype *node_rows;   /* [2 * nodes]: a node's ranks' rows and words, by parity */
    char where[128];
};

static size_t up(size_t bytes) { return (bytes + ALIGN - 1) / ALIGN * ALIGN; }

static atomic_ullong *counter(nn_global_product *gp) { return (atomic_ullong *)gp->base; }

int nn_global_product_fits(const nn_model *model) {
    for (int l = 0; l < model->n_layers; l++)
        if (nn_layer_has_params(&model->layers[l]) && model->layers[l].kind != NN_LAYER_DENSE) return 0;
    return 1;
}

/* One copy of the weights and momentum a node, each tile's SGD step made at once,
 * or one a rank, each rank stepping all of them with the summed gradient: the same
 * bits either way (the step goes element by element). As in the default mode
 * (exchange.c, share_params), shared from 3 ranks a node: with 2, the private copies
 * measured faster on the reference network (docs/determinism.md); one rank alone
 * has one copy either way, and the fused step does less. NN_NODE_PARAMS=shared or
 * private decides where set (for measurements and tests). */
static int share_weights(const nn_global_product *gp) {
    const char *choice = nn_env("NN_NODE_PARAMS");
    if (gp->locals == 1 || (choice && !strcmp(choice, "shared"))) return 1;
    if (choice && !strcmp(choice, "private")) return 0;
    return gp->locals >= 3;
}

/* The layout above (for this node's choice of copies); the dense layers' places. */
static void lay_out(nn_global_product *gp) {
    nn_model *m = gp->model;
    size_t at = ALIGN, depth = (size_t)gp->micro_steps * gp->batch;
    gp->shared = share_weights(gp);
    gp->n_dense = 0;
    for (int p = 0; p < 2; p++) {
        gp->words_at[p] = at;
        at += up((size_t)gp->nranks * gp->words * sizeof(int64_t));
    }
    for (int p = 0; p < 2; p++) {
        gp->flags_at[p] = at;
        at += up((size_t)gp->nranks * sizeof(int));
    }
    gp->params_at = gp->grads_at = at; /* one copy of the weights, or the summed gradient */
    at += up(m->n_params * sizeof(float));
    gp->velocity_at = at;
    if (gp->shared) at += up(m->n_params * sizeof(float));
    for (int l = 0; l < m->n_layers; l++) {
        const nn_layer *d = &m->layers[l];
        if (d->kind != NN_LAYER_DENSE) continue;
        int pixels = gp->pixels && gp->n_dense == 0; /* this layer's input kept as bytes */
        dense_factors *f = &gp->dense[gp->n_dense++];
        *f = (dense_factors){.layer = l, .in = d->in, .out = d->out, .x = at,
                             .weight = (size_t)(d->weight - m->params), .bias = (size_t)(d->bias - m->params)};
        at += up(depth * d->in * (pixels ? 1 : sizeof(float)));
        f->dy = at;
        at += up(depth * d->out * sizeof(float));
    }
    gp->bytes = at;
}

/* Tiles of about TILES_PER_RANK a rank of the node over all the weights (each
 * rank's share of the product, with some room to balance), none under
 * MIN_TILE_FLOPS unless that would leave ranks without one, column panel by panel. */
static int plan_tiles(nn_global_product *gp) {
    size_t weights = 0;
    for (int d = 0; d < gp->n_dense; d++) weights += (size_t)gp->dense[d].in * gp->dense[d].out;
    size_t target = weights / ((size_t)TILES_PER_RANK * gp->locals) + 1;
    size_t least = MIN_TILE_FLOPS / (2 * (size_t)gp->micro_steps * gp->batch); /* weights */
    if (least > weights / (size_t)gp->locals) least = weights / (size_t)gp->locals + 1; /* but a tile for every rank */
    target = target < least ? least : target;
    for (int pass = 0; pass < 2; pass++) { /* count, then fill */
        int n = 0;
        for (int d = 0; d < gp->n_dense; d++) {
            const dense_factors *f = &gp->dense[d];
            int rows, cols;
            nn_factor_tile_shape(f->in, f->out, target, &rows, &cols);
            for (int j0 = 0; j0 < f->out; j0 += cols)
                for (int i0 = 0; i0 < f->in; i0 += rows, n++)
                    if (pass)
                        gp->tiles[n] = (tile){.dense = d, .i0 = i0, .rows = f->in - i0 < rows ? f->in - i0 : rows,
                                              .j0 = j0, .cols = f->out - j0 < cols ? f->out - j0 : cols};
        }
        if (!pass && !(gp->tiles = malloc((size_t)n * sizeof *gp->tiles))) return NN_ERR_RUNTIME;
        gp->n_tiles = n;
    }
    size_t most = 0;
    for (int i = 0; i < gp->n_tiles; i++) {
        size_t f = (size_t)gp->tiles[i].rows * gp->tiles[i].cols + gp->tiles[i].cols;
        most = f > most ? f : most;
    }
    gp->acc = aligned_alloc(ALIGN, up(most * sizeof(float)));
    if (gp->pixels) /* the first layer's tiles: depth x their rows */
        gp->unpacked = aligned_alloc(ALIGN, up((size_t)gp->micro_steps * gp->batch * gp->dense[0].in * sizeof(float)));
    return gp->acc && (gp->unpacked || !gp->pixels) ? NN_OK : NN_ERR_RUNTIME;
}

/* The node's communicator (every rank alone with NN_EXACT_SUM=mpi, or where the
 * memory cannot be shared) and the leaders'. */
static int split(nn_global_product *gp, MPI_Comm comm, int alone) {
    int rc = alone ? MPI_Comm_split(comm, gp->rank, 0, &gp->node)
                   : MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, gp->rank, MPI_INFO_NULL, &gp->node);
    if (rc != MPI_SUCCESS) return NN_ERR_RUNTIME;
    MPI_Comm_rank(gp->node, &gp->local);
    MPI_Comm_size(gp->node, &gp->locals);
    rc = MPI_Comm_split(comm, gp->local == 0 ? 0 : MPI_UNDEFINED, gp->rank, &gp->leaders);
    gp->nodes = gp->local == 0;
    MPI_Allreduce(MPI_IN_PLACE, &gp->nodes, 1, MPI_INT, MPI_SUM, comm);
    return rc == MPI_SUCCESS ? NN_OK : NN_ERR_RUNTIME;
}

static void node_barrier(nn_global_product *gp) {
    if (gp->win == MPI_WIN_NULL) return;
    MPI_Win_sync(gp->win);
    MPI_Barrier(gp->node);
    MPI_Win_sync(gp->win);
}

static int allocate(nn_global_product *gp) {
    void *base = NULL;
    if (gp->locals == 1) {
        gp->base = aligned_alloc(ALIGN, gp->bytes);
        if (gp->base) memset(gp->base, 0, gp->bytes);
        return gp->base ? NN_OK : NN_ERR_RUNTIME;
    }
    MPI_Aint size;
    int disp;
    if (MPI_Win_allocate_shared(gp->local == 0 ? (MPI_Aint)(gp->bytes + ALIGN) : 0, 1, MPI_INFO_NULL, gp->node,
                                &base, &gp->win) != MPI_SUCCESS ||
        MPI_Win_shared_query(gp->win, 0, &size, &disp, &base) != MPI_SUCCESS ||
        MPI_Win_lock_all(MPI_MODE_NOCHECK, gp->win) != MPI_SUCCESS)
        return NN_ERR_RUNTIME;
    gp->base = (char *)(((uintptr_t)base + ALIGN - 1) / ALIGN * ALIGN);
    if (gp->local == 0) memset(gp->base, 0, gp->bytes);
    return NN_OK;
}

/* Node k's ranks' rows of every factor and their words of set p, as one datatype
 * of byte ranges from the base (the leaders broadcast it). */
static int node_type(nn_global_product *gp, const int *node_of, const int *rows, const int *first, int k, int p,
                     MPI_Datatype *type) {
    int per_rank = 2 * gp->micro_steps * gp->n_dense + 1, n = 0;
    int *lengths = malloc((size_t)gp->nranks * per_rank * sizeof *lengths);
    MPI_Aint *at = malloc((size_t)gp->nranks * per_rank * sizeof *at);
    if (!lengths || !at) {
        free(lengths);
        free(at);
        return NN_ERR_RUNTIME;
    }
    for (int r = 0; r < gp->nranks; r++) {
        if (node_of[r] != k) continue;
        for (int m = 0; m < gp->micro_steps; m++)
            for (int d = 0; d < gp->n_dense; d++) {
                const dense_factors *f = &gp->dense[d];
                size_t row = (size_t)m * gp->batch + (size_t)first[r];
                size_t x_size = gp->pixels && d == 0 ? 1 : sizeof(float);
                at[n] = (MPI_Aint)(f->x + row * f->in * x_size);
                lengths[n++] = (int)((size_t)rows[r] * f->in * x_size);
                at[n] = (MPI_Aint)(f->dy + row * f->out * sizeof(float));
                lengths[n++] = (int)((size_t)rows[r] * f->out * sizeof(float));
            }
        at[n] = (MPI_Aint)(gp->words_at[p] + (size_t)r * gp->words * sizeof(int64_t));
        lengths[n++] = (int)(gp->words * sizeof(int64_t));
    }
    int rc = MPI_Type_create_hindexed(n, lengths, at, MPI_BYTE, type);
    if (rc == MPI_SUCCESS) rc = MPI_Type_commit(type);
    free(lengths);
    free(at);
    return rc == MPI_SUCCESS ? NN_OK : NN_ERR_RUNTIME;
}

/* Between nodes: which node each rank is on, and each node's datatypes. */
static int node_types(nn_global_product *gp, MPI_Comm comm, const int *rows, const int *first) {
    int node_id = 0, status = NN_OK;
    if (gp->local == 0) MPI_Comm_rank(gp->leaders, &node_id);
    MPI_Bcast(&node_id, 1, MPI_INT, 0, gp->node);
    int *node_of = malloc((size_t)gp->nranks * sizeof *node_of);
    gp->node_rows = malloc(2 * (size_t)gp->nodes * sizeof *gp->node_rows);
    if (!node_of || !gp->node_rows) status = NN_ERR_RUNTIME;
    if (!status) MPI_Allgather(&node_id, 1, MPI_INT, node_of, 1, MPI_INT, comm);
    for (int i = 0; i < 2 * gp->nodes && gp->node_rows; i++) gp->node_rows[i] = MPI_DATATYPE_NULL;
    for (int i = 0; i < 2 * gp->nodes && !status; i++)
        status = node_type(gp, node_of, rows, first, i / 2, i % 2, &gp->node_rows[i]);
    free(node_of);
    return status;
}

/* The node's one copy of the parameters and momentum: local rank 0 copies them in
 * (every rank holds the same values), then each rank keeps them there. */
static void adopt_state(nn_global_product *gp) {
    size_t bytes = gp->model->n_params * sizeof(float);
    if (!gp->shared) return;
    if (gp->local == 0) {
        memcpy(gp->base + gp->params_at, gp->model->params, bytes);
        memcpy(gp->base + gp->velocity_at, gp->sgd->velocity, bytes);
    }
    node_barrier(gp);
    nn_model_place_params(gp->model, (float *)(gp->base + gp->params_at));
    nn_sgd_place_velocity(gp->sgd, (float *)(gp->base + gp->velocity_at));
}

int nn_global_product_create(nn_global_product **out, MPI_Comm comm, nn_model *model, nn_sgd *sgd,
                             const nn_global_step_shape *shape, nn_error *err) {
    *out = NULL;
    nn_global_product *gp = calloc(1, sizeof *gp);
    int status = nn_comm_agree(comm, gp ? NN_OK : nn_fail(err, NN_ERR_RUNTIME, "global product: out of memory"), err);
    if (status) {
        free(gp);
        return status;
    }
    gp->node = gp->leaders = MPI_COMM_NULL;
    gp->win = MPI_WIN_NULL;
    gp->model = model;
    gp->sgd = sgd;
    gp->batch = shape->batch;
    gp->micro_steps = shape->micro_steps;
    gp->words = shape->words;
    gp->pixels = shape->pixels;
    MPI_Comm_rank(comm, &gp->rank);
    MPI_Comm_size(comm, &gp->nranks);
    gp->my_rows = shape->rows[gp->rank];
    gp->my_first = shape->first_row[gp->rank];
    const char *choice = nn_env("NN_EXACT_SUM");
    int alone = choice && !strcmp(choice, "mpi");
    if (!(status = split(gp, comm, alone))) lay_out(gp);
    /* room for the node's window on every node? (MPI_Win_allocate_shared fails with an
     * internal error where there is not, see reduce.c); every rank asks, a lone one too */
    nn_shm_room room = {.unmappable = -1, .here = 1, .everywhere = 1};
    if (!status && !alone) room = nn_comm_shm_room(comm, gp->node, gp->locals > 1 ? (double)gp->bytes : 0.0);
    int crowded = !room.everywhere;
    double node_mib = (double)gp->bytes / 1048576.0;
    if (crowded) { /* agreed: every rank alone, in its own memory */
        MPI_Comm_free(&gp->node);
        if (gp->leaders != MPI_COMM_NULL) MPI_Comm_free(&gp->leaders);
        if (!(status = split(gp, comm, alone = 1))) lay_out(gp);
    }
    if (!status) status = allocate(gp);
    if (!status) status = plan_tiles(gp);
    if (!status && gp->nodes > 1) status = node_types(gp, comm, shape->rows, shape->first_row);
    if (crowded && room.unmappable >= 0)
        snprintf(gp->where, sizeof gp->where, "each rank on its own: rank %d's address space (ulimit -v) has no "
                 "room for a node's %.1f MiB", room.unmappable, node_mib);
    else if (crowded)
        snprintf(gp->where, sizeof gp->where, "each rank on its own: %s has no room for a node's %.1f MiB",
                 room.here ? "another node's shared memory" : room.dir, node_mib);
    else
        snprintf(gp->where, sizeof gp->where, "%s%d node%s%s", gp->locals > 1 ? "in shared memory, " : "", gp->nodes,
                 gp->nodes == 1 ? "" : "s", gp->locals > 1 && gp->shared ? ", one copy of the weights" : "");
    if (status) nn_fail(err, NN_ERR_RUNTIME, "global product: cannot set up its %.1f MiB of factors",
                        (double)gp->bytes / 1048576.0);
    if ((status = nn_comm_agree(comm, status, err))) {
        nn_global_product_free(gp);
        return status;
    }
    adopt_state(gp);
    *out = gp;
    return NN_OK;
}

void nn_global_product_free(nn_global_product *gp) {
    if (!gp) return;
    nn_global_product_detach(gp);
    for (int i = 0; gp->node_rows && i < 2 * gp->nodes; i++)
        if (gp->node_rows[i] != MPI_DATATYPE_NULL) MPI_Type_free(&gp->node_rows[i]);
    free(gp->node_rows);
    if (gp->win != MPI_WIN_NULL) {
        MPI_Win_unlock_all(gp->win);
        MPI_Win_free(&gp->win);
    } else {
        free(gp->base);
    }
    if (gp->leaders != MPI_COMM_NULL) MPI_Comm_free(&gp->leaders);
    if (gp->node != MPI_COMM_NULL) MPI_Comm_free(&gp->node);
    free(gp->tiles);
    free(gp->acc);
    free(gp->unpacked);
    free(gp);
}

void nn_global_product_attach(nn_global_product *gp, int micro) {
    nn_model *m = gp->model;
    size_t row = (size_t)micro * gp->batch + (size_t)gp->my_first;
    for (int d = 0; d < gp->n_dense; d++) {
        const dense_factors *f = &gp->dense[d];
        if (!gp->attached) {
            gp->own_x[d] = m->acts[f->layer];
            gp->own_dy[d] = m->grad_acts[f->layer + 1];
        }
        if (!(gp->pixels && d == 0)) /* the pixels come as bytes (nn_global_product_pixels) */
            m->acts[f->layer] = (float *)(gp->base + f->x) + row * f->in;
        m->grad_acts[f->layer + 1] = (float *)(gp->base + f->dy) + row * f->out;
    }
    m->factors = (float *)gp->base; /* backward: the dense weights are ours */
    gp->attached = 1;
}

void nn_global_product_detach(nn_global_product *gp) {
    if (!gp->attached) return;
    nn_model *m = gp->model;
    for (int d = 0; d < gp->n_dense; d++) {
        m->acts[gp->dense[d].layer] = gp->own_x[d];
        m->grad_acts[gp->dense[d].layer + 1] = gp->own_dy[d];
    }
    m->factors = NULL;
    gp->attached = 0;
}

uint8_t *nn_global_product_pixels(nn_global_product *gp, int micro) {
    size_t row = (size_t)micro * gp->batch + (size_t)gp->my_first;
    return gp->pixels ? (uint8_t *)(gp->base + gp->dense[0].x) + row * gp->dense[0].in : NULL;
}

int64_t *nn_global_product_words(nn_global_product *gp) {
    return (int64_t *)(gp->base + gp->words_at[gp->parity]) + (size_t)gp->rank * gp->words;
}

/* Tile t's part of the gradient into g (its weights with row stride ld, then its
 * biases at db when it has the first rows: the column sums of dY in row order). */
static void tile_gradient(const nn_global_product *gp, const tile *t, float *g, int ld, float *db) {
    const dense_factors *f = &gp->dense[t->dense];
    const float *x = (const float *)(gp->base + f->x) + t->i0, *dy = (const float *)(gp->base + f->dy);
    int depth = gp->micro_steps * gp->batch, lda = f->in;
    if (gp->pixels && t->dense == 0) { /* the tile's columns of the pixels, as the data's gather makes them */
        const uint8_t *px = (const uint8_t *)(gp->base + f->x) + t->i0;
        for (int r = 0; r < depth; r++)
            nn_pixels_to_floats(px + (size_t)r * f->in, gp->unpacked + (size_t)r * t->rows, t->rows);
        x = gp->unpacked;
        lda = t->rows; /* the element order does not depend on it */
    }
    nn_gemm(true, false, t->rows, t->cols, depth, x, lda, dy + t->j0, f->out, 0.0f, g, ld);
    if (t->i0) return;
    for (int j = 0; j < t->cols; j++) db[j] = 0.0f;
    for (int r = 0; r < depth; r++) {
        const float *row = dy + (size_t)r * f->out + t->j0;
        for (int j = 0; j < t->cols; j++) db[j] += row[j];
    }
}

/* One tile over the whole depth: into the node's summed gradient, or with one copy
 * of the weights, into a scratch and its SGD step at once. */
static void run_tile(nn_global_product *gp, const tile *t) {
    const dense_factors *f = &gp->dense[t->dense];
    size_t first = f->weight + (size_t)t->i0 * f->out + t->j0;
    if (!gp->shared) {
        float *grads = (float *)(gp->base + gp->grads_at);
        tile_gradient(gp, t, grads + first, f->out, grads + f->bias + t->j0);
        return;
    }
    float *params = gp->model->params, *db = gp->acc + (size_t)t->rows * t->cols;
    tile_gradient(gp, t, gp->acc, t->cols, db);
    int bad = 0;
    if (t->cols == f->out) /* whole rows: one stretch of the parameters */
        bad |= nn_sgd_step_sums(gp->sgd, params, gp->acc, gp->lr, first, (size_t)t->rows * t->cols);
    else
        for (int i = 0; i < t->rows; i++)
            bad |= nn_sgd_step_sums(gp->sgd, params, gp->acc + (size_t)i * t->cols, gp->lr, first + (size_t)i * f->out,
                                    (size_t)t->cols);
    if (t->i0 == 0) bad |= nn_sgd_step_sums(gp->sgd, params, db, gp->lr, f->bias + t->j0, (size_t)t->cols);
    gp->bad |= bad;
}

/* Between nodes: every node's rows to every node, a broadcast from each leader. */
static void exchange_rows(nn_global_product *gp) {
    if (gp->local == 0) {
        MPI_Request req[gp->nodes];
        for (int k = 0; k < gp->nodes; k++)
            MPI_Ibcast(gp->base, 1, gp->node_rows[2 * k + gp->parity], k, gp->leaders, &req[k]);
        MPI_Waitall(gp->nodes, req, MPI_STATUSES_IGNORE);
    }
    node_barrier(gp);
}

double nn_global_product_update(nn_global_product *gp, float lr, int64_t *sums, int *nonfinite,
                                double *product_seconds) {
    double t0 = MPI_Wtime();
    node_barrier(gp); /* the node's rows and words are written */
    if (gp->nodes > 1) exchange_rows(gp);
    double t1 = MPI_Wtime();
    gp->lr = lr;
    gp->bad = 0;
    for (;;) {
        unsigned long long i = atomic_fetch_add_explicit(counter(gp), 1, memory_order_relaxed);
        if (i >= (unsigned long long)gp->n_tiles) break;
        run_tile(gp, &gp->tiles[i]);
    }
    int *flags = (int *)(gp->base + gp->flags_at[gp->parity]);
    flags[gp->rank] = gp->bad;
    double t2 = MPI_Wtime();
    node_barrier(gp); /* every tile is done; nobody takes another this step */
    if (gp->local == 0) atomic_store_explicit(counter(gp), 0, memory_order_relaxed); /* seen after the next barrier */
    const int64_t *w = (const int64_t *)(gp->base + gp->words_at[gp->parity]);
    for (int k = 0; k < gp->words; k++) sums[k] = 0;
    *nonfinite = 0;
    for (int r = 0; r < gp->nranks; r++) { /* the other nodes' flags are 0 here: they make the same */
        for (int k = 0; k < gp->words; k++) sums[k] += w[(size_t)r * gp->words + k];
        *nonfinite |= flags[r];
    }
    gp->parity ^= 1;
    *product_seconds = t2 - t1;
    double waited = MPI_Wtime() - t0 - (t2 - t1);
    if (!gp->shared) /* each rank's own copy, from the node's summed gradient (not written before the next barrier) */
        *nonfinite = nn_sgd_step(gp->sgd, gp->model->params, (const float *)(gp->base + gp->grads_at), lr);
    return waited;
}

double nn_global_product_max_norm(nn_global_product *gp, float c) {
    if (!gp->shared) {
        nn_model_max_norm(gp->model, c);
        return 0.0;
    }
    nn_model_max_norm_part(gp->model, c, gp->local, gp->locals);
    double t = MPI_Wtime();
    node_barrier(gp); /* every column is done before anyone reads them */
    return MPI_Wtime() - t;
}

const char *nn_global_product_where(const nn_global_product *gp) { return gp->where; }
