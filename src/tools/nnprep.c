/* nnprep: convert the four MNIST-style IDX files in a directory into the HDF5 dataset
 * file that nntrain reads. Serial: the file is built in memory (nn/hdf5_image.h) and
 * needs no MPI_Init. */
#define _XOPEN_SOURCE 700 /* stat, realpath, sigaction */

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/cli.h"
#include "nn/dataset_write.h"
#include "nn/error.h"
#include "nn/idx.h"
#include "nn/outputs.h"
#include "nn/signals.h"
#include "nn/version.h"

#define DEFAULT_CLASSES 10
#define MAX_CLASSES 256 /* labels are uint8 */

typedef struct prep_options {
    char out[NN_PATH_MAX];
    const char *dir;
    int fashion;
    int num_classes;
    float wait; /* seconds to wait for another run holding --out */
    int show; /* 1: --help, 2: --version */
} prep_options;

/* One split (train or test): its two files, as read. */
typedef struct split_files {
    char image_path[NN_PATH_MAX];
    char label_path[NN_PATH_MAX];
    nn_idx images, labels;
} split_files;

static void print_usage(FILE *f) {
    fprintf(f,
            "usage: nnprep --out FILE [--fashion] [--classes N] [--wait SECONDS] DIR\n"
            "\n"
            "Convert the IDX files in DIR (train-images-idx3-ubyte, train-labels-idx1-ubyte,\n"
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; each raw or with .gz) into the\n"
            "HDF5 dataset FILE that nntrain reads.\n"
            "\n"
            "  --out FILE     output HDF5 file (required; written atomically)\n"
            "  --fashion      record the source as fashion-mnist (default: mnist)\n"
            "  --classes N    number of classes; every label must be below it (default: %d)\n"
            "  --wait SECONDS while another run writes FILE, wait for it up to SECONDS, then\n"
            "                 write FILE anew (default: 0, refuse at once)\n"
            "  --help         show this help\n"
            "  --version      show the version\n"
            "\n"
            "Exit status: 0 success, 1 runtime failure, 2 bad usage or bad input.\n",
            DEFAULT_CLASSES);
}

enum { OPT_HELP = 'h', OPT_VERSION = 256, OPT_OUT, OPT_FASHION, OPT_CLASSES, OPT_WAIT };
static const struct option options[] = {
    {"help", no_argument, NULL, OPT_HELP},     {"version", no_argument, NULL, OPT_VERSION},
    {"out", required_argument, NULL, OPT_OUT}, {"fashion", no_argument, NULL, OPT_FASHION},
    {"classes", required_argument, NULL, OPT_CLASSES}, {"wait", required_argument, NULL, OPT_WAIT},
    {NULL, 0, NULL, 0}};

static int apply_option(void *ctx, int code, const char *value, nn_error *err) {
    prep_options *o = ctx;
    switch (code) {
    case OPT_HELP: o->show = 1; return NN_OK;
    case OPT_VERSION: o->show = 2; return NN_OK;
    case OPT_FASHION: o->fashion = 1; return NN_OK;
    case OPT_OUT: return nn_cli_path("--out", value, o->out, err);
    case OPT_CLASSES: return nn_cli_int("--classes", value, 1, MAX_CLASSES, &o->num_classes, err);
    case OPT_WAIT: return nn_cli_float("--wait", value, 0.0, 86400.0, 1, &o->wait, err);
    }
    return nn_fail(err, NN_ERR_RUNTIME, "option %d: not handled", code);
}

static int take_dir(void *ctx, const char *dir, nn_error *err) {
    prep_options *o = ctx;
    if (o->dir) return nn_fail(err, NN_ERR_INPUT, "more than one directory given: %s (see --help)", dir);
    o->dir = dir;
    return NN_OK;
}

static int parse_args(int argc, char **argv, prep_options *o, nn_error *err) {
    *o = (prep_options){.num_classes = DEFAULT_CLASSES};
    int status = nn_cli_parse(argc, argv, options, apply_option, take_dir, o, err);
    if (status || o->show) return status;
    if (!o->out[0]) return nn_fail(err, NN_ERR_INPUT, "--out FILE is required (see --help)");
    if (!o->dir) return nn_fail(err, NN_ERR_INPUT, "no input directory given (see --help)");
    nn_output_follow_link(o->out, sizeof o->out); /* the file is renamed into place: through the link */
    return NN_OK;
}

static int check_dir(const char *dir, nn_error *err) {
    struct stat st;
    if (stat(dir, &st) != 0)
        return nn_fail(err, NN_ERR_INPUT, "%s: cannot access: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return nn_fail(err, NN_ERR_INPUT, "%s: not a directory", dir);
    return NN_OK;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* DIR/NAME if present, else DIR/NAME.gz. */
static int find_idx_file(const char *dir, const char *name, char *path, nn_error *err) {
    if (snprintf(path, NN_PATH_MAX, "%s/%s", dir, name) >= NN_PATH_MAX)
        return nn_fail(err, NN_ERR_INPUT, "%s: path too long", dir);
    if (is_file(path)) return NN_OK;
    if (snprintf(path, NN_PATH_MAX, "%s/%s.gz", dir, name) >= NN_PATH_MAX)
        return nn_fail(err, NN_ERR_INPUT, "%s: path too long", dir);
    if (is_file(path)) return NN_OK;
    return nn_fail(err, NN_ERR_INPUT, "%s: no %s or %s.gz there", dir, name, name);
}

static int check_labels(const split_files *s, int num_classes, nn_error *err) {
    if (s->labels.count != s->images.count)
        return nn_fail(err, NN_ERR_INPUT, "%s: %ld labels, but %s has %ld images",
                       s->label_path, s->labels.count, s->image_path, s->images.count);
    for (long i = 0; i < s->labels.count; i++)
        if (s->labels.data[i] >= num_classes)
            return nn_fail(err, NN_ERR_INPUT, "%s: label %d at index %ld is not below %d "
                           "(see --classes)", s->label_path, s->labels.data[i], i, num_classes);
    return NN_OK;
}

/* Read and check one split; `prefix` is "train" or "t10k" as in the MNIST file names. */
static int load_split(const char *dir, const char *prefix, int num_classes, split_files *s,
                      nn_error *err) {
    char image_name[64], label_name[64];
    snprintf(image_name, sizeof image_name, "%s-images-idx3-ubyte", prefix);
    snprintf(label_name, sizeof label_name, "%s-labels-idx1-ubyte", prefix);
    int status = find_idx_file(dir, image_name, s->image_path, err);
    if (status == NN_OK) status = find_idx_file(dir, label_name, s->label_path, err);
    if (status == NN_OK) status = nn_idx_read(s->image_path, 3, &s->images, err);
    if (status == NN_OK) status = nn_idx_read(s->label_path, 1, &s->labels, err);
    if (status == NN_OK && (s->images.dims[1] > INT_MAX / s->images.dims[2]))
        status = nn_fail(err, NN_ERR_INPUT, "%s: images of %ux%u are too large", s->image_path,
                         s->images.dims[1], s->images.dims[2]);
    if (status == NN_OK) status = check_labels(s, num_classes, err);
    return status;
}

static nn_split_data as_split_data(const split_files *s) {
    return (nn_split_data){.images = s->images.data,
                           .labels = s->labels.data,
                           .count = s->images.count,
                           .rows = (int)s->images.dims[1],
                           .cols = (int)s->images.dims[2]};
}

/* The one output rule for --out (not an input, by inode; a regular file; its temporary
 * creatable), then its lock, held until the file is in place: a second nnprep on the
 * same file would otherwise take this one's temporary file for a killed run's
 * leftover, remove it mid-write and rename its own half-written one into place. Then
 * only a dataset of ours is replaced. */
static int claim_out(const prep_options *opts, const split_files *train, const split_files *test,
                     nn_output_lock *lock, nn_output_place *place, nn_error *err) {
    char tmp[NN_PATH_MAX + 8];
    nn_output_temporary_name(tmp, sizeof tmp, opts->out);
    nn_run_files files = {0};
    const split_files *splits[2] = {train, test};
    for (int i = 0; i < 2; i++) {
        nn_run_files_input(&files, "the input", splits[i]->image_path);
        nn_run_files_input(&files, "the input", splits[i]->label_path);
    }
    nn_run_files_temporary(&files, nn_run_files_output(&files, "--out", opts->out), tmp);
    int status = nn_run_files_check(&files, err);
    if (status == NN_OK) status = nn_output_lock_wait(lock, "--out", opts->out, opts->wait, err);
    /* held, then checked, then still the file held: what was checked is what may be replaced */
    if (status == NN_OK) nn_output_place_take(place, opts->out, "dataset");
    if (status == NN_OK) status = nn_dataset_check_replaceable("--out", opts->out, err);
    if (status == NN_OK) status = nn_output_place_check(place, opts->out, opts->out, "the dataset is not written", err);
    return status;
}

/* The lock on --out while it is held: a stop signal (Ctrl-C, a job's end) removes it
 * and the half-written temporary file, then ends the process as the signal would. */
static nn_output_lock *held_lock;

static void on_stop(int sig) {
    nn_output_abandon();
    if (held_lock) nn_output_lock_release(held_lock); /* fstat, fstatat, unlinkat, close: async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

static int convert(const prep_options *opts, split_files *train, split_files *test,
                   nn_error *err) {
    int status = check_dir(opts->dir, err);
    if (status == NN_OK) status = load_split(opts->dir, "train", opts->num_classes, train, err);
    if (status == NN_OK) status = load_split(opts->dir, "t10k", opts->num_classes, test, err);
    if (status != NN_OK) return status;
    if (train->images.dims[1] != test->images.dims[1] ||
        train->images.dims[2] != test->images.dims[2])
        return nn_fail(err, NN_ERR_INPUT, "%s: images are %ux%u, but training images are %ux%u",
                       test->image_path, test->images.dims[1], test->images.dims[2],
                       train->images.dims[1], train->images.dims[2]);

    static nn_output_lock lock = {.fd = -1, .dir_fd = -1}; /* static: the signal handler releases it */
    nn_output_place place = NN_OUTPUT_PLACE_NONE;
    status = claim_out(opts, train, test, &lock, &place, err);
    if (status == NN_OK) {
        held_lock = &lock; /* held: before, a lock file there may be another run's */
        /* Record where the data came from: its kind and the directory's absolute path. */
        char resolved[NN_PATH_MAX]; /* realpath writes at most PATH_MAX (= NN_PATH_MAX) */
        const char *where = realpath(opts->dir, resolved) ? resolved : opts->dir;
        char source[NN_PATH_MAX + 32];
        snprintf(source, sizeof source, "%s (%s)", opts->fashion ? "fashion-mnist" : "mnist", where);
        nn_split_data train_data = as_split_data(train), test_data = as_split_data(test);
        status = nn_dataset_write_placed(&place, opts->out, &train_data, &test_data, opts->num_classes, source, err);
    }
    nn_output_place_release(&place);
    held_lock = NULL;
    nn_output_lock_release(&lock);
    return status;
}

int main(int argc, char **argv) {
    prep_options opts;
    nn_error err = {0};
    int status = parse_args(argc, argv, &opts, &err);
    if (status || opts.show) {
        if (status) fprintf(stderr, "nnprep: %s\n", err.msg);
        else if (opts.show == 1) print_usage(stdout);
        else printf("nnprep %s\n", NN_VERSION);
        return status;
    }
    split_files train = {0}, test = {0};
    nn_signals_catch_stops(on_stop);
    status = convert(&opts, &train, &test, &err);
    char shown[NN_ONE_LINE_MAX];
    if (status == NN_OK)
        printf("nnprep: wrote %s: %ld training and %ld test images of %ux%u, %d classes\n",
               nn_one_line(opts.out, shown, sizeof shown),
               train.images.count, test.images.count, train.images.dims[1], train.images.dims[2], opts.num_classes);
    else
        fprintf(stderr, "nnprep: %s\n", err.msg);
    nn_idx_free(&train.images);
    nn_idx_free(&train.labels);
    nn_idx_free(&test.images);
    nn_idx_free(&test.labels);
    return status;
}
