/* After a run: one line when the run's own measurements say its layout (ranks and
 * threads a node) is far from its best, and nothing otherwise. */
#ifndef NN_HINT_H
#define NN_HINT_H

#include <stdio.h>

/* What the run measured, summed over its epochs (seconds; the training time the
 * slowest rank's, the sum and its waits the mean over the ranks). */
typedef struct nn_hint_input {
    double train_seconds;          /* the training steps */
    double allreduce_seconds;      /* inside the gradient sum */
    double allreduce_wait_seconds; /* of which waiting in the node's barriers */
    int ranks_per_node, threads;
    long node_cores; /* the cores the job may use on the node (0: unknown) */
} nn_hint_input;

/* The sum's share of the training time from which the hint speaks: most of it. */
#define NN_HINT_SUM_SHARE 0.5

/* Writes the hint line to `out` and returns 1, or writes nothing and returns 0.
 * It names only the shares the run measured; what another layout would give is
 * not guessed. */
int nn_layout_hint(FILE *out, const nn_hint_input *in);

#endif
