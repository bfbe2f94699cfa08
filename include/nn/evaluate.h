/* Distributed evaluation: every rank scores its shard, the sums are reduced. The
 * evaluator owns its scratch, so scoring never disturbs the training loop's state
 * (its batch order, say), whenever it runs. */
#ifndef NN_EVALUATE_H
#define NN_EVALUATE_H

#include <mpi.h>
#include <stdint.h>

#include "nn/dataset.h"
#include "nn/error.h"
#include "nn/model.h"

/* Rows per forward pass of a model made for evaluation alone (nneval); the trainer's
 * model may be larger (its local batch), and then evaluates in chunks of that. */
enum { NN_EVAL_CHUNK = 256 };

typedef struct nn_scores {
    double loss;     /* mean over the whole split */
    double accuracy; /* in [0, 1] */
    long total;
} nn_scores;

typedef struct nn_evaluator {
    int chunk, classes;           /* rows per forward pass (the model's max_batch) */
    uint32_t *rows;               /* [chunk] scratch: the rows of one pass */
    uint8_t *labels, *predicted;  /* [chunk] scratch */
    int exact;                    /* deterministic mode: the loss summed on a fixed-point grid, per
                                     sample, so it is the same for any split over ranks */
    long *confusion;              /* [classes][classes], row = true class, column = prediction:
                                     the job-wide counts of the last nn_evaluate */
} nn_evaluator;

/* Local (no MPI): allocates the scratch for `model`. */
int nn_evaluator_create(nn_evaluator *ev, const nn_model *model, nn_error *err);
void nn_evaluator_free(nn_evaluator *ev);

/* Collective: scores `shard` with the model's parameters; fills ev->confusion. */
void nn_evaluate(nn_evaluator *ev, nn_model *model, const nn_shard *shard, MPI_Comm comm, nn_scores *scores);

#endif
