/* Convolution (k x k kernel, stride 1, zero padding) and 2x2 max-pooling, each a
 * forward/backward pair, on a batch of images stored one row per sample as
 * everywhere else (flatten is therefore a no-op: the next dense layer reads the row).
 *
 * Layout. A row holds an image either channel-major (CHW: the dataset's [N,C,H,W]
 * or [N,H,W]) or channel-minor (HWC). Convolutions read either and always WRITE
 * HWC: im2col then makes one GEMM row per output pixel, (kh, kw, ic) along it, and
 * the convolution is exactly a dense layer on those rows, on the project's GEMM:
 *   y[b,oh,ow][oc] = bias[oc] + sum_{kh,kw,ic} x[b, oh+kh-p, ow+kw-p, ic] W[kh,kw,ic][oc].
 * The weights are [k][k][in_c][out_c] (a dense layer's [in][out] with in = k*k*in_c),
 * the bias [out_c]. Pooling keeps its input's layout. With one input channel CHW and
 * HWC are the same bytes.
 *
 * Every loop is parallel over output elements only and the GEMM's results do not
 * depend on the thread count, so neither do these layers' results, bit for bit. */
#ifndef NN_CONV_H
#define NN_CONV_H

#include <stdbool.h>
#include <stddef.h>

typedef struct nn_conv_geom {
    int in_c, in_h, in_w; /* the input image */
    bool in_chw;          /* input stored channel-major (else HWC) */
    int out_c, k, pad;    /* output channels, kernel size, zero padding; stride 1 */
} nn_conv_geom;

/* Output height/width: in + 2 pad - k + 1 (< 1: the kernel does not fit). */
int nn_conv_out_h(const nn_conv_geom *g);
int nn_conv_out_w(const nn_conv_geom *g);
/* Floats in one sample's output row; weights and bias counts. */
size_t nn_conv_out_width(const nn_conv_geom *g);
size_t nn_conv_weight_count(const nn_conv_geom *g);
/* Scratch the calls below need for `batch` samples (the im2col matrix), in floats. */
size_t nn_conv_workspace_floats(const nn_conv_geom *g, int batch);

/* y = conv(x) + bias, in HWC. ws: nn_conv_workspace_floats floats. */
void nn_conv_forward(const nn_conv_geom *g, const float *weight, const float *bias, const float *x, float *y,
                     float *ws, int batch);
/* dweight = im2col(x)^T dy, dbias = column sums of dy (both added to what they held
 * when accumulating micro-batches). */
void nn_conv_backward_params(const nn_conv_geom *g, const float *x, const float *dy, float *dweight, float *dbias,
                             float *ws, int batch, bool accumulate);
/* dx (in x's layout) = col2im(dy W^T): each input element gathers its k*k terms in
 * a fixed order (no scatter, no atomics). */
void nn_conv_backward_input(const nn_conv_geom *g, const float *weight, const float *dy, float *dx, float *ws,
                            int batch);

/* im2col alone (for tests and benchmarks): rows (b, oh, ow), columns (kh, kw, ic). */
void nn_im2col(const nn_conv_geom *g, const float *x, float *cols, int batch);

/* Max-pooling 2x2, stride 2; an odd last row or column is dropped (floor), as in
 * most frameworks. */
typedef struct nn_pool_geom {
    int c, h, w; /* the input image */
    bool chw;    /* layout of input and output */
} nn_pool_geom;

int nn_pool_out_h(const nn_pool_geom *g);
int nn_pool_out_w(const nn_pool_geom *g);
size_t nn_pool_out_width(const nn_pool_geom *g);

void nn_maxpool_forward(const nn_pool_geom *g, const float *x, float *y, int batch);
/* The gradient of each window goes to ONE element: its maximum, and among equal
 * maxima the first in row-major order (top-left, top-right, bottom-left,
 * bottom-right) -- the element the forward pass took. Recomputed from x, nothing
 * stored. Every element of dx is written (0 off the maxima and in dropped rows). */
void nn_maxpool_backward(const nn_pool_geom *g, const float *x, const float *dy, float *dx, int batch);

#endif
