#include "nn/options.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void nn_options_defaults(nn_train_options *opt) {
    memset(opt, 0, sizeof *opt);
    snprintf(opt->data, sizeof opt->data, "data/mnist.h5");
    nn_error ignored;
    nn_parse_widths("784,50,100,10", &opt->spec, &ignored);
    opt->spec.activation = NN_ACT_SIGMOID;
    opt->spec.loss = NN_LOSS_SOFTMAX_XENT;
    opt->epochs = 10;
    opt->batch_size = 100;
    opt->lr = 0.3f;
    opt->momentum = 0.9f;
    opt->weight_decay = 0.0f;
    opt->schedule = NN_SCHEDULE_COSINE;
    opt->seed = 1;
    opt->allreduce = NN_ALLREDUCE_SHM;
}

static const char *const allreduce_names[] = {"shm", "mpi", "overlap"};

const char *nn_allreduce_name(nn_allreduce a) { return allreduce_names[a]; }

void nn_options_print_help(FILE *out) {
    fprintf(out,
        "usage: mpirun -np P nntrain [options]\n"
        "Data-parallel training of a multilayer network on an HDF5 dataset.\n"
        "\n"
        "  --data FILE            HDF5 dataset (see README)            [data/mnist.h5]\n"
        "  --layers W0,W1,...,Wn  layer widths, input first, classes last [784,50,100,10]\n"
        "  --activation NAME      hidden activation: sigmoid|relu|tanh   [sigmoid]\n"
        "  --loss NAME            softmax (cross-entropy) | mse (sigmoid outputs) [softmax]\n"
        "  --epochs N             epochs                                 [10]\n"
        "  --batch-size N         GLOBAL batch, split over the ranks     [100]\n"
        "  --lr X                 learning rate (base of the schedule)   [0.3]\n"
        "  --lr-schedule NAME     constant|cosine (cosine decays to 0 over the run) [cosine]\n"
        "  --momentum X           SGD momentum, 0 <= X < 1               [0.9]\n"
        "  --weight-decay X       L2 weight decay                        [0]\n"
        "  --seed N               initialisation and shuffling           [1]\n"
        "  --train-limit N        use only the first N training samples  [all]\n"
        "  --metrics FILE         write one JSON object per epoch (JSON Lines) [none]\n"
        "  --checkpoint FILE      write a checkpoint after every epoch and at the end [none]\n"
        "  --checkpoint-every N   also write one every N steps (needs --checkpoint) [0: off]\n"
        "  --resume FILE          continue from a checkpoint; --epochs stays the TOTAL [none]\n"
        "  --threads N            OpenMP threads per rank [OMP_NUM_THREADS, else cores/ranks]\n"
        "  --allreduce MODE       shm: ranks of a node sum in shared memory, nodes with\n"
        "                         MPI_Allreduce; mpi: one MPI_Allreduce; overlap: one\n"
        "                         MPI_Iallreduce per layer during backward   [shm]\n"
        "  --help                 this text\n"
        "  --version              print the version\n"
        "\n"
        "On SIGTERM or SIGUSR1: finish the step, write the checkpoint, exit 75; a second\n"
        "signal exits at once.\n"
        "Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input,\n"
        "75 stopped by a signal (checkpoint written: resume with --resume).\n");
}

/* ---- strict number parsing ---- */

static int parse_long(const char *name, const char *text, long min, long max, long *out, nn_error *err) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno)
        return nn_fail(err, NN_ERR_INPUT, "%s '%s': not an integer", name, text);
    if (v < min || v > max)
        return nn_fail(err, NN_ERR_INPUT, "%s %ld: must be in %ld..%ld", name, v, min, max);
    *out = v;
    return NN_OK;
}

static int parse_float(const char *name, const char *text, double min, double max, int max_inclusive,
                       float *out, nn_error *err) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno || !isfinite(v))
        return nn_fail(err, NN_ERR_INPUT, "%s '%s': not a finite number", name, text);
    if (v < min || v > max || (!max_inclusive && v == max))
        return nn_fail(err, NN_ERR_INPUT, "%s %s: must be in [%g, %g%c", name, text, min, max,
                       max_inclusive ? ']' : ')');
    *out = (float)v;
    return NN_OK;
}

static int copy_path(const char *name, const char *text, char *dst, size_t cap, nn_error *err) {
    if (!*text) return nn_fail(err, NN_ERR_INPUT, "%s: empty path", name);
    if (strlen(text) >= cap) return nn_fail(err, NN_ERR_INPUT, "%s: path longer than %zu bytes", name, cap - 1);
    memcpy(dst, text, strlen(text) + 1);
    return NN_OK;
}

/* One option with its value; returns a status. */
static int apply_value(nn_train_options *opt, const char *name, const char *value, nn_error *err) {
    long n;
    int rc;
    if (!strcmp(name, "--data")) return copy_path(name, value, opt->data, sizeof opt->data, err);
    if (!strcmp(name, "--metrics")) return copy_path(name, value, opt->metrics, sizeof opt->metrics, err);
    if (!strcmp(name, "--checkpoint")) return copy_path(name, value, opt->checkpoint, sizeof opt->checkpoint, err);
    if (!strcmp(name, "--resume")) return copy_path(name, value, opt->resume, sizeof opt->resume, err);
    if (!strcmp(name, "--checkpoint-every")) return parse_long(name, value, 1, 0x7fffffffL, &opt->checkpoint_every, err);
    if (!strcmp(name, "--layers")) return nn_parse_widths(value, &opt->spec, err);
    if (!strcmp(name, "--activation"))
        return nn_parse_activation(value, &opt->spec.activation)
                   ? nn_fail(err, NN_ERR_INPUT, "--activation '%s': expected sigmoid, relu or tanh", value) : NN_OK;
    if (!strcmp(name, "--loss"))
        return nn_parse_loss(value, &opt->spec.loss)
                   ? nn_fail(err, NN_ERR_INPUT, "--loss '%s': expected softmax or mse", value) : NN_OK;
    if (!strcmp(name, "--lr-schedule"))
        return nn_parse_schedule(value, &opt->schedule)
                   ? nn_fail(err, NN_ERR_INPUT, "--lr-schedule '%s': expected constant or cosine", value) : NN_OK;
    if (!strcmp(name, "--allreduce")) {
        for (int i = 0; i < 3; i++)
            if (!strcmp(value, allreduce_names[i])) {
                opt->allreduce = (nn_allreduce)i;
                return NN_OK;
            }
        return nn_fail(err, NN_ERR_INPUT, "--allreduce '%s': expected shm, mpi or overlap", value);
    }
    if (!strcmp(name, "--epochs")) {
        if ((rc = parse_long(name, value, 1, 100000, &n, err))) return rc;
        opt->epochs = (int)n;
        return NN_OK;
    }
    if (!strcmp(name, "--batch-size")) {
        if ((rc = parse_long(name, value, 1, 1000000, &n, err))) return rc;
        opt->batch_size = (int)n;
        return NN_OK;
    }
    if (!strcmp(name, "--seed")) {
        if ((rc = parse_long(name, value, 0, 0x7fffffffL, &n, err))) return rc;
        opt->seed = (uint64_t)n;
        return NN_OK;
    }
    if (!strcmp(name, "--train-limit")) return parse_long(name, value, 1, 0x7fffffffL, &opt->train_limit, err);
    if (!strcmp(name, "--threads")) {
        if ((rc = parse_long(name, value, 1, 1024, &n, err))) return rc;
        opt->threads = (int)n;
        return NN_OK;
    }
    if (!strcmp(name, "--lr")) {
        if ((rc = parse_float(name, value, 0.0, 100.0, 1, &opt->lr, err))) return rc;
        return opt->lr > 0.0f ? NN_OK : nn_fail(err, NN_ERR_INPUT, "--lr %s: must be positive", value);
    }
    if (!strcmp(name, "--momentum")) return parse_float(name, value, 0.0, 1.0, 0, &opt->momentum, err);
    if (!strcmp(name, "--weight-decay")) return parse_float(name, value, 0.0, 1.0, 1, &opt->weight_decay, err);
    return nn_fail(err, NN_ERR_INPUT, "unknown option '%s' (see --help)", name);
}

static const struct { const char *name; unsigned bit; } given_bits[] = {
    {"--data", NN_GIVEN_DATA}, {"--layers", NN_GIVEN_LAYERS}, {"--activation", NN_GIVEN_ACTIVATION},
    {"--loss", NN_GIVEN_LOSS}, {"--epochs", NN_GIVEN_EPOCHS}, {"--batch-size", NN_GIVEN_BATCH},
    {"--lr", NN_GIVEN_LR}, {"--lr-schedule", NN_GIVEN_SCHEDULE}, {"--momentum", NN_GIVEN_MOMENTUM},
    {"--weight-decay", NN_GIVEN_WEIGHT_DECAY}, {"--seed", NN_GIVEN_SEED}, {"--train-limit", NN_GIVEN_TRAIN_LIMIT}};

static int apply_option(nn_train_options *opt, const char *name, const char *value, nn_error *err) {
    int rc = apply_value(opt, name, value, err);
    for (size_t i = 0; !rc && i < sizeof given_bits / sizeof given_bits[0]; i++)
        if (!strcmp(name, given_bits[i].name)) opt->given |= given_bits[i].bit;
    return rc;
}

int nn_options_parse(int argc, char **argv, nn_train_options *opt, nn_error *err) {
    nn_options_defaults(opt);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) { opt->show_help = 1; continue; }
        if (!strcmp(arg, "--version")) { opt->show_version = 1; continue; }
        if (strncmp(arg, "--", 2) != 0)
            return nn_fail(err, NN_ERR_INPUT, "unexpected argument '%s' (see --help)", arg);
        /* --name=value or --name value */
        char name[64];
        const char *value;
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (len >= sizeof name) return nn_fail(err, NN_ERR_INPUT, "unknown option '%.40s...' (see --help)", arg);
        memcpy(name, arg, len);
        name[len] = '\0';
        if (eq) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc) {
                /* Say "unknown" rather than "needs a value" for names we do not know. */
                int rc = apply_option(opt, name, "", err);
                if (rc && strstr(err->msg, "unknown option")) return rc;
                return nn_fail(err, NN_ERR_INPUT, "%s needs a value (see --help)", name);
            }
            value = argv[++i];
        }
        int rc = apply_option(opt, name, value, err);
        if (rc) return rc;
    }
    if (opt->checkpoint_every && !opt->checkpoint[0])
        return nn_fail(err, NN_ERR_INPUT, "--checkpoint-every needs --checkpoint FILE");
    return NN_OK;
}
