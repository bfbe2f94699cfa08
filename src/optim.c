#include "nn/optim.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/fastmath.h"
#include "nn/names.h"

int nn_sgd_create(nn_sgd *sgd, size_t n, float momentum, float weight_decay, nn_error *err) {
    sgd->momentum = momentum;
    sgd->weight_decay = weight_decay;
    sgd->n = n;
    sgd->velocity = sgd->own_velocity = calloc(n ? n : 1, sizeof(float));
    if (!sgd->velocity) return nn_fail(err, NN_ERR_RUNTIME, "out of memory for the optimizer state");
    return NN_OK;
}

void nn_sgd_free(nn_sgd *sgd) {
    free(sgd->own_velocity);
    memset(sgd, 0, sizeof *sgd);
}

/* restrict: the three buffers never overlap, so the loop vectorises. Returns
 * non-zero when an updated weight is not finite (exponent bits all ones): an
 * integer OR, so the check costs almost nothing and keeps the loop vectorised. */
static uint32_t sgd_range(float *restrict w, float *restrict v, const float *restrict g, float lr, float mu, float wd,
                          long begin, long end) {
    uint32_t bad = 0;
    for (long i = begin; i < end; i++) {
        v[i] = mu * v[i] + g[i] + wd * w[i];
        w[i] -= lr * v[i];
        bad |= nn_nonfinite_bits(w[i]);
    }
    return bad;
}

int nn_sgd_step_range(nn_sgd *sgd, float *params, const float *grads, float lr, size_t offset, size_t count) {
    const long begin = (long)offset, end = (long)(offset + count), chunk = 16384;
    if (end - begin <= 4 * chunk)
        return (int)sgd_range(params, sgd->velocity, grads, lr, sgd->momentum, sgd->weight_decay, begin, end);
    uint32_t bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad)
    for (long c = begin; c < end; c += chunk)
        bad |= sgd_range(params, sgd->velocity, grads, lr, sgd->momentum, sgd->weight_decay, c, c + chunk < end ? c + chunk : end);
    return (int)bad;
}

int nn_sgd_step_sums(nn_sgd *sgd, float *params, const float *sums, float lr, size_t offset, size_t count) {
    return (int)sgd_range(params + offset, sgd->velocity + offset, sums, lr, sgd->momentum, sgd->weight_decay, 0,
                          (long)count);
}

void nn_sgd_place_velocity(nn_sgd *sgd, float *buffer) {
    free(sgd->own_velocity);
    sgd->own_velocity = NULL;
    sgd->velocity = buffer;
}

int nn_sgd_step(nn_sgd *sgd, float *params, const float *grads, float lr) {
    return nn_sgd_step_range(sgd, params, grads, lr, 0, sgd->n);
}

float nn_schedule_lr(nn_schedule schedule, float base_lr, long step, long total_steps) {
    if (schedule == NN_SCHEDULE_CONSTANT || total_steps <= 0) return base_lr;
    double progress = (double)step / (double)total_steps;
    if (progress > 1.0) progress = 1.0;
    return (float)(0.5 * base_lr * (1.0 + cos(3.14159265358979323846 * progress)));
}

float nn_schedule_lr_warm(nn_schedule schedule, float base_lr, long step, long total_steps, long warmup_steps) {
    if (warmup_steps <= 0) return nn_schedule_lr(schedule, base_lr, step, total_steps);
    if (step < warmup_steps) return base_lr * (float)(step + 1) / (float)warmup_steps;
    return nn_schedule_lr(schedule, base_lr, step - warmup_steps, total_steps - warmup_steps);
}

float nn_momentum_ramp(float start, float end, long step, long ramp_steps) {
    if (ramp_steps <= 0) return start;
    if (step >= ramp_steps) return end;
    return start + (end - start) * (float)step / (float)ramp_steps;
}

static const char *const schedule_names[] = {"constant", "cosine"};

const char *nn_schedule_name(nn_schedule s) { return schedule_names[s]; }

int nn_parse_schedule(const char *text, nn_schedule *out) {
    int i = nn_name_index(text, schedule_names, NN_COUNT_OF(schedule_names));
    if (i < 0) return NN_ERR_INPUT;
    *out = (nn_schedule)i;
    return NN_OK;
}
