/* Distributed evaluation: every rank scores its shard, the sums are reduced. */
#ifndef NN_EVALUATE_H
#define NN_EVALUATE_H

#include <mpi.h>
#include <stdint.h>

#include "nn/dataset.h"
#include "nn/model.h"

typedef struct nn_scores {
    double loss;     /* mean over the whole split */
    double accuracy; /* in [0, 1] */
    long total;
} nn_scores;

/* Collective. Scores `shard` in chunks of model->max_batch rows, using `order` (at
 * least shard->count entries), `labels` and `predicted` (max_batch entries each) as
 * scratch. confusion (classes x classes, row = true class, column = prediction)
 * receives the job-wide counts unless NULL. */
void nn_evaluate(nn_model *model, const nn_shard *shard, uint32_t *order, uint8_t *labels, uint8_t *predicted,
                 MPI_Comm comm, nn_scores *scores, long *confusion);

#endif
