/* The training loop. Per step: assemble the local part of the global batch,
 * forward + backward with scale 1/global_batch, ONE Allreduce(sum) over the flat
 * gradient buffer (which then holds the gradient of the global mean loss), and the
 * same SGD step on every rank. Per epoch: distributed evaluation, one log line. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "nn/train.h"

#include <omp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/comm.h"
#include "nn/dataset.h"
#include "nn/metrics.h"
#include "nn/model.h"
#include "nn/optim.h"
#include "nn/rng.h"

enum { EVAL_CHUNK = 256 }; /* rows per evaluation forward pass */

/* Count of slots g in [0, n) with g % nranks == rank. */
static long slots_below(long n, int rank, int nranks) { return n > rank ? (n - rank - 1) / nranks + 1 : 0; }

int nn_local_batch(long step, int batch, int rank, int nranks, long *first) {
    long begin = step * batch, end = begin + batch;
    *first = slots_below(begin, rank, nranks);
    return (int)(slots_below(end, rank, nranks) - *first);
}

/* Threads per rank: --threads, else OMP_NUM_THREADS, else this rank's share of the
 * node's cores (never more than the cores it is bound to), so that ranks x threads
 * does not oversubscribe the node. */
static int choose_threads(const nn_train_options *opt, MPI_Comm comm) {
    int local_ranks = nn_comm_local_ranks(comm); /* collective: call on every rank */
    if (opt->threads > 0) return opt->threads;
    if (getenv("OMP_NUM_THREADS")) return omp_get_max_threads();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int share = (int)(cores / local_ranks);
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) == 0 && CPU_COUNT(&mask) < share) share = CPU_COUNT(&mask);
    return share > 0 ? share : 1;
}

/* Checks that the network fits the data; identical on every rank. */
static int check_fit(const nn_train_options *opt, const nn_shard *train, const nn_shard *test,
                     int nranks, nn_error *err) {
    const nn_model_spec *spec = &opt->spec;
    int classes = spec->widths[spec->n_widths - 1];
    if (spec->widths[0] != train->dim)
        return nn_fail(err, NN_ERR_INPUT, "%s: samples have %d values but --layers starts with %d",
                       opt->data, train->dim, spec->widths[0]);
    if (test->dim != train->dim)
        return nn_fail(err, NN_ERR_INPUT, "%s: /test samples have %d values, /train samples %d",
                       opt->data, test->dim, train->dim);
    if (classes != train->num_classes)
        return nn_fail(err, NN_ERR_INPUT, "%s: the data has %d classes but --layers ends with %d",
                       opt->data, train->num_classes, classes);
    if (opt->batch_size < nranks)
        return nn_fail(err, NN_ERR_INPUT, "--batch-size %d is smaller than the %d ranks", opt->batch_size, nranks);
    if (opt->batch_size > train->total)
        return nn_fail(err, NN_ERR_INPUT, "--batch-size %d exceeds the %ld training samples",
                       opt->batch_size, train->total);
    return NN_OK;
}

/* Distributed evaluation: each rank scores its shard of the test set. */
static void evaluate(nn_model *model, const nn_shard *test, uint32_t *order, uint8_t *labels,
                     MPI_Comm comm, double *loss, double *accuracy) {
    double sums[2] = {0.0, 0.0}; /* loss, correct */
    for (long i = 0; i < test->count; i++) order[i] = (uint32_t)i;
    for (long i = 0; i < test->count; i += EVAL_CHUNK) {
        int n = (int)(test->count - i < EVAL_CHUNK ? test->count - i : EVAL_CHUNK);
        nn_shard_gather(test, order + i, n, model->acts[0], labels);
        nn_model_forward(model, n);
        long correct;
        sums[0] += nn_model_score(model, labels, n, &correct);
        sums[1] += (double)correct;
    }
    MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, comm);
    *loss = sums[0] / test->total;
    *accuracy = sums[1] / test->total;
}

int nn_train(const nn_train_options *opt, MPI_Comm comm, FILE *log, nn_train_result *result,
             nn_error *err) {
    int rank, nranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &nranks);
    memset(result, 0, sizeof *result);
    int threads = choose_threads(opt, comm);
    omp_set_num_threads(threads);
    result->threads = threads;

    nn_shard train = {0}, test = {0};
    nn_model model = {0};
    nn_sgd sgd = {0};
    uint32_t *order = NULL;
    uint8_t *labels = NULL;
    uint32_t *batch_order = NULL;
    FILE *metrics = NULL;
    int status;

    if ((status = nn_shard_read(opt->data, "train", opt->train_limit, comm, &train, err))) goto done;
    if ((status = nn_shard_read(opt->data, "test", 0, comm, &test, err))) goto done;
    if ((status = nn_comm_agree(comm, check_fit(opt, &train, &test, nranks, err), err))) goto done;

    int max_local = (opt->batch_size + nranks - 1) / nranks;
    int max_batch = max_local > EVAL_CHUNK ? max_local : EVAL_CHUNK;
    long order_len = train.count > test.count ? train.count : test.count;
    status = nn_model_create(&model, &opt->spec, max_batch, err);
    if (!status) status = nn_sgd_create(&sgd, model.n_params, opt->momentum, opt->weight_decay, err);
    if (!status) {
        order = malloc((size_t)order_len * sizeof *order);
        labels = malloc((size_t)max_batch);
        batch_order = malloc((size_t)max_batch * sizeof *batch_order);
        if (!order || !labels || !batch_order) status = nn_fail(err, NN_ERR_RUNTIME, "out of memory for batch buffers");
    }
    if (!status && rank == 0 && opt->metrics[0] && !(metrics = fopen(opt->metrics, "w")))
        status = nn_fail(err, NN_ERR_INPUT, "%s: cannot write metrics file", opt->metrics);
    if ((status = nn_comm_agree(comm, status, err))) goto done;

    nn_model_init(&model, opt->seed); /* same seed, same parameters on every rank */
    long steps_per_epoch = train.total / opt->batch_size;
    long total_steps = steps_per_epoch * opt->epochs;
    const float scale = 1.0f / (float)opt->batch_size;
    if (rank == 0 && log) {
        fprintf(log, "nntrain: %s, %ld train / %ld test samples; network", opt->data, train.total, test.total);
        for (int i = 0; i < opt->spec.n_widths; i++) fprintf(log, "%c%d", i ? '-' : ' ', opt->spec.widths[i]);
        fprintf(log, " %s/%s, %zu parameters; %d ranks x %d threads; batch %d, lr %g (%s), momentum %g\n",
                nn_activation_name(opt->spec.activation), nn_loss_name(opt->spec.loss), model.n_params,
                nranks, threads, opt->batch_size, opt->lr, nn_schedule_name(opt->schedule), opt->momentum);
        fflush(log);
    }

    double best = -1.0, sum_seconds = 0.0, sum_samples = 0.0;
    for (int epoch = 1; epoch <= opt->epochs; epoch++) {
        /* A fresh permutation of the local shard each epoch, from (seed, epoch, rank). */
        nn_rng rng;
        nn_rng_seed(&rng, opt->seed, (uint64_t)epoch, (uint64_t)rank);
        for (long i = 0; i < train.count; i++) order[i] = (uint32_t)i;
        nn_rng_shuffle(&rng, order, (uint32_t)train.count);

        double loss_sum = 0.0, allreduce_s = 0.0, data_s = 0.0;
        float lr = opt->lr;
        MPI_Barrier(comm);
        double t0 = MPI_Wtime();
        for (long s = 0; s < steps_per_epoch; s++) {
            long step = (long)(epoch - 1) * steps_per_epoch + s, first;
            int n = nn_local_batch(s, opt->batch_size, rank, nranks, &first);
            double t = MPI_Wtime();
            for (int i = 0; i < n; i++) /* wraps when a rank's share exceeds its shard by a few */
                batch_order[i] = order[(first + i) % train.count];
            nn_shard_gather(&train, batch_order, n, model.acts[0], labels);
            data_s += MPI_Wtime() - t;

            loss_sum += nn_model_forward_backward(&model, labels, n, scale);

            t = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, model.grads, (int)model.n_params, MPI_FLOAT, MPI_SUM, comm);
            allreduce_s += MPI_Wtime() - t;

            lr = nn_schedule_lr(opt->schedule, opt->lr, step, total_steps);
            nn_sgd_step(&sgd, model.params, model.grads, lr);
        }
        double epoch_s = MPI_Wtime() - t0;

        double t_eval = MPI_Wtime();
        nn_epoch_stats st = {.epoch = epoch, .epochs = opt->epochs, .ranks = nranks, .threads = threads, .lr = lr};
        evaluate(&model, &test, order, labels, comm, &st.test_loss, &st.test_accuracy);
        st.eval_seconds = MPI_Wtime() - t_eval;
        /* The slowest rank sets the pace: report maxima of the times. */
        double times[3] = {epoch_s, allreduce_s, data_s};
        MPI_Allreduce(MPI_IN_PLACE, times, 3, MPI_DOUBLE, MPI_MAX, comm);
        MPI_Allreduce(MPI_IN_PLACE, &loss_sum, 1, MPI_DOUBLE, MPI_SUM, comm);
        double samples = (double)steps_per_epoch * opt->batch_size;
        st.train_loss = loss_sum / samples;
        st.epoch_seconds = times[0];
        st.allreduce_seconds = times[1];
        st.data_seconds = times[2];
        st.samples_per_second = samples / times[0];
        sum_seconds += times[0];
        sum_samples += samples;
        if (st.test_accuracy > best) {
            best = st.test_accuracy;
            result->best_epoch = epoch;
        }
        result->epochs_run = epoch;
        result->final_accuracy = st.test_accuracy;
        if (rank == 0 && log) nn_metrics_print_line(log, &st);
        if (metrics) nn_metrics_write_json(metrics, &st);
    }
    result->best_accuracy = best;
    result->train_seconds = sum_seconds;
    result->samples_per_second = sum_seconds > 0 ? sum_samples / sum_seconds : 0.0;
    status = NN_OK;

done:
    if (metrics) fclose(metrics);
    free(order);
    free(labels);
    free(batch_order);
    nn_sgd_free(&sgd);
    nn_model_free(&model);
    nn_shard_free(&train);
    nn_shard_free(&test);
    return status;
}
