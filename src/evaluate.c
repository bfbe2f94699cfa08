#include "nn/evaluate.h"

#include <stdlib.h>
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

void nn_evaluate(nn_evaluator *ev, nn_model *model, const nn_shard *shard, MPI_Comm comm, nn_scores *scores) {
    const int classes = ev->classes;
    double sums[2] = {0.0, 0.0}; /* loss, correct */
    model->dropout_key.training = false; /* inference: dropout is the identity */
    memset(ev->confusion, 0, (size_t)classes * classes * sizeof *ev->confusion);
    for (long i = 0; i < shard->count; i += ev->chunk) {
        int n = (int)(shard->count - i < ev->chunk ? shard->count - i : ev->chunk);
        for (int k = 0; k < n; k++) ev->rows[k] = (uint32_t)(i + k);
        nn_shard_gather(shard, ev->rows, n, nn_model_input(model), ev->labels);
        nn_model_forward(model, n);
        long correct;
        sums[0] += nn_model_score(model, ev->labels, n, &correct, ev->predicted);
        sums[1] += (double)correct;
        for (int b = 0; b < n; b++) ev->confusion[ev->labels[b] * classes + ev->predicted[b]]++;
        nn_watchdog_alive(); /* a long evaluation is progress */
    }
    MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, comm);
    MPI_Allreduce(MPI_IN_PLACE, ev->confusion, classes * classes, MPI_LONG, MPI_SUM, comm);
    scores->total = shard->total;
    scores->loss = sums[0] / shard->total;
    scores->accuracy = sums[1] / shard->total;
}
