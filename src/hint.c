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
    fprintf(out, "nntrain: hint: the gradient sum took %.0f%% of the training time (%.0f%% waiting for other ranks) "
                 "with %d ranks x %d thread%s a node",
            100.0 * share, 100.0 * waiting, in->ranks_per_node, in->threads, in->threads == 1 ? "" : "s");
    long cores = in->node_cores;
    if (cores > 0 && (long)in->ranks_per_node * in->threads > cores) { /* oversubscribed: first fit the cores */
        int threads = 2L * in->threads < cores ? 2 * in->threads : (int)cores;
        int ranks = (int)(cores / threads);
        fprintf(out, " on the %ld core%s the job has there; fewer ranks a node, one thread a core (say %d x %d), "
                     "may train faster\n", cores, cores == 1 ? "" : "s", ranks, threads);
    } else { /* half the ranks, each with the cores they leave (an odd count rounds down, never over) */
        int ranks = in->ranks_per_node / 2;
        int threads = cores > 0 ? (int)(cores / ranks) : 2 * in->threads;
        fprintf(out, "; fewer ranks a node with more threads each (say %d x %d) may train faster\n", ranks, threads);
    }
    return 1;
}
