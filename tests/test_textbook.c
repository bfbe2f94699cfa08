/* The classic textbook cases, run through nntrain's own layers, losses and optimizer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_run.h"
#include "nn/layers.h"
#include "nn/model.h"
#include "nn/optim.h"

/* A threshold neuron: fires when w.x + b > 0. */
static int neuron_fires(float w1, float w2, float b, float x1, float x2) {
    float w[2] = {w1, w2}, x[2] = {x1, x2}, y;
    nn_layer dense = {.kind = NN_LAYER_DENSE, .in = 2, .out = 1, .weight = w, .bias = &b};
    nn_dense_forward(&dense, x, &y, 1);
    return y > 0.0f;
}

static void test_and_neuron(void) {
    /* weights 0.5, 0.5 and threshold 0.7 compute AND */
    for (int a = 0; a <= 1; a++)
        for (int b = 0; b <= 1; b++) CU_ASSERT_EQUAL(neuron_fires(0.5f, 0.5f, -0.7f, a, b), a && b);
}

static void test_no_single_neuron_computes_xor(void) {
    /* Search a grid of weights and thresholds: none matches XOR on all four inputs
     * (it cannot: XOR's true points are not linearly separable from its false ones). */
    int matches = 0;
    for (float w1 = -3; w1 <= 3; w1 += 0.1f)
        for (float w2 = -3; w2 <= 3; w2 += 0.1f)
            for (float b = -3; b <= 3; b += 0.1f) {
                int ok = 1;
                for (int x = 0; x < 4 && ok; x++)
                    ok = neuron_fires(w1, w2, b, x & 1, x >> 1) == ((x & 1) ^ (x >> 1));
                matches += ok;
            }
    CU_ASSERT_EQUAL(matches, 0);
}

/* Full-batch training on the four XOR points; returns how many are classified right. */
static long train_xor(const int *widths, int n_widths, nn_activation act, uint64_t seed) {
    nn_model_spec spec = {.n_widths = n_widths, .activation = act, .loss = NN_LOSS_SOFTMAX_XENT};
    memcpy(spec.widths, widths, n_widths * sizeof *widths);
    nn_model m;
    nn_sgd sgd;
    nn_error err;
    if (nn_model_create(&m, &spec, 4, &err) || nn_sgd_create(&sgd, m.n_params, 0.9f, 0.0f, &err)) return -1;
    nn_model_init(&m, seed);
    const float inputs[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    const uint8_t labels[4] = {0, 1, 1, 0};
    for (int step = 0; step < 2000; step++) {
        memcpy(nn_model_input(&m), inputs, sizeof inputs);
        nn_model_forward_backward(&m, labels, 4, 0.25f);
        nn_sgd_step(&sgd, m.params, m.grads, 0.1f);
    }
    memcpy(nn_model_input(&m), inputs, sizeof inputs);
    nn_model_forward(&m, 4);
    long correct;
    nn_model_score(&m, labels, 4, &correct, NULL);
    nn_sgd_free(&sgd);
    nn_model_free(&m);
    return correct;
}

static void test_linear_model_cannot_learn_xor(void) {
    const int linear[] = {2, 2};
    for (uint64_t seed = 1; seed <= 3; seed++) CU_ASSERT(train_xor(linear, 2, NN_ACT_TANH, seed) <= 3);
}

static void test_hidden_layer_learns_xor(void) {
    const int hidden[] = {2, 4, 2};
    for (uint64_t seed = 1; seed <= 3; seed++) {
        CU_ASSERT_EQUAL(train_xor(hidden, 3, NN_ACT_TANH, seed), 4);
        CU_ASSERT_EQUAL(train_xor(hidden, 3, NN_ACT_SIGMOID, seed), 4);
    }
}

static void test_linear_regression_by_hand(void) {
    /* y = w x + b from w = 0.5, b = 0.6, loss (y - t)^2 / 2, plain SGD with rate 0.01 */
    float params[2] = {0.5f, 0.6f}, grads[2], y, dy;
    nn_layer unit = {.kind = NN_LAYER_DENSE, .in = 1, .out = 1, .weight = &params[0], .bias = &params[1],
                     .dweight = &grads[0], .dbias = &grads[1]};
    nn_sgd sgd;
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_sgd_create(&sgd, 2, 0.0f, 0.0f, &err), NN_OK);
    const float xs[2] = {0.0f, 1.0f}, ts[2] = {1.0f, 2.9f};
    for (int i = 0; i < 2; i++) {
        nn_dense_forward(&unit, &xs[i], &y, 1);
        nn_mse_backward(&y, &ts[i], &dy, 1, 1, 1.0f);
        nn_dense_backward(&unit, &xs[i], &dy, NULL, 1);
        nn_sgd_step(&sgd, params, grads, 0.01f);
        if (i == 0) {
            CU_ASSERT_DOUBLE_EQUAL(params[0], 0.5, 1e-6);
            CU_ASSERT_DOUBLE_EQUAL(params[1], 0.604, 1e-6);
        }
    }
    CU_ASSERT_DOUBLE_EQUAL(params[0], 0.51796, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(params[1], 0.62196, 1e-6);
    nn_sgd_free(&sgd);
}

static void test_momentum_and_weight_decay(void) {
    float w = 1.0f, g = 0.5f;
    nn_sgd sgd;
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_sgd_create(&sgd, 1, 0.9f, 0.1f, &err), NN_OK);
    nn_sgd_step(&sgd, &w, &g, 0.1f); /* v = 0.5 + 0.1 = 0.6, w = 1 - 0.06 */
    CU_ASSERT_DOUBLE_EQUAL(w, 0.94, 1e-6);
    nn_sgd_step(&sgd, &w, &g, 0.1f); /* v = 0.54 + 0.5 + 0.094 = 1.134 */
    CU_ASSERT_DOUBLE_EQUAL(w, 0.94 - 0.1134, 1e-6);
    nn_sgd_free(&sgd);
    CU_ASSERT_DOUBLE_EQUAL(nn_schedule_lr(NN_SCHEDULE_COSINE, 0.2f, 0, 100), 0.2, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(nn_schedule_lr(NN_SCHEDULE_COSINE, 0.2f, 50, 100), 0.1, 1e-7);
    CU_ASSERT_EQUAL(nn_schedule_lr(NN_SCHEDULE_CONSTANT, 0.2f, 50, 100), 0.2f);
    /* warm-up over 10 steps, then the cosine over the other 90 */
    CU_ASSERT_DOUBLE_EQUAL(nn_schedule_lr_warm(NN_SCHEDULE_COSINE, 0.2f, 0, 100, 10), 0.02, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(nn_schedule_lr_warm(NN_SCHEDULE_COSINE, 0.2f, 4, 100, 10), 0.1, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(nn_schedule_lr_warm(NN_SCHEDULE_COSINE, 0.2f, 10, 100, 10), 0.2, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(nn_schedule_lr_warm(NN_SCHEDULE_COSINE, 0.2f, 55, 100, 10), 0.1, 1e-7);
    CU_ASSERT_EQUAL(nn_schedule_lr_warm(NN_SCHEDULE_COSINE, 0.2f, 50, 100, 0), nn_schedule_lr(NN_SCHEDULE_COSINE, 0.2f, 50, 100));
    /* momentum 0.5 -> 0.99 over 100 steps, then held */
    CU_ASSERT_DOUBLE_EQUAL(nn_momentum_ramp(0.5f, 0.99f, 0, 100), 0.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(nn_momentum_ramp(0.5f, 0.99f, 50, 100), 0.745, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(nn_momentum_ramp(0.5f, 0.99f, 500, 100), 0.99, 1e-7);
    CU_ASSERT_EQUAL(nn_momentum_ramp(0.9f, 0.99f, 50, 0), 0.9f);
}

/* The divergence detectors: an SGD step that leaves a weight NaN or infinite says
 * so (on a large buffer too, where the update runs in parallel chunks), and the
 * model names the first dense layer holding a non-finite value. */
static void test_nonfinite_detectors(void) {
    enum { N = 200000 };
    float *w = calloc(N, sizeof(float)), *g = calloc(N, sizeof(float));
    nn_sgd sgd;
    nn_error err;
    CU_ASSERT_FATAL(w && g);
    CU_ASSERT_EQUAL_FATAL(nn_sgd_create(&sgd, N, 0.9f, 0.0f, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_sgd_step(&sgd, w, g, 0.1f), 0);
    g[N - 7] = NAN;
    CU_ASSERT_NOT_EQUAL(nn_sgd_step(&sgd, w, g, 0.1f), 0);
    g[N - 7] = 0.0f;
    w[N - 7] = 0.0f;
    sgd.velocity[N - 7] = 0.0f;
    g[3] = 3e38f; /* finite, but the step overflows to infinity */
    CU_ASSERT_NOT_EQUAL(nn_sgd_step(&sgd, w, g, 100.0f), 0);
    nn_sgd_free(&sgd);
    free(w);
    free(g);

    nn_model m;
    nn_model_spec spec = {.n_widths = 4, .widths = {3, 4, 5, 2}};
    CU_ASSERT_EQUAL_FATAL(nn_model_create(&m, &spec, 1, &err), NN_OK);
    nn_model_init(&m, 1);
    CU_ASSERT_EQUAL(nn_model_first_nonfinite(&m), 0);
    m.layers[2].bias[1] = INFINITY; /* layers: dense, act, dense, act, dense */
    CU_ASSERT_EQUAL(nn_model_first_nonfinite(&m), 2);
    m.layers[0].dweight[5] = NAN;
    CU_ASSERT_EQUAL(nn_model_first_nonfinite(&m), 1);
    nn_model_free(&m);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"a neuron with weights 0.5, 0.5 and threshold 0.7 computes AND", test_and_neuron},
        {"no single threshold neuron computes XOR", test_no_single_neuron_computes_xor},
        {"a linear classifier does not learn XOR", test_linear_model_cannot_learn_xor},
        {"a network with a hidden layer learns XOR", test_hidden_layer_learns_xor},
        {"linear regression by hand: b = 0.604, then w = 0.51796, b = 0.62196", test_linear_regression_by_hand},
        {"momentum, weight decay and the cosine schedule", test_momentum_and_weight_decay},
        {"non-finite weights are detected, and the layer named", test_nonfinite_detectors},
        CU_TEST_INFO_NULL};
    return nn_run_suite("textbook", tests);
}
