/* nneval: score a checkpoint on a dataset split, under MPI like nntrain (each rank
 * scores its shard). Prints accuracy, per-class accuracy and the confusion matrix;
 * --metrics FILE writes the same as one JSON object. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/checkpoint.h"
#include "nn/comm.h"
#include "nn/dataset.h"
#include "nn/evaluate.h"
#include "nn/model.h"
#include "nn/version.h"

typedef struct eval_options {
    const char *data;       /* NULL: the path stored in the checkpoint */
    const char *checkpoint;
    const char *split;
    const char *metrics;    /* NULL: none */
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
        "  --help, --version\n"
        "\n"
        "Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input.\n");
}

static int parse(int argc, char **argv, eval_options *o, int *show, nn_error *err) {
    *o = (eval_options){.split = "test"};
    *show = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { *show = 1; continue; }
        if (!strcmp(a, "--version")) { *show = 2; continue; }
        const char **slot = !strcmp(a, "--checkpoint") ? &o->checkpoint : !strcmp(a, "--data") ? &o->data
                          : !strcmp(a, "--split") ? &o->split : !strcmp(a, "--metrics") ? &o->metrics : NULL;
        if (!slot) return nn_fail(err, NN_ERR_INPUT, "unknown option '%s' (see --help)", a);
        if (i + 1 >= argc || !argv[i + 1][0]) return nn_fail(err, NN_ERR_INPUT, "%s needs a value", a);
        *slot = argv[++i];
    }
    if (*show) return NN_OK;
    if (!o->checkpoint) return nn_fail(err, NN_ERR_INPUT, "--checkpoint FILE is required (see --help)");
    if (strcmp(o->split, "test") && strcmp(o->split, "train"))
        return nn_fail(err, NN_ERR_INPUT, "--split '%s': expected test or train", o->split);
    return NN_OK;
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

/* A JSON string: quotes, backslashes and control characters escaped. */
static void put_json_string(FILE *f, const char *text) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
    }
    fputc('"', f);
}

static int write_json(const char *path, const nn_scores *s, const long *confusion, int classes, const char *ckpt,
                      const char *data, const char *split, nn_error *err) {
    FILE *f = fopen(path, "w");
    if (!f) return nn_fail(err, NN_ERR_INPUT, "%s: cannot write metrics file", path);
    fprintf(f, "{\"checkpoint\": ");
    put_json_string(f, ckpt);
    fprintf(f, ", \"data\": ");
    put_json_string(f, data);
    fprintf(f, ", \"split\": \"%s\", \"samples\": %ld, \"loss\": %.17g, \"accuracy\": %.17g, \"per_class_accuracy\": [",
            split, s->total, s->loss, s->accuracy);
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
    return fclose(f) ? nn_fail(err, NN_ERR_RUNTIME, "%s: write failed", path) : NN_OK;
}

static int run(const eval_options *o, MPI_Comm comm, nn_error *err) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    nn_checkpoint ck = {0};
    nn_shard shard = {0};
    nn_model model = {0};
    uint32_t *order = NULL;
    uint8_t *labels = NULL, *predicted = NULL;
    long *confusion = NULL;
    int status = nn_comm_agree(comm, nn_checkpoint_load(o->checkpoint, &ck, err), err);
    if (status) goto done;
    const char *data = o->data ? o->data : ck.saved.data;
    if ((status = nn_shard_read(data, o->split, 0, comm, &shard, err))) goto done;
    const nn_model_spec *spec = &ck.saved.spec;
    int classes = spec->widths[spec->n_widths - 1];
    char whose[1024 + 32];
    snprintf(whose, sizeof whose, "the network of %s", o->checkpoint);
    status = nn_spec_check_data(spec, shard.dim, shard.num_classes, data, whose, err);
    if (!status) status = nn_model_create(&model, spec, 256, err);
    if (!status) {
        order = malloc((size_t)shard.count * sizeof *order);
        labels = malloc(256);
        predicted = malloc(256);
        confusion = malloc((size_t)classes * classes * sizeof *confusion);
        if (!order || !labels || !predicted || !confusion) status = nn_fail(err, NN_ERR_RUNTIME, "out of memory");
    }
    if ((status = nn_comm_agree(comm, status, err))) goto done;
    memcpy(model.params, ck.params, model.n_params * sizeof(float));
    nn_scores scores;
    nn_evaluate(&model, &shard, order, labels, predicted, comm, &scores, confusion);
    if (rank == 0) {
        char what[2 * 1024 + 64];
        snprintf(what, sizeof what, "%s on %s /%s", o->checkpoint, data, o->split);
        report(stdout, &scores, confusion, classes, what);
        if (o->metrics) status = write_json(o->metrics, &scores, confusion, classes, o->checkpoint, data, o->split, err);
    }
    status = nn_comm_agree(comm, status, err);
done:
    free(order);
    free(labels);
    free(predicted);
    free(confusion);
    nn_model_free(&model);
    nn_shard_free(&shard);
    nn_checkpoint_free(&ck);
    return status;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    eval_options o;
    int show;
    nn_error err = {0};
    int status = parse(argc, argv, &o, &show, &err);
    if (!status && show) {
        if (rank == 0) show == 1 ? usage(stdout) : (void)printf("nneval %s\n", NN_VERSION);
    } else if (!status) {
        status = run(&o, MPI_COMM_WORLD, &err);
    }
    if (status && rank == 0) fprintf(stderr, "nneval: %s\n", err.msg);
    MPI_Finalize();
    return status;
}
