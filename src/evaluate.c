#include "nn/evaluate.h"

#include <math.h>
#include <stdlib.h>

#include "nn/exact_sum.h"
#include <string.h>

#include "nn/watchdog.h"

int nn_evaluator_create(nn_evaluator *ev, const nn_model *model, nn_error *err) {
    memset(ev, 0, sizeof *ev);
    ev->chunk = model->max_batch;
    ev->classes = model->spec.widths[model->spec.n_widths - 1];
    ev->rows = malloc((size_t)ev->chunk * sizeof *ev->rows);
    ev->labels = malloc((size_t)ev->chunk);
    ev->predicted = malloc((size_t)ev->chunk);
    ev->confusion = malloc((size_t)ev->classes * ev->classes * sizeof *ev->confusion);
    if (ev->rows && ev->labels && ev->predicted && ev->confusion) return NN_OK;
    nn_evaluator_free(ev);
    return nn_fail(err, NN_ERR_RUNTIME, "out of memory for evaluation buffers");
}

void nn_evaluator_free(nn_evaluator *ev) {
    free(ev->rows);
    free(ev->labels);
    free(ev->predicted);
    free(ev->confusion);
    memset(ev, 0, sizeof *ev);
}

/* Deterministic mode: each sample's loss (from the outputs and targets nn_model_score
 * left) on a fixed-point grid. A row's outputs do not depend on the rows around it
 * (kernels.c), so each sample's value is the same however the split is chunked.
 * A loss >= 2^14 (no finite cross-entropy or squared error of sigmoid outputs gets
 * near) or NaN is counted in *bad instead: 2^24 samples cannot overflow the sum. */
static int64_t sample_losses(nn_model *model, const uint8_t *labels, int n, int64_t *bad) {
    const int classes = model->spec.widths[model->spec.n_widths - 1];
    const float *out = model->acts[model->n_layers];
    int64_t sum = 0;
    for (int b = 0; b < n; b++) {
        const float *row = out + (size_t)b * classes;
        double loss = model->spec.loss == NN_LOSS_SOFTMAX_XENT
                          ? nn_softmax_xent_forward(row, labels + b, model->probs, 1, classes)
                          : nn_mse_forward(row, model->targets + (size_t)b * classes, 1, classes);
        int ok = fabs(loss) < 0x1p14;
        *bad += !ok;
        sum += ok ? (int64_t)(loss * ldexp(1.0, NN_EXACT_LOSS_BITS)) : 0;
    }
    return sum;
}

void nn_evaluate(nn_evaluator *ev, nn_model *model, const nn_shard *shard, MPI_Comm comm, nn_scores *scores) {
    const int classes = ev->classes;
    double sums[2] = {0.0, 0.0}; /* loss, correct */
    int64_t exact_loss[2] = {0, 0}; /* deterministic mode: the loss on its grid, samples out of range */
    model->dropout_key.training = false; /* inference: dropout is the identity */
    memset(ev->confusion, 0, (size_t)classes * classes * sizeof *ev->confusion);
    for (long i = 0; i < shard->count; i += ev->chunk) {
        int n = (int)(shard->count - i < ev->chunk ? shard->count - i : ev->chunk);
        for (int k = 0; k < n; k++) ev->rows[k] = (uint32_t)(i + k);
        nn_shard_gather(shard, ev->rows, n, nn_model_input(model), ev->labels);
        nn_model_forward(model, n);
        long correct;
        double loss = nn_model_score(model, ev->labels, n, &correct, ev->predicted);
        if (ev->exact) exact_loss[0] += sample_losses(model, ev->labels, n, &exact_loss[1]);
        else sums[0] += loss;
        sums[1] += (double)correct;
        for (int b = 0; b < n; b++) ev->confusion[ev->labels[b] * classes + ev->predicted[b]]++;
        nn_watchdog_alive(); /* a long evaluation is progress */
    }
    MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, comm);
    if (ev->exact) { /* integers: the same sum for any split and order */
        MPI_Allreduce(MPI_IN_PLACE, exact_loss, 2, MPI_INT64_T, MPI_SUM, comm);
        sums[0] = exact_loss[1] ? NAN : ldexp((double)exact_loss[0], -NN_EXACT_LOSS_BITS);
    }
    MPI_Allreduce(MPI_IN_PLACE, ev->confusion, classes * classes, MPI_LONG, MPI_SUM, comm);
    scores->total = shard->total;
    scores->loss = sums[0] / shard->total;
    scores->accuracy = sums[1] / shard->total;
}
