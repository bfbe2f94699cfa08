/* A network: a stack of layers built from a width list, a loss on top, and ONE
 * contiguous buffer for all parameters and ONE for all gradients (one sum over the
 * ranks, one checkpoint dataset). All buffers are allocated once, for a maximum
 * batch. The model knows nothing of ranks or training: who sums its gradients can
 * place them (nn_model_place_grads) and hear when a slice is final (slice_final). */
#ifndef NN_MODEL_H
#define NN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/error.h"
#include "nn/layers.h"

#define NN_MAX_WIDTHS 16
#define NN_MAX_UNITS 1000000 /* the widest a layer may be (--layers, and a checkpoint's widths) */
#define NN_MAX_CONVS 8 /* convolutions and pools in front of the dense layers */
#define NN_MAX_LAYERS (3 * NN_MAX_WIDTHS + 2 * NN_MAX_CONVS) /* dense, activation, dropout per width; conv, activation */

typedef enum nn_activation { NN_ACT_SIGMOID, NN_ACT_RELU, NN_ACT_TANH } nn_activation;
typedef enum nn_loss { NN_LOSS_SOFTMAX_XENT, NN_LOSS_MSE } nn_loss;

/* One layer of a convolutional front (conv_spec.h): a k x k convolution to `channels`
 * channels with zero padding `pad`, followed by the activation; or a 2x2 max-pool. */
typedef struct nn_conv_spec {
    bool pool;
    int k, channels, pad;
} nn_conv_spec;

typedef struct nn_model_spec {
    int n_widths;                 /* input width first, classes last; at least 2 (with convs: the
                                   * first is the flattened output of the last conv or pool) */
    int widths[NN_MAX_WIDTHS];
    nn_activation activation;     /* between dense layers */
    nn_loss loss;                 /* softmax+cross-entropy, or sigmoid outputs + squared error */
    float input_dropout, dropout; /* dropout rates: on the input, after each hidden activation */
    int n_convs;                  /* convolutions and pools before the dense layers; 0: none */
    nn_conv_spec convs[NN_MAX_CONVS];
    int image[3];                 /* with convs: the input image, channels x height x width */
} nn_model_spec;

/* Called during backward as soon as grads[offset, offset + count) is final (a dense
 * layer's weights and bias, top layer first): a caller can start summing it across
 * ranks while the layers below are still computing. */
typedef void (*nn_slice_final_fn)(void *ctx, size_t offset, size_t count);

/* Called during backward (in its last micro-step) each time everything from
 * grads[offset] up is final and the parameters from params[offset] up are no longer
 * read in this step (the layers above done, their input gradients included): the
 * node's ranks can sum and update that part while this rank computes the rest (the
 * node sum begun in backward, nn_reducer_set_early). With it set, a dense layer makes
 * its input gradient first, then its weight gradient in blocks of rows from the top
 * down, calling it after each block: the same values, in an order that frees the
 * weights early. */
typedef void (*nn_final_from_fn)(void *ctx, size_t offset);

typedef struct nn_model {
    nn_model_spec spec;
    int n_layers;
    nn_layer layers[NN_MAX_LAYERS];
    size_t n_params;
    float *params;                  /* all weights and biases, layer by layer */
    float *grads;                   /* same layout as params */
    float *own_grads;               /* the model's own gradient buffer; NULL once placed elsewhere */
    float *own_params;              /* the model's own parameter buffer; NULL once placed elsewhere */
    int max_batch;
    float *acts[NN_MAX_LAYERS + 1]; /* acts[0] input, acts[l+1] output of layer l */
    float *grad_acts[NN_MAX_LAYERS + 1];
    float *probs;                   /* softmax output, or a copy of the outputs for MSE */
    float *targets;                 /* one-hot targets for MSE */
    nn_dropout_key dropout_key;     /* what the dropout layers draw their masks from */
    nn_slice_final_fn slice_final;  /* optional, see above */
    void *slice_final_ctx;
    nn_final_from_fn final_from;    /* optional, see above */
    void *final_from_ctx;
    float *conv_ws;                 /* the conv layers' shared im2col scratch */
    float *dx_ws;                   /* the dense layers' shared input-gradient scratch (small batches) */
    float *factors;                 /* NULL, or where nn_model_place_factors put them */
    bool factored;                  /* backward leaves the dense weight gradients to the factors' owner */
} nn_model;

const char *nn_activation_name(nn_activation a);
int nn_parse_activation(const char *text, nn_activation *out);
const char *nn_loss_name(nn_loss l);
int nn_parse_loss(const char *text, nn_loss *out);

/* NN_ERR_INPUT unless the network takes samples of `dim` values and has `classes`
 * outputs; the message names the data file and `whose` network it is. */
int nn_spec_check_data(const nn_model_spec *spec, int dim, int classes, const char *data, const char *whose,
                       nn_error *err);

/* Values per input sample: widths[0], or with convs the image's c * h * w. */
int nn_spec_input_width(const nn_model_spec *spec);

/* Number of parameters a spec needs (for reports and checkpoint checks). */
size_t nn_spec_param_count(const nn_model_spec *spec);

int nn_model_create(nn_model *model, const nn_model_spec *spec, int max_batch, nn_error *err);
void nn_model_free(nn_model *model);

/* Compute the gradients into `buffer` from now on (n_params floats, owned by the
 * caller: e.g. a shared-memory window that the ranks sum in place). */
void nn_model_place_grads(nn_model *model, float *buffer);

/* Keep the parameters in `buffer` from now on (n_params floats, owned by the caller:
 * the node's one shared copy); it must already hold their values. */
void nn_model_place_params(nn_model *model, float *buffer);

/* The factors of the dense layers' weight gradients (dW = x^T dy): each dense layer's
 * input rows and output gradient rows, for max_batch rows; how many floats they take
 * laid out one after another (each array starting on 64 bytes), layer by layer. */
size_t nn_model_factor_floats(const nn_model *model);
/* Keep the factors in `buffer` (nn_model_factor_floats floats, 64-byte aligned, owned by
 * the caller: memory the node's ranks share) from now on. Backward then leaves the
 * dense layers' weight gradients to the caller, who makes them from the factors (the
 * node's factored sum, factor_sum.h); it still computes their bias gradients and
 * everything else. Only for backward with one micro-step. */
void nn_model_place_factors(nn_model *model, float *buffer);
/* With factors placed: whether backward leaves the dense weight gradients to the
 * caller (true, as placing sets it) or makes them itself; the factors stay where they
 * are either way. Switched between steps, it changes only who makes the gradients. */
void nn_model_use_factors(nn_model *model, bool on);

/* The input rows to fill before a forward pass: batch x nn_spec_input_width floats. */
float *nn_model_input(nn_model *model);

/* Xavier/Glorot (sigmoid, tanh) or He (relu) normal initialisation; biases 0. */
void nn_model_init(nn_model *model, uint64_t seed);

/* Inference on the input rows; returns the outputs. */
const float *nn_model_forward(nn_model *model, int batch);

/* Forward + loss on the input rows: returns the loss summed over the batch and
 * leaves what backward needs. */
double nn_model_forward_loss(nn_model *model, const uint8_t *labels, int batch);

/* Backward after nn_model_forward_loss: overwrites model->grads with
 * scale * d(summed loss)/d(params). With scale = 1/global_batch, summing the ranks'
 * gradients gives the gradient of the mean loss over the global batch. */
void nn_model_backward(nn_model *model, const uint8_t *labels, int batch, float scale);

/* Backward for micro-step `micro` of `micro_steps` (gradient accumulation): micro 0
 * overwrites model->grads, later ones add to them, and only the last hands its
 * slices over (slice_final), since only then are they final. nn_model_backward is
 * micro-step 0 of 1. */
void nn_model_backward_micro(nn_model *model, const uint8_t *labels, int batch, float scale, int micro,
                             int micro_steps);

/* Backward in parts (deterministic mode): as nn_model_backward, but each dense or
 * conv layer's parameter gradient is made for every `part_rows` rows of the batch alone
 * (each part's grads[offset, offset + count) overwritten, then handed to
 * part_done, which must take it before the next part). The rest of backward runs
 * on the whole batch: a row's values do not depend on the other rows. */
void nn_model_backward_parts(nn_model *model, const uint8_t *labels, int batch, float scale, int part_rows,
                             nn_slice_final_fn part_done, void *ctx);

/* Both: returns the summed loss. */
double nn_model_forward_backward(nn_model *model, const uint8_t *labels, int batch, float scale);

/* Max-norm: every hidden unit's incoming weight vector (a column of its dense layer's
 * weights; the output layer's excepted) whose Euclidean norm exceeds `c` is scaled
 * back to norm c. The same arithmetic on every rank, whatever the thread count. */
void nn_model_max_norm(nn_model *model, float c);
/* The same for part `part` of `parts` of every layer's columns (each column's result
 * does not depend on who computes it): the ranks that share one copy of the
 * parameters split the work, and together write every column once. */
void nn_model_max_norm_part(nn_model *model, float c, int part, int parts);

/* The first dense layer (1 = next to the input) with a NaN or infinite weight, bias
 * or gradient; 0 when every value is finite. For messages: it scans everything. */
int nn_model_first_nonfinite(const nn_model *model);

/* Loss (summed) and number of correct argmax predictions for the outputs of the
 * last forward pass; the predictions themselves go to `predicted` unless NULL. */
double nn_model_score(nn_model *model, const uint8_t *labels, int batch, long *correct, uint8_t *predicted);

#endif
