/* Stochastic gradient descent with momentum and weight decay, over the model's flat
 * parameter buffer, and the learning-rate schedule. */
#ifndef NN_OPTIM_H
#define NN_OPTIM_H

#include <stddef.h>

#include "nn/error.h"

typedef enum nn_schedule { NN_SCHEDULE_CONSTANT, NN_SCHEDULE_COSINE } nn_schedule;

typedef struct nn_sgd {
    float momentum, weight_decay;
    size_t n;
    float *velocity; /* zero at the start; part of the state a checkpoint must keep */
    float *own_velocity; /* velocity when nn_sgd_create allocated it (else NULL) */
} nn_sgd;

int nn_sgd_create(nn_sgd *sgd, size_t n, float momentum, float weight_decay, nn_error *err);
void nn_sgd_free(nn_sgd *sgd);

/* v = momentum * v + (g + weight_decay * w);  w -= lr * v.
 * With momentum 0 and weight decay 0 this is plain w -= lr * g. Returns non-zero
 * when any updated weight is NaN or infinite (training has diverged). */
int nn_sgd_step(nn_sgd *sgd, float *params, const float *grads, float lr);
/* The same step on elements [offset, offset + count) only (a rank's share when the
 * ranks of a node split the update); the velocity outside it is left alone. */
int nn_sgd_step_range(nn_sgd *sgd, float *params, const float *grads, float lr, size_t offset, size_t count);
/* The same with the gradient of [offset, offset + count) in sums[0, count). */
int nn_sgd_step_sums(nn_sgd *sgd, float *params, const float *sums, float lr, size_t offset, size_t count);
/* The velocity lives in `buffer` (holding the same values) from now on. */
void nn_sgd_place_velocity(nn_sgd *sgd, float *buffer);

/* Learning rate for a step: constant, or cosine-annealed from base_lr at step 0 to 0
 * at total_steps. */
float nn_schedule_lr(nn_schedule schedule, float base_lr, long step, long total_steps);

/* The same after a linear warm-up: base_lr * (step + 1) / warmup_steps for the first
 * warmup_steps steps, then the schedule over the steps that remain. */
float nn_schedule_lr_warm(nn_schedule schedule, float base_lr, long step, long total_steps, long warmup_steps);

/* Momentum ramped linearly from `start` at step 0 to `end` at ramp_steps, then held
 * (ramp_steps 0: `start` throughout). */
float nn_momentum_ramp(float start, float end, long step, long ramp_steps);
const char *nn_schedule_name(nn_schedule s);
int nn_parse_schedule(const char *text, nn_schedule *out);

#endif
