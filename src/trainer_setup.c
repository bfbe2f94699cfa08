/* Building a training run from its options, and tearing it down (see trainer.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/comm.h"
#include "nn/conv_spec.h"
#include "nn/env.h"
#include "nn/placement.h"
#include "nn/virtual_shards.h"
#include "nn/watchdog.h"
#include "trainer.h"

/* --epochs (the total) against where the checkpoint stands: below it is an error (the
 * checkpoint's work would be dropped); equal to the epochs it completed, the run is
 * complete: say so, and write nothing. A mid-epoch checkpoint finishes its epoch. */
static int check_epochs(trainer *t, nn_error *err) {
    const nn_progress *p = &t->ck.progress;
    int at = p->epochs_completed + (p->step_in_epoch > 0);
    if (t->cfg.epochs < at && p->step_in_epoch > 0)
        return nn_fail(err, NN_ERR_INPUT, "--epochs %d is below epoch %d, which checkpoint %s is part-way through "
                       "(--epochs counts the total)", t->cfg.epochs, at, t->opt.resume);
    if (t->cfg.epochs < at)
        return nn_fail(err, NN_ERR_INPUT, "--epochs %d is below the %d epochs checkpoint %s has completed "
                       "(--epochs counts the total)", t->cfg.epochs, at, t->opt.resume);
    t->complete = t->cfg.epochs == p->epochs_completed && p->step_in_epoch == 0;
    return NN_OK;
}

/* The one line of a resumed run that is complete (rank 0). */
static void say_complete(const trainer *t) {
    if (!t->log) return;
    char resume[NN_ONE_LINE_MAX];
    fprintf(t->log, "nntrain: %s: the run is complete (%d of %d epochs",
            nn_one_line(t->opt.resume, resume, sizeof resume), t->ck.progress.epochs_completed, t->cfg.epochs);
    if (t->ck.test_accuracy >= 0) fprintf(t->log, ", test accuracy %.2f%%", 100.0 * t->ck.test_accuracy);
    fprintf(t->log, "); nothing to do, nothing written (a larger --epochs trains on)\n");
}

/* The run's configuration: the command line's or, on resume, the checkpoint's
 * merged with what the command line changed. */
static int configure(trainer *t, nn_error *err) {
    const nn_train_options *o = &t->opt;
    t->cfg = o->run;
    nn_comm_node_layout(t->comm, &t->ranks_per_node, NULL, &t->on_root_node); /* collective: every rank configures */
    if (t->cfg.virtual_shards < 0) t->cfg.virtual_shards = nn_vshards_default(t->cfg.batch_size); /* --deterministic */
    if (!o->resume[0]) return nn_run_config_check(&t->cfg, o->given, err); /* the same on every rank */
    char changes[2 * NN_PATH_MAX + 256] = "";
    int status = nn_checkpoint_load(o->resume, t->ranks_per_node, &t->ck, err);
    if (!status) status = nn_run_config_resume(&o->run, o->given, &t->ck.config, o->resume, &t->cfg, changes,
                                               sizeof changes, err);
    if (!status) status = nn_run_config_check(&t->cfg, o->given, err);
    if (!status) status = check_epochs(t, err);
    if ((status = nn_comm_agree(t->comm, status, err))) return status;
    if ((status = nn_checkpoint_agree(o->resume, &t->ck, t->comm, err))) return status;
    if (t->complete) {
        say_complete(t);
        return NN_OK;
    }
    char resume[NN_ONE_LINE_MAX], version[4 * sizeof t->ck.version]; /* the version is the file's text */
    if (t->log)
        fprintf(t->log, "nntrain: resuming from %s (nntrain %s, %d ranks): epoch %d, step %ld of it%s%s\n",
                nn_one_line(o->resume, resume, sizeof resume), nn_one_line(t->ck.version, version, sizeof version),
                t->ck.ranks, t->ck.progress.epochs_completed + 1, t->ck.progress.step_in_epoch,
                changes[0] ? "; changed:" : "", changes);
    return NN_OK;
}

/* Checks that the network and batch fit the data; identical on every rank. */
static int check_fit(trainer *t, nn_error *err) {
    nn_run_config *c = &t->cfg;
    const char *whose = t->opt.resume[0] ? "the checkpoint's network" : "--layers";
    int status = nn_spec_fit_image(&c->spec, t->train.image, t->train.dim, c->data, whose, err);
    if (!status) status = nn_spec_check_data(&c->spec, t->train.dim, t->train.num_classes, c->data, whose, err);
    if (status) return status;
    if (c->shift > 0 && (t->train.image[1] <= c->shift || t->train.image[2] <= c->shift))
        return nn_fail(err, NN_ERR_INPUT, "--shift %d: %s holds %dx%dx%d samples; shifting needs images larger than "
                       "the shift ([H,W] or [C,H,W] samples)", c->shift, c->data, t->train.image[0], t->train.image[1],
                       t->train.image[2]);
    if (t->test.dim != t->train.dim)
        return nn_fail(err, NN_ERR_INPUT, "%s: /test samples have %d values, /train samples %d", c->data,
                       t->test.dim, t->train.dim);
    if (memcmp(t->test.image, t->train.image, sizeof t->train.image)) /* the same values, another shape */
        return nn_fail(err, NN_ERR_INPUT, "%s: /test samples are %dx%dx%d, /train samples %dx%dx%d", c->data,
                       t->test.image[0], t->test.image[1], t->test.image[2], t->train.image[0], t->train.image[1],
                       t->train.image[2]);
    if (c->batch_size < t->nranks)
        return nn_fail(err, NN_ERR_INPUT, "--batch-size %d is smaller than the %d ranks", c->batch_size, t->nranks);
    if (c->batch_size > t->train.total)
        return nn_fail(err, NN_ERR_INPUT, "--batch-size %d exceeds the %ld training samples", c->batch_size,
                       t->train.total);
    if (t->steps_per_epoch < 1)
        return nn_fail(err, NN_ERR_INPUT, "--batch-size %d x --accumulate %d exceeds the %ld training samples",
                       c->batch_size, c->accumulate, t->train.total);
    if (t->opt.resume[0] && t->ck.progress.global_step > (long)t->ck.config.epochs * t->steps_per_epoch)
        return nn_fail(err, NN_ERR_INPUT, "%s: global step %ld is past the end of its run (step %ld)", t->opt.resume,
                       t->ck.progress.global_step, (long)t->ck.config.epochs * t->steps_per_epoch);
    if (t->opt.resume[0] && t->ck.progress.step_in_epoch >= t->steps_per_epoch)
        return nn_fail(err, NN_ERR_INPUT, "%s: resumes at step %ld of an epoch that has only %ld steps with %s",
                       t->opt.resume, t->ck.progress.step_in_epoch, t->steps_per_epoch, c->data);
    return NN_OK;
}

/* The default dataset, not made yet: the usual first stumble, so the line says how to
 * make it (the same on every rank: each looks at the same relative path). */
static int check_default_data(const trainer *t, nn_error *err) {
    if (t->opt.resume[0] || (t->opt.given & NN_GIVEN_DATA) || access(t->cfg.data, F_OK) == 0 || errno != ENOENT)
        return NN_OK;
    return nn_fail_local(err, NN_ERR_INPUT, "%s: no such file (the default --data, relative to this directory): make it "
                   "with scripts/fetch_mnist.sh, or give --data FILE", t->cfg.data);
}

static int load_data(trainer *t, nn_error *err) {
    const nn_run_config *c = &t->cfg;
    int status = nn_comm_agree(t->comm, check_default_data(t, err), err);
    if (status) return status;
    long held = c->validation; /* the last `held` training rows are the validation set */
    if (held > 0 && held < t->nranks) /* each rank scores its share of them */
        return nn_fail(err, NN_ERR_INPUT, "--validation %ld: too few held-out samples to split over %d ranks (at least %d)",
                       held, t->nranks, t->nranks);
    /* deterministic mode: each rank reads whole virtual shards */
    if ((status = nn_shard_read_parts(c->data, "train", c->train_limit, 0, -held, c->virtual_shards, t->comm,
                                      &t->train, err)))
        return status;
    nn_watchdog_alive();
    if (held > 0 &&
        (status = nn_shard_read_rows(c->data, "train", c->train_limit, -held, 0, t->comm, &t->validation, err)))
        return status;
    if ((status = nn_shard_read(c->data, "test", 0, t->comm, &t->test, err))) return status;
    t->steps_per_epoch = t->train.total / ((long)c->batch_size * c->accumulate); /* SGD steps */
    status = check_fit(t, err);
    if (!status && c->virtual_shards) status = trainer_exact_setup(t, err);
    return nn_comm_agree(t->comm, status, err);
}

/* The factored sum (factor_sum.h) where the node sums in chunks, with one micro-step
 * a step (the factors hold one micro-batch): by default (or NN_NODE_SUM=auto) timed
 * against the chunked sum begun in backward on the first steps, the faster kept
 * (trainer_tuning.c); NN_NODE_SUM=factors keeps it, any other choice leaves it out.
 * The same bits whichever sums. */
typedef enum { FACTORS_NO, FACTORS_TIMED, FACTORS_ALWAYS } factors_use;

static factors_use use_factors(const trainer *t) {
    const char *choice = nn_env("NN_NODE_SUM");
    if (t->cfg.accumulate != 1 || t->cfg.virtual_shards) return FACTORS_NO;
    if (!choice || !strcmp(choice, "auto")) return FACTORS_TIMED;
    return !strcmp(choice, "factors") ? FACTORS_ALWAYS : FACTORS_NO;
}

/* Each rank keeps at least three copies of the parameters (weights, gradients,
 * momentum), all written in the first step, and a resumed run holds the checkpoint's
 * weights and momentum besides while it starts: a network that cannot fit them on
 * this node is refused now, with numbers, instead of being ended by the kernel's
 * out-of-memory killer (which may pick another process) mid-run. */
static int check_memory(const trainer *t, nn_error *err) {
    size_t params = nn_spec_param_count(&t->cfg.spec);
    int copies = t->opt.resume[0] ? 5 : 3;
    char need[96];
    snprintf(need, sizeof need, "a network of %zu parameters needs at least", params);
    return nn_placement_check_memory(copies * sizeof(float) * (double)params, t->ranks_per_node, need,
                                     copies == 3 ? "weights, gradients, momentum"
                                                 : "weights, gradients, momentum and the checkpoint's two", err);
}

/* Model, optimizer, evaluator, batch buffers and the metrics file (local parts). */
static int allocate(trainer *t, nn_error *err) {
    const nn_run_config *c = &t->cfg;
    if (check_memory(t, err)) return NN_ERR_RUNTIME;
    int max_local = (c->batch_size + t->nranks - 1) / t->nranks;
    if (c->virtual_shards) /* whole shards: up to ceil(V / P) of batch / V rows */
        max_local = (c->virtual_shards + t->nranks - 1) / t->nranks * (c->batch_size / c->virtual_shards);
    int max_batch = max_local > NN_EVAL_CHUNK ? max_local : NN_EVAL_CHUNK;
    int status = nn_model_create(&t->model, &c->spec, max_batch, err);
    if (!status) status = nn_sgd_create(&t->sgd, t->model.n_params, c->momentum, c->weight_decay, err);
    if (!status) status = nn_evaluator_create(&t->eval, &t->model, err);
    if (!status) {
        t->order = malloc((size_t)t->train.count * sizeof *t->order);
        t->batch_rows = malloc((size_t)max_batch * sizeof *t->batch_rows);
        t->labels = malloc((size_t)max_batch);
        t->sample_ids = malloc((size_t)max_batch * sizeof *t->sample_ids);
        if (!t->order || !t->batch_rows || !t->labels || !t->sample_ids)
            status = nn_fail(err, NN_ERR_RUNTIME, "out of memory for batch buffers");
    }
    /* A resumed run appends to its metrics (cut back to the checkpoint's epoch), so
     * the file tells the whole story once. */
    if (!status && t->rank == 0 && t->opt.metrics[0]) {
        int resumed_at = t->opt.resume[0] ? t->ck.progress.epochs_completed : -1;
        /* cut back only where the file's record of that epoch is the checkpoint's */
        nn_metrics_resume resume = {resumed_at, t->ck.train_loss, t->ck.test_accuracy};
        status = nn_metrics_open(&t->metrics, t->metrics_lock.dir_fd, t->opt.metrics,
                                 t->opt.resume[0] ? &resume : NULL, err);
        /* a record whose write failed (a full disk) after its epoch's checkpoint was saved */
        char shown[NN_ONE_LINE_MAX];
        if (!status && t->log && t->metrics.last_epoch > 0 && t->metrics.last_epoch < resumed_at)
            fprintf(t->log, "nntrain: warning: %s has no records of epochs %d to %d (their writes failed); it goes on "
                    "from epoch %d\n", nn_one_line(t->opt.metrics, shown, sizeof shown), t->metrics.last_epoch + 1,
                    resumed_at, resumed_at + 1);
    }
    return status;
}

/* Rank 0, before anything is written: the outputs obey the one rule (nn/outputs.h),
 * a checkpoint replaces only a checkpoint, and each output is locked for the run. */
static int claim_outputs(trainer *t, nn_error *err) {
    const nn_train_options *o = &t->opt;
    char checkpoint_tmp[NN_PATH_MAX + 8];
    nn_output_temporary_name(checkpoint_tmp, sizeof checkpoint_tmp, o->checkpoint);
    nn_run_files files = {0};
    nn_run_files_input(&files, "--data", t->cfg.data);
    nn_run_files_input(&files, "--resume", o->resume);
    int ck = nn_run_files_output(&files, "--checkpoint", o->checkpoint);
    nn_run_files_temporary(&files, ck, checkpoint_tmp);
    nn_run_files_replaces(&files, ck, o->resume); /* the usual preemptible job: --resume F --checkpoint F */
    nn_run_files_output(&files, "--metrics", o->metrics);
    int status = nn_run_files_check(&files, err);
    if (!status && o->checkpoint[0]) {
        status = nn_output_lock_acquire(&t->checkpoint_lock, "--checkpoint", o->checkpoint, err);
        if (!status) status = nn_checkpoint_check_replaceable(o->checkpoint, err);
        /* a killed write's leftover, now we hold the lock: removed if ours */
        if (!status) status = nn_checkpoint_remove_leftover(o->checkpoint, checkpoint_tmp, err);
    }
    if (!status && o->metrics[0]) status = nn_output_lock_acquire(&t->metrics_lock, "--metrics", o->metrics, err);
    return status;
}

void trainer_follow_output_links(trainer *t) {
    nn_output_follow_link(t->opt.checkpoint, sizeof t->opt.checkpoint); /* rank 0 writes; every rank's */
    nn_output_follow_link(t->opt.metrics, sizeof t->opt.metrics);      /* watchdog may clean up */
}

/* Collective. Once rank 0 holds the checkpoint's lock, the checkpoint being written
 * is this run's own: the watchdog of every rank on rank 0's node may remove it if it
 * ends the job, in the directory the lock is in (rank 0 tells its device and inode).
 * Not before: a run refused (or hung) before the lock would remove another run's file
 * mid-write; and not on another node, where a node-local path (/tmp/ck.h5) names
 * another job's file. */
static void watch_leftover(const trainer *t) {
    char leftover[NN_PATH_MAX + 8] = "";
    unsigned long long lock_dir[2] = {0, 0};
    struct stat st;
    if (!t->opt.checkpoint[0]) return;
    if (t->rank == 0 && fstat(t->checkpoint_lock.dir_fd, &st) == 0)
        lock_dir[0] = (unsigned long long)st.st_dev, lock_dir[1] = (unsigned long long)st.st_ino;
    MPI_Bcast(lock_dir, 2, MPI_UNSIGNED_LONG_LONG, 0, t->comm);
    if (t->on_root_node && lock_dir[1]) nn_output_temporary_name(leftover, sizeof leftover, t->opt.checkpoint);
    nn_watchdog_remove_on_timeout(leftover, lock_dir);
}

int trainer_setup(trainer *t, nn_error *err) {
    int status;
    if ((status = configure(t, err)) || t->complete) return status;
    status = t->rank == 0 ? claim_outputs(t, err) : NN_OK;
    if ((status = nn_comm_agree(t->comm, status, err))) return status; /* before any work */
    watch_leftover(t);
    nn_watchdog_alive(); /* each stage of a large run's start-up is progress */
    if ((status = load_data(t, err))) return status;
    nn_watchdog_alive();
    if ((status = nn_comm_agree(t->comm, allocate(t, err), err))) return status;
    nn_watchdog_alive();
    /* deterministic mode sums exactly itself (exact_step.c): the exchange only carries the result */
    int exact = t->cfg.virtual_shards > 0;
    t->eval.exact = exact;
    /* the OpenMP threads started before the shared window is sized against this rank's
     * address space (ulimit -v): their stacks take some, and a thread that cannot be
     * made later ends the run inside libgomp, not with a line of ours */
    int team = 0; /* a region with an effect: GCC drops an empty one */
#pragma omp parallel reduction(+ : team)
    team += 1;
    (void)team;
    if ((status = nn_exchange_create(&t->exchange, t->comm, exact ? NN_EXCHANGE_MPI : t->opt.exchange,
                                     exact ? NN_COMPRESS_NONE : t->cfg.compress, t->model.n_params, err))) return status;
    nn_watchdog_alive();
    /* the gradients go straight into the exchange's buffer, and it hears of each final slice */
    nn_model_place_grads(&t->model, nn_exchange_grads(t->exchange));
    t->model.slice_final = nn_exchange_slice_final;
    t->model.slice_final_ctx = t->exchange;
    if (t->opt.resume[0]) {
        memcpy(t->model.params, t->ck.params, t->model.n_params * sizeof(float));
        memcpy(t->sgd.velocity, t->ck.velocity, t->model.n_params * sizeof(float));
        free(t->ck.params); /* copied: two fewer copies of the network for the whole run */
        free(t->ck.velocity);
        t->ck.params = t->ck.velocity = NULL;
        t->progress = t->ck.progress;
        t->done_loss = t->ck.train_loss; /* carried to the next save, as the test accuracy */
    } else {
        nn_model_init(&t->model, t->cfg.seed); /* same seed, same parameters on every rank */
    }
    /* the node's ranks keep one copy of the parameters, where they can share it */
    float *shared = nn_exchange_share_params(t->exchange, t->model.params);
    if (shared) nn_model_place_params(&t->model, shared);
    float *velocity = shared ? nn_exchange_share_velocity(t->exchange, t->sgd.velocity) : NULL;
    if (velocity) nn_sgd_place_velocity(&t->sgd, velocity);
    if (exact && !t->cfg.spec.n_convs && (status = trainer_global_setup(t, err))) return status;
    factors_use factors = velocity ? use_factors(t) : FACTORS_NO;
    if (factors && (status = nn_factor_sum_create(&t->factors, t->comm, &t->model, err))) return status;
    if (factors == FACTORS_ALWAYS && !t->factors && t->log) /* asked for by name: say why the header names another */
        fprintf(t->log, "nntrain: note: NN_NODE_SUM=factors: the factored sum's window does not fit (/dev/shm, or "
                        "MPI's int counts); the chunked sum runs instead\n");
    trainer_sum_tuning_start(t, factors == FACTORS_ALWAYS, factors == FACTORS_TIMED);
    return NN_OK;
}

void trainer_free(trainer *t) {
    nn_watchdog_remove_on_timeout(NULL, NULL); /* the locks go: the file is no longer this run's */
    nn_metrics_close(&t->metrics);
    nn_output_lock_release(&t->metrics_lock);
    nn_output_lock_release(&t->checkpoint_lock);
    free(t->order);
    free(t->batch_rows);
    free(t->labels);
    free(t->sample_ids);
    nn_evaluator_free(&t->eval);
    nn_factor_sum_free(t->factors); /* collective, as the exchange */
    nn_global_product_free(t->global); /* collective; gives the model its buffers back */
    nn_exchange_free(t->exchange); /* collective: every rank frees in the same place */
    nn_sgd_free(&t->sgd);
    nn_model_free(&t->model);
    nn_shard_free(&t->train);
    nn_shard_free(&t->test);
    nn_shard_free(&t->validation);
    nn_checkpoint_free(&t->ck);
    nn_exact_free(&t->exact);
}

void trainer_shuffle(trainer *t, int epoch) {
    if (t->cfg.virtual_shards) {
        trainer_exact_shuffle(t, epoch);
        return;
    }
    nn_rng_seed(&t->shuffle_rng, t->cfg.seed, (uint64_t)epoch, (uint64_t)t->rank);
    for (long i = 0; i < t->train.count; i++) t->order[i] = (uint32_t)i;
    nn_rng_shuffle(&t->shuffle_rng, t->order, (uint32_t)t->train.count);
}

/* Same rank count: the same permutation (checked against the saved generator
 * state) and this rank's loss sum. Another rank count (or deterministic mode's one
 * row for all): the rest of the epoch is drawn from this run's shards, and rank 0
 * carries the old loss sum. */
int trainer_restore_epoch(trainer *t, nn_error *err) {
    int status = NN_OK;
    if (t->ck.rows == t->nranks) {
        if (memcmp(t->shuffle_rng.s, t->ck.rng_states + 4 * t->rank, sizeof t->shuffle_rng.s))
            status = nn_fail(err, NN_ERR_INPUT,
                             "%s: the shuffling state does not match this data (another dataset or --train-limit?)",
                             t->opt.resume);
        t->loss_sum = t->ck.loss_partials[t->rank];
    } else if (t->rank == 0) {
        for (int i = 0; i < t->ck.rows; i++) t->loss_sum += t->ck.loss_partials[i];
    }
    return nn_comm_agree(t->comm, status, err);
}
