/* Deterministic mode (--deterministic): the training step up to the summed
 * gradients, the same bits for any rank count, node layout, thread count and
 * --allreduce. A rank runs forward and backward once over the rows of all its
 * virtual shards (nn/virtual_shards.h): a row's values depend on that row alone
 * (kernels.c), whatever rows sit beside it. Only the sums over rows are made per
 * shard: each shard's parameter gradient is its own product of batch / V rows (the
 * same shapes on every rank count, so the same bits), and its loss its own sum.
 * Those go onto a fixed-point grid whose sum is exact (nn/exact_sum.h), so neither
 * the grouping of shards on ranks nor the order of the sum over ranks can change a
 * bit. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/comm.h"
#include "nn/virtual_shards.h"
#include "nn/watchdog.h"
#include "trainer.h"

/* Integer words summed with the gradients. */
enum { WORD_STOP, WORD_BAD, WORD_LOSS, WORDS };

/* Too many ranks for the run's V virtual shards: what the user can do about it. A
 * resumed run's V is the checkpoint's (fewer ranks, then); a new run may take another V,
 * the smallest that fits, where the batch has one. */
static int too_many_ranks(const trainer *t, nn_error *err) {
    const nn_run_config *c = &t->cfg;
    int v = c->virtual_shards, fits = 0;
    char advice[NN_PATH_MAX + 128];
    for (int d = t->nranks; d <= NN_VSHARDS_MAX && d <= c->batch_size && !fits; d++)
        if (c->batch_size % d == 0) fits = d;
    if (t->opt.resume[0])
        snprintf(advice, sizeof advice, "%s was written with them: resume it with at most %d ranks", t->opt.resume, v);
    else if (fits)
        snprintf(advice, sizeof advice, "choose --virtual-shards V >= %d dividing --batch-size %d, such as %d",
                 t->nranks, c->batch_size, fits);
    else
        snprintf(advice, sizeof advice, "no V from %d to %d divides --batch-size %d: choose another batch size, or "
                 "fewer ranks", t->nranks, NN_VSHARDS_MAX, c->batch_size);
    return nn_fail(err, NN_ERR_INPUT, "deterministic mode with %d virtual shard%s runs on at most %d rank%s, not %d "
                   "(%s)", v, v == 1 ? "" : "s", v, v == 1 ? "" : "s", t->nranks, advice);
}

int trainer_exact_setup(trainer *t, nn_error *err) {
    const nn_run_config *c = &t->cfg;
    int v = c->virtual_shards;
    if (c->batch_size % v)
        return nn_fail(err, NN_ERR_INPUT, "--virtual-shards %d does not divide --batch-size %d", v, c->batch_size);
    if (t->nranks > v) return too_many_ranks(t, err);
    if (v > t->train.total)
        return nn_fail(err, NN_ERR_INPUT, "--virtual-shards %d exceeds the %ld training samples", v, t->train.total);
    nn_vshards_of_rank(v, t->rank, t->nranks, &t->vs_first, &t->vs_end);
    int dense = !c->spec.n_convs; /* the product over the global batch (trainer_global_setup) sums the gradients */
    int status = nn_exact_create(&t->exact, dense ? 0 : nn_spec_param_count(&c->spec), WORDS,
                                 (long)v * c->accumulate, err);
    status = nn_comm_agree(t->comm, status, err); /* the next call is collective */
    return status || dense ? status : nn_exact_share(&t->exact, t->comm, err);
}

int trainer_global_setup(trainer *t, nn_error *err) {
    int v = t->cfg.virtual_shards, s = t->cfg.batch_size / v, first, end;
    int *rows = malloc(2 * (size_t)t->nranks * sizeof *rows), *first_row = rows + t->nranks;
    int status = nn_comm_agree(t->comm, rows ? NN_OK : nn_fail(err, NN_ERR_RUNTIME, "out of memory"), err);
    if (status) {
        free(rows);
        return status;
    }
    for (int r = 0; r < t->nranks; r++) { /* rank r's shards, in the global batch's order */
        nn_vshards_of_rank(v, r, t->nranks, &first, &end);
        rows[r] = (end - first) * s;
        first_row[r] = first * s;
    }
    /* the first layer reads the pixels as gathered: they can go as bytes */
    int pixels = t->model.layers[0].kind == NN_LAYER_DENSE && t->cfg.shift == 0;
    nn_global_step_shape shape = {.batch = t->cfg.batch_size, .micro_steps = t->cfg.accumulate, .words = WORDS,
                                  .pixels = pixels, .rows = rows, .first_row = first_row};
    status = nn_global_product_create(&t->global, t->comm, &t->model, &t->sgd, &shape, err);
    free(rows);
    return status;
}

/* Shard v's first row, counted from this rank's first (its shards are contiguous). */
static long local_begin(const trainer *t, int v, long *count) {
    long mine, begin, n;
    nn_vshard_rows(t->train.total, t->cfg.virtual_shards, t->vs_first, &mine, &n);
    nn_vshard_rows(t->train.total, t->cfg.virtual_shards, v, &begin, count);
    return begin - mine;
}

void trainer_exact_shuffle(trainer *t, int epoch) {
    for (int v = t->vs_first; v < t->vs_end; v++) {
        long count, begin = local_begin(t, v, &count);
        uint32_t *order = t->order + begin;
        nn_vshard_shuffle(t->cfg.seed, epoch, v, order, (uint32_t)count);
        for (long i = 0; i < count; i++) order[i] += (uint32_t)begin; /* as rows of this rank's data */
    }
    /* the same on every rank: what a checkpoint records, whatever the rank count */
    nn_rng_seed(&t->shuffle_rng, t->cfg.seed, (uint64_t)epoch, UINT64_MAX);
}

/* Micro-batch `micro` of this rank's shards: the i-th shard's s samples (positions
 * [micro * s, (micro + 1) * s) of its permutation; steps_per_epoch keeps them inside
 * the shard) in rows [i * s, (i + 1) * s). Returns the row count. */
static int load_shards(trainer *t, long micro) {
    int s = t->cfg.batch_size / t->cfg.virtual_shards, n = 0;
    for (int v = t->vs_first; v < t->vs_end; v++) {
        long count;
        const uint32_t *order = t->order + local_begin(t, v, &count) + micro * s;
        for (int i = 0; i < s; i++, n++) {
            t->batch_rows[n] = order[i];
            t->sample_ids[n] = (uint64_t)(t->train.offset + order[i]);
        }
    }
    nn_shard_gather(&t->train, t->batch_rows, n, nn_model_input(&t->model), t->labels);
    for (int v = t->vs_first; v < t->vs_end; v++) { /* the next micro-batch's rows, as trainer_load_batch does */
        long count, begin = local_begin(t, v, &count);
        for (long i = (micro + 1) * s; i < (micro + 2) * s && i < count; i++)
            nn_shard_prefetch(&t->train, t->order[begin + i]);
    }
    return n;
}

/* Each shard's summed loss on the grid, after the forward pass (which left the
 * targets for mse): a row's outputs depend on that row alone, so a shard's loss is
 * the same whichever rows were computed beside it. */
static int64_t shard_losses(trainer *t, int n, int *bad) {
    nn_model *m = &t->model;
    int s = t->cfg.batch_size / t->cfg.virtual_shards, classes = m->spec.widths[m->spec.n_widths - 1];
    const float *out = m->acts[m->n_layers];
    int64_t sum = 0;
    for (int r = 0; r < n; r += s) {
        size_t at = (size_t)r * classes;
        double loss = m->spec.loss == NN_LOSS_SOFTMAX_XENT
                          ? nn_softmax_xent_forward(out + at, t->labels + r, m->probs + at, s, classes)
                          : nn_mse_forward(out + at, m->targets + at, s, classes);
        sum += nn_exact_loss_word(&t->exact, loss, bad);
    }
    return sum;
}

/* Forward and each shard's loss on the grid: softmax's probabilities come row by
 * row with the shards' losses; mse's forward sets the targets they need. */
static int64_t forward_losses(trainer *t, int n, int *bad) {
    nn_model *m = &t->model;
    if (m->spec.loss == NN_LOSS_SOFTMAX_XENT) nn_model_forward(m, n);
    else nn_model_forward_loss(m, t->labels, n);
    return shard_losses(t, n, bad);
}

/* Backward's hand-over: one shard's gradient of one layer, onto the grid. Each
 * layer's parts come in a row, so a new offset in the first micro-step is the
 * layer's first part of the step: it stores rather than adds. */
static void take_part(void *ctx, size_t offset, size_t count) {
    trainer *t = ctx;
    int store = t->exact_store && offset != t->exact_last;
    t->exact_last = offset;
    nn_exact_add(&t->exact, t->model.grads + offset, offset, count, store);
}

/* Forward and backward of every micro-step on all of this rank's rows at once (the
 * same bits row by row), each shard's parameter gradient and loss on the grid. */
static void local_gradients(trainer *t, long s, double *data_seconds) {
    nn_model *m = &t->model;
    int k = t->cfg.accumulate, bad = 0, rows = t->cfg.batch_size / t->cfg.virtual_shards;
    float scale = 1.0f / ((float)t->cfg.batch_size * (float)k);
    int64_t loss = 0;
    nn_exact_clear_words(&t->exact); /* every gradient value is stored by its first part */
    t->exact_last = SIZE_MAX;
    for (int micro = 0; micro < k; micro++) {
        t->exact_store = micro == 0;
        double t0 = MPI_Wtime();
        int n = load_shards(t, s * k + micro);
        *data_seconds += MPI_Wtime() - t0;
        trainer_key_batch(t, n, micro);
        loss += forward_losses(t, n, &bad); /* not the whole batch's loss: its grouping depends on n */
        nn_model_backward_parts(m, t->labels, n, scale, rows, take_part, t);
    }
    int64_t *words = t->exact.acc + t->exact.n;
    words[WORD_LOSS] = loss;
    words[WORD_BAD] = bad + t->exact.bad;
    words[WORD_STOP] = nn_exchange_control(t->exchange, NN_CONTROL_STOP) > 0.0f;
}

/* The same on a dense network: forward and backward of each micro-step with the dense
 * layers' inputs and output gradients in the global product's factors, and the
 * words (the loss on its grid, the flags) for its exact sum. */
static void local_factors(trainer *t, long s, double *data_seconds) {
    nn_model *m = &t->model;
    int k = t->cfg.accumulate, bad = 0;
    float scale = 1.0f / ((float)t->cfg.batch_size * (float)k);
    int64_t loss = 0;
    for (int micro = 0; micro < k; micro++) {
        nn_global_product_attach(t->global, micro);
        double t0 = MPI_Wtime();
        int n = load_shards(t, s * k + micro);
        uint8_t *pixels = nn_global_product_pixels(t->global, micro);
        for (int i = 0; pixels && i < n; i++) /* the rows just gathered, still in cache */
            memcpy(pixels + (size_t)i * t->train.dim, t->train.images + (size_t)t->batch_rows[i] * t->train.dim,
                   (size_t)t->train.dim);
        *data_seconds += MPI_Wtime() - t0;
        trainer_key_batch(t, n, micro);
        loss += forward_losses(t, n, &bad);
        nn_model_backward_micro(m, t->labels, n, scale, micro, k);
    }
    nn_global_product_detach(t->global); /* evaluation uses more rows than a step's part */
    int64_t *words = nn_global_product_words(t->global);
    words[WORD_LOSS] = loss;
    words[WORD_BAD] = bad;
    words[WORD_STOP] = nn_exchange_control(t->exchange, NN_CONTROL_STOP) > 0.0f;
}

double trainer_global_step(trainer *t, long s, float lr, double *data_seconds, int *nonfinite) {
    local_factors(t, s, data_seconds);
    nn_watchdog_beat(t->progress.global_step, NN_PHASE_SUM);
    int64_t sums[WORDS];
    double products; /* the backward's work: not the sum's time */
    double seconds = nn_global_product_update(t->global, lr, sums, nonfinite, &products);
    if (t->rank == 0) t->loss_sum += nn_exact_loss_value(sums[WORD_LOSS]); /* one rank holds the exact loss */
    nn_exchange_set_control(t->exchange, NN_CONTROL_NONFINITE, sums[WORD_BAD] > 0);
    nn_exchange_set_control(t->exchange, NN_CONTROL_STOP, sums[WORD_STOP] > 0);
    if (t->cfg.max_norm > 0.0f && !*nonfinite) seconds += nn_global_product_max_norm(t->global, t->cfg.max_norm);
    return seconds;
}

double trainer_exact_gradients(trainer *t, long s, double *data_seconds) {
    local_gradients(t, s, data_seconds);
    nn_watchdog_beat(t->progress.global_step, NN_PHASE_SUM);
    double t0 = MPI_Wtime();
    /* into the exchange's buffer: the gradients, then room for the words (its
     * control words, which are set from them below) */
    float *out = t->model.grads;
    nn_exact_sum_floats(&t->exact, out, t->comm);
    double seconds = MPI_Wtime() - t0;
    /* one rank holds the step's exact loss, the others add 0: a sum over ranks
     * (metrics, checkpoints) is then exact too */
    const int64_t *loss = nn_exact_summed_word(&t->exact, WORD_LOSS);
    if (loss) t->loss_sum += nn_exact_loss_value(*loss);
    float bad = out[t->exact.n + WORD_BAD], stop = out[t->exact.n + WORD_STOP];
    out[t->exact.n + WORD_LOSS] = 0.0f; /* not a control word: only the exact one above counts */
    nn_exchange_set_control(t->exchange, NN_CONTROL_NONFINITE, bad);
    nn_exchange_set_control(t->exchange, NN_CONTROL_STOP, stop);
    return seconds;
}
