/* The after-run hint (see hint.h). The gradient sum within a node costs about the
 * same a step whatever each rank computes, so when it is most of the time, the
 * node's cores are better spent as fewer ranks with more threads each (fewer
 * vectors to sum, bigger GEMMs per rank). Which layout is best the run cannot know:
 * the line says what was measured and which way to try. */
#include "nn/hint.h"

int nn_layout_hint(FILE *out, const nn_hint_input *in) {
    if (in->ranks_per_node < 2 || !(in->train_seconds > 0.0)) return 0;
    double share = in->allreduce_seconds / in->train_seconds;
    if (!(share >= NN_HINT_SUM_SHARE)) return 0;
    double waiting = in->allreduce_wait_seconds / in->train_seconds;
    fprintf(out,
            "nntrain: hint: the gradient sum took %.0f%% of the training time (%.0f%% waiting for other ranks) "
            "with %d ranks x %d thread%s a node; fewer ranks a node with more threads each (say %d x %d) "
            "may train faster\n",
            100.0 * share, 100.0 * waiting, in->ranks_per_node, in->threads, in->threads == 1 ? "" : "s",
            (in->ranks_per_node + 1) / 2, 2 * in->threads);
    return 1;
}
