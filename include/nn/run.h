/* What a training run is, apart from how it is launched: the settings a checkpoint
 * records, how a resumed run merges them with a new command line, and when to save. */
#ifndef NN_RUN_H
#define NN_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "nn/compress.h"
#include "nn/error.h"
#include "nn/model.h"
#include "nn/optim.h"

typedef struct nn_run_config {
    /* fixed for the life of a run: a resume may not change them */
    nn_model_spec spec;
    int batch_size;      /* global, split over the ranks: one micro-step */
    int accumulate;      /* micro-steps per SGD step (gradient accumulation): a step's batch is batch_size x this */
    uint64_t seed;       /* initialisation and shuffling */
    long train_limit;    /* 0: all training samples */
    long validation;     /* > 0: the last this many of them are held out for validation */
    int virtual_shards;  /* > 0: deterministic mode with this many virtual shards; 0: off;
                            -1 (command line only): the default for the batch */
    /* may change when resuming */
    char data[NN_PATH_MAX];
    int epochs;          /* the TOTAL, counting epochs before a resume */
    float lr, momentum, weight_decay;
    float max_norm;      /* > 0: each hidden unit's incoming weights kept within this norm */
    int shift;           /* > 0: each training image moved by up to this many pixels (augmentation) */
    float warmup_epochs; /* linear learning-rate warm-up, in epochs (may be fractional) */
    float momentum_end;  /* momentum ramps from `momentum` to this ... */
    float momentum_ramp_epochs; /* ... over these epochs (0: no ramp) */
    nn_schedule schedule;
    nn_compress compress; /* how the sum between nodes travels: changes the results */
} nn_run_config;

/* The documented defaults (README): 784-50-100-10 sigmoid, softmax, 15 epochs, ... */
void nn_run_config_defaults(nn_run_config *config);

/* Which settings a command line gave explicitly: a resumed run takes the others
 * from its checkpoint. */
enum nn_given {
    NN_GIVEN_DATA = 1 << 0,
    NN_GIVEN_LAYERS = 1 << 1,
    NN_GIVEN_ACTIVATION = 1 << 2,
    NN_GIVEN_LOSS = 1 << 3,
    NN_GIVEN_EPOCHS = 1 << 4,
    NN_GIVEN_BATCH = 1 << 5,
    NN_GIVEN_LR = 1 << 6,
    NN_GIVEN_SCHEDULE = 1 << 7,
    NN_GIVEN_MOMENTUM = 1 << 8,
    NN_GIVEN_WEIGHT_DECAY = 1 << 9,
    NN_GIVEN_SEED = 1 << 10,
    NN_GIVEN_TRAIN_LIMIT = 1 << 11,
    NN_GIVEN_ACCUMULATE = 1 << 12,
    NN_GIVEN_DROPOUT = 1 << 13,
    NN_GIVEN_INPUT_DROPOUT = 1 << 14,
    NN_GIVEN_MAX_NORM = 1 << 15,
    NN_GIVEN_WARMUP = 1 << 16,
    NN_GIVEN_MOMENTUM_END = 1 << 17,
    NN_GIVEN_MOMENTUM_RAMP = 1 << 18,
    NN_GIVEN_VALIDATION = 1 << 19,
    NN_GIVEN_COMPRESS = 1 << 20,
    NN_GIVEN_DETERMINISTIC = 1 << 21,
    NN_GIVEN_SHIFT = 1 << 22
};

/* The configuration of a run resumed from `saved` (read from checkpoint `path`):
 * the saved settings, except those in `given`. A given setting that fixes the run
 * with another value is NN_ERR_INPUT; each change of the others is described in
 * `changes` (" lr 0.3->0.1 ..."; empty when none). */
int nn_run_config_resume(const nn_run_config *cli, unsigned given, const nn_run_config *saved, const char *path,
                         nn_run_config *out, char *changes, size_t cap, nn_error *err);

/* The settings that only make sense together, checked on the run as it will be
 * (after a resume's merge): a warm-up or momentum ramp longer than the run never
 * reaches its end, and --momentum-end (`given`) without a ramp would do nothing.
 * NN_ERR_INPUT with a message. */
int nn_run_config_check(const nn_run_config *c, unsigned given, nn_error *err);

/* The divergence rule on an epoch's mean training loss: non-zero, the reason in `what`,
 * when it is over 100 times the run's first epoch's (`first` > 0), or over 100 x
 * ln(classes) in any epoch, the first included (a uniform guess scores ln(classes):
 * no network that learns is that far off). */
int nn_loss_diverged(double loss, double first, int classes, char *what, size_t cap);

/* Checkpoint policy: whether to save after a step. Epoch ends always save (after
 * evaluation, so they are not "due" here); a stop request saves at once; `every`
 * > 0 also saves every `every` global steps. */
int nn_checkpoint_due(long every, long global_step, int stop, int epoch_end);

#endif
