/* Networks with a convolutional front: the --layers syntax, fitting the front to
 * the data's images, and laying out its layers in a model.
 *
 * Syntax: comma-separated, convolutions and pools first, then the dense widths as
 * before, classes last (the first dense layer's input is the flattened output of
 * the front, so no width is written for it):
 *   [CxHxW,] convKxKxC[pP] | pool2 , ... , W1, ..., classes
 *   conv5x5x32p2,pool2,conv5x5x64p2,pool2,1024,10
 * convKxKxC: a K x K convolution (stride 1) to C channels, zero padding P (default
 * 0), then the network's activation; pool2: 2x2 max-pooling, stride 2. The input
 * image is the data's (trailing dims [H,W] -> 1xHxW, [C,H,W] -> CxHxW) unless a
 * leading CxHxW (or HxW) gives it. A list of numbers alone is the dense network it
 * always was (input width first). */
#ifndef NN_CONV_SPEC_H
#define NN_CONV_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "nn/error.h"
#include "nn/layers.h"
#include "nn/model.h"

/* True when `text` uses the convolutional syntax (holds a letter). */
bool nn_spec_text_is_conv(const char *text);

/* Parses the syntax above into spec (widths[0] stays 0 until nn_spec_fit_image);
 * one-line NN_ERR_INPUT messages naming `name` and the offending item. */
int nn_spec_parse_conv(const char *name, const char *text, nn_model_spec *spec, nn_error *err);

/* Fits a spec's front to the data (samples of `dim` values, images `image` = c, h,
 * w): takes the data's image unless the spec gives one (then c * h * w must be dim),
 * checks every layer fits its input (a kernel no larger than the padded image, a
 * pool at least 2x2) and sets widths[0] to the flattened output. `whose` names the
 * network in messages ("--layers"). Nothing to do without convs. */
int nn_spec_fit_image(nn_model_spec *spec, const int image[3], int dim, const char *data, const char *whose,
                      nn_error *err);

/* Whether `given` (from --layers, perhaps not yet fitted to data) describes the
 * network of `saved` (a checkpoint's): the same convolutions and pools, the same
 * image if it names one, the same dense widths. */
bool nn_spec_same_layers(const nn_model_spec *given, const nn_model_spec *saved);

/* Parameters of the front (weights and biases of its convolutions). */
size_t nn_spec_conv_param_count(const nn_model_spec *spec);

/* Lays out the front from layers[0]: conv, activation, ..., pool, with its weights
 * and biases at params + *offset (grads likewise; both may be NULL), *offset
 * advanced past them. Returns the number of layers; *ws_per_sample is the largest
 * im2col scratch one sample needs (the model allocates it and sets each conv's ws). */
int nn_spec_build_convs(const nn_model_spec *spec, nn_layer_kind activation, nn_layer *layers, float *params,
                        float *grads, size_t *offset, size_t *ws_per_sample);

/* The front as text, "1x28x28,conv5x5x32p2,pool2", for logs; false (and "")
 * without convs. */
bool nn_spec_conv_text(const nn_model_spec *spec, char *out, size_t cap);

#endif
