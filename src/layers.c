#include "nn/layers.h"

#include <math.h>
#include <string.h>

#include "nn/fastmath.h"
#include "nn/kernels.h"
#include "nn/parallel.h"

/* Element-wise loops only pay for threads on large activations. */
#define NN_PAR_MIN 65536

/* ---- dense ---- */

void nn_dense_forward(const nn_layer *layer, const float *x, float *y, int batch) {
    nn_fill_rows(y, layer->bias, batch, layer->out);
    nn_gemm(false, false, batch, layer->out, layer->in, x, layer->in, layer->weight, layer->out,
            1.0f, y, layer->out);
}

void nn_dense_backward_params(const nn_layer *layer, const float *x, const float *dy, int batch, bool accumulate) {
    /* dW = x^T dy, db = column sums of dy (added to dW, db when accumulating micro-batches) */
    nn_gemm(true, false, layer->in, layer->out, batch, x, layer->in, dy, layer->out, accumulate ? 1.0f : 0.0f,
            layer->dweight, layer->out);
    nn_dense_backward_bias(layer, dy, batch, accumulate);
}

/* Rows [begin, end) of dW (the layer's inputs begin..end-1): the same values as the
 * whole product's, whose elements do not depend on the rows beside them. */
void nn_dense_backward_weight_rows(const nn_layer *layer, const float *x, const float *dy, int batch, bool accumulate,
                                   int begin, int end) {
    nn_gemm(true, false, end - begin, layer->out, batch, x + begin, layer->in, dy, layer->out,
            accumulate ? 1.0f : 0.0f, layer->dweight + (size_t)begin * layer->out, layer->out);
}

/* About 8 blocks a layer, each at least 16K weights (a product worth its call). */
int nn_dense_weight_block_rows(const nn_layer *layer) {
    int rows = (layer->in + 7) / 8, least = (16384 + layer->out - 1) / layer->out;
    if (rows < least) rows = least;
    return rows < layer->in ? rows : layer->in;
}

void nn_dense_backward_bias(const nn_layer *layer, const float *dy, int batch, bool accumulate) {
    nn_column_sums(dy, layer->dbias, batch, layer->out, accumulate);
}

/* dst[c][r] = src[r][c] for an rows x cols src, a few rows of it at a time. */
static void transpose(const float *restrict src, int rows, int cols, float *restrict dst) {
    enum { ROWS = 16 };
    for (int r0 = 0; r0 < rows; r0 += ROWS) {
        int r1 = r0 + ROWS < rows ? r0 + ROWS : rows;
        for (int c = 0; c < cols; c++)
            for (int r = r0; r < r1; r++) dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
    }
}

void nn_dense_backward_input(const nn_layer *layer, const float *dy, float *dx, int batch) {
    /* dx = dy W^T. For a few rows (a rank's share of the batch at 16 ranks) it is made
     * as dx^T = W dy^T, then transposed: W is then read in place, six rows at a time,
     * instead of packed transposed panel by panel each step, and only the small dy is
     * packed (784-800-800-10 at 32 rows: 443 -> 399 us with the transpose, at 16
     * rows 1.3x; at 64 rows even). Every element is the same chain of fused
     * multiply-adds over the same slices of k either way (a*b = b*a), so the same
     * bits where both products take only the tile kernels. */
    if (layer->dx_ws && batch <= NN_DENSE_DX_ROWS && nn_gemm_tiles_only(false, layer->in, layer->out) &&
        nn_gemm_tiles_only(false, batch, layer->out)) {
        nn_gemm(false, true, layer->in, batch, layer->out, layer->weight, layer->out, dy, layer->out, 0.0f,
                layer->dx_ws, batch);
        transpose(layer->dx_ws, layer->in, batch, dx);
        return;
    }
    nn_gemm(false, true, batch, layer->in, layer->out, dy, layer->out, layer->weight, layer->out, 0.0f,
            dx, layer->in);
}

void nn_dense_backward(const nn_layer *layer, const float *x, const float *dy, float *dx, int batch) {
    nn_dense_backward_params(layer, x, dy, batch, false);
    if (dx) nn_dense_backward_input(layer, dy, dx, batch);
}

/* ---- activations ---- */

/* The loops run over [begin, end) of flat arrays; split among threads only when
 * large. Backward may run in place (dx == dy), so those pointers are not restrict. */
#define PARALLEL_ELEMENTWISE(n, body) NN_PARALLEL_RANGES(n, 4096, (n) > NN_PAR_MIN, body)

static void sigmoid_range(const float *restrict x, float *restrict y, long begin, long end) {
    for (long i = begin; i < end; i++) y[i] = 1.0f / (1.0f + nn_expf(-x[i]));
}

void nn_sigmoid_forward(const float *x, float *y, long n) { PARALLEL_ELEMENTWISE(n, sigmoid_range(x, y, begin, end)); }

static void sigmoid_grad_range(const float *restrict y, const float *dy, float *dx, long begin, long end) {
#pragma omp simd
    for (long i = begin; i < end; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

void nn_sigmoid_backward(const float *y, const float *dy, float *dx, long n) {
    PARALLEL_ELEMENTWISE(n, sigmoid_grad_range(y, dy, dx, begin, end));
}

static void relu_range(const float *restrict x, float *restrict y, long begin, long end) {
    for (long i = begin; i < end; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void nn_relu_forward(const float *x, float *y, long n) { PARALLEL_ELEMENTWISE(n, relu_range(x, y, begin, end)); }

static void relu_grad_range(const float *restrict y, const float *dy, float *dx, long begin, long end) {
#pragma omp simd
    for (long i = begin; i < end; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void nn_relu_backward(const float *y, const float *dy, float *dx, long n) {
    PARALLEL_ELEMENTWISE(n, relu_grad_range(y, dy, dx, begin, end));
}

static void tanh_range(const float *restrict x, float *restrict y, long begin, long end) {
    for (long i = begin; i < end; i++) y[i] = tanhf(x[i]); /* libm: exact near 0, where e^x forms cancel */
}

void nn_tanh_forward(const float *x, float *y, long n) { PARALLEL_ELEMENTWISE(n, tanh_range(x, y, begin, end)); }

static void tanh_grad_range(const float *restrict y, const float *dy, float *dx, long begin, long end) {
#pragma omp simd
    for (long i = begin; i < end; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

void nn_tanh_backward(const float *y, const float *dy, float *dx, long n) {
    PARALLEL_ELEMENTWISE(n, tanh_grad_range(y, dy, dx, begin, end));
}

/* ---- dispatch ---- */

void nn_layer_forward(const nn_layer *layer, const float *x, float *y, int batch) {
    long n = (long)batch * layer->out;
    switch (layer->kind) {
    case NN_LAYER_DENSE: nn_dense_forward(layer, x, y, batch); break;
    case NN_LAYER_SIGMOID: nn_sigmoid_forward(x, y, n); break;
    case NN_LAYER_RELU: nn_relu_forward(x, y, n); break;
    case NN_LAYER_TANH: nn_tanh_forward(x, y, n); break;
    case NN_LAYER_DROPOUT: nn_dropout_forward(layer, x, y, batch); break;
    case NN_LAYER_CONV: nn_conv_forward(&layer->conv, layer->weight, layer->bias, x, y, layer->ws, batch); break;
    case NN_LAYER_POOL: nn_maxpool_forward(&layer->pool, x, y, batch); break;
    }
}

void nn_layer_backward(const nn_layer *layer, const float *x, const float *y, const float *dy,
                       float *dx, int batch) {
    long n = (long)batch * layer->out;
    switch (layer->kind) {
    case NN_LAYER_DENSE: nn_dense_backward(layer, x, dy, dx, batch); break;
    case NN_LAYER_SIGMOID: if (dx) nn_sigmoid_backward(y, dy, dx, n); break;
    case NN_LAYER_RELU: if (dx) nn_relu_backward(y, dy, dx, n); break;
    case NN_LAYER_TANH: if (dx) nn_tanh_backward(y, dy, dx, n); break;
    case NN_LAYER_DROPOUT: if (dx) nn_dropout_backward(layer, dy, dx, batch); break;
    case NN_LAYER_CONV:
        nn_layer_backward_params(layer, x, dy, batch, false);
        if (dx) nn_layer_backward_input(layer, dy, dx, batch);
        break;
    case NN_LAYER_POOL: if (dx) nn_maxpool_backward(&layer->pool, x, dy, dx, batch); break;
    }
}

bool nn_layer_has_params(const nn_layer *layer) {
    return layer->kind == NN_LAYER_DENSE || layer->kind == NN_LAYER_CONV;
}

size_t nn_layer_param_count(const nn_layer *layer) {
    if (layer->kind == NN_LAYER_CONV) return nn_conv_weight_count(&layer->conv) + (size_t)layer->conv.out_c;
    return layer->kind == NN_LAYER_DENSE ? (size_t)layer->in * layer->out + (size_t)layer->out : 0;
}

void nn_layer_backward_params(const nn_layer *layer, const float *x, const float *dy, int batch, bool accumulate) {
    if (layer->kind == NN_LAYER_CONV)
        nn_conv_backward_params(&layer->conv, x, dy, layer->dweight, layer->dbias, layer->ws, batch, accumulate);
    else
        nn_dense_backward_params(layer, x, dy, batch, accumulate);
}

/* The conv's input gradient overwrites its scratch: call it after the params'. */
void nn_layer_backward_input(const nn_layer *layer, const float *dy, float *dx, int batch) {
    if (layer->kind == NN_LAYER_CONV)
        nn_conv_backward_input(&layer->conv, layer->weight, dy, dx, layer->ws, batch);
    else
        nn_dense_backward_input(layer, dy, dx, batch);
}

/* ---- dropout ---- */

/* SplitMix64's finaliser: a bijection that mixes every input bit into every output bit. */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* One key per (seed, step, layer, sample); then one draw per unit. */
static inline uint64_t row_key(const nn_dropout_key *key, int id, int row) {
    uint64_t k = mix64(key->seed ^ 0x6a09e667f3bcc909ull);
    k = mix64(k ^ key->step);
    k = mix64(k ^ (uint64_t)id);
    return mix64(k ^ key->samples[row]);
}

static inline float factor(uint64_t row, int unit, uint32_t threshold, float keep_scale) {
    uint32_t draw = (uint32_t)(mix64(row + 0x9e3779b97f4a7c15ull * (uint64_t)(unit + 1)) >> 32);
    return draw >= threshold ? keep_scale : 0.0f;
}

uint64_t nn_dropout_row_key(const nn_dropout_key *key, int id, int row) { return row_key(key, id, row); }

float nn_dropout_factor(const nn_dropout_key *key, int id, float rate, int row, int unit) {
    return factor(row_key(key, id, row), unit, (uint32_t)((double)rate * 4294967296.0), 1.0f / (1.0f - rate));
}

/* Rows [begin, end) of y = x * mask (dy and dx for backward: the same loop). */
static void mask_rows(const nn_layer *layer, const float *x, float *y, long begin, long end) {
    const uint32_t threshold = (uint32_t)((double)layer->rate * 4294967296.0);
    const float keep_scale = 1.0f / (1.0f - layer->rate);
    const int width = layer->out;
    for (long b = begin; b < end; b++) {
        uint64_t row = row_key(layer->key, layer->id, (int)b);
        const float *xr = x + (size_t)b * width;
        float *yr = y + (size_t)b * width;
        for (int u = 0; u < width; u++) yr[u] = xr[u] * factor(row, u, threshold, keep_scale);
    }
}

static void apply_mask(const nn_layer *layer, const float *x, float *y, int batch) {
    NN_PARALLEL_RANGES(batch, 1, (long)batch * layer->out >= NN_PAR_MIN, mask_rows(layer, x, y, begin, end));
}

void nn_dropout_forward(const nn_layer *layer, const float *x, float *y, int batch) {
    if (layer->key->training && layer->rate > 0.0f) apply_mask(layer, x, y, batch);
    else if (y != x) memcpy(y, x, (size_t)batch * layer->out * sizeof(float));
}

void nn_dropout_backward(const nn_layer *layer, const float *dy, float *dx, int batch) {
    if (layer->key->training && layer->rate > 0.0f) apply_mask(layer, dy, dx, batch);
    else if (dx != dy) memcpy(dx, dy, (size_t)batch * layer->out * sizeof(float));
}

/* ---- losses ---- */

double nn_softmax_xent_forward(const float *logits, const uint8_t *labels, float *probs,
                               int batch, int classes) {
    double loss = 0.0;
    for (int b = 0; b < batch; b++) {
        const float *z = logits + (size_t)b * classes;
        float *p = probs + (size_t)b * classes;
        float max = z[0];
        for (int c = 1; c < classes; c++) max = z[c] > max ? z[c] : max;
        float sum = 0.0f;
        for (int c = 0; c < classes; c++) {
            p[c] = nn_expf(z[c] - max); /* shifted: no overflow */
            sum += p[c];
        }
        for (int c = 0; c < classes; c++) p[c] /= sum;
        /* log p = z - max - log(sum): exact even when p underflows to 0 */
        loss -= (double)(z[labels[b]] - max) - log((double)sum);
    }
    return loss;
}

void nn_softmax_xent_backward(const float *probs, const uint8_t *labels, float *dlogits,
                              int batch, int classes, float scale) {
    for (int b = 0; b < batch; b++) {
        const float *p = probs + (size_t)b * classes;
        float *d = dlogits + (size_t)b * classes;
        for (int c = 0; c < classes; c++) d[c] = scale * p[c];
        d[labels[b]] -= scale;
    }
}

double nn_mse_forward(const float *y, const float *target, int batch, int width) {
    double loss = 0.0;
    for (long i = 0; i < (long)batch * width; i++) {
        double e = (double)y[i] - target[i];
        loss += 0.5 * e * e;
    }
    return loss;
}

void nn_mse_backward(const float *y, const float *target, float *dy, int batch, int width,
                     float scale) {
    for (long i = 0; i < (long)batch * width; i++) dy[i] = scale * (y[i] - target[i]);
}
