/* Which samples each rank trains on in each step, and assembling them.
 * Global micro-batch s holds the slots [s * batch, (s+1) * batch) of the epoch; slot g
 * belongs to rank g % nranks, which takes its samples from its own shuffled shard in
 * order. So every rank count sees the same sequence of global batches (up to which
 * rank holds which sample). */
#include "nn/train.h"

#include "nn/augment.h"

#include "trainer.h"

/* Count of slots g in [0, n) with g % nranks == rank. */
static long slots_below(long n, int rank, int nranks) { return n > rank ? (n - rank - 1) / nranks + 1 : 0; }

int nn_local_batch(long step, int batch, int rank, int nranks, long *first) {
    long begin = step * batch, end = begin + batch;
    *first = slots_below(begin, rank, nranks);
    return (int)(slots_below(end, rank, nranks) - *first);
}

/* The shard row of this rank's i-th sample from slot `first` on: wraps when a rank's
 * share exceeds its shard by a few. */
static uint32_t row_at(const trainer *t, long first, int i) { return t->order[(first + i) % t->train.count]; }

int trainer_load_batch(trainer *t, long micro) {
    long first;
    int n = nn_local_batch(micro, t->cfg.batch_size, t->rank, t->nranks, &first);
    for (int i = 0; i < n; i++) {
        t->batch_rows[i] = row_at(t, first, i);
        t->sample_ids[i] = (uint64_t)(t->train.offset + t->batch_rows[i]);
    }
    nn_shard_gather(&t->train, t->batch_rows, n, nn_model_input(&t->model), t->labels);
    /* The rows are random, so their first touch misses the caches; asked for now,
     * they arrive while this batch's forward and backward run (next step's data
     * share 9% -> 6% of the epoch on the reference network at -np 2). */
    long next_first;
    int next = nn_local_batch(micro + 1, t->cfg.batch_size, t->rank, t->nranks, &next_first);
    for (int i = 0; i < next; i++) nn_shard_prefetch(&t->train, row_at(t, next_first, i));
    return n;
}

/* Micro-step `micro` of the current global step: the batch's key, from which dropout
 * draws its masks and --shift its moves (after loading: the moves are made here). */
void trainer_key_batch(trainer *t, int n, int micro) {
    nn_model *m = &t->model;
    m->dropout_key = (nn_dropout_key){.seed = t->cfg.seed,
                                      .step = (uint64_t)(t->progress.global_step * t->cfg.accumulate + micro),
                                      .samples = t->sample_ids, .training = true};
    if (t->cfg.shift > 0) nn_shift_images(nn_model_input(m), n, t->train.image, t->cfg.shift, &m->dropout_key);
}
