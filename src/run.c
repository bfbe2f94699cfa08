#include "nn/run.h"

#include <stdbool.h>
#include <sys/stat.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/conv_spec.h"

void nn_run_config_defaults(nn_run_config *c) {
    memset(c, 0, sizeof *c);
    c->spec = (nn_model_spec){.n_widths = 4, .widths = {784, 50, 100, 10}, .activation = NN_ACT_SIGMOID,
                              .loss = NN_LOSS_SOFTMAX_XENT};
    c->batch_size = 100;
    c->accumulate = 1;
    c->seed = 1;
    snprintf(c->data, sizeof c->data, "data/mnist.h5");
    /* chosen on a validation split (the last 10,000 training samples; README): 15
     * epochs at lr 0.5 with weight decay 1e-4 beat 10 at 0.3 without on every seed */
    c->epochs = 15;
    c->lr = 0.5f;
    c->momentum = 0.9f;
    c->weight_decay = 1e-4f;
    c->schedule = NN_SCHEDULE_COSINE;
}

/* The settings that fix a run: NN_ERR_INPUT when one was given with another value. */
static int check_fixed(const nn_run_config *cli, unsigned given, const nn_run_config *saved, const char *path,
                       nn_error *err) {
    const nn_model_spec *a = &cli->spec, *b = &saved->spec;
    if ((given & NN_GIVEN_LAYERS) && !nn_spec_same_layers(a, b))
        return nn_fail(err, NN_ERR_INPUT, "--layers conflicts with checkpoint %s (written for another network)", path);
    if ((given & NN_GIVEN_ACTIVATION) && a->activation != b->activation)
        return nn_fail(err, NN_ERR_INPUT, "--activation %s conflicts with checkpoint %s (%s)",
                       nn_activation_name(a->activation), path, nn_activation_name(b->activation));
    if ((given & NN_GIVEN_LOSS) && a->loss != b->loss)
        return nn_fail(err, NN_ERR_INPUT, "--loss %s conflicts with checkpoint %s (%s)", nn_loss_name(a->loss), path,
                       nn_loss_name(b->loss));
    if ((given & NN_GIVEN_BATCH) && cli->batch_size != saved->batch_size)
        return nn_fail(err, NN_ERR_INPUT, "--batch-size %d conflicts with checkpoint %s (%d)", cli->batch_size, path,
                       saved->batch_size);
    if ((given & NN_GIVEN_ACCUMULATE) && cli->accumulate != saved->accumulate)
        return nn_fail(err, NN_ERR_INPUT, "--accumulate %d conflicts with checkpoint %s (%d)", cli->accumulate, path,
                       saved->accumulate);
    if ((given & NN_GIVEN_SEED) && cli->seed != saved->seed)
        return nn_fail(err, NN_ERR_INPUT, "--seed %llu conflicts with checkpoint %s (%llu)",
                       (unsigned long long)cli->seed, path, (unsigned long long)saved->seed);
    if ((given & NN_GIVEN_VALIDATION) && cli->validation != saved->validation)
        return nn_fail(err, NN_ERR_INPUT, "--validation %ld conflicts with checkpoint %s (%ld)", cli->validation, path,
                       saved->validation);
    if ((given & NN_GIVEN_TRAIN_LIMIT) && cli->train_limit != saved->train_limit)
        return nn_fail(err, NN_ERR_INPUT, "--train-limit %ld conflicts with checkpoint %s (%ld)", cli->train_limit,
                       path, saved->train_limit);
    /* --deterministic without a count matches any count the checkpoint has */
    if ((given & NN_GIVEN_DETERMINISTIC) && cli->virtual_shards != saved->virtual_shards &&
        !(cli->virtual_shards < 0 && saved->virtual_shards > 0))
        return nn_fail(err, NN_ERR_INPUT, "--deterministic conflicts with checkpoint %s (%s)", path,
                       saved->virtual_shards ? "another --virtual-shards" : "not deterministic");
    return NN_OK;
}

/* Appends " name old->new" to the changes text (when it fits). */
static void note_change(char *changes, size_t cap, const char *name, const char *before, const char *after) {
    size_t used = strlen(changes);
    if (used < cap) snprintf(changes + used, cap - used, " %s %s->%s", name, before, after);
}

static void note_number(char *changes, size_t cap, const char *name, double before, double after) {
    char a[32], b[32];
    snprintf(a, sizeof a, "%.7g", before); /* a float's digits: 0.9999999 is not 1 */
    snprintf(b, sizeof b, "%.7g", after);
    note_change(changes, cap, name, a, b);
}

/* The same file (by device and inode), or, where either is missing, the same name. */
static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return strcmp(a, b) == 0;
}

int nn_run_config_resume(const nn_run_config *cli, unsigned given, const nn_run_config *saved, const char *path,
                         nn_run_config *out, char *changes, size_t cap, nn_error *err) {
    int status = check_fixed(cli, given, saved, path, err);
    if (status) return status;
    *out = *saved;
    changes[0] = '\0';
    /* the others: the command line's where given, each change reported */
#define MAY_CHANGE(bit, field, name)                                                    \
    if ((given & (bit)) && cli->field != saved->field) {                                \
        note_number(changes, cap, name, (double)saved->field, (double)cli->field);      \
        out->field = cli->field;                                                        \
    }
    MAY_CHANGE(NN_GIVEN_EPOCHS, epochs, "epochs")
    MAY_CHANGE(NN_GIVEN_LR, lr, "lr")
    MAY_CHANGE(NN_GIVEN_MOMENTUM, momentum, "momentum")
    MAY_CHANGE(NN_GIVEN_WEIGHT_DECAY, weight_decay, "weight-decay")
    MAY_CHANGE(NN_GIVEN_DROPOUT, spec.dropout, "dropout")
    MAY_CHANGE(NN_GIVEN_MAX_NORM, max_norm, "max-norm")
    MAY_CHANGE(NN_GIVEN_WARMUP, warmup_epochs, "warmup-epochs")
    MAY_CHANGE(NN_GIVEN_MOMENTUM_END, momentum_end, "momentum-end")
    MAY_CHANGE(NN_GIVEN_MOMENTUM_RAMP, momentum_ramp_epochs, "momentum-ramp-epochs")
    MAY_CHANGE(NN_GIVEN_INPUT_DROPOUT, spec.input_dropout, "input-dropout")
    MAY_CHANGE(NN_GIVEN_SHIFT, shift, "shift")
#undef MAY_CHANGE
    if ((given & NN_GIVEN_SCHEDULE) && cli->schedule != saved->schedule) {
        note_change(changes, cap, "lr-schedule", nn_schedule_name(saved->schedule), nn_schedule_name(cli->schedule));
        out->schedule = cli->schedule;
    }
    if ((given & NN_GIVEN_COMPRESS) && cli->compress != saved->compress) {
        note_change(changes, cap, "compress", nn_compress_name(saved->compress), nn_compress_name(cli->compress));
        out->compress = cli->compress;
    }
    if (given & NN_GIVEN_DATA) { /* the checkpoint's path is absolute: the same file named otherwise is no change */
        if (!same_file(cli->data, saved->data)) note_change(changes, cap, "data", saved->data, cli->data);
        memcpy(out->data, cli->data, sizeof out->data);
    }
    return NN_OK;
}

int nn_run_config_check(const nn_run_config *c, unsigned given, nn_error *err) {
    if (c->warmup_epochs > (float)c->epochs)
        return nn_fail(err, NN_ERR_INPUT, "--warmup-epochs %g is longer than the run (--epochs %d): the learning rate "
                       "would never reach --lr", c->warmup_epochs, c->epochs);
    if (c->momentum_ramp_epochs > (float)c->epochs)
        return nn_fail(err, NN_ERR_INPUT, "--momentum-ramp-epochs %g is longer than the run (--epochs %d): the "
                       "momentum would never reach --momentum-end", c->momentum_ramp_epochs, c->epochs);
    if ((given & NN_GIVEN_MOMENTUM_END) && c->momentum_ramp_epochs <= 0)
        return nn_fail(err, NN_ERR_INPUT, "--momentum-end needs --momentum-ramp-epochs E (how long the ramp lasts)");
    return NN_OK;
}

int nn_loss_diverged(double loss, double first, int classes, char *what, size_t cap) {
    double bound = 100.0 * log(classes > 2 ? classes : 2);
    if (loss > bound) {
        snprintf(what, cap, "the training loss %.4g is over 100 x ln(%d classes) = %.0f", loss, classes, bound);
        return 1;
    }
    if (first > 0 && loss > 100 * first) {
        snprintf(what, cap, "the training loss %.4g is over 100 times the first epoch's (%.4g)", loss, first);
        return 1;
    }
    return 0;
}

int nn_checkpoint_due(long every, long global_step, int stop, int epoch_end) {
    if (epoch_end) return 0;
    return stop || (every > 0 && global_step % every == 0);
}
