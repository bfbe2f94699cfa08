#include "nn/evaluate.h"

#include <string.h>

void nn_evaluate(nn_model *model, const nn_shard *shard, uint32_t *order, uint8_t *labels, uint8_t *predicted,
                 MPI_Comm comm, nn_scores *scores, long *confusion) {
    const int classes = model->spec.widths[model->spec.n_widths - 1];
    double sums[2] = {0.0, 0.0}; /* loss, correct */
    if (confusion) memset(confusion, 0, (size_t)classes * classes * sizeof *confusion);
    for (long i = 0; i < shard->count; i++) order[i] = (uint32_t)i;
    for (long i = 0; i < shard->count; i += model->max_batch) {
        int n = (int)(shard->count - i < model->max_batch ? shard->count - i : model->max_batch);
        nn_shard_gather(shard, order + i, n, model->acts[0], labels);
        nn_model_forward(model, n);
        long correct;
        sums[0] += nn_model_score(model, labels, n, &correct, predicted);
        sums[1] += (double)correct;
        if (confusion)
            for (int b = 0; b < n; b++) confusion[labels[b] * classes + predicted[b]]++;
    }
    MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, comm);
    if (confusion) MPI_Allreduce(MPI_IN_PLACE, confusion, classes * classes, MPI_LONG, MPI_SUM, comm);
    scores->total = shard->total;
    scores->loss = sums[0] / shard->total;
    scores->accuracy = sums[1] / shard->total;
}
