#include "nn/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/conv_spec.h"
#include "nn/rng.h"
#include "nn/names.h"
#include "nn/parallel.h"

/* ---- specs ---- */

static const char *const activation_names[] = {"sigmoid", "relu", "tanh"};
static const char *const loss_names[] = {"softmax", "mse"};

const char *nn_activation_name(nn_activation a) { return activation_names[a]; }
const char *nn_loss_name(nn_loss l) { return loss_names[l]; }

int nn_parse_activation(const char *text, nn_activation *out) {
    int i = nn_name_index(text, activation_names, NN_COUNT_OF(activation_names));
    if (i < 0) return NN_ERR_INPUT;
    *out = (nn_activation)i;
    return NN_OK;
}

int nn_parse_loss(const char *text, nn_loss *out) {
    int i = nn_name_index(text, loss_names, NN_COUNT_OF(loss_names));
    if (i < 0) return NN_ERR_INPUT;
    *out = (nn_loss)i;
    return NN_OK;
}

int nn_spec_check_data(const nn_model_spec *spec, int dim, int classes, const char *data, const char *whose,
                       nn_error *err) {
    int outputs = spec->widths[spec->n_widths - 1];
    if (nn_spec_input_width(spec) != dim)
        return nn_fail(err, NN_ERR_INPUT, "%s: samples have %d values but %s starts with %d", data, dim, whose,
                       nn_spec_input_width(spec));
    if (outputs != classes)
        return nn_fail(err, NN_ERR_INPUT, "%s: the data has %d classes but %s ends with %d", data, classes, whose,
                       outputs);
    return NN_OK;
}

int nn_spec_input_width(const nn_model_spec *spec) {
    return spec->n_convs ? spec->image[0] * spec->image[1] * spec->image[2] : spec->widths[0];
}

size_t nn_spec_param_count(const nn_model_spec *spec) {
    size_t n = nn_spec_conv_param_count(spec);
    for (int i = 0; i + 1 < spec->n_widths; i++)
        n += (size_t)spec->widths[i] * spec->widths[i + 1] + spec->widths[i + 1];
    return n;
}

/* ---- building ---- */

static nn_layer_kind activation_layer(nn_activation a) {
    return a == NN_ACT_RELU ? NN_LAYER_RELU : a == NN_ACT_TANH ? NN_LAYER_TANH : NN_LAYER_SIGMOID;
}

static float *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes);
    return p;
}

static void add_dropout(nn_model *model, nn_layer *layer, int width, float rate, int id) {
    *layer = (nn_layer){.kind = NN_LAYER_DROPOUT, .in = width, .out = width, .rate = rate, .id = id,
                        .key = &model->dropout_key};
}

/* [dropout,] [convolutions,] dense, activation, [dropout,] dense, ..., dense [, sigmoid
 * for MSE]; returns the number of layers and the im2col scratch a sample needs. */
static int build_layers(nn_model *model, const nn_model_spec *spec, size_t *ws_per_sample) {
    size_t offset = 0;
    int n = 0, dropouts = 0;
    if (spec->input_dropout > 0.0f)
        add_dropout(model, &model->layers[n++], nn_spec_input_width(spec), spec->input_dropout, dropouts++);
    n += nn_spec_build_convs(spec, activation_layer(spec->activation), &model->layers[n], model->params, model->grads,
                             &offset, ws_per_sample);
    for (int i = 0; i + 1 < spec->n_widths; i++) {
        int in = spec->widths[i], out = spec->widths[i + 1];
        nn_layer *d = &model->layers[n++];
        d->kind = NN_LAYER_DENSE;
        d->in = in;
        d->out = out;
        if (model->params && model->grads) {
            d->weight = model->params + offset;
            d->dweight = model->grads + offset;
            offset += (size_t)in * out;
            d->bias = model->params + offset;
            d->dbias = model->grads + offset;
            offset += out;
        }
        int last = i + 2 == spec->n_widths;
        if (!last || spec->loss == NN_LOSS_MSE) {
            nn_layer *a = &model->layers[n++];
            a->kind = last ? NN_LAYER_SIGMOID : activation_layer(spec->activation);
            a->in = a->out = out;
        }
        if (!last && spec->dropout > 0.0f) add_dropout(model, &model->layers[n++], out, spec->dropout, dropouts++);
    }
    return n;
}

int nn_model_create(nn_model *model, const nn_model_spec *spec, int max_batch, nn_error *err) {
    memset(model, 0, sizeof *model);
    if (spec->n_convs && (!spec->image[0] || !spec->widths[0]))
        return nn_fail(err, NN_ERR_INPUT, "the network's input image is not known (no data fitted to it)");
    model->spec = *spec;
    model->max_batch = max_batch;
    model->n_params = nn_spec_param_count(spec);
    model->params = model->own_params = alloc_floats(model->n_params);
    model->grads = model->own_grads = alloc_floats(model->n_params);
    size_t ws = 0;
    int n = model->n_layers = build_layers(model, spec, &ws);

    int ok = model->params && model->grads;
    model->acts[0] = alloc_floats((size_t)max_batch * nn_spec_input_width(spec));
    ok = ok && model->acts[0];
    if (ws) { /* one scratch for every conv layer: they run one at a time */
        model->conv_ws = alloc_floats(ws * max_batch);
        ok = ok && model->conv_ws;
        for (int l = 0; l < n; l++) model->layers[l].ws = model->conv_ws;
    }
    for (int l = 0; l < n && ok; l++) {
        size_t size = (size_t)max_batch * model->layers[l].out;
        model->acts[l + 1] = alloc_floats(size);
        model->grad_acts[l + 1] = alloc_floats(size);
        ok = model->acts[l + 1] && model->grad_acts[l + 1];
    }
    /* dense layers' input gradients of a few rows go through a scratch (layers.h) */
    int widest = 0;
    for (int l = 0; l < n; l++)
        if (model->layers[l].kind == NN_LAYER_DENSE && model->layers[l].in > widest) widest = model->layers[l].in;
    if (ok && widest && max_batch <= NN_DENSE_DX_ROWS) {
        model->dx_ws = alloc_floats((size_t)widest * max_batch);
        ok = model->dx_ws != NULL;
        for (int l = 0; l < n; l++)
            if (model->layers[l].kind == NN_LAYER_DENSE) model->layers[l].dx_ws = model->dx_ws;
    }
    /* The input gradient of layer 0 is never needed; the rest are. */
    size_t out_size = (size_t)max_batch * spec->widths[spec->n_widths - 1];
    model->probs = ok ? alloc_floats(out_size) : NULL;
    model->targets = ok ? alloc_floats(out_size) : NULL;
    if (!ok || !model->probs || !model->targets) {
        nn_model_free(model);
        return nn_fail(err, NN_ERR_RUNTIME, "out of memory for a model of %zu parameters (batch %d)",
                       nn_spec_param_count(spec), max_batch);
    }
    return NN_OK;
}

enum { BLOCK = 64 }; /* max-norm's columns at a time (and each thread's share) */

/* Columns [begin, end) of a dense layer, BLOCK at a time: each column's norm summed
 * over the rows in order (the same on every rank, whatever the thread count), then
 * scaled back to c. */
static void max_norm_columns(nn_layer *d, float c, long begin, long end) {
    for (long c0 = begin; c0 < end; c0 += BLOCK) {
        long c1 = c0 + BLOCK < end ? c0 + BLOCK : end;
        double sq[BLOCK] = {0};
        for (int i = 0; i < d->in; i++)
            for (long j = c0; j < c1; j++) sq[j - c0] += (double)d->weight[(size_t)i * d->out + j] * d->weight[(size_t)i * d->out + j];
        float scale[BLOCK];
        for (long j = c0; j < c1; j++) scale[j - c0] = sq[j - c0] > (double)c * c ? (float)(c / sqrt(sq[j - c0])) : 1.0f;
        for (int i = 0; i < d->in; i++)
            for (long j = c0; j < c1; j++) d->weight[(size_t)i * d->out + j] *= scale[j - c0];
    }
}

void nn_model_max_norm_part(nn_model *model, float c, int part, int parts) {
    int last_dense = model->n_layers - 1;
    while (model->layers[last_dense].kind != NN_LAYER_DENSE) last_dense--;
    for (int l = 0; l < last_dense; l++) {
        nn_layer *d = &model->layers[l];
        if (d->kind != NN_LAYER_DENSE) continue;
        long lo = (long)d->out * part / parts, cols = (long)d->out * (part + 1) / parts - lo;
        NN_PARALLEL_RANGES(cols, BLOCK, (long)d->in * cols > 65536, max_norm_columns(d, c, lo + begin, lo + end));
    }
}

void nn_model_max_norm(nn_model *model, float c) { nn_model_max_norm_part(model, c, 0, 1); }

void nn_model_place_grads(nn_model *model, float *buffer) {
    for (int l = 0; l < model->n_layers; l++) {
        nn_layer *d = &model->layers[l];
        if (!nn_layer_has_params(d)) continue;
        d->dweight = buffer + (d->dweight - model->grads);
        d->dbias = buffer + (d->dbias - model->grads);
    }
    free(model->own_grads);
    model->own_grads = NULL;
    model->grads = buffer;
}

void nn_model_place_params(nn_model *model, float *buffer) {
    for (int l = 0; l < model->n_layers; l++) {
        nn_layer *d = &model->layers[l];
        if (!nn_layer_has_params(d)) continue;
        d->weight = buffer + (d->weight - model->params);
        d->bias = buffer + (d->bias - model->params);
    }
    free(model->own_params);
    model->own_params = NULL;
    model->params = buffer;
}

/* Calls visit(ctx, &pointer, floats) for each factor array, in the buffer's order. */
static void each_factor(nn_model *model, void (*visit)(void *ctx, float **array, size_t floats), void *ctx) {
    for (int l = 0; l < model->n_layers; l++) {
        nn_layer *d = &model->layers[l];
        if (d->kind != NN_LAYER_DENSE) continue;
        visit(ctx, &model->acts[l], (size_t)model->max_batch * d->in);
        visit(ctx, &model->grad_acts[l + 1], (size_t)model->max_batch * d->out);
    }
}

static size_t padded(size_t floats) { return (floats + 15) / 16 * 16; }

static void count_factor(void *ctx, float **array, size_t floats) {
    (void)array;
    *(size_t *)ctx += padded(floats);
}

size_t nn_model_factor_floats(const nn_model *model) {
    size_t n = 0;
    each_factor((nn_model *)model, count_factor, &n);
    return n;
}

static void move_factor(void *ctx, float **array, size_t floats) {
    float **next = ctx;
    free(*array);
    *array = *next;
    memset(*array, 0, floats * sizeof(float));
    *next += padded(floats);
}

void nn_model_place_factors(nn_model *model, float *buffer) {
    float *next = buffer;
    each_factor(model, move_factor, &next);
    model->factors = buffer;
    model->factored = true;
}

void nn_model_use_factors(nn_model *model, bool on) { model->factored = on && model->factors; }

static bool placed_factor(const nn_model *model, const float *p) {
    uintptr_t at = (uintptr_t)p, begin = (uintptr_t)model->factors;
    return model->factors && at >= begin && at < begin + nn_model_factor_floats(model) * sizeof(float);
}

float *nn_model_input(nn_model *model) { return model->acts[0]; }

void nn_model_free(nn_model *model) {
    free(model->own_params);
    free(model->own_grads);
    for (int l = 0; l <= NN_MAX_LAYERS; l++) { /* not the factors placed in the caller's buffer */
        if (!placed_factor(model, model->acts[l])) free(model->acts[l]);
        if (!placed_factor(model, model->grad_acts[l])) free(model->grad_acts[l]);
    }
    free(model->probs);
    free(model->targets);
    free(model->conv_ws);
    free(model->dx_ws);
    memset(model, 0, sizeof *model);
}

void nn_model_init(nn_model *model, uint64_t seed) {
    nn_rng rng;
    nn_rng_seed(&rng, seed, 0x1417, 0);
    for (int l = 0; l < model->n_layers; l++) {
        nn_layer *d = &model->layers[l];
        if (!nn_layer_has_params(d)) continue;
        /* a conv's unit sees k*k*in_c inputs and feeds k*k*out_c */
        const nn_conv_geom *g = &d->conv;
        bool conv = d->kind == NN_LAYER_CONV;
        int fan_in = conv ? g->k * g->k * g->in_c : d->in, fan_out = conv ? g->k * g->k * g->out_c : d->out;
        size_t biases = conv ? (size_t)g->out_c : (size_t)d->out;
        /* He for relu keeps the forward variance at 1 through half-rectified units;
         * Xavier balances forward and backward variance for sigmoid/tanh. */
        float std = model->spec.activation == NN_ACT_RELU ? sqrtf(2.0f / fan_in)
                                                          : sqrtf(2.0f / (fan_in + fan_out));
        for (size_t i = 0; i < nn_layer_param_count(d) - biases; i++) d->weight[i] = std * nn_rng_normal(&rng);
        memset(d->bias, 0, biases * sizeof(float));
    }
}

/* ---- running ---- */

const float *nn_model_forward(nn_model *model, int batch) {
    for (int l = 0; l < model->n_layers; l++)
        nn_layer_forward(&model->layers[l], model->acts[l], model->acts[l + 1], batch);
    return model->acts[model->n_layers];
}

static int classes_of(const nn_model *model) { return model->spec.widths[model->spec.n_widths - 1]; }

/* Loss of the last forward pass; leaves probs (softmax) or targets (MSE) ready for backward. */
static double loss_forward(nn_model *model, const uint8_t *labels, int batch) {
    int classes = classes_of(model);
    const float *out = model->acts[model->n_layers];
    if (model->spec.loss == NN_LOSS_SOFTMAX_XENT)
        return nn_softmax_xent_forward(out, labels, model->probs, batch, classes);
    memset(model->targets, 0, (size_t)batch * classes * sizeof(float));
    for (int b = 0; b < batch; b++) model->targets[(size_t)b * classes + labels[b]] = 1.0f;
    memcpy(model->probs, out, (size_t)batch * classes * sizeof(float));
    return nn_mse_forward(out, model->targets, batch, classes);
}

double nn_model_forward_loss(nn_model *model, const uint8_t *labels, int batch) {
    nn_model_forward(model, batch);
    return loss_forward(model, labels, batch);
}

void nn_model_backward(nn_model *model, const uint8_t *labels, int batch, float scale) {
    nn_model_backward_micro(model, labels, batch, scale, 0, 1);
}

/* The loss layer's backward: the gradient of the loss w.r.t. the network's outputs. */
static void loss_backward(nn_model *model, const uint8_t *labels, int batch, float scale) {
    int top = model->n_layers, classes = classes_of(model);
    if (model->spec.loss == NN_LOSS_SOFTMAX_XENT)
        nn_softmax_xent_backward(model->probs, labels, model->grad_acts[top], batch, classes, scale);
    else
        nn_mse_backward(model->acts[top], model->targets, model->grad_acts[top], batch, classes, scale);
}

/* A layer's backward for model->final_from (see model.h): biases, the input gradient
 * (the last read of the weights), then the weight gradient a block of rows at a time
 * from the top, each block handed over as it is made. Layers other than dense (and
 * dense layers whose weight gradient the placed factors make) hand over their whole
 * slice once their input gradient is made. */
static void backward_layer_freeing(nn_model *model, int l, float *dx, int batch, bool accumulate) {
    nn_layer *layer = &model->layers[l];
    const float *x = model->acts[l], *dy = model->grad_acts[l + 1];
    size_t offset = (size_t)(layer->dweight - model->grads);
    if (layer->kind != NN_LAYER_DENSE || model->factored) {
        if (layer->kind == NN_LAYER_DENSE) nn_dense_backward_bias(layer, dy, batch, accumulate);
        else nn_layer_backward_params(layer, x, dy, batch, accumulate);
        if (dx) nn_layer_backward_input(layer, dy, dx, batch);
        model->final_from(model->final_from_ctx, offset);
        return;
    }
    nn_dense_backward_bias(layer, dy, batch, accumulate);
    if (dx) nn_dense_backward_input(layer, dy, dx, batch);
    model->final_from(model->final_from_ctx, offset + (size_t)layer->in * layer->out); /* the biases */
    int rows = nn_dense_weight_block_rows(layer);
    for (int end = layer->in; end > 0; end -= rows) {
        int begin = end > rows ? end - rows : 0;
        nn_dense_backward_weight_rows(layer, x, dy, batch, accumulate, begin, end);
        model->final_from(model->final_from_ctx, offset + (size_t)begin * layer->out);
    }
}

void nn_model_backward_micro(nn_model *model, const uint8_t *labels, int batch, float scale, int micro,
                             int micro_steps) {
    bool accumulate = micro > 0, final = micro == micro_steps - 1;
    int top = model->n_layers;
    loss_backward(model, labels, batch, scale);
    for (int l = top - 1; l >= 0; l--) {
        nn_layer *layer = &model->layers[l];
        float *dx = l > 0 ? model->grad_acts[l] : NULL;
        if (!nn_layer_has_params(layer)) {
            nn_layer_backward(layer, model->acts[l], model->acts[l + 1], model->grad_acts[l + 1], dx, batch);
            continue;
        }
        if (model->final_from && final) {
            backward_layer_freeing(model, l, dx, batch, accumulate);
            continue;
        }
        /* The parameter gradient first, handed over at once: the ranks can sum it
         * while dx and the layers below are computed. With placed factors a dense
         * layer's weight gradient is the caller's to make. */
        if (model->factored && layer->kind == NN_LAYER_DENSE)
            nn_dense_backward_bias(layer, model->grad_acts[l + 1], batch, accumulate);
        else
            nn_layer_backward_params(layer, model->acts[l], model->grad_acts[l + 1], batch, accumulate);
        if (model->slice_final && final)
            model->slice_final(model->slice_final_ctx, (size_t)(layer->dweight - model->grads),
                               nn_layer_param_count(layer));
        if (dx) nn_layer_backward_input(layer, model->grad_acts[l + 1], dx, batch);
    }
}

void nn_model_backward_parts(nn_model *model, const uint8_t *labels, int batch, float scale, int part_rows,
                             nn_slice_final_fn part_done, void *ctx) {
    int top = model->n_layers;
    loss_backward(model, labels, batch, scale);
    for (int l = top - 1; l >= 0; l--) {
        nn_layer *layer = &model->layers[l];
        float *dx = l > 0 ? model->grad_acts[l] : NULL;
        if (!nn_layer_has_params(layer)) {
            nn_layer_backward(layer, model->acts[l], model->acts[l + 1], model->grad_acts[l + 1], dx, batch);
            continue;
        }
        size_t offset = (size_t)(layer->dweight - model->grads), count = nn_layer_param_count(layer);
        for (int r = 0; r < batch; r += part_rows) { /* each part's rows alone, consumed before the next */
            nn_layer_backward_params(layer, model->acts[l] + (size_t)r * layer->in,
                                     model->grad_acts[l + 1] + (size_t)r * layer->out, part_rows, false);
            part_done(ctx, offset, count);
        }
        if (dx) nn_layer_backward_input(layer, model->grad_acts[l + 1], dx, batch);
    }
}

double nn_model_forward_backward(nn_model *model, const uint8_t *labels, int batch, float scale) {
    double loss = nn_model_forward_loss(model, labels, batch);
    nn_model_backward(model, labels, batch, scale);
    return loss;
}

double nn_model_score(nn_model *model, const uint8_t *labels, int batch, long *correct, uint8_t *predicted) {
    double loss = loss_forward(model, labels, batch);
    int classes = classes_of(model);
    long right = 0;
    for (int b = 0; b < batch; b++) {
        const float *p = model->probs + (size_t)b * classes;
        int best = 0;
        for (int c = 1; c < classes; c++) best = p[c] > p[best] ? c : best;
        right += best == labels[b];
        if (predicted) predicted[b] = (uint8_t)best;
    }
    *correct = right;
    return loss;
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

int nn_model_first_nonfinite(const nn_model *model) {
    int k = 0;
    for (int l = 0; l < model->n_layers; l++) {
        const nn_layer *d = &model->layers[l];
        if (d->kind != NN_LAYER_DENSE) continue;
        k++;
        size_t nw = (size_t)d->in * d->out, nb = (size_t)d->out;
        if (!all_finite(d->weight, nw) || !all_finite(d->bias, nb) || !all_finite(d->dweight, nw) ||
            !all_finite(d->dbias, nb))
            return k;
    }
    return 0;
}
