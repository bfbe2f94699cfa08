/* What a run says of itself: the header line (rank 0), what is trained, on what, with
 * which settings and layout -- everything a reader of a log needs to know what the
 * epoch lines mean; and the one line that ends a diverged run. */
#include <stdio.h>
#include <unistd.h>

#include "nn/conv_spec.h"
#include "nn/placement.h"
#include "trainer.h"

void trainer_print_header(const trainer *t) {
    const nn_run_config *c = &t->cfg;
    char exchange[128];
    nn_exchange_describe(t->exchange, exchange, sizeof exchange);
    char data[NN_ONE_LINE_MAX];
    fprintf(t->log, "nntrain: %s, %ld train", nn_one_line(c->data, data, sizeof data), t->train.total);
    if (c->validation > 0) fprintf(t->log, " (+%ld validation)", t->validation.total);
    fprintf(t->log, " / %ld test samples; network", t->test.total);
    char front[256];
    if (nn_spec_conv_text(&c->spec, front, sizeof front)) fprintf(t->log, " %s,flatten", front);
    for (int i = 0; i < c->spec.n_widths; i++) fprintf(t->log, "%c%d", i ? '-' : ' ', c->spec.widths[i]);
    fprintf(t->log, " %s/%s, %zu parameters; %d rank%s x %d thread%s; batch %d", nn_activation_name(c->spec.activation),
            nn_loss_name(c->spec.loss), t->model.n_params, t->nranks, t->nranks == 1 ? "" : "s", t->threads,
            t->threads == 1 ? "" : "s", c->batch_size);
    if (c->accumulate > 1) fprintf(t->log, " x %d accumulated", c->accumulate);
    if (c->spec.dropout > 0 || c->spec.input_dropout > 0)
        fprintf(t->log, ", dropout %.7g (input %.7g)", c->spec.dropout, c->spec.input_dropout); /* a float's digits */
    if (c->max_norm > 0) fprintf(t->log, ", max-norm %g", c->max_norm);
    if (c->shift > 0) fprintf(t->log, ", shift %d px", c->shift);
    if (c->warmup_epochs > 0) fprintf(t->log, ", warm-up %g epochs", c->warmup_epochs);
    fprintf(t->log, ", lr %g (%s), momentum %g", c->lr, nn_schedule_name(c->schedule), c->momentum);
    if (c->momentum_ramp_epochs > 0) fprintf(t->log, " -> %g over %g epochs", c->momentum_end, c->momentum_ramp_epochs);
    if (c->virtual_shards && t->global)
        fprintf(t->log, "; deterministic: %d virtual shards, one product over the global batch (%s)",
                c->virtual_shards, nn_global_product_where(t->global));
    else if (c->virtual_shards)
        fprintf(t->log, "; deterministic: %d virtual shards, exact int64 sum%s", c->virtual_shards,
                t->exact.node ? " in shared memory (1 node)" : t->nranks > 1 ? " over MPI" : "");
    else fprintf(t->log, "; allreduce %s", exchange);
    fputc('\n', t->log);
    nn_placement_warn(t->log, t->threads, t->ranks_per_node, t->node_cores);
    fflush(t->log);
}

int trainer_diverged(const trainer *t, const char *what, long step, nn_error *err) {
    int layer = nn_model_first_nonfinite(&t->model);
    char where[64] = "";
    if (layer) snprintf(where, sizeof where, " (first non-finite values in dense layer %d)", layer);
    /* a checkpoint there is the last good one (none with a non-finite value is ever written) */
    const char *saved = !t->opt.checkpoint[0]                  ? "Nothing was saved."
                        : access(t->opt.checkpoint, F_OK) == 0 ? "The last checkpoint is kept."
                                                               : "No checkpoint was written before it.";
    return nn_fail(err, NN_ERR_RUNTIME, "training diverged: %s at epoch %d, step %ld%s; try a lower --lr than %g. %s",
                   what, t->progress.epochs_completed + 1, step, where, t->cfg.lr, saved);
}
