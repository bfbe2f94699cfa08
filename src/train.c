/* The training loop. Per step: assemble the local part of the global batch,
 * forward + backward with scale 1/global_batch, ONE Allreduce(sum) over the flat
 * gradient buffer (which then holds the gradient of the global mean loss), and the
 * same SGD step on every rank. Per epoch: distributed evaluation, one log line, a
 * checkpoint. A resumed run continues from the exact step it stopped at. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "nn/train.h"

#include <omp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/checkpoint.h"
#include "nn/comm.h"
#include "nn/dataset.h"
#include "nn/evaluate.h"
#include "nn/metrics.h"
#include "nn/model.h"
#include "nn/optim.h"
#include "nn/reduce.h"
#include "nn/rng.h"
#include "nn/signals.h"

enum { EVAL_CHUNK = 256 }; /* rows per evaluation forward pass */

/* Count of slots g in [0, n) with g % nranks == rank. */
static long slots_below(long n, int rank, int nranks) { return n > rank ? (n - rank - 1) / nranks + 1 : 0; }

int nn_local_batch(long step, int batch, int rank, int nranks, long *first) {
    long begin = step * batch, end = begin + batch;
    *first = slots_below(begin, rank, nranks);
    return (int)(slots_below(end, rank, nranks) - *first);
}

/* Cores this rank may run on (mpirun binds each rank to one core by default when
 * there are at most 2 ranks). */
static int bound_cores(void) {
    cpu_set_t mask;
    return sched_getaffinity(0, sizeof mask, &mask) == 0 ? CPU_COUNT(&mask) : 0;
}

/* Threads per rank: --threads, else OMP_NUM_THREADS, else this rank's share of the
 * node's cores (never more than the cores it is bound to), so that ranks x threads
 * does not oversubscribe the node. */
static int choose_threads(const nn_train_options *opt, MPI_Comm comm) {
    int local_ranks = nn_comm_local_ranks(comm); /* collective: call on every rank */
    if (opt->threads > 0) return opt->threads;
    if (getenv("OMP_NUM_THREADS")) return omp_get_max_threads();
    int share = (int)(sysconf(_SC_NPROCESSORS_ONLN) / local_ranks);
    int cores = bound_cores();
    if (cores > 0 && cores < share) share = cores;
    return share > 0 ? share : 1;
}

/* ---- resuming ---- */

/* The options of a resumed run: the checkpoint's, except those the command line
 * gave. Giving one that defines the run (network, batch, seed, data size) with a
 * different value is an error; the others (epochs, learning rate, momentum, ...)
 * may change, and each change is reported in `changes`. */
static int merge_resume_options(const nn_train_options *cli, const nn_checkpoint *ck, nn_train_options *out,
                                char *changes, size_t cap, nn_error *err) {
    const nn_train_options *saved = &ck->saved;
    const char *path = cli->resume;
    *out = *cli;
    out->spec = saved->spec;
    out->batch_size = saved->batch_size;
    out->seed = saved->seed;
    out->train_limit = saved->train_limit;
    if (cli->given & NN_GIVEN_LAYERS) {
        int same = cli->spec.n_widths == saved->spec.n_widths &&
                   !memcmp(cli->spec.widths, saved->spec.widths, (size_t)saved->spec.n_widths * sizeof(int));
        if (!same) return nn_fail(err, NN_ERR_INPUT, "--layers conflicts with checkpoint %s (written for another network)", path);
    }
    if ((cli->given & NN_GIVEN_ACTIVATION) && cli->spec.activation != saved->spec.activation)
        return nn_fail(err, NN_ERR_INPUT, "--activation %s conflicts with checkpoint %s (%s)",
                       nn_activation_name(cli->spec.activation), path, nn_activation_name(saved->spec.activation));
    if ((cli->given & NN_GIVEN_LOSS) && cli->spec.loss != saved->spec.loss)
        return nn_fail(err, NN_ERR_INPUT, "--loss %s conflicts with checkpoint %s (%s)", nn_loss_name(cli->spec.loss),
                       path, nn_loss_name(saved->spec.loss));
    if ((cli->given & NN_GIVEN_BATCH) && cli->batch_size != saved->batch_size)
        return nn_fail(err, NN_ERR_INPUT, "--batch-size %d conflicts with checkpoint %s (%d)", cli->batch_size, path,
                       saved->batch_size);
    if ((cli->given & NN_GIVEN_SEED) && cli->seed != saved->seed)
        return nn_fail(err, NN_ERR_INPUT, "--seed %llu conflicts with checkpoint %s (%llu)",
                       (unsigned long long)cli->seed, path, (unsigned long long)saved->seed);
    if ((cli->given & NN_GIVEN_TRAIN_LIMIT) && cli->train_limit != saved->train_limit)
        return nn_fail(err, NN_ERR_INPUT, "--train-limit %ld conflicts with checkpoint %s (%ld)", cli->train_limit,
                       path, saved->train_limit);

    /* may change: keep the checkpoint's unless given, and say what changed */
    size_t used = 0;
    changes[0] = '\0';
#define TAKE(bit, field, fmt, name)                                                                   \
    do {                                                                                              \
        if (!(cli->given & (bit))) out->field = saved->field;                                         \
        else if (out->field != saved->field && used < cap)                                            \
            used += (size_t)snprintf(changes + used, cap - used, " " name " " fmt "->" fmt,           \
                                     saved->field, out->field);                                       \
    } while (0)
    TAKE(NN_GIVEN_EPOCHS, epochs, "%d", "epochs");
    TAKE(NN_GIVEN_LR, lr, "%g", "lr");
    TAKE(NN_GIVEN_MOMENTUM, momentum, "%g", "momentum");
    TAKE(NN_GIVEN_WEIGHT_DECAY, weight_decay, "%g", "weight-decay");
#undef TAKE
    if (!(cli->given & NN_GIVEN_SCHEDULE)) out->schedule = saved->schedule;
    else if (out->schedule != saved->schedule && used < cap)
        used += (size_t)snprintf(changes + used, cap - used, " lr-schedule %s->%s", nn_schedule_name(saved->schedule),
                                 nn_schedule_name(out->schedule));
    if (!(cli->given & NN_GIVEN_DATA)) memcpy(out->data, saved->data, sizeof out->data);
    else if (strcmp(out->data, saved->data) && used < cap)
        snprintf(changes + used, cap - used, " data %s->%s", saved->data, out->data);
    return NN_OK;
}

/* ---- checks ---- */

/* Checks that the network fits the data; identical on every rank. */
static int check_fit(const nn_train_options *opt, const nn_shard *train, const nn_shard *test,
                     int nranks, nn_error *err) {
    int status = nn_spec_check_data(&opt->spec, train->dim, train->num_classes, opt->data,
                                    opt->resume[0] ? "the checkpoint's network" : "--layers", err);
    if (status) return status;
    if (test->dim != train->dim)
        return nn_fail(err, NN_ERR_INPUT, "%s: /test samples have %d values, /train samples %d",
                       opt->data, test->dim, train->dim);
    if (opt->batch_size < nranks)
        return nn_fail(err, NN_ERR_INPUT, "--batch-size %d is smaller than the %d ranks", opt->batch_size, nranks);
    if (opt->batch_size > train->total)
        return nn_fail(err, NN_ERR_INPUT, "--batch-size %d exceeds the %ld training samples",
                       opt->batch_size, train->total);
    return NN_OK;
}

/* ---- the run ---- */

/* --allreduce overlap: one MPI_Iallreduce per dense layer, started as soon as
 * backward hands that layer's gradient over. */
typedef struct layer_reductions {
    MPI_Comm comm;
    float *grads;
    size_t n_params;
    MPI_Request requests[NN_MAX_WIDTHS];
    int pending;
    double seconds; /* inside MPI: what the overlap did not hide */
} layer_reductions;

/* Without a progress thread, MPI moves data only inside MPI calls: poke it. */
static void overlap_poke(void *ctx) {
    layer_reductions *lr = ctx;
    if (!lr->pending) return;
    double t = MPI_Wtime();
    int done;
    MPI_Testall(lr->pending, lr->requests, &done, MPI_STATUSES_IGNORE);
    lr->seconds += MPI_Wtime() - t;
}

static void overlap_start(void *ctx, size_t offset, size_t count) {
    layer_reductions *lr = ctx;
    double t = MPI_Wtime();
    if (offset + count == lr->n_params) count++; /* the top layer carries the stop flag */
    MPI_Iallreduce(MPI_IN_PLACE, lr->grads + offset, (int)count, MPI_FLOAT, MPI_SUM, lr->comm,
                   &lr->requests[lr->pending++]);
    lr->seconds += MPI_Wtime() - t;
    overlap_poke(lr);
}

static void overlap_finish(layer_reductions *lr) {
    double t = MPI_Wtime();
    MPI_Waitall(lr->pending, lr->requests, MPI_STATUSES_IGNORE);
    lr->pending = 0;
    lr->seconds += MPI_Wtime() - t;
}

/* Everything one training run holds, released in one place. */
typedef struct run {
    nn_train_options opt; /* effective options (merged with the checkpoint on resume) */
    MPI_Comm comm;
    int rank, nranks, threads;
    nn_shard train, test;
    nn_model model;
    nn_sgd sgd;
    nn_checkpoint ck;     /* the checkpoint resumed from, if any */
    uint32_t *order;      /* this epoch's permutation of the local shard */
    uint32_t *batch_order;
    uint8_t *labels, *predicted;
    FILE *metrics, *log;
    long steps_per_epoch;
    nn_progress progress;
    nn_rng shuffle_rng;   /* state after this epoch's shuffle: saved in checkpoints */
    double loss_sum;      /* this rank's summed training loss so far this epoch */
    layer_reductions overlap; /* --allreduce overlap */
    nn_reducer *shm;      /* --allreduce shm: holds the gradient buffer */
} run;

static void run_free(run *r) {
    if (r->metrics) fclose(r->metrics);
    free(r->order);
    free(r->batch_order);
    free(r->labels);
    free(r->predicted);
    nn_checkpoint_free(&r->ck);
    nn_sgd_free(&r->sgd);
    nn_model_free(&r->model);
    nn_reducer_free(r->shm); /* collective: every rank frees in the same place */
    nn_shard_free(&r->train);
    nn_shard_free(&r->test);
}

static int save(run *r, nn_train_result *result, nn_error *err) {
    double seconds;
    int status = nn_checkpoint_save(r->opt.checkpoint, &r->opt, &r->model, &r->sgd, &r->progress, &r->shuffle_rng,
                                    r->loss_sum, r->comm, &seconds, err);
    if (!status) {
        result->checkpoints++;
        result->checkpoint_seconds += seconds;
    }
    return status;
}

/* Loads the data, builds the model and optimizer, restores a checkpoint. */
static int setup(run *r, const nn_train_options *cli, nn_error *err) {
    int status = NN_OK;
    r->opt = *cli;
    if (cli->resume[0]) {
        status = nn_checkpoint_load(cli->resume, &r->ck, err);
        char changes[2 * NN_PATH_MAX + 256] = "";
        if (!status) status = merge_resume_options(cli, &r->ck, &r->opt, changes, sizeof changes, err);
        if ((status = nn_comm_agree(r->comm, status, err))) return status;
        if (r->rank == 0 && r->log)
            fprintf(r->log, "nntrain: resuming from %s (nntrain %s, %d ranks): epoch %d, step %ld of it%s%s\n",
                    cli->resume, r->ck.version, r->ck.ranks, r->ck.progress.epochs_completed + 1,
                    r->ck.progress.step_in_epoch, changes[0] ? "; changed:" : "", changes);
    }
    const nn_train_options *opt = &r->opt;
    if ((status = nn_shard_read(opt->data, "train", opt->train_limit, r->comm, &r->train, err))) return status;
    if ((status = nn_shard_read(opt->data, "test", 0, r->comm, &r->test, err))) return status;
    status = check_fit(opt, &r->train, &r->test, r->nranks, err);
    r->steps_per_epoch = r->train.total / opt->batch_size;
    if (!status && cli->resume[0] && r->ck.progress.step_in_epoch >= r->steps_per_epoch)
        status = nn_fail(err, NN_ERR_INPUT, "%s: resumes at step %ld of an epoch that has only %ld steps with %s",
                         cli->resume, r->ck.progress.step_in_epoch, r->steps_per_epoch, opt->data);
    if ((status = nn_comm_agree(r->comm, status, err))) return status;

    int max_local = (opt->batch_size + r->nranks - 1) / r->nranks;
    int max_batch = max_local > EVAL_CHUNK ? max_local : EVAL_CHUNK;
    long order_len = r->train.count > r->test.count ? r->train.count : r->test.count;
    status = nn_model_create(&r->model, &opt->spec, max_batch, err);
    if (!status) status = nn_sgd_create(&r->sgd, r->model.n_params, opt->momentum, opt->weight_decay, err);
    if (!status) {
        r->order = malloc((size_t)order_len * sizeof *r->order);
        r->batch_order = malloc((size_t)max_batch * sizeof *r->batch_order);
        r->labels = malloc((size_t)max_batch);
        r->predicted = malloc((size_t)max_batch);
        if (!r->order || !r->batch_order || !r->labels || !r->predicted)
            status = nn_fail(err, NN_ERR_RUNTIME, "out of memory for batch buffers");
    }
    /* A resumed run appends to its metrics, so the file tells the whole story. */
    if (!status && r->rank == 0 && opt->metrics[0] && !(r->metrics = fopen(opt->metrics, cli->resume[0] ? "a" : "w")))
        status = nn_fail(err, NN_ERR_INPUT, "%s: cannot write metrics file", opt->metrics);
    if ((status = nn_comm_agree(r->comm, status, err))) return status;

    if (opt->allreduce == NN_ALLREDUCE_SHM) {
        status = nn_reducer_create(&r->shm, r->comm, r->model.n_params + 1, err);
        if (status) return status; /* agreed inside */
        nn_model_use_grad_buffer(&r->model, nn_reducer_buffer(r->shm));
    }
    if (opt->allreduce == NN_ALLREDUCE_OVERLAP) {
        r->overlap = (layer_reductions){.comm = r->comm, .grads = r->model.grads, .n_params = r->model.n_params};
        r->model.grads_ready = overlap_start;
        r->model.progress = overlap_poke;
        r->model.grads_ready_ctx = &r->overlap;
    }
    if (cli->resume[0]) {
        memcpy(r->model.params, r->ck.params, r->model.n_params * sizeof(float));
        memcpy(r->sgd.velocity, r->ck.velocity, r->model.n_params * sizeof(float));
        r->progress = r->ck.progress;
    } else {
        nn_model_init(&r->model, opt->seed); /* same seed, same parameters on every rank */
    }
    return NN_OK;
}

/* A fresh permutation of the local shard for `epoch`, from (seed, epoch, rank). */
static void shuffle(run *r, int epoch) {
    nn_rng_seed(&r->shuffle_rng, r->opt.seed, (uint64_t)epoch, (uint64_t)r->rank);
    for (long i = 0; i < r->train.count; i++) r->order[i] = (uint32_t)i;
    nn_rng_shuffle(&r->shuffle_rng, r->order, (uint32_t)r->train.count);
}

/* On resume, the epoch in progress continues where it stopped: same permutation
 * (checked against the saved generator state when the rank count is the same) and
 * the loss summed so far. With another rank count the shards differ: the rest of
 * the epoch is drawn from the new shards, and rank 0 carries the old loss sum. */
static int restore_epoch(run *r, nn_error *err) {
    int status = NN_OK;
    if (r->ck.ranks == r->nranks) {
        if (memcmp(r->shuffle_rng.s, r->ck.rng_states + 4 * r->rank, sizeof r->shuffle_rng.s))
            status = nn_fail(err, NN_ERR_INPUT, "%s: the shuffling state does not match this data (another dataset or --train-limit?)",
                             r->opt.resume);
        r->loss_sum = r->ck.loss_partials[r->rank];
    } else if (r->rank == 0) {
        for (int i = 0; i < r->ck.ranks; i++) r->loss_sum += r->ck.loss_partials[i];
    }
    return nn_comm_agree(r->comm, status, err);
}

/* Sums the ranks' gradients (and stop flags) in place, the way --allreduce says;
 * returns the seconds spent that backward did not hide. */
static double sum_gradients(run *r) {
    if (r->opt.allreduce == NN_ALLREDUCE_OVERLAP) {
        overlap_finish(&r->overlap);
        return r->overlap.seconds;
    }
    double t = MPI_Wtime();
    if (r->opt.allreduce == NN_ALLREDUCE_SHM)
        nn_reducer_sum(r->shm);
    else
        MPI_Allreduce(MPI_IN_PLACE, r->model.grads, (int)r->model.n_params + 1, MPI_FLOAT, MPI_SUM, r->comm);
    return MPI_Wtime() - t;
}

/* One training step on the local part of global step `s` of the epoch. Returns
 * non-zero when any rank asked to stop (the flag rides in the gradient Allreduce). */
static int step(run *r, long s, double *data_s, double *allreduce_s) {
    nn_model *m = &r->model;
    long first;
    int n = nn_local_batch(s, r->opt.batch_size, r->rank, r->nranks, &first);
    double t = MPI_Wtime();
    for (int i = 0; i < n; i++) /* wraps when a rank's share exceeds its shard by a few */
        r->batch_order[i] = r->order[(first + i) % r->train.count];
    nn_shard_gather(&r->train, r->batch_order, n, m->acts[0], r->labels);
    *data_s += MPI_Wtime() - t;

    /* The stop flag rides in the spare slot after the gradients: reducing the
     * gradients also tells every rank whether any rank was asked to stop. */
    m->grads[m->n_params] = nn_stop_requested(r->progress.global_step + 1) ? 1.0f : 0.0f;
    r->overlap.seconds = 0.0; /* overlap mode starts its reductions inside backward */
    r->loss_sum += nn_model_forward_backward(m, r->labels, n, 1.0f / (float)r->opt.batch_size);
    *allreduce_s += sum_gradients(r);

    long total_steps = r->steps_per_epoch * r->opt.epochs;
    nn_sgd_step(&r->sgd, m->params, m->grads,
                nn_schedule_lr(r->opt.schedule, r->opt.lr, r->progress.global_step, total_steps));
    r->progress.global_step++;
    r->progress.step_in_epoch++;
    return m->grads[m->n_params] > 0.0f;
}

static void print_header(const run *r) {
    const nn_train_options *opt = &r->opt;
    fprintf(r->log, "nntrain: %s, %ld train / %ld test samples; network", opt->data, r->train.total, r->test.total);
    for (int i = 0; i < opt->spec.n_widths; i++) fprintf(r->log, "%c%d", i ? '-' : ' ', opt->spec.widths[i]);
    static const char *const shm_modes[] = {"serial", "flat", "shared memory"};
    fprintf(r->log, " %s/%s, %zu parameters; %d ranks x %d threads; batch %d, lr %g (%s), momentum %g; allreduce %s",
            nn_activation_name(opt->spec.activation), nn_loss_name(opt->spec.loss), r->model.n_params, r->nranks,
            r->threads, opt->batch_size, opt->lr, nn_schedule_name(opt->schedule), opt->momentum,
            nn_allreduce_name(opt->allreduce));
    if (r->shm)
        fprintf(r->log, " (%s, %d node%s)", shm_modes[nn_reducer_mode(r->shm)], nn_reducer_nodes(r->shm),
                nn_reducer_nodes(r->shm) == 1 ? "" : "s");
    fputc('\n', r->log);
    int cores = bound_cores();
    if (cores > 0 && cores < r->threads)
        fprintf(r->log, "nntrain: warning: %d threads per rank but rank 0 is bound to %d core%s: "
                        "run mpirun with --bind-to none or --map-by slot:PE=%d\n",
                r->threads, cores, cores == 1 ? "" : "s", r->threads);
    fflush(r->log);
}

int nn_train(const nn_train_options *cli, MPI_Comm comm, FILE *log, nn_train_result *result, nn_error *err) {
    run r = {.comm = comm, .log = log};
    MPI_Comm_rank(comm, &r.rank);
    MPI_Comm_size(comm, &r.nranks);
    memset(result, 0, sizeof *result);
    r.threads = choose_threads(cli, comm);
    omp_set_num_threads(r.threads);
    result->threads = r.threads;

    int status = setup(&r, cli, err);
    if (status) {
        run_free(&r);
        return status;
    }
    const nn_train_options *opt = &r.opt;
    if (r.rank == 0 && log) print_header(&r);

    double best = -1.0, sum_seconds = 0.0, sum_samples = 0.0;
    int stop = 0;
    int first_epoch = r.progress.epochs_completed + 1;
    shuffle(&r, first_epoch);
    for (int epoch = first_epoch; epoch <= opt->epochs && !stop && !status; epoch++) {
        if (epoch == first_epoch && cli->resume[0]) {
            if ((status = restore_epoch(&r, err))) break;
        } else {
            r.loss_sum = 0.0;
            r.progress.step_in_epoch = 0;
        }
        double allreduce_s = 0.0, data_s = 0.0, ckpt_s = 0.0;
        long steps_done = 0;
        MPI_Barrier(comm);
        double t0 = MPI_Wtime();
        while (r.progress.step_in_epoch < r.steps_per_epoch) {
            stop = step(&r, r.progress.step_in_epoch, &data_s, &allreduce_s);
            steps_done++;
            int every = opt->checkpoint_every && r.progress.global_step % opt->checkpoint_every == 0;
            int epoch_end = r.progress.step_in_epoch == r.steps_per_epoch;
            if (opt->checkpoint[0] && (stop || every) && !epoch_end) { /* epoch ends save below */
                double t = MPI_Wtime();
                status = save(&r, result, err);
                ckpt_s += MPI_Wtime() - t;
            }
            if (stop || status) break;
        }
        double epoch_s = MPI_Wtime() - t0 - ckpt_s;
        if (status || r.progress.step_in_epoch < r.steps_per_epoch) break; /* stopped mid-epoch */

        double t_eval = MPI_Wtime();
        nn_epoch_stats st = {.epoch = epoch, .epochs = opt->epochs, .ranks = r.nranks, .threads = r.threads};
        st.lr = nn_schedule_lr(opt->schedule, opt->lr, r.progress.global_step - 1, r.steps_per_epoch * opt->epochs);
        nn_scores scores;
        nn_evaluate(&r.model, &r.test, r.order, r.labels, r.predicted, comm, &scores, NULL);
        st.test_loss = scores.loss;
        st.test_accuracy = scores.accuracy;
        st.eval_seconds = MPI_Wtime() - t_eval;
        /* The slowest rank sets the pace: report maxima of the times. */
        double times[3] = {epoch_s, allreduce_s, data_s}, loss_sum = r.loss_sum;
        MPI_Allreduce(MPI_IN_PLACE, times, 3, MPI_DOUBLE, MPI_MAX, comm);
        MPI_Allreduce(MPI_IN_PLACE, &loss_sum, 1, MPI_DOUBLE, MPI_SUM, comm);
        double samples = (double)steps_done * opt->batch_size;
        st.train_loss = loss_sum / ((double)r.steps_per_epoch * opt->batch_size);
        st.epoch_seconds = times[0];
        st.allreduce_seconds = times[1];
        st.data_seconds = times[2];
        st.samples_per_second = samples / times[0];
        sum_seconds += times[0];
        sum_samples += samples;

        /* the epoch is complete: the checkpoint records the start of the next one,
         * whose permutation (and generator state) is drawn now */
        r.progress.epochs_completed = epoch;
        r.progress.step_in_epoch = 0;
        r.loss_sum = 0.0;
        shuffle(&r, epoch + 1);
        if (opt->checkpoint[0]) {
            double t = MPI_Wtime();
            status = save(&r, result, err);
            st.checkpoint_seconds = MPI_Wtime() - t;
        }
        if (st.test_accuracy > best) {
            best = st.test_accuracy;
            result->best_epoch = epoch;
        }
        result->final_accuracy = st.test_accuracy;
        if (r.rank == 0 && log) nn_metrics_print_line(log, &st);
        if (r.metrics) nn_metrics_write_json(r.metrics, &st);
    }
    result->epochs_run = r.progress.epochs_completed;
    result->best_accuracy = best;
    result->train_seconds = sum_seconds;
    result->samples_per_second = sum_seconds > 0 ? sum_samples / sum_seconds : 0.0;
    if (!status && stop && r.progress.epochs_completed < opt->epochs) {
        result->stopped = 1;
        status = NN_STOPPED;
        nn_fail(err, NN_STOPPED, "stopped by a signal at epoch %d, step %ld%s%s", r.progress.epochs_completed + 1,
                r.progress.step_in_epoch, opt->checkpoint[0] ? "; checkpoint written to " : "; no --checkpoint given, nothing saved",
                opt->checkpoint);
    }
    run_free(&r);
    return status;
}
