/* The run's measured choices (tuner.h), made on its first steps: how many threads a
 * rank's steps take (thread_tuning.h), and then, where the node's ranks can sum
 * either way, the chunked sum begun in backward or the factored sum (factor_sum.h).
 * Both change only the speed, never a bit of the results. Which sum is faster
 * depends on the network and the machine: the factored sum reads the ranks' small
 * factors instead of their whole weight gradients, a gain where those gradients
 * overflow the caches (many ranks, wide layers, few rows a rank), but it makes the
 * summed gradient in tiles whose calls cost as much as their work on a small network
 * (on 2 cores the reference network trained 15% slower with it). */
#include <stdio.h>
#include <string.h>

#include "trainer.h"

enum { SUM_FACTORED, SUM_CHUNKED, N_SUMS }; /* the chunked sum last: preferred on a tie */

/* Both begin in backward where the exchange's sum does (and the factored sum's items may). */
static const char *sum_name(const trainer *t, int sum) {
    bool early = nn_exchange_early(t->exchange);
    if (sum == SUM_FACTORED)
        return early ? "the factored sum begun in backward" : "the factored sum";
    return early ? "the chunked sum begun in backward" : "the chunked sum";
}

void trainer_use_sum(trainer *t, bool factored) {
    factored = factored && t->factors;
    nn_model_use_factors(&t->model, factored);
    /* either sum begins in backward where the exchange's does */
    bool early = nn_exchange_early(t->exchange);
    t->model.final_from = early ? nn_exchange_final_from : NULL;
    t->model.final_from_ctx = early ? t->exchange : NULL;
}

const char *trainer_node_sum(const trainer *t) {
    if (!nn_exchange_fused(t->exchange) || t->global) return NULL;
    return t->model.factored ? "factors" : nn_exchange_early(t->exchange) ? "early" : "chunked";
}

void trainer_sum_tuning_start(trainer *t, bool factored, bool measure) {
    nn_tuner_start(&t->sum_tuning, N_SUMS, factored ? SUM_FACTORED : SUM_CHUNKED, measure && t->factors);
    trainer_use_sum(t, nn_tuner_candidate(&t->sum_tuning) == SUM_FACTORED);
    if (!t->factors) return;
    const char *timed = "chunked sum begun in backward or factored sum, timed on the first steps";
    /* the tiles a step: the grain of the factored sum's work, shared out over the node */
    snprintf(t->factored_name, sizeof t->factored_name, "%s, %d tiles a step",
             sum_name(t, SUM_FACTORED) + strlen("the "), nn_factor_sum_items(t->factors));
    nn_exchange_name_fused(t->exchange, t->sum_tuning.done ? t->factored_name : timed);
}

void trainer_tuning_begin_step(trainer *t) {
    nn_thread_tuning_begin_step(&t->tuning);
    t->timing_sums = t->tuning.tuner.done && !t->sum_tuning.done; /* one choice at a time */
    if (t->timing_sums) trainer_use_sum(t, nn_tuner_candidate(&t->sum_tuning) == SUM_FACTORED);
}

static void report(const trainer *t) {
    fprintf(t->log, "nntrain: mean step with");
    for (int c = 0; c < N_SUMS; c++) fprintf(t->log, "%s %s", c ? "," : "", sum_name(t, c));
    fprintf(t->log, ":");
    nn_tuner_print_means(&t->sum_tuning, t->log);
    fprintf(t->log, ": training goes on with %s\n", sum_name(t, t->sum_tuning.chosen));
    fflush(t->log);
}

void trainer_tuning_end_step(trainer *t, double seconds, bool disturbed) {
    t->threads = nn_thread_tuning_end_step(&t->tuning, seconds, disturbed, t->comm, t->log);
    if (t->timing_sums && nn_tuner_end_step(&t->sum_tuning, seconds, disturbed, t->comm)) {
        trainer_use_sum(t, t->sum_tuning.chosen == SUM_FACTORED);
        if (t->log) report(t);
    }
}
