/* How many threads this rank's steps run fastest on (see thread_tuning.h). */
#include "nn/thread_tuning.h"

#include <omp.h>

bool nn_thread_tuning_alike(int threads, MPI_Comm comm) {
    int range[2] = {threads, -threads}; /* the fewest, and the most negated */
    MPI_Allreduce(MPI_IN_PLACE, range, 2, MPI_INT, MPI_MIN, comm);
    return range[0] == -range[1];
}

void nn_thread_tuning_start(nn_thread_tuning *tt, int threads, bool measure) {
    *tt = (nn_thread_tuning){.threads = threads};
    for (int c = threads; c >= 1 && tt->n_counts < NN_TUNER_MAX; c /= 2) tt->counts[tt->n_counts++] = c;
    nn_tuner_start(&tt->tuner, tt->n_counts, 0, measure); /* from all the threads (the warm-up) down to one */
    omp_set_num_threads(threads);
}

void nn_thread_tuning_begin_step(nn_thread_tuning *tt) {
    if (!tt->tuner.done) omp_set_num_threads(tt->counts[nn_tuner_candidate(&tt->tuner)]);
}

static void report(const nn_thread_tuning *tt, FILE *log) {
    fprintf(log, "nntrain: mean step on");
    for (int c = 0; c < tt->n_counts; c++) fprintf(log, "%s %d", c ? "," : "", tt->counts[c]);
    fprintf(log, " threads:");
    nn_tuner_print_means(&tt->tuner, log);
    fprintf(log, ": training goes on with %d thread%s per rank\n", tt->threads, tt->threads > 1 ? "s" : "");
    fflush(log);
}

int nn_thread_tuning_end_step(nn_thread_tuning *tt, double seconds, bool disturbed, MPI_Comm comm, FILE *log) {
    if (nn_tuner_end_step(&tt->tuner, seconds, disturbed, comm)) {
        tt->threads = tt->counts[tt->tuner.chosen];
        if (log) report(tt, log);
    }
    omp_set_num_threads(tt->threads); /* what runs between steps */
    return tt->threads;
}
