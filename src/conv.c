#include "nn/conv.h"

#include <string.h>

#include "nn/kernels.h"
#include "nn/parallel.h"

/* Row loops only pay for threads when they move this many floats. */
#define NN_CONV_PAR_MIN 32768

/* Where element (c, h, w) of one sample lies: c * sc + h * sh + w * sw. */
typedef struct strides {
    long c, h, w;
} strides;

static strides image_strides(int c, int h, int w, bool chw) {
    return chw ? (strides){(long)h * w, w, 1} : (strides){1, (long)w * c, c};
}

int nn_conv_out_h(const nn_conv_geom *g) { return g->in_h + 2 * g->pad - g->k + 1; }
int nn_conv_out_w(const nn_conv_geom *g) { return g->in_w + 2 * g->pad - g->k + 1; }

size_t nn_conv_out_width(const nn_conv_geom *g) { return (size_t)nn_conv_out_h(g) * nn_conv_out_w(g) * g->out_c; }

size_t nn_conv_weight_count(const nn_conv_geom *g) { return (size_t)g->k * g->k * g->in_c * g->out_c; }

size_t nn_conv_workspace_floats(const nn_conv_geom *g, int batch) {
    return (size_t)batch * nn_conv_out_h(g) * nn_conv_out_w(g) * g->k * g->k * g->in_c;
}

/* ---- convolution ---- */

/* Output rows r = (b, oh) in [r0, r1): for each output pixel, its k x k x in_c
 * receptive field in (kh, kw, ic) order, zeros where it hangs over the border. */
static void im2col_rows(const nn_conv_geom *g, const float *x, float *cols, long r0, long r1) {
    const int oh_n = nn_conv_out_h(g), ow_n = nn_conv_out_w(g), k = g->k, ic_n = g->in_c;
    const size_t kk = (size_t)k * k * ic_n, in_size = (size_t)g->in_c * g->in_h * g->in_w;
    const strides s = image_strides(g->in_c, g->in_h, g->in_w, g->in_chw);
    for (long r = r0; r < r1; r++) {
        int b = (int)(r / oh_n), oh = (int)(r % oh_n);
        const float *xb = x + (size_t)b * in_size;
        for (int ow = 0; ow < ow_n; ow++) {
            float *row = cols + ((size_t)r * ow_n + ow) * kk;
            for (int kh = 0; kh < k; kh++) {
                int ih = oh + kh - g->pad;
                for (int kw = 0; kw < k; kw++) {
                    int iw = ow + kw - g->pad;
                    float *dst = row + ((size_t)kh * k + kw) * ic_n;
                    if (ih < 0 || ih >= g->in_h || iw < 0 || iw >= g->in_w) {
                        memset(dst, 0, (size_t)ic_n * sizeof *dst);
                        continue;
                    }
                    const float *src = xb + ih * s.h + iw * s.w;
                    if (s.c == 1 && ic_n > 1) memcpy(dst, src, (size_t)ic_n * sizeof *dst);
                    else
                        for (int ic = 0; ic < ic_n; ic++) dst[ic] = src[ic * s.c];
                }
            }
        }
    }
}

void nn_im2col(const nn_conv_geom *g, const float *x, float *cols, int batch) {
    long rows = (long)batch * nn_conv_out_h(g);
    bool large = nn_conv_workspace_floats(g, batch) >= NN_CONV_PAR_MIN;
    NN_PARALLEL_RANGES(rows, 1, large, im2col_rows(g, x, cols, begin, end));
}

/* Input rows r = (b, ih) in [r0, r1) of dx: each element is the sum of the im2col
 * entries that copied it, kh then kw ascending (a fixed order: no scatter). */
static void col2im_rows(const nn_conv_geom *g, const float *cols, float *dx, long r0, long r1) {
    const int oh_n = nn_conv_out_h(g), ow_n = nn_conv_out_w(g), k = g->k, ic_n = g->in_c;
    const size_t kk = (size_t)k * k * ic_n, in_size = (size_t)g->in_c * g->in_h * g->in_w;
    const strides s = image_strides(g->in_c, g->in_h, g->in_w, g->in_chw);
    for (long r = r0; r < r1; r++) {
        int b = (int)(r / g->in_h), ih = (int)(r % g->in_h);
        float *db = dx + (size_t)b * in_size;
        for (int iw = 0; iw < g->in_w; iw++) {
            float *d = db + ih * s.h + iw * s.w;
            for (int ic = 0; ic < ic_n; ic++) d[ic * s.c] = 0.0f;
            for (int kh = 0; kh < k; kh++) {
                int oh = ih + g->pad - kh;
                if (oh < 0 || oh >= oh_n) continue;
                for (int kw = 0; kw < k; kw++) {
                    int ow = iw + g->pad - kw;
                    if (ow < 0 || ow >= ow_n) continue;
                    const float *src = cols + (((size_t)b * oh_n + oh) * ow_n + ow) * kk + ((size_t)kh * k + kw) * ic_n;
                    if (s.c == 1) /* HWC: a vector loop */
                        for (int ic = 0; ic < ic_n; ic++) d[ic] += src[ic];
                    else
                        for (int ic = 0; ic < ic_n; ic++) d[ic * s.c] += src[ic];
                }
            }
        }
    }
}

/* The transpose of im2col: rows (kh, kw, ic), columns (b, oh, ow), so that the
 * weight gradient is a GEMM whose long sum runs along rows, which the GEMM does some
 * three times faster than the same sum down columns (measured). Taps (kh, kw) in
 * [t0, t1): each reads a pixel's channels together and writes in_c rows side by side. */
static void im2col_t_taps(const nn_conv_geom *g, const float *x, float *cols_t, int batch, long t0, long t1) {
    const int oh_n = nn_conv_out_h(g), ow_n = nn_conv_out_w(g), k = g->k, ic_n = g->in_c;
    const size_t in_size = (size_t)ic_n * g->in_h * g->in_w, m = (size_t)batch * oh_n * ow_n;
    const strides s = image_strides(g->in_c, g->in_h, g->in_w, g->in_chw);
    for (long t = t0; t < t1; t++) {
        int kh = (int)(t / k), kw = (int)(t % k);
        float *rows = cols_t + (size_t)t * ic_n * m;
        size_t col = 0;
        for (int b = 0; b < batch; b++)
            for (int oh = 0; oh < oh_n; oh++) {
                int ih = oh + kh - g->pad;
                const float *xr = x + (size_t)b * in_size + ih * s.h;
                if (ic_n == 1) { /* one channel: a select per element, no inner loop */
                    for (int ow = 0, iw = kw - g->pad; ow < ow_n; ow++, iw++)
                        rows[col++] = ih < 0 || ih >= g->in_h || iw < 0 || iw >= g->in_w ? 0.0f : xr[iw * s.w];
                    continue;
                }
                for (int ow = 0; ow < ow_n; ow++, col++) {
                    int iw = ow + kw - g->pad;
                    if (ih < 0 || ih >= g->in_h || iw < 0 || iw >= g->in_w) {
                        for (int ic = 0; ic < ic_n; ic++) rows[ic * m + col] = 0.0f;
                        continue;
                    }
                    const float *src = xr + iw * s.w;
                    for (int ic = 0; ic < ic_n; ic++) rows[ic * m + col] = src[ic * s.c];
                }
            }
    }
}

void nn_conv_forward(const nn_conv_geom *g, const float *weight, const float *bias, const float *x, float *y,
                     float *ws, int batch) {
    const int m = batch * nn_conv_out_h(g) * nn_conv_out_w(g), kk = g->k * g->k * g->in_c;
    nn_im2col(g, x, ws, batch);
    nn_fill_rows(y, bias, m, g->out_c);
    nn_gemm(false, false, m, g->out_c, kk, ws, kk, weight, g->out_c, 1.0f, y, g->out_c);
}

void nn_conv_backward_params(const nn_conv_geom *g, const float *x, const float *dy, float *dweight, float *dbias,
                             float *ws, int batch, bool accumulate) {
    const int m = batch * nn_conv_out_h(g) * nn_conv_out_w(g), kk = g->k * g->k * g->in_c;
    /* recomputed (cheaper than keeping one per layer), transposed */
    bool large = nn_conv_workspace_floats(g, batch) >= NN_CONV_PAR_MIN;
    NN_PARALLEL_RANGES((long)g->k * g->k, 1, large, im2col_t_taps(g, x, ws, batch, begin, end));
    nn_gemm(false, false, kk, g->out_c, m, ws, m, dy, g->out_c, accumulate ? 1.0f : 0.0f, dweight, g->out_c);
    nn_column_sums(dy, dbias, m, g->out_c, accumulate);
}

void nn_conv_backward_input(const nn_conv_geom *g, const float *weight, const float *dy, float *dx, float *ws,
                            int batch) {
    const int m = batch * nn_conv_out_h(g) * nn_conv_out_w(g), kk = g->k * g->k * g->in_c;
    nn_gemm(false, true, m, kk, g->out_c, dy, g->out_c, weight, g->out_c, 0.0f, ws, kk);
    long rows = (long)batch * g->in_h;
    bool large = nn_conv_workspace_floats(g, batch) >= NN_CONV_PAR_MIN;
    NN_PARALLEL_RANGES(rows, 1, large, col2im_rows(g, ws, dx, begin, end));
}

/* ---- max-pooling 2x2, stride 2 ---- */

int nn_pool_out_h(const nn_pool_geom *g) { return g->h / 2; }
int nn_pool_out_w(const nn_pool_geom *g) { return g->w / 2; }
size_t nn_pool_out_width(const nn_pool_geom *g) { return (size_t)g->c * nn_pool_out_h(g) * nn_pool_out_w(g); }

/* Which of the window's four elements (offsets 0, sw, sh, sh + sw) is its maximum:
 * the first of equal ones, strict > in row-major order. */
static inline long window_argmax(const float *p, long sh, long sw) {
    long best = 0;
    if (p[sw] > p[best]) best = sw;
    if (p[sh] > p[best]) best = sh;
    if (p[sh + sw] > p[best]) best = sh + sw;
    return best;
}

/* One HWC sample (or single-channel CHW: the same bytes): a window's four elements
 * are whole channel vectors, so the loops over c vectorise. */
static void pool_hwc(const nn_pool_geom *g, const float *x, float *y, const float *dy, float *dx) {
    const int oh_n = nn_pool_out_h(g), ow_n = nn_pool_out_w(g), nc = g->c;
    const long sw = nc, sh = (long)g->w * nc;
    for (int oh = 0; oh < oh_n; oh++)
        for (int ow = 0; ow < ow_n; ow++) {
            const long in = 2 * oh * sh + 2 * ow * sw, out = ((long)oh * ow_n + ow) * nc;
            const float *p = x + in;
            if (dx) {
                for (int c = 0; c < nc; c++) dx[in + c + window_argmax(p + c, sh, sw)] = dy[out + c];
                continue;
            }
            for (int c = 0; c < nc; c++) { /* window_argmax's comparisons, on values */
                float m = p[c];
                m = p[sw + c] > m ? p[sw + c] : m;
                m = p[sh + c] > m ? p[sh + c] : m;
                y[out + c] = p[sh + sw + c] > m ? p[sh + sw + c] : m;
            }
        }
}

/* Samples [b0, b1); forward writes y, backward (dy given) writes dx. */
static void pool_samples(const nn_pool_geom *g, const float *x, float *y, const float *dy, float *dx, long b0,
                         long b1) {
    const int oh_n = nn_pool_out_h(g), ow_n = nn_pool_out_w(g);
    const size_t in_size = (size_t)g->c * g->h * g->w, out_size = nn_pool_out_width(g);
    const strides si = image_strides(g->c, g->h, g->w, g->chw), so = image_strides(g->c, oh_n, ow_n, g->chw);
    for (long b = b0; b < b1; b++) {
        const float *xb = x + (size_t)b * in_size;
        if (dx) memset(dx + (size_t)b * in_size, 0, in_size * sizeof *dx);
        if (!g->chw || g->c == 1) {
            pool_hwc(g, xb, y ? y + (size_t)b * out_size : NULL, dy ? dy + (size_t)b * out_size : NULL,
                     dx ? dx + (size_t)b * in_size : NULL);
            continue;
        }
        for (int oh = 0; oh < oh_n; oh++)
            for (int ow = 0; ow < ow_n; ow++)
                for (int c = 0; c < g->c; c++) {
                    long in = 2 * oh * si.h + 2 * ow * si.w + c * si.c, out = oh * so.h + ow * so.w + c * so.c;
                    long at = in + window_argmax(xb + in, si.h, si.w);
                    if (dx) dx[(size_t)b * in_size + at] = dy[(size_t)b * out_size + out];
                    else y[(size_t)b * out_size + out] = xb[at];
                }
    }
}

void nn_maxpool_forward(const nn_pool_geom *g, const float *x, float *y, int batch) {
    bool large = (size_t)batch * g->c * g->h * g->w >= NN_CONV_PAR_MIN;
    NN_PARALLEL_RANGES(batch, 1, large, pool_samples(g, x, y, NULL, NULL, begin, end));
}

void nn_maxpool_backward(const nn_pool_geom *g, const float *x, const float *dy, float *dx, int batch) {
    bool large = (size_t)batch * g->c * g->h * g->w >= NN_CONV_PAR_MIN;
    NN_PARALLEL_RANGES(batch, 1, large, pool_samples(g, x, NULL, dy, dx, begin, end));
}
