/* Writing a dataset file in the layout of nn/dataset.h (used by nnprep and tests). */
#ifndef NN_DATASET_WRITE_H
#define NN_DATASET_WRITE_H

#include <stdint.h>

#include "nn/error.h"
#include "nn/output_place.h"

typedef struct nn_split_data {
    const uint8_t *images; /* [count * rows * cols] */
    const uint8_t *labels; /* [count] */
    long count;
    int rows, cols;
} nn_split_data;

/* Write /train and /test plus the root attributes num_classes and source.
 * Written to "<path>.tmp" and renamed into place, so a failure never leaves a
 * half-written file at `path`; a "<path>.tmp" already there is removed only where a
 * killed write left it (it begins as HDF5 does), else NN_ERR_INPUT, untouched.
 * Serial (no MPI needed). */
int nn_dataset_write(const char *path, const nn_split_data *train, const nn_split_data *test,
                     int num_classes, const char *source, nn_error *err);
/* The same, put in place only where `place` (taken when --out was checked) still
 * holds (nn/output_place.h): a file put at `path` during the write is never replaced. */
int nn_dataset_write_placed(nn_output_place *place, const char *path, const nn_split_data *train,
                            const nn_split_data *test, int num_classes, const char *source, nn_error *err);

/* NN_OK where `path` is missing, empty or a dataset in this layout (HDF5 with /train,
 * /test and num_classes); else NN_ERR_INPUT naming `option`: a user's other file is
 * never replaced. */
int nn_dataset_check_replaceable(const char *option, const char *path, nn_error *err);

#endif
