/* Compressed sums across nodes: where links are slow, a sum's time is its bytes, so
 * the values can travel as bfloat16 (the top half of an IEEE float: the same range,
 * 8 significant bits) and be summed in that form -- what the compression hooks of
 * Horovod and PyTorch DDP do. Only the stage between nodes is compressed; the sum
 * within a node (shared memory) stays fp32.
 *
 * A codec owns a 16-bit scratch copy of the vector it serves, addressed by the same
 * offsets, so several slices can be in flight at once (overlap mode). */
#ifndef NN_COMPRESS_H
#define NN_COMPRESS_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/error.h"

typedef enum nn_compress { NN_COMPRESS_NONE, NN_COMPRESS_BF16 } nn_compress;
const char *nn_compress_name(nn_compress c);
int nn_compress_parse(const char *text, nn_compress *out); /* NN_OK or NN_ERR_INPUT */

/* float <-> bfloat16, rounding to nearest even; NaN stays NaN, infinities stay. */
uint16_t nn_bf16_from_float(float x);
float nn_bf16_to_float(uint16_t h);

typedef struct nn_codec nn_codec;

/* A codec for vectors of up to n floats (not collective). NN_COMPRESS_NONE needs
 * no scratch. */
int nn_codec_create(nn_codec **out, nn_compress mode, size_t n, nn_error *err);
void nn_codec_free(nn_codec *codec); /* NULL is allowed */
nn_compress nn_codec_mode(const nn_codec *codec);

/* Collective over comm: buf[off, off + count) becomes its sum over the ranks,
 * bit-identical on every rank. With bf16, each rank's values are rounded to bf16,
 * summed in bf16 (each addition in fp32, rounded back) and widened again. */
void nn_codec_allreduce(nn_codec *codec, float *buf, size_t off, size_t count, MPI_Comm comm);

/* The same, non-blocking: start, then after the request completes, finish (which
 * widens the result back into buf; nothing to do without compression). */
void nn_codec_iallreduce(nn_codec *codec, float *buf, size_t off, size_t count, MPI_Comm comm, MPI_Request *req);
void nn_codec_finish(nn_codec *codec, float *buf, size_t off, size_t count);

#endif
