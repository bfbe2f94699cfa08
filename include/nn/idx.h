/* IDX files (the MNIST format): big-endian magic 0x0000 08 <ndim>, then ndim
 * big-endian uint32 sizes, then the uint8 data. Read raw or gzip-compressed. */
#ifndef NN_IDX_H
#define NN_IDX_H

#include <stdint.h>

#include "nn/error.h"

typedef struct nn_idx {
    int ndim;          /* 1 for labels, 3 for images */
    uint32_t dims[4];
    uint8_t *data;     /* product of dims bytes */
    long count;        /* dims[0] */
} nn_idx;

/* Read an IDX file (gzip or raw, detected by content). Checks the magic number,
 * that the data size matches the header exactly, and that ndim == expect_ndim. */
int nn_idx_read(const char *path, int expect_ndim, nn_idx *out, nn_error *err);
void nn_idx_free(nn_idx *idx);

#endif
