/* Layers: each a forward (inference) and a backward (gradient for the layer below,
 * and for its own parameters) side by side. Activations are stored row-major,
 * one row of `width` floats per sample of the batch. */
#ifndef NN_LAYERS_H
#define NN_LAYERS_H

#include <stdbool.h>
#include <stdint.h>

#include "nn/conv.h"

typedef enum nn_layer_kind {
    NN_LAYER_DENSE,
    NN_LAYER_SIGMOID,
    NN_LAYER_RELU,
    NN_LAYER_TANH,
    NN_LAYER_DROPOUT,
    NN_LAYER_CONV, /* see conv.h */
    NN_LAYER_POOL
} nn_layer_kind;

/* What dropout masks are drawn from: a counter-based generator keyed by (seed, step,
 * dropout layer, global sample index) and nothing else -- not the rank, not the
 * thread -- so a resumed run draws the same masks, and a sample gets the same mask in
 * a step whatever the rank and thread counts. */
typedef struct nn_dropout_key {
    uint64_t seed;
    uint64_t step;            /* the global micro-step */
    const uint64_t *samples;  /* global index (in the training set) of each batch row */
    bool training;            /* false: the identity (inverted dropout needs no rescaling) */
} nn_dropout_key;

typedef struct nn_layer {
    nn_layer_kind kind;
    int in, out;            /* widths of input and output (equal for activations) */
    float *weight, *bias;   /* dense: [in][out] and [out], views into the model's parameters */
    float *dweight, *dbias; /* dense: the same shapes, views into the model's gradients */
    float rate;             /* dropout: the probability of dropping a unit */
    int id;                 /* dropout: which dropout layer (part of the key) */
    const nn_dropout_key *key; /* dropout: the model's key for the current batch */
    nn_conv_geom conv;      /* conv: its geometry; weight [k][k][in_c][out_c], bias [out_c] */
    nn_pool_geom pool;      /* pool: its input image */
    float *ws;              /* conv: the model's im2col scratch */
    float *dx_ws;           /* dense: in x NN_DENSE_DX_ROWS floats for a few rows' input gradient (NULL: none) */
} nn_layer;

/* Up to this many rows a dense layer's input gradient is made transposed, in dx_ws
 * (see nn_dense_backward_input). */
enum { NN_DENSE_DX_ROWS = 40 };

/* Layers with weights and a bias (dense, conv), and how many floats they hold. */
bool nn_layer_has_params(const nn_layer *layer);
size_t nn_layer_param_count(const nn_layer *layer);
/* Backward of either in two halves, as nn_dense_backward_params/_input below. */
void nn_layer_backward_params(const nn_layer *layer, const float *x, const float *dy, int batch, bool accumulate);
void nn_layer_backward_input(const nn_layer *layer, const float *dy, float *dx, int batch);

/* Dense: y = x W + b. */
void nn_dense_forward(const nn_layer *layer, const float *x, float *y, int batch);
/* Overwrites dweight/dbias with the gradient for this batch; dx may be NULL when
 * nothing below needs it (the first layer). */
void nn_dense_backward(const nn_layer *layer, const float *x, const float *dy, float *dx, int batch);
/* Its two halves: the parameter gradient, and the gradient for the layer below
 * (which needs only the weights, so it can run while the former is reduced). */
void nn_dense_backward_params(const nn_layer *layer, const float *x, const float *dy, int batch, bool accumulate);
void nn_dense_backward_input(const nn_layer *layer, const float *dy, float *dx, int batch);
/* The bias half of the parameter gradient alone (the weights' made elsewhere: factor_sum.h). */
void nn_dense_backward_bias(const nn_layer *layer, const float *dy, int batch, bool accumulate);
/* The weight half for the layer's inputs [begin, end) alone (rows of dW): the same
 * values as the whole product's. nn_dense_weight_block_rows: how many rows a block
 * when the weight gradient is handed over in blocks (model.h, final_from). */
void nn_dense_backward_weight_rows(const nn_layer *layer, const float *x, const float *dy, int batch, bool accumulate,
                                   int begin, int end);
int nn_dense_weight_block_rows(const nn_layer *layer);

/* Element-wise activations. Backward takes the forward OUTPUT y (cheaper than x
 * for all three) and may run in place (dx == dy). n = batch * width. */
void nn_sigmoid_forward(const float *x, float *y, long n);
void nn_sigmoid_backward(const float *y, const float *dy, float *dx, long n);
void nn_relu_forward(const float *x, float *y, long n);
void nn_relu_backward(const float *y, const float *dy, float *dx, long n);
void nn_tanh_forward(const float *x, float *y, long n);
void nn_tanh_backward(const float *y, const float *dy, float *dx, long n);

/* Inverted dropout: y = x * m / (1 - rate), m = 0 with probability rate, else 1; the
 * backward multiplies by the same mask, drawn again from the key (nothing stored).
 * Outside training both are the identity. */
void nn_dropout_forward(const nn_layer *layer, const float *x, float *y, int batch);
void nn_dropout_backward(const nn_layer *layer, const float *dy, float *dx, int batch);
/* 64 random bits for (key, id, batch row): what a dropout layer (id 0, 1, ...) draws
 * its row's mask from; other users of the key (the image shift) take other ids. */
uint64_t nn_dropout_row_key(const nn_dropout_key *key, int id, int row);
/* The factor for unit `unit` of batch row `row`: 0 or 1 / (1 - rate). */
float nn_dropout_factor(const nn_dropout_key *key, int id, float rate, int row, int unit);

/* Run any layer of the stack. */
void nn_layer_forward(const nn_layer *layer, const float *x, float *y, int batch);
void nn_layer_backward(const nn_layer *layer, const float *x, const float *y, const float *dy,
                       float *dx, int batch);

/* Softmax with cross-entropy on logits [batch][classes]: writes the probabilities
 * and returns the SUM of -log p(label) over the batch. */
double nn_softmax_xent_forward(const float *logits, const uint8_t *labels, float *probs,
                               int batch, int classes);
/* dlogits = scale * (probs - onehot(label)): the gradient of scale * (summed loss). */
void nn_softmax_xent_backward(const float *probs, const uint8_t *labels, float *dlogits,
                              int batch, int classes, float scale);

/* Mean-squared error, summed: returns sum over the batch of sum_j (y - t)^2 / 2. */
double nn_mse_forward(const float *y, const float *target, int batch, int width);
/* dy = scale * (y - t). */
void nn_mse_backward(const float *y, const float *target, float *dy, int batch, int width,
                     float scale);

#endif
