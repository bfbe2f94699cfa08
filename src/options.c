#include "nn/options.h"

#include <string.h>

#include "nn/augment.h"
#include "nn/cli.h"
#include "nn/names.h"
#include "nn/virtual_shards.h"
#include "nn/watchdog.h"

void nn_options_defaults(nn_train_options *opt) {
    memset(opt, 0, sizeof *opt);
    nn_run_config_defaults(&opt->run);
    opt->exchange = NN_EXCHANGE_SHM;
    opt->timeout = 300;
    opt->thread_tuning = 1;
}

/* The help's first half: what the run is (the settings a checkpoint records). */
static void print_run_options(FILE *out) {
    fprintf(out,
        "usage: mpirun -np P nntrain [options]\n"
        "Data-parallel training of a multilayer network on an HDF5 dataset.\n"
        "\n"
        "  --data FILE            HDF5 dataset (see README)            [data/mnist.h5]\n"
        "  --layers W0,W1,...,Wn  layer widths, input first, classes last [784,50,100,10]\n"
        "                         or convKxKxC[pP] and pool2 first: conv5x5x32p2,pool2,1024,10\n"
        "  --activation NAME      hidden activation: sigmoid|relu|tanh   [sigmoid]\n"
        "  --loss NAME            softmax (cross-entropy) | mse (sigmoid outputs) [softmax]\n"
        "  --epochs N             epochs                                 [15]\n"
        "  --batch-size N         GLOBAL batch, split over the ranks     [100]\n"
        "  --accumulate K         K micro-steps of --batch-size per SGD step (gradient\n"
        "                         accumulation: one sum per K batches)   [1]\n"
        "  --lr X                 learning rate (base of the schedule)   [0.5]\n"
        "  --lr-schedule NAME     constant|cosine (cosine decays to 0 over the run) [cosine]\n"
        "  --momentum X           SGD momentum, 0 <= X < 1               [0.9]\n"
        "  --momentum-end X       ramp the momentum linearly to X ...    [--momentum]\n"
        "  --momentum-ramp-epochs E  ... over the first E epochs          [0: no ramp]\n"
        "  --warmup-epochs E      linear learning-rate warm-up over E epochs, then the\n"
        "                         schedule over the rest                 [0]\n"
        "  --dropout P            drop each hidden unit with probability P while\n"
        "                         training (inverted dropout), 0 <= P < 1  [0]\n"
        "  --input-dropout P      the same on the input values            [0]\n"
        "  --shift S              move each training image by up to S pixels each way\n"
        "                         (random, 0 fill: augmentation), 0 <= S <= 8  [0]\n"
        "  --max-norm C           after each step, scale every hidden unit's incoming\n"
        "                         weights back to norm C when over it; 0: off [0]\n"
        "  --weight-decay X       L2 weight decay                        [0.0001]\n"
        "  --seed N               initialisation and shuffling           [1]\n"
        "  --train-limit N        use only the first N training samples  [0: all]\n"
        "  --validation N         hold the last N of them out: train on the rest, report\n"
        "                         their loss and accuracy each epoch     [0]\n");
}

void nn_options_print_help(FILE *out) {
    print_run_options(out);
    fprintf(out,
        "  --metrics FILE         write one JSON object per epoch (JSON Lines) [none]\n"
        "  --checkpoint FILE      write a checkpoint after every epoch and at the end [none]\n"
        "  --checkpoint-every N   also write one every N steps (needs --checkpoint) [0: off]\n"
        "  --resume FILE          continue from a checkpoint; --epochs stays the TOTAL [none]\n"
        "  --threads N            OpenMP threads per rank, at most (see --thread-tuning)\n"
        "                         [OMP_NUM_THREADS, else cores/ranks]\n"
        "  --thread-tuning on|off on: with N > 1, time the first steps on N, N/2, ...,\n"
        "                         1 threads; go on with the fastest (more threads only\n"
        "                         if 3%% faster; results are the same either way) [on]\n"
        "  --allreduce MODE       shm: ranks of a node sum in shared memory, nodes with\n"
        "                         MPI_Allreduce; mpi: one MPI_Allreduce; overlap: one\n"
        "                         MPI_Iallreduce per layer during backward   [shm]\n"
        "  --compress NAME        none|bf16: the sum between nodes travels as bfloat16\n"
        "                         (half the bytes; shm mode keeps the node's sum fp32) [none]\n"
        "  --deterministic        the same model for any rank count, node layout,\n"
        "                         --threads and --allreduce (see README)  [off]\n"
        "  --virtual-shards V     deterministic mode with V virtual shards (V divides\n"
        "                         the batch; up to V ranks)  [smallest divisor >= 8]\n"
        "  --timeout SECONDS      end the job (exit 1, naming the ranks waited for) when a\n"
        "                         rank makes no progress for this long, from MPI_Init to\n"
        "                         MPI_Finalize; 0: never, else at least 5 [300]\n"
        "  --help                 this text\n"
        "  --version              print the version\n"
        "\n"
        "On SIGUSR1, SIGTERM, SIGINT or SIGHUP: finish the step, write the checkpoint\n"
        "(with --checkpoint), exit 75; a second signal exits at once.\n"
        "Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input,\n"
        "75 stopped by a signal (with --checkpoint: resume with --resume).\n");
}

enum option_code {
    OPT_HELP = 'h', OPT_VERSION = 256, OPT_DATA, OPT_LAYERS, OPT_ACTIVATION, OPT_LOSS, OPT_EPOCHS, OPT_BATCH,
    OPT_LR, OPT_SCHEDULE, OPT_MOMENTUM, OPT_WEIGHT_DECAY, OPT_SEED, OPT_TRAIN_LIMIT, OPT_METRICS,
    OPT_CHECKPOINT, OPT_CHECKPOINT_EVERY, OPT_RESUME, OPT_THREADS, OPT_ALLREDUCE, OPT_TIMEOUT, OPT_ACCUMULATE, OPT_COMPRESS, OPT_DROPOUT, OPT_INPUT_DROPOUT, OPT_MAX_NORM, OPT_WARMUP, OPT_MOMENTUM_END, OPT_MOMENTUM_RAMP, OPT_VALIDATION,
    OPT_THREAD_TUNING, OPT_DETERMINISTIC, OPT_VIRTUAL_SHARDS, OPT_SHIFT
};

static const struct option options[] = {
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"data", required_argument, NULL, OPT_DATA},
    {"layers", required_argument, NULL, OPT_LAYERS},
    {"activation", required_argument, NULL, OPT_ACTIVATION},
    {"loss", required_argument, NULL, OPT_LOSS},
    {"epochs", required_argument, NULL, OPT_EPOCHS},
    {"batch-size", required_argument, NULL, OPT_BATCH},
    {"lr", required_argument, NULL, OPT_LR},
    {"lr-schedule", required_argument, NULL, OPT_SCHEDULE},
    {"momentum", required_argument, NULL, OPT_MOMENTUM},
    {"weight-decay", required_argument, NULL, OPT_WEIGHT_DECAY},
    {"seed", required_argument, NULL, OPT_SEED},
    {"train-limit", required_argument, NULL, OPT_TRAIN_LIMIT},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
    {"checkpoint-every", required_argument, NULL, OPT_CHECKPOINT_EVERY},
    {"resume", required_argument, NULL, OPT_RESUME},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"thread-tuning", required_argument, NULL, OPT_THREAD_TUNING},
    {"allreduce", required_argument, NULL, OPT_ALLREDUCE},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"accumulate", required_argument, NULL, OPT_ACCUMULATE},
    {"compress", required_argument, NULL, OPT_COMPRESS},
    {"dropout", required_argument, NULL, OPT_DROPOUT},
    {"input-dropout", required_argument, NULL, OPT_INPUT_DROPOUT},
    {"shift", required_argument, NULL, OPT_SHIFT},
    {"max-norm", required_argument, NULL, OPT_MAX_NORM},
    {"warmup-epochs", required_argument, NULL, OPT_WARMUP},
    {"validation", required_argument, NULL, OPT_VALIDATION},
    {"momentum-end", required_argument, NULL, OPT_MOMENTUM_END},
    {"momentum-ramp-epochs", required_argument, NULL, OPT_MOMENTUM_RAMP},
    {"deterministic", no_argument, NULL, OPT_DETERMINISTIC},
    {"virtual-shards", required_argument, NULL, OPT_VIRTUAL_SHARDS},
    {NULL, 0, NULL, 0}};

/* The run settings a command line can give, and the nn_given bit each sets. */
static unsigned given_bit(int code) {
    switch (code) {
    case OPT_DATA: return NN_GIVEN_DATA;
    case OPT_LAYERS: return NN_GIVEN_LAYERS;
    case OPT_ACTIVATION: return NN_GIVEN_ACTIVATION;
    case OPT_LOSS: return NN_GIVEN_LOSS;
    case OPT_EPOCHS: return NN_GIVEN_EPOCHS;
    case OPT_BATCH: return NN_GIVEN_BATCH;
    case OPT_LR: return NN_GIVEN_LR;
    case OPT_SCHEDULE: return NN_GIVEN_SCHEDULE;
    case OPT_MOMENTUM: return NN_GIVEN_MOMENTUM;
    case OPT_WEIGHT_DECAY: return NN_GIVEN_WEIGHT_DECAY;
    case OPT_SEED: return NN_GIVEN_SEED;
    case OPT_TRAIN_LIMIT: return NN_GIVEN_TRAIN_LIMIT;
    case OPT_ACCUMULATE: return NN_GIVEN_ACCUMULATE;
    case OPT_DROPOUT: return NN_GIVEN_DROPOUT;
    case OPT_INPUT_DROPOUT: return NN_GIVEN_INPUT_DROPOUT;
    case OPT_SHIFT: return NN_GIVEN_SHIFT;
    case OPT_MAX_NORM: return NN_GIVEN_MAX_NORM;
    case OPT_WARMUP: return NN_GIVEN_WARMUP;
    case OPT_VALIDATION: return NN_GIVEN_VALIDATION;
    case OPT_MOMENTUM_END: return NN_GIVEN_MOMENTUM_END;
    case OPT_MOMENTUM_RAMP: return NN_GIVEN_MOMENTUM_RAMP;
    case OPT_COMPRESS: return NN_GIVEN_COMPRESS;
    case OPT_DETERMINISTIC: case OPT_VIRTUAL_SHARDS: return NN_GIVEN_DETERMINISTIC;
    default: return 0;
    }
}

/* Options naming a choice: "--activation 'swish': expected sigmoid, relu or tanh". */
static int bad_choice(const char *name, const char *value, const char *choices, nn_error *err) {
    return nn_fail(err, NN_ERR_INPUT, "%s '%s': expected %s", name, value, choices);
}

/* The settings of the run itself. */
static int apply_run_setting(nn_run_config *run, int code, const char *name, const char *v, nn_error *err) {
    long seed;
    int status;
    switch (code) {
    case OPT_DATA: return nn_cli_path(name, v, run->data, err);
    case OPT_LAYERS: return nn_cli_widths(name, v, &run->spec, err);
    case OPT_ACTIVATION:
        return nn_parse_activation(v, &run->spec.activation) ? bad_choice(name, v, "sigmoid, relu or tanh", err) : NN_OK;
    case OPT_LOSS: return nn_parse_loss(v, &run->spec.loss) ? bad_choice(name, v, "softmax or mse", err) : NN_OK;
    case OPT_SCHEDULE: return nn_parse_schedule(v, &run->schedule) ? bad_choice(name, v, "constant or cosine", err) : NN_OK;
    case OPT_COMPRESS: return nn_compress_parse(v, &run->compress) ? bad_choice(name, v, "none or bf16", err) : NN_OK;
    case OPT_EPOCHS: return nn_cli_int(name, v, 1, 100000, &run->epochs, err);
    case OPT_BATCH: return nn_cli_int(name, v, 1, 1000000, &run->batch_size, err);
    case OPT_ACCUMULATE: return nn_cli_int(name, v, 1, 1024, &run->accumulate, err);
    case OPT_TRAIN_LIMIT: return nn_cli_long(name, v, 0, 0x7fffffffL, &run->train_limit, err); /* 0: all */
    case OPT_VALIDATION: return nn_cli_long(name, v, 0, 0x7fffffffL, &run->validation, err); /* 0: none */
    case OPT_MOMENTUM: return nn_cli_float(name, v, 0.0, 1.0, 0, &run->momentum, err);
    case OPT_DROPOUT: return nn_cli_float(name, v, 0.0, 1.0, 0, &run->spec.dropout, err);
    case OPT_INPUT_DROPOUT: return nn_cli_float(name, v, 0.0, 1.0, 0, &run->spec.input_dropout, err);
    case OPT_SHIFT: return nn_cli_int(name, v, 0, NN_SHIFT_MAX, &run->shift, err);
    case OPT_MAX_NORM: return nn_cli_float(name, v, 0.0, 1000.0, 1, &run->max_norm, err);
    case OPT_WARMUP: return nn_cli_float(name, v, 0.0, 100000.0, 1, &run->warmup_epochs, err);
    case OPT_MOMENTUM_END: return nn_cli_float(name, v, 0.0, 1.0, 0, &run->momentum_end, err);
    case OPT_MOMENTUM_RAMP: return nn_cli_float(name, v, 0.0, 100000.0, 1, &run->momentum_ramp_epochs, err);
    case OPT_WEIGHT_DECAY: return nn_cli_float(name, v, 0.0, 1.0, 1, &run->weight_decay, err);
    case OPT_DETERMINISTIC:
        if (run->virtual_shards == 0) run->virtual_shards = -1; /* the batch's default, unless counted */
        return NN_OK;
    case OPT_VIRTUAL_SHARDS: return nn_cli_int(name, v, 1, NN_VSHARDS_MAX, &run->virtual_shards, err);
    case OPT_SEED:
        if ((status = nn_cli_long(name, v, 0, 0x7fffffffL, &seed, err))) return status;
        run->seed = (uint64_t)seed;
        return NN_OK;
    case OPT_LR: {
        float lr = 0.0f; /* set only when valid: a refused value changes nothing */
        if ((status = nn_cli_float(name, v, 0.0, 100.0, 1, &lr, err))) return status;
        if (!(lr > 0.0f)) return nn_fail(err, NN_ERR_INPUT, "%s %s: must be positive", name, v);
        run->lr = lr;
        return NN_OK;
    }
    }
    return nn_fail(err, NN_ERR_RUNTIME, "option %s: not handled", name); /* a table/switch mismatch */
}

static int apply_option(void *ctx, int code, const char *v, nn_error *err) {
    nn_train_options *opt = ctx;
    char name[32];
    snprintf(name, sizeof name, "--%s", nn_cli_name(options, code));
    switch (code) {
    case OPT_HELP: opt->show_help = 1; return NN_OK;
    case OPT_VERSION: opt->show_version = 1; return NN_OK;
    case OPT_METRICS: return nn_cli_path(name, v, opt->metrics, err);
    case OPT_CHECKPOINT: return nn_cli_path(name, v, opt->checkpoint, err);
    case OPT_RESUME: return nn_cli_path(name, v, opt->resume, err);
    case OPT_CHECKPOINT_EVERY: return nn_cli_long(name, v, 1, 0x7fffffffL, &opt->checkpoint_every, err);
    case OPT_THREADS: return nn_cli_int(name, v, 1, 1024, &opt->threads, err);
    case OPT_THREAD_TUNING: {
        static const char *const off_on[] = {"off", "on"};
        int i = nn_name_index(v, off_on, NN_COUNT_OF(off_on));
        if (i < 0) return bad_choice(name, v, "on or off", err);
        opt->thread_tuning = i;
        return NN_OK;
    }
    case OPT_TIMEOUT:
        return nn_cli_timeout(name, v, &opt->timeout, err);
    case OPT_ALLREDUCE:
        return nn_exchange_mode_parse(v, &opt->exchange) ? bad_choice(name, v, "shm, mpi or overlap", err) : NN_OK;
    }
    opt->given |= given_bit(code);
    return apply_run_setting(&opt->run, code, name, v, err);
}

int nn_run_setting_parse(nn_run_config *run, const char *option, const char *label, const char *value,
                         nn_error *err) {
    for (const struct option *o = options; o->name; o++)
        if (!strcmp(o->name, option) && given_bit(o->val)) return apply_run_setting(run, o->val, label, value, err);
    return nn_fail(err, NN_ERR_INPUT, "%s: not a setting of a run", label);
}

int nn_options_parse(int argc, char **argv, nn_train_options *opt, nn_error *err) {
    nn_options_defaults(opt);
    int status = nn_cli_parse(argc, argv, options, apply_option, NULL, opt, err);
    if (!status && opt->checkpoint_every && !opt->checkpoint[0])
        status = nn_fail(err, NN_ERR_INPUT, "--checkpoint-every needs --checkpoint FILE");
    if (!status && (opt->given & NN_GIVEN_MOMENTUM_RAMP) && opt->run.momentum_ramp_epochs > 0 &&
        !(opt->given & NN_GIVEN_MOMENTUM_END))
        status = nn_fail(err, NN_ERR_INPUT, "--momentum-ramp-epochs needs --momentum-end X (where the ramp ends)");
    return status;
}
