/* Data augmentation: random translations of the training images (--shift S).
 * Each image of a batch moves by (dx, dy), each uniform in [-S, S], drawn from the
 * batch's dropout key (seed, step, the sample's global index) and nothing else, so a
 * sample moves the same way at any rank count, thread count and after a resume, as
 * dropout's masks do; --deterministic keeps its bits. Pixels moved in from outside
 * are 0 (the datasets' background: x / 255 of a black pixel). */
#ifndef NN_AUGMENT_H
#define NN_AUGMENT_H

#include "nn/layers.h"

/* The largest --shift: a translation beyond it leaves too little of a 28x28 digit. */
#define NN_SHIFT_MAX 8

/* The move of batch row `row`: *dx, *dy in [-shift, shift]. */
void nn_shift_draw(const nn_dropout_key *key, int row, int shift, int *dx, int *dy);

/* Translates each of the n images (image = {channels, height, width}, CHW, one after
 * another in x) in place by its drawn move. */
void nn_shift_images(float *x, int n, const int image[3], int shift, const nn_dropout_key *key);

#endif
