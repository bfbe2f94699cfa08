/* nneval: score a checkpoint on a dataset split, under MPI like nntrain (each rank
 * scores its shard). Prints accuracy, per-class accuracy and the confusion matrix;
 * --metrics FILE writes the same as one JSON object. */
#define _POSIX_C_SOURCE 200809L /* fsync, fdopen */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <mpi.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/checkpoint.h"
#include "nn/cli.h"
#include "nn/comm.h"
#include "nn/conv_spec.h"
#include "nn/dataset.h"
#include "nn/env.h"
#include "nn/evaluate.h"
#include "nn/model.h"
#include "nn/output_place.h"
#include "nn/outputs.h"
#include "nn/signals.h"
#include "nn/version.h"
#include "nn/watchdog.h"

typedef struct eval_options {
    char data[NN_PATH_MAX];       /* empty: the dataset the checkpoint was trained on */
    char checkpoint[NN_PATH_MAX];
    char metrics[NN_PATH_MAX];    /* empty: none */
    const char *split;
    double timeout;               /* the watchdog's seconds without progress; 0: none */
    int show;                     /* 1: --help, 2: --version */
} eval_options;

static void usage(FILE *out) {
    fprintf(out,
        "usage: mpirun -np P nneval --checkpoint FILE [options]\n"
        "Score a checkpoint: test accuracy, per-class accuracy, confusion matrix.\n"
        "\n"
        "  --checkpoint FILE   checkpoint written by nntrain              [required]\n"
        "  --data FILE         HDF5 dataset            [the one the checkpoint was trained on]\n"
        "  --split NAME        test|train                                  [test]\n"
        "  --metrics FILE      also write the results as one JSON object   [none]\n"
        "  --timeout SECONDS   end the job (exit 1) when a rank makes no progress for\n"
        "                      this long (a stopped rank, a FIFO given as a file);\n"
        "                      0: never, else at least 5                   [300]\n"
        "  --help, --version\n"
        "\n"
        "Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input, 75 stopped\n"
        "by a signal (SIGUSR1, SIGTERM, SIGINT, SIGHUP) before writing anything.\n");
}

enum { OPT_HELP = 'h', OPT_VERSION = 256, OPT_CHECKPOINT, OPT_DATA, OPT_SPLIT, OPT_METRICS, OPT_TIMEOUT };
static const struct option options[] = {
    {"help", no_argument, NULL, OPT_HELP},           {"version", no_argument, NULL, OPT_VERSION},
    {"checkpoint", required_argument, NULL, OPT_CHECKPOINT}, {"data", required_argument, NULL, OPT_DATA},
    {"split", required_argument, NULL, OPT_SPLIT},   {"metrics", required_argument, NULL, OPT_METRICS},
    {"timeout", required_argument, NULL, OPT_TIMEOUT}, {NULL, 0, NULL, 0}};

static int apply_option(void *ctx, int code, const char *value, nn_error *err) {
    eval_options *o = ctx;
    switch (code) {
    case OPT_HELP: o->show = 1; return NN_OK;
    case OPT_VERSION: o->show = 2; return NN_OK;
    case OPT_CHECKPOINT: return nn_cli_path("--checkpoint", value, o->checkpoint, err);
    case OPT_DATA: return nn_cli_path("--data", value, o->data, err);
    case OPT_METRICS: return nn_cli_path("--metrics", value, o->metrics, err);
    case OPT_TIMEOUT: return nn_cli_timeout("--timeout", value, &o->timeout, err);
    case OPT_SPLIT:
        if (strcmp(value, "test") && strcmp(value, "train"))
            return nn_fail(err, NN_ERR_INPUT, "--split '%s': expected test or train", value);
        o->split = !strcmp(value, "test") ? "test" : "train";
        return NN_OK;
    }
    return nn_fail(err, NN_ERR_RUNTIME, "option %d: not handled", code);
}

enum { DEFAULT_TIMEOUT = 300 }; /* as nntrain's */

static int parse(int argc, char **argv, eval_options *o, nn_error *err) {
    memset(o, 0, sizeof *o);
    o->split = "test";
    o->timeout = DEFAULT_TIMEOUT;
    int status = nn_cli_parse(argc, argv, options, apply_option, NULL, o, err);
    if (!status && !o->show && !o->checkpoint[0])
        status = nn_fail(err, NN_ERR_INPUT, "--checkpoint FILE is required (see --help)");
    return status;
}

static void report(FILE *out, const nn_scores *s, const long *confusion, int classes, const char *what) {
    fprintf(out, "%s: accuracy %.2f%% (%ld samples), loss %.4f\n", what, 100.0 * s->accuracy, s->total, s->loss);
    fprintf(out, "per-class accuracy:\n");
    for (int c = 0; c < classes; c++) {
        long row = 0;
        for (int p = 0; p < classes; p++) row += confusion[c * classes + p];
        fprintf(out, "  class %3d: %6.2f%% of %ld\n", c, row ? 100.0 * confusion[c * classes + c] / row : 0.0, row);
    }
    fprintf(out, "confusion matrix (rows: true class, columns: predicted):\n      ");
    for (int p = 0; p < classes; p++) fprintf(out, " %6d", p);
    fputc('\n', out);
    for (int c = 0; c < classes; c++) {
        fprintf(out, "  %3d:", c);
        for (int p = 0; p < classes; p++) fprintf(out, " %6ld", confusion[c * classes + p]);
        fputc('\n', out);
    }
}

/* How many bytes of well-formed UTF-8 begin at `c` (1 to 4), or 0 where they are not
 * (a stray continuation byte, a sequence cut short, overlong, a surrogate, > U+10FFFF). */
static int utf8_length(const unsigned char *c) {
    int n = *c < 0x80 ? 1 : *c >= 0xc2 && *c <= 0xdf ? 2 : *c >= 0xe0 && *c <= 0xef ? 3
          : *c >= 0xf0 && *c <= 0xf4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((c[i] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((*c == 0xe0 && c[1] < 0xa0) || (*c == 0xed && c[1] >= 0xa0))) return 0;
    if (n == 4 && ((*c == 0xf0 && c[1] < 0x90) || (*c == 0xf4 && c[1] >= 0x90))) return 0;
    return n;
}

/* A JSON string: quotes, backslashes and control characters escaped. A path is bytes,
 * JSON is UTF-8: a byte that is not part of UTF-8 is written as Python's
 * surrogateescape writes it (\udc80 to \udcff), so json.load reads the file and
 * os.fsencode gives the path back exactly. */
static void put_json_string(FILE *f, const char *text) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)text; *c;) {
        int n = utf8_length(c);
        if (n == 0) fprintf(f, "\\u%04x", 0xdc00 + *c);
        else if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fwrite(c, 1, (size_t)n, f);
        c += n ? n : 1;
    }
    fputc('"', f);
}

/* JSON has no NaN or infinity: such a number is written as null. */
static void put_json_number(FILE *f, double x) {
    if (isfinite(x)) fprintf(f, "%.17g", x);
    else fputs("null", f);
}

static int write_json(FILE *f, const char *path, const nn_scores *s, const long *confusion, int classes,
                      const char *ckpt, const char *data, const char *split, nn_error *err) {
    fprintf(f, "{\"checkpoint\": ");
    put_json_string(f, ckpt);
    fprintf(f, ", \"data\": ");
    put_json_string(f, data);
    fprintf(f, ", \"split\": \"%s\", \"samples\": %ld, \"loss\": ", split, s->total);
    put_json_number(f, s->loss);
    fprintf(f, ", \"accuracy\": %.17g, \"per_class_accuracy\": [", s->accuracy);
    for (int c = 0; c < classes; c++) {
        long row = 0;
        for (int p = 0; p < classes; p++) row += confusion[c * classes + p];
        fprintf(f, "%s%.17g", c ? ", " : "", row ? (double)confusion[c * classes + c] / row : 0.0);
    }
    fprintf(f, "], \"confusion\": [");
    for (int c = 0; c < classes; c++) {
        fprintf(f, "%s[", c ? ", " : "");
        for (int p = 0; p < classes; p++) fprintf(f, "%s%ld", p ? ", " : "", confusion[c * classes + p]);
        fputc(']', f);
    }
    fprintf(f, "]}\n");
    return ferror(f) | fflush(f) ? nn_fail(err, NN_ERR_RUNTIME, "%s: write failed", path) : NN_OK;
}

/* The dataset scored: --data, else the one the checkpoint was trained on. */
static const char *dataset_of(const eval_options *o, const nn_checkpoint *ck) {
    return o->data[0] ? o->data : ck->config.data;
}

/* What every nneval result begins with: how its file (or a killed write's
 * temporary file) is told from a user's. */
static const char ours[] = "{\"checkpoint\": ";

/* Whether the file at `path` may be replaced: absent, empty, or exactly one result
 * as write_json writes it (one line, beginning and ending as it does, with its
 * confusion matrix). The file is only ever renamed into place whole, so anything
 * else there -- several results gathered by the user, another tool's JSON, a file
 * we may write but not read (its content unknown) -- is the user's; `*unread` gets
 * the errno of a file that could not be read, else 0. */
static bool replaceable(const char *path, int *unread) {
    FILE *f = fopen(path, "r");
    *unread = !f && errno != ENOENT ? errno : 0;
    if (!f) return errno == ENOENT;
    enum { MOST = 16 << 20 }; /* far beyond a result of 256 classes */
    char *text = malloc(MOST + 1);
    size_t n = text ? fread(text, 1, MOST + 1, f) : 0;
    fclose(f);
    bool ok = text && (n == 0 || (n <= MOST && !memchr(text, '\0', n)));
    if (ok && n > 0) {
        text[n] = '\0';
        ok = strncmp(text, ours, sizeof ours - 1) == 0 && strchr(text, '\n') == text + n - 1 && n >= 3 &&
             !strcmp(text + n - 3, "]}\n") && strstr(text, ", \"confusion\": [");
    }
    free(text);
    return ok;
}

/* The metrics file, checked by the one output rule (never the checkpoint or the
 * dataset read) before any work, so a bad path fails at once, and locked for the run
 * (a second nneval on it is refused; a killed one's "<metrics>.tmp" is removed). It
 * is replaced only if it holds an earlier nneval result (or nothing), and only once
 * there is a result (write_metrics): a run that fails or is stopped leaves it as it was. */
static nn_output_place metrics_place = NN_OUTPUT_PLACE_NONE; /* what claim_metrics checked, held */

static int claim_metrics(const eval_options *o, const char *data, nn_output_lock *lock, nn_error *err) {
    char tmp[NN_PATH_MAX + 8];
    nn_output_temporary_name(tmp, sizeof tmp, o->metrics);
    nn_run_files files = {0};
    nn_run_files_input(&files, "--checkpoint", o->checkpoint);
    nn_run_files_input(&files, "--data", data);
    nn_run_files_temporary(&files, nn_run_files_output(&files, "--metrics", o->metrics), tmp);
    int status = nn_run_files_check(&files, err);
    if (!status) status = nn_output_lock_acquire(lock, "--metrics", o->metrics, err);
    if (status) return status;
    char label[NN_PATH_MAX + 16];
    snprintf(label, sizeof label, "--metrics %s", o->metrics);
    /* held, then checked, then still the file held: what was checked is what may be replaced */
    nn_output_place_take(&metrics_place, o->metrics, "result");
    int unread;
    if (!replaceable(o->metrics, &unread))
        return unread ? nn_fail(err, NN_ERR_INPUT, "--metrics %s: cannot read it to tell whether it holds an nneval "
                                "result (%s); not overwriting it", o->metrics, strerror(unread))
                      : nn_fail(err, NN_ERR_INPUT, "--metrics %s: holds something other than one nneval result; "
                                "not overwriting it", o->metrics);
    if ((status = nn_output_place_check(&metrics_place, o->metrics, label, "nothing is evaluated", err))) return status;
    const char *name;
    int dir = nn_output_place_at(&metrics_place, tmp, &name); /* in the directory checked */
    return nn_output_remove_leftover_at("--metrics", o->metrics, dir, name, tmp, ours, err);
}

/* The result into "<metrics>.tmp" (the lock held), synced, then renamed over the
 * metrics file: it holds the old result or the new one, whole, whenever the run ends. */
static int write_metrics(const eval_options *o, const nn_scores *s, const long *confusion, int classes,
                         const char *data, nn_error *err) {
    char tmp[NN_PATH_MAX + 8], label[NN_PATH_MAX + 16];
    nn_output_temporary_name(tmp, sizeof tmp, o->metrics);
    snprintf(label, sizeof label, "--metrics %s", o->metrics);
    int status = nn_output_place_check(&metrics_place, o->metrics, label, "the result is not written", err);
    if (status) return status;
    /* exclusive: a killed run's was removed under the lock, so a file there now is
     * someone else's; made in the directory checked, wherever the path leads now */
    const char *name;
    int dir = nn_output_place_at(&metrics_place, tmp, &name);
    int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666); /* the mode fopen would give */
    if (fd < 0) /* the place changed since the check above (the directory removed: ENOENT): that is why */
        return nn_output_place_reason(&metrics_place, o->metrics, label, "the result is not written",
                                      nn_fail(err, NN_ERR_RUNTIME, "--metrics %s: cannot create %s: %s", o->metrics,
                                              tmp, strerror(errno)),
                                      err);
    nn_output_keep_mode(fd, o->metrics); /* or the old file's */
    FILE *f = fdopen(fd, "w");
    status = f ? write_json(f, o->metrics, s, confusion, classes, o->checkpoint, data, o->split, err)
                   : nn_fail(err, NN_ERR_RUNTIME, "%s: cannot write: %s", tmp, strerror(errno));
    if (!status && fsync(fd) != 0) status = nn_fail(err, NN_ERR_RUNTIME, "%s: cannot sync: %s", tmp, strerror(errno));
    int closed = f ? fclose(f) : close(fd);
    if (closed != 0 && !status) status = nn_fail(err, NN_ERR_RUNTIME, "%s: write failed", o->metrics);
    if (!status) status = nn_output_place_rename(&metrics_place, tmp, o->metrics, label, "the result is not written", err);
    if (status) nn_output_place_remove(&metrics_place, tmp);
    return status;
}

/* The checkpoint, the shard and the model, checked against each other. */
static int prepare(const eval_options *o, MPI_Comm comm, nn_checkpoint *ck, nn_shard *shard, nn_model *model,
                   nn_evaluator *ev, nn_output_lock *lock, nn_error *err) {
    int rank, status;
    MPI_Comm_rank(comm, &rank);
    int readers;
    nn_comm_node_layout(comm, &readers, NULL, NULL);
    status = nn_checkpoint_load(o->checkpoint, readers, ck, err);
    const char *data = dataset_of(o, ck);
    if (!status && rank == 0 && o->metrics[0]) status = claim_metrics(o, data, lock, err);
    if ((status = nn_comm_agree(comm, status, err))) return status;
    if ((status = nn_checkpoint_agree(o->checkpoint, ck, comm, err))) return status;
    if ((status = nn_shard_read(data, o->split, 0, comm, shard, err))) return status;
    char whose[NN_PATH_MAX + 32];
    snprintf(whose, sizeof whose, "the network of %s", o->checkpoint);
    status = nn_spec_fit_image(&ck->config.spec, shard->image, shard->dim, data, whose, err);
    if (!status) status = nn_spec_check_data(&ck->config.spec, shard->dim, shard->num_classes, data, whose, err);
    if (!status) status = nn_model_create(model, &ck->config.spec, NN_EVAL_CHUNK, err);
    if (!status) status = nn_evaluator_create(ev, model, err);
    if (!status) memcpy(model->params, ck->params, model->n_params * sizeof(float));
    return nn_comm_agree(comm, status, err);
}

/* A stop signal on any rank, before anything is printed or written: exit 75, the
 * --metrics file as it was (NNTRAIN_STOP_AT_STEP=0 stands in for the signal). */
static int stop_agreed(MPI_Comm comm, nn_error *err) {
    int stop = nn_stop_requested(0), any = 0;
    MPI_Allreduce(&stop, &any, 1, MPI_INT, MPI_MAX, comm);
    return any ? nn_fail(err, NN_STOPPED, "stopped by a signal before writing its results; nothing written") : NN_OK;
}

static int run(const eval_options *o, MPI_Comm comm, nn_error *err) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    nn_checkpoint ck = {0};
    nn_shard shard = {0};
    nn_model model = {0};
    nn_evaluator ev = {0};
    nn_scores scores;
    nn_output_lock lock = {.fd = -1, .dir_fd = -1};
    int status = prepare(o, comm, &ck, &shard, &model, &ev, &lock, err);
    if (!status) {
        nn_watchdog_beat(0, NN_PHASE_EPOCH);
        nn_evaluate(&ev, &model, &shard, comm, &scores);
        status = stop_agreed(comm, err);
    }
    if (!status) {
        const char *data = dataset_of(o, &ck);
        if (rank == 0) {
            char what[2 * NN_ONE_LINE_MAX + 64], ck_shown[NN_ONE_LINE_MAX], data_shown[NN_ONE_LINE_MAX];
            snprintf(what, sizeof what, "%s on %s /%s", nn_one_line(o->checkpoint, ck_shown, sizeof ck_shown),
                     nn_one_line(data, data_shown, sizeof data_shown), o->split);
            report(stdout, &scores, ev.confusion, ev.classes, what);
            if (o->metrics[0]) status = write_metrics(o, &scores, ev.confusion, ev.classes, data, err);
        }
        status = nn_comm_agree(comm, status, err);
    }
    nn_output_lock_release(&lock);
    nn_evaluator_free(&ev);
    nn_model_free(&model);
    nn_shard_free(&shard);
    nn_checkpoint_free(&ck);
    return status;
}

int main(int argc, char **argv) {
    /* Before MPI_Init, which can wait forever for a lost node: a stop signal is a stop
     * request from now on, not a death, and the watchdog watches this process alone
     * until the node's board exists (with the default timeout if the options are bad) */
    nn_signals_install();
    eval_options o;
    nn_error err = {0};
    int status = parse(argc, argv, &o, &err); /* needs no MPI */
    nn_watchdog_begin("nneval", status ? DEFAULT_TIMEOUT : o.timeout);
    nn_dataset_before_mpi_init(); /* no lock file beside the dataset (nn/dataset.h) */
    int provided; /* OpenMP threads compute, only the main thread calls MPI (the watchdog's thread never does) */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    nn_signals_install(); /* again: MPI_Init may install handlers of its own */
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    /* every rank parsed its own argv: they agree only if they were given the same */
    int same = nn_comm_agree_argv(MPI_COMM_WORLD, argc, argv, &err);
    if (same) status = same;
    if (!status && rank == 0) nn_output_follow_link(o.metrics, sizeof o.metrics); /* rank 0 writes it */
    if (!status && o.show) {
        if (rank == 0) o.show == 1 ? usage(stdout) : (void)printf("nneval %s\n", NN_VERSION);
    } else if (!status) { /* every rank checks its own environment: NN_GEMM_PACK, here (the knobs
                           * that pick nntrain's collective paths are not nneval's) */
        status = nn_comm_agree(MPI_COMM_WORLD, nn_env_check(&err), &err);
        if (!status) status = nn_watchdog_start(MPI_COMM_WORLD, o.timeout, &err); /* the node's ranks together */
        if (!status) status = run(&o, MPI_COMM_WORLD, &err);
        nn_watchdog_stop();
    }
    if (status && rank == 0) fprintf(stderr, "nneval: %s\n", err.msg);
    status = nn_cli_stdout_status("nneval", status); /* before a wait that the watchdog may end with _exit */
    nn_watchdog_beat(-1, NN_PHASE_FINISH); /* a lost node can hold MPI_Finalize too */
    MPI_Finalize();
    nn_watchdog_end();
    return status;
}
