/* The checkpoint file's format, shared by checkpoint_save.c (rank 0 writes: all ranks
 * hold the same parameters and optimizer state) and checkpoint_load.c (every rank can
 * read). Not part of the API: see nn/checkpoint.h.
 *
 * Layout (format 1; format 2, for networks with convolutions, adds the lines marked 2):
 *   /                         attrs format_version, nntrain_version, ranks
 *   /model/denseK/weight      float32 [in, out]     K = 1, 2, ... from the input side
 *   /model/denseK/bias        float32 [out]
 *   /model/convK/weight  2    float32 [k, k, in_c, out_c]   K = 1, 2, ...: the convolutions, input first
 *   /model/convK/bias    2    float32 [out_c]
 *   /model                    attrs widths, activation, loss, n_params, checksum (CRC-32)
 *                        2    and image int [3] (c, h, w), convs int [n, 4] (pool, k, channels, pad);
 *                             widths[0] is then the flattened output of the convolutions
 *   /optimizer/velocity/{convK,denseK}/{weight,bias}   momentum buffers, same shapes
 *   /optimizer                attrs lr, lr_schedule, momentum, weight_decay, velocity_checksum
 *   /progress                 attrs epochs_completed, step_in_epoch, global_step
 *   /progress/rng_state       uint32 [ranks, 4]: each rank's shuffle generator
 *   /progress/loss_partial    float64 [ranks]: each rank's training-loss sum this epoch
 *                             (deterministic mode: one row, [1, 4] and [1], the same for
 *                             every rank count: see checkpoint_save.c's progress_rows)
 *   /options                  attrs epochs, batch_size, seed, train_limit, data; optional
 *                             (absent: the default, so older files stay valid) accumulate,
 *                             dropout, input_dropout, max_norm, warmup_epochs, momentum_end,
 *                             momentum_ramp_epochs, validation, compress, virtual_shards
 *                             (deterministic mode only; see fields[] below), shift
 *   /results                  attrs test_accuracy and train_loss of the last completed epoch
 *                             (optional; train_loss since 2026-12-07: a resumed run's check that
 *                             its --metrics file is its own, see nn/metrics.h), and since
 *                             2026-12-08 best_test_accuracy and best_epoch of the run so far
 *                             (a resumed run's summary line counts the epochs before it)
 *   /integrity                attr attributes_checksum: CRC-32 of every attribute above
 *                             (optional: older files have none, and load unchecked)
 * Integers are stored as int64, reals as float64, text as fixed-length strings. */
#ifndef NN_CHECKPOINT_FORMAT_H
#define NN_CHECKPOINT_FORMAT_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "nn/checkpoint.h"
#include "nn/error.h"

/* ---- the scalar attributes, said once ---- */

/* Every scalar attribute of the file in one flat record; the table below says
 * where each one lives. Writing and reading both walk the table. */
typedef struct record {
    long long format_version, ranks;
    char nntrain_version[32];
    char activation[16], loss[16];
    long long n_params, checksum;
    double lr, momentum, weight_decay;
    char lr_schedule[16];
    long long velocity_checksum;
    long long epochs_completed, step_in_epoch, global_step;
    long long epochs, batch_size, seed, train_limit;
    char data[NN_PATH_MAX];
    long long accumulate;
    double dropout, input_dropout, max_norm;
    double warmup_epochs, momentum_end, momentum_ramp_epochs;
    long long validation;
    char compress[16];
    double test_accuracy;
    long long virtual_shards;
    long long shift;
    double train_loss;
    double best_test_accuracy;
    long long best_epoch;
} record;

typedef enum kind { INTEGER, REAL, TEXT } kind;

enum { LATE = 2 }; /* field.optional: see below */

typedef struct field {
    const char *group, *name;
    kind kind;
    size_t offset, size;
    int optional;       /* written only when it is not `absent` (text: not empty), which */
    double absent;      /* a file without it means: newer settings, older files stay valid;
                           LATE: added after the attribute checksum, so in it only when present
                           (files written before it have checksums without it) */
    const char *option; /* a run setting: read through the command line's own checks */
} field;

#define FIELD(group, member, kind) {group, #member, kind, offsetof(record, member), sizeof(((record *)0)->member), 0, 0, NULL}
#define SETTING(group, member, kind, option) \
    {group, #member, kind, offsetof(record, member), sizeof(((record *)0)->member), 0, 0, option}
#define OPTIONAL_SETTING(group, member, kind, absent, option) \
    {group, #member, kind, offsetof(record, member), sizeof(((record *)0)->member), 1, absent, option}
#define LATE_OPTIONAL(group, member, kind, absent) \
    {group, #member, kind, offsetof(record, member), sizeof(((record *)0)->member), LATE, absent, NULL}
static const field fields[] = {
    FIELD("/", format_version, INTEGER),          FIELD("/", nntrain_version, TEXT),
    FIELD("/", ranks, INTEGER),                   SETTING("/model", activation, TEXT, "activation"),
    SETTING("/model", loss, TEXT, "loss"),        FIELD("/model", n_params, INTEGER),
    FIELD("/model", checksum, INTEGER),           SETTING("/optimizer", lr, REAL, "lr"),
    SETTING("/optimizer", lr_schedule, TEXT, "lr-schedule"),
    SETTING("/optimizer", momentum, REAL, "momentum"),
    SETTING("/optimizer", weight_decay, REAL, "weight-decay"),
    FIELD("/optimizer", velocity_checksum, INTEGER),
    FIELD("/progress", epochs_completed, INTEGER), FIELD("/progress", step_in_epoch, INTEGER),
    FIELD("/progress", global_step, INTEGER),     SETTING("/options", epochs, INTEGER, "epochs"),
    SETTING("/options", batch_size, INTEGER, "batch-size"),
    SETTING("/options", seed, INTEGER, "seed"),
    SETTING("/options", train_limit, INTEGER, "train-limit"),
    SETTING("/options", data, TEXT, "data"),
    OPTIONAL_SETTING("/options", accumulate, INTEGER, 1, "accumulate"),
    OPTIONAL_SETTING("/options", dropout, REAL, 0, "dropout"),
    OPTIONAL_SETTING("/options", input_dropout, REAL, 0, "input-dropout"),
    OPTIONAL_SETTING("/options", max_norm, REAL, 0, "max-norm"),
    OPTIONAL_SETTING("/options", warmup_epochs, REAL, 0, "warmup-epochs"),
    OPTIONAL_SETTING("/options", momentum_end, REAL, 0, "momentum-end"),
    OPTIONAL_SETTING("/options", momentum_ramp_epochs, REAL, 0, "momentum-ramp-epochs"),
    OPTIONAL_SETTING("/options", validation, INTEGER, 0, "validation"),
    OPTIONAL_SETTING("/options", compress, TEXT, 0, "compress"),
    OPTIONAL_SETTING("/results", test_accuracy, REAL, -1, NULL),
    OPTIONAL_SETTING("/options", virtual_shards, INTEGER, 0, "virtual-shards"), /* deterministic mode */
    OPTIONAL_SETTING("/options", shift, INTEGER, 0, "shift"),
    LATE_OPTIONAL("/results", train_loss, REAL, -1),
    LATE_OPTIONAL("/results", best_test_accuracy, REAL, -1),
    LATE_OPTIONAL("/results", best_epoch, INTEGER, 0),
};
#undef FIELD
#undef SETTING
#undef OPTIONAL_SETTING
#undef LATE_OPTIONAL
enum { N_FIELDS = sizeof fields / sizeof fields[0] };
static const char *const groups[] = {"/model", "/optimizer", "/optimizer/velocity", "/progress", "/options",
                                     "/results", "/integrity"};

/* Whether an optional field holds its `absent` value (text: the empty string). */
static inline int field_absent(const field *f, const char *value) {
    if (f->kind == TEXT) return value[0] == '\0';
    return (f->kind == INTEGER ? (double)*(const long long *)(const void *)value
                               : *(const double *)(const void *)value) == f->absent;
}

/* A field's value as text: the command line's form for settings (reals with all 17
 * digits, so the float read back is the one written) and the checksum's input. */
static inline void field_text(const field *f, const char *value, char *out, size_t cap) {
    if (f->kind == INTEGER) snprintf(out, cap, "%lld", *(const long long *)(const void *)value);
    else if (f->kind == REAL) snprintf(out, cap, "%.17g", *(const double *)(const void *)value);
    else snprintf(out, cap, "%s", value);
}

/* The HDF5 memory type of a field; text as a fixed string of `text_size` bytes. */
static inline hid_t field_type(const field *f, size_t text_size) {
    if (f->kind == INTEGER) return H5Tcopy(H5T_NATIVE_LLONG);
    if (f->kind == REAL) return H5Tcopy(H5T_NATIVE_DOUBLE);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, text_size);
    return type;
}

/* The shape of a layer's weights as stored: dense [in, out], conv [k, k, in_c, out_c]. */
static inline int weight_dims(const nn_layer *d, hsize_t dims[4], hsize_t *biases) {
    const nn_conv_geom *g = &d->conv;
    if (d->kind == NN_LAYER_CONV) {
        dims[0] = dims[1] = (hsize_t)g->k, dims[2] = (hsize_t)g->in_c, dims[3] = (hsize_t)g->out_c;
        *biases = (hsize_t)g->out_c;
        return 4;
    }
    dims[0] = (hsize_t)d->in, dims[1] = (hsize_t)d->out;
    *biases = (hsize_t)d->out;
    return 2;
}

/* What every checkpoint, of any format version, carries. */
static const char *const checkpoint_marks[] = {"format_version", "/progress", NULL};

/* CRC-32 of every attribute's path and value, and the widths (checkpoint.c). */
uint32_t checkpoint_record_checksum(const record *rec, const nn_model_spec *spec);

#endif
