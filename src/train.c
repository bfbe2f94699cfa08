/* The training loop. Per step, for each of its --accumulate micro-steps: assemble
 * this rank's part of the global micro-batch, forward and loss, backward with scale
 * 1/(global batch of the step) added straight into the gradient exchange's buffer;
 * then one sum over the ranks (the gradient of the mean loss over the step's batch,
 * and the control words), the SGD step (each rank of a node doing its share of it in
 * shm mode), and every rank holds the same updated parameters.
 * Per epoch: distributed evaluation, one log line, a checkpoint. Building the run
 * (resume, data, buffers) lives in trainer_setup.c. */
#include "nn/train.h"

#include <math.h>

#include "nn/comm.h"
#include "nn/metrics.h"
#include "nn/placement.h"
#include "nn/signals.h"
#include "nn/watchdog.h"
#include "trainer.h"

/* Samples in one SGD step: the global batch of each micro-step, times their number. */
static long step_samples(const trainer *t) { return (long)t->cfg.batch_size * t->cfg.accumulate; }

typedef enum step_outcome { STEP_DONE, STEP_STOP, STEP_DIVERGED } step_outcome;

/* A length given in (fractional) epochs, in whole steps. */
static long epochs_to_steps(const trainer *t, double epochs) { return (long)(epochs * (double)t->steps_per_epoch + 0.5); }

static float learning_rate(const trainer *t, long global_step) {
    long warmup = epochs_to_steps(t, t->cfg.warmup_epochs);
    return nn_schedule_lr_warm(t->cfg.schedule, t->cfg.lr, global_step, t->steps_per_epoch * t->cfg.epochs, warmup);
}

/* Micro-step `micro` of global step `s`: forward and backward on this rank's part of
 * micro-batch s * accumulate + micro, the gradient added to the earlier micro-steps'.
 * Returns the loss summed over the samples; `loss` is the step's sum so far. */
static double micro_step(trainer *t, long s, int micro, double loss, nn_epoch_clock *clock) {
    nn_model *m = &t->model;
    int k = t->cfg.accumulate;
    double t0 = MPI_Wtime();
    int n = trainer_load_batch(t, s * k + micro);
    clock->data += MPI_Wtime() - t0;
    trainer_key_batch(t, n, micro);
    if (t->factors) nn_factor_sum_rows(t->factors, n);

    double micro_loss = nn_model_forward_loss(m, t->labels, n);
    if (micro == k - 1) /* before the last backward: overlap mode sends the control words with the top slice */
        nn_exchange_set_control(t->exchange, NN_CONTROL_NONFINITE, !isfinite(loss + micro_loss));
    nn_model_backward_micro(m, t->labels, n, 1.0f / ((float)t->cfg.batch_size * (float)k), micro, k);
    return micro_loss;
}

/* The SGD step on one chunk of the summed gradient (nn_exchange_finish_update). */
typedef struct sgd_chunk { nn_sgd *sgd; float *params; float lr; } sgd_chunk;

static unsigned sgd_chunk_step(void *ctx, const float *sums, size_t offset, size_t count) {
    const sgd_chunk *c = ctx;
    return (unsigned)nn_sgd_step_sums(c->sgd, c->params, sums, c->lr, offset, count);
}

/* One training step on this rank's part of global step `s` of the epoch. */
static step_outcome step(trainer *t, long s, nn_epoch_clock *clock) {
    nn_model *m = &t->model;
    nn_watchdog_beat(t->progress.global_step, NN_PHASE_STEP);
    nn_exchange_begin(t->exchange);
    nn_exchange_set_control(t->exchange, NN_CONTROL_STOP, nn_stop_requested(t->progress.global_step + 1));
    double loss = 0.0;
    for (int micro = 0; micro < t->cfg.accumulate && !t->cfg.virtual_shards; micro++) /* overlap mode sums in the last */
        loss += micro_step(t, s, micro, loss, clock);
    t->loss_sum += loss;
    nn_watchdog_beat(t->progress.global_step, NN_PHASE_SUM);
    long ramp = epochs_to_steps(t, t->cfg.momentum_ramp_epochs);
    t->sgd.momentum = nn_momentum_ramp(t->cfg.momentum, t->cfg.momentum_end, t->progress.global_step, ramp);
    int nonfinite = 0;
    if (t->global) /* --deterministic on a dense network: the node's tiles update its one copy (exact_step.c) */
        clock->exchange += trainer_global_step(t, s, learning_rate(t, t->progress.global_step), &clock->data, &nonfinite);
    else if (nn_exchange_fused(t->exchange)) {
        /* one copy of parameters and momentum a node: each chunk's SGD step as it is summed */
        sgd_chunk c = {&t->sgd, m->params, learning_rate(t, t->progress.global_step)};
        const nn_chunk_work *work = t->model.factored ? nn_factor_sum_work(t->factors, sgd_chunk_step, &c) : NULL;
        double products = nn_factor_sum_product_seconds(t->factors); /* backward's work: not the sum's time */
        clock->exchange += nn_exchange_finish_update_with(t->exchange, work, sgd_chunk_step, &c, &nonfinite) -
                           (nn_factor_sum_product_seconds(t->factors) - products);
    } else {
        clock->exchange += t->cfg.virtual_shards ? trainer_exact_gradients(t, s, &clock->data) /* --deterministic */
                                                 : nn_exchange_finish_owned(t->exchange);
        /* SGD on this rank's share (all, unless the node's ranks split it); then all get the whole vector */
        size_t offset, count;
        nn_exchange_owned(t->exchange, &offset, &count);
        nonfinite = nn_sgd_step_range(&t->sgd, m->params, m->grads, learning_rate(t, t->progress.global_step), offset, count);
        clock->exchange += nn_exchange_publish(t->exchange, m->params, &nonfinite);
    }
    /* every rank sees the same non-finite loss (a control word) or weight, without a word */
    if (nonfinite || nn_exchange_control(t->exchange, NN_CONTROL_NONFINITE) > 0.0f) return STEP_DIVERGED;
    if (t->cfg.max_norm > 0.0f && !t->global) clock->exchange += nn_exchange_max_norm(t->exchange, m, t->cfg.max_norm);
    t->progress.global_step++;
    t->progress.step_in_epoch++;
    clock->steps_done++;
    return nn_exchange_control(t->exchange, NN_CONTROL_STOP) > 0.0f ? STEP_STOP : STEP_DONE;
}

static int save(trainer *t, nn_train_result *result, double *seconds, nn_error *err) {
    nn_exchange_gather(t->exchange, t->sgd.velocity); /* each rank updated only its share of it */
    nn_train_state state = {&t->cfg, &t->model, &t->sgd, &t->progress, &t->shuffle_rng, t->loss_sum,
                            result->final_accuracy, t->done_loss, result->best_accuracy, result->best_epoch};
    nn_watchdog_beat(t->progress.global_step, NN_PHASE_EPOCH);
    int status = nn_checkpoint_save(t->opt.checkpoint, &state, t->comm, seconds, err);
    if (!status) {
        result->checkpoints++;
        result->checkpoint_seconds += *seconds;
    }
    return status;
}

/* The steps of the epoch in progress, up to its end or a stop. */
static int train_steps(trainer *t, nn_epoch_clock *clock, step_outcome *outcome, nn_train_result *result,
                       nn_error *err) {
    double t0 = MPI_Wtime(), saving = 0.0;
    int status = NN_OK;
    bool after_other_work = true; /* the epoch's evaluation, or a checkpoint: not a step's time */
    *outcome = STEP_DONE;
    while (t->progress.step_in_epoch < t->steps_per_epoch && *outcome == STEP_DONE && !status) {
        trainer_tuning_begin_step(t);
        double step_start = MPI_Wtime();
        *outcome = step(t, t->progress.step_in_epoch, clock);
        trainer_tuning_end_step(t, MPI_Wtime() - step_start, after_other_work);
        after_other_work = false;
        int epoch_end = t->progress.step_in_epoch == t->steps_per_epoch; /* saved after evaluation */
        if (t->opt.checkpoint[0] && *outcome != STEP_DIVERGED &&
            nn_checkpoint_due(t->opt.checkpoint_every, t->progress.global_step, *outcome == STEP_STOP, epoch_end)) {
            double seconds;
            status = save(t, result, &seconds, err);
            saving += seconds;
            after_other_work = true;
        }
    }
    clock->steps = MPI_Wtime() - t0 - saving;
    /* a convolutional network's exact sum also stops on a finite value beyond its range */
    const char *why = t->cfg.virtual_shards > 0 && t->cfg.spec.n_convs > 0
                          ? "a loss or gradient is not finite or beyond --deterministic's exact range (docs/determinism.md)"
                          : "the loss or a weight is not finite";
    if (!status && *outcome == STEP_DIVERGED) status = trainer_diverged(t, why, t->progress.step_in_epoch + 1, err);
    return status;
}

/* The epoch is complete: evaluate, report, and save the start of the next one
 * (whose permutation, and generator state, is drawn now). */
static int end_epoch(trainer *t, int epoch, const nn_epoch_clock *clock, nn_train_result *result, nn_error *err) {
    nn_epoch_stats st = {.epoch = epoch, .epochs = t->cfg.epochs, .ranks = t->nranks, .threads = t->threads,
                         .node_sum = trainer_node_sum(t)}; /* the sum the steps use now */
    nn_watchdog_beat(t->progress.global_step, NN_PHASE_EPOCH);
    double t0 = MPI_Wtime();
    nn_scores scores;
    nn_evaluate(&t->eval, &t->model, &t->test, t->comm, &scores);
    st.eval_seconds = MPI_Wtime() - t0;
    st.test_loss = scores.loss;
    st.test_accuracy = scores.accuracy;
    if (t->cfg.validation > 0) { /* for choosing settings: the test set is for reporting only */
        nn_evaluate(&t->eval, &t->model, &t->validation, t->comm, &scores);
        st.has_validation = 1;
        st.validation_loss = scores.loss;
        st.validation_accuracy = scores.accuracy;
    }
    st.lr = learning_rate(t, t->progress.global_step - 1);
    nn_metrics_gather(&st, clock, t->loss_sum, (double)t->steps_per_epoch * step_samples(t), (int)step_samples(t), t->comm);
    /* gathered, so the same on every rank: no NaN reaches a checkpoint or the metrics */
    if (!isfinite(st.test_loss) || !isfinite(st.train_loss)) return trainer_diverged(t, "the epoch's loss is not finite", t->steps_per_epoch, err);
    char what[160];
    if (nn_loss_diverged(st.train_loss, t->first_loss, t->train.num_classes, what, sizeof what))
        return trainer_diverged(t, what, t->steps_per_epoch, err);
    if (t->first_loss == 0) t->first_loss = st.train_loss;
    t->progress.epochs_completed = epoch;
    t->progress.step_in_epoch = 0;
    t->loss_sum = 0.0;
    trainer_shuffle(t, epoch + 1);
    result->final_accuracy = st.test_accuracy; /* recorded in the checkpoint */
    t->done_loss = st.train_loss;              /* as are the record's training loss */
    if (st.test_accuracy > result->best_accuracy) { /* and the best so far */
        result->best_accuracy = st.test_accuracy;
        result->best_epoch = epoch;
    }
    int status = t->opt.checkpoint[0] ? save(t, result, &st.checkpoint_seconds, err) : NN_OK;
    if (status) st.checkpoint_seconds = 0; /* no "checkpoint 0.014s" for one that failed */

    result->train_seconds += st.epoch_seconds;
    result->allreduce_seconds += st.allreduce_seconds;
    result->allreduce_wait_seconds += st.allreduce_wait_seconds;
    t->samples_trained += (double)clock->steps_done * step_samples(t);
    /* the record first: the line goes to a pipe that may be gone (SIGPIPE, signals.c) */
    if (!status && t->metrics.fd >= 0) status = nn_metrics_append(&t->metrics, &st, err);
    if (t->log) nn_metrics_print_line(t->log, &st);
    return nn_comm_agree(t->comm, status, err); /* only rank 0 writes the metrics */
}

static int train_epochs(trainer *t, nn_train_result *result, nn_error *err) {
    int first_epoch = t->progress.epochs_completed + 1, status = NN_OK;
    step_outcome outcome = STEP_DONE;
    trainer_shuffle(t, first_epoch);
    if (t->opt.resume[0] && (status = trainer_restore_epoch(t, err))) return status;
    if ((status = nn_comm_agree(t->comm, nn_metrics_cut(&t->metrics, err), err))) return status; /* checks passed */
    for (int epoch = first_epoch; epoch <= t->cfg.epochs && outcome == STEP_DONE && !status; epoch++) {
        nn_epoch_clock clock = {0};
        MPI_Barrier(t->comm);
        double waited = nn_exchange_wait_seconds(t->exchange);
        status = train_steps(t, &clock, &outcome, result, err);
        clock.exchange_wait = nn_exchange_wait_seconds(t->exchange) - waited;
        if (!status && t->progress.step_in_epoch == t->steps_per_epoch) status = end_epoch(t, epoch, &clock, result, err);
    }
    if (!status && outcome == STEP_STOP && t->progress.epochs_completed < t->cfg.epochs) {
        result->stopped = 1;
        status = nn_fail(err, NN_STOPPED, "stopped by a signal at epoch %d, step %ld%s%s",
                         t->progress.epochs_completed + 1, t->progress.step_in_epoch,
                         t->opt.checkpoint[0] ? "; checkpoint written to " : "; no --checkpoint given, nothing saved",
                         t->opt.checkpoint);
    }
    return status;
}

int nn_train(const nn_train_options *opt, MPI_Comm comm, FILE *log, nn_train_result *result, nn_error *err) {
    trainer t = {.opt = *opt, .comm = comm, .done_loss = -1.0};
    t.metrics.fd = t.checkpoint_lock.fd = t.metrics_lock.fd = -1; /* none open yet, whatever fails first */
    MPI_Comm_rank(comm, &t.rank);
    MPI_Comm_size(comm, &t.nranks);
    t.log = t.rank == 0 ? log : NULL;
    *result = (nn_train_result){.best_accuracy = -1.0, .final_accuracy = -1.0};
    t.threads = nn_placement_threads(opt->threads, comm, &t.node_cores);
    /* the tuning's timing is collective: only ranks that try the same counts may tune */
    nn_thread_tuning_start(&t.tuning, t.threads, opt->thread_tuning && nn_thread_tuning_alike(t.threads, comm));
    trainer_follow_output_links(&t);
    int status = nn_watchdog_start(comm, opt->timeout, err); /* so the node's ranks watch start-up together */
    if (!status) status = trainer_setup(&t, err);
    result->complete = t.complete;
    if (t.opt.resume[0]) { /* the epochs before the resume count too */
        result->final_accuracy = t.ck.test_accuracy;
        result->best_accuracy = t.ck.best_accuracy;
        result->best_epoch = t.ck.best_epoch;
    }
    if (!status && !t.complete) {
        if (t.log) trainer_print_header(&t);
        status = train_epochs(&t, result, err);
    }
    nn_watchdog_stop();
    result->epochs_run = t.progress.epochs_completed;
    result->threads = t.threads;
    result->node_cores = t.node_cores;
    result->ranks_per_node = t.ranks_per_node;
    result->samples_per_second = result->train_seconds > 0 ? t.samples_trained / result->train_seconds : 0.0;
    trainer_free(&t);
    return status;
}
