/* Layers: each a forward (inference) and a backward (gradient for the layer below,
 * and for its own parameters) side by side. Activations are stored row-major,
 * one row of `width` floats per sample of the batch. */
#ifndef NN_LAYERS_H
#define NN_LAYERS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum nn_layer_kind {
    NN_LAYER_DENSE,
    NN_LAYER_SIGMOID,
    NN_LAYER_RELU,
    NN_LAYER_TANH
} nn_layer_kind;

typedef struct nn_layer {
    nn_layer_kind kind;
    int in, out;            /* widths of input and output (equal for activations) */
    float *weight, *bias;   /* dense: [in][out] and [out], views into the model's parameters */
    float *dweight, *dbias; /* dense: the same shapes, views into the model's gradients */
} nn_layer;

/* Dense: y = x W + b. */
void nn_dense_forward(const nn_layer *layer, const float *x, float *y, int batch);
/* Overwrites dweight/dbias with the gradient for this batch; dx may be NULL when
 * nothing below needs it (the first layer). */
void nn_dense_backward(const nn_layer *layer, const float *x, const float *dy, float *dx, int batch);
/* Its two halves: the parameter gradient, and the gradient for the layer below
 * (which needs only the weights, so it can run while the former is reduced). */
void nn_dense_backward_params(const nn_layer *layer, const float *x, const float *dy, int batch, bool accumulate);
void nn_dense_backward_input(const nn_layer *layer, const float *dy, float *dx, int batch);

/* Element-wise activations. Backward takes the forward OUTPUT y (cheaper than x
 * for all three) and may run in place (dx == dy). n = batch * width. */
void nn_sigmoid_forward(const float *x, float *y, long n);
void nn_sigmoid_backward(const float *y, const float *dy, float *dx, long n);
void nn_relu_forward(const float *x, float *y, long n);
void nn_relu_backward(const float *y, const float *dy, float *dx, long n);
void nn_tanh_forward(const float *x, float *y, long n);
void nn_tanh_backward(const float *y, const float *dy, float *dx, long n);

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
