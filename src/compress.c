/* Compressed sums across nodes (see compress.h). The bf16 sum is an MPI user
 * operation on 16-bit words: MPI moves half the bytes, and any reduction algorithm
 * MPI picks (ring, recursive doubling) works on them unchanged. */
#include "nn/compress.h"
#include "nn/names.h"

#include <stdlib.h>
#include <string.h>

struct nn_codec {
    nn_compress mode;
    size_t n;
    uint16_t *wire; /* bf16: n words, the vector as it travels */
    MPI_Op sum_op;  /* bf16: the element-wise sum of bf16 words */
};

static const char *const names[] = {"none", "bf16"};

const char *nn_compress_name(nn_compress c) { return names[c]; }

int nn_compress_parse(const char *text, nn_compress *out) {
    int i = nn_name_index(text, names, NN_COUNT_OF(names));
    if (i < 0) return NN_ERR_INPUT;
    *out = (nn_compress)i;
    return NN_OK;
}

static inline uint32_t bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

uint16_t nn_bf16_from_float(float x) {
    uint32_t u = bits_of(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN: keep it a (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even; may round up to infinity */
    return (uint16_t)(u >> 16);
}

float nn_bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* MPI_User_function: inout[i] = bf16(in[i] + inout[i]). */
static void bf16_sum(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *len; i++) b[i] = nn_bf16_from_float(nn_bf16_to_float(a[i]) + nn_bf16_to_float(b[i]));
}

int nn_codec_create(nn_codec **out, nn_compress mode, size_t n, nn_error *err) {
    nn_codec *c = calloc(1, sizeof *c);
    if (c && mode == NN_COMPRESS_BF16 && !(c->wire = malloc((n ? n : 1) * sizeof *c->wire))) {
        free(c);
        c = NULL;
    }
    if (!c) return nn_fail(err, NN_ERR_RUNTIME, "compressed sum: out of memory (%zu values)", n);
    c->mode = mode;
    c->n = n;
    c->sum_op = MPI_OP_NULL;
    if (mode == NN_COMPRESS_BF16) MPI_Op_create(bf16_sum, 1, &c->sum_op);
    *out = c;
    return NN_OK;
}

void nn_codec_free(nn_codec *c) {
    if (!c) return;
    if (c->sum_op != MPI_OP_NULL) MPI_Op_free(&c->sum_op);
    free(c->wire);
    free(c);
}

nn_compress nn_codec_mode(const nn_codec *c) { return c->mode; }

static void narrow(nn_codec *c, const float *buf, size_t off, size_t count) {
    for (size_t i = off; i < off + count; i++) c->wire[i] = nn_bf16_from_float(buf[i]);
}

void nn_codec_finish(nn_codec *c, float *buf, size_t off, size_t count) {
    if (c->mode == NN_COMPRESS_NONE) return;
    for (size_t i = off; i < off + count; i++) buf[i] = nn_bf16_to_float(c->wire[i]);
}

void nn_codec_allreduce(nn_codec *c, float *buf, size_t off, size_t count, MPI_Comm comm) {
    if (c->mode == NN_COMPRESS_NONE) {
        MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)count, MPI_FLOAT, MPI_SUM, comm);
        return;
    }
    narrow(c, buf, off, count);
    MPI_Allreduce(MPI_IN_PLACE, c->wire + off, (int)count, MPI_UINT16_T, c->sum_op, comm);
    nn_codec_finish(c, buf, off, count);
}

void nn_codec_iallreduce(nn_codec *c, float *buf, size_t off, size_t count, MPI_Comm comm, MPI_Request *req) {
    if (c->mode == NN_COMPRESS_NONE) {
        MPI_Iallreduce(MPI_IN_PLACE, buf + off, (int)count, MPI_FLOAT, MPI_SUM, comm, req);
        return;
    }
    narrow(c, buf, off, count);
    MPI_Iallreduce(MPI_IN_PLACE, c->wire + off, (int)count, MPI_UINT16_T, c->sum_op, comm, req);
}
