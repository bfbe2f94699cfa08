/* Finite-difference gradient checks: every layer's backward, the losses, and whole
 * networks, against central differences of their forward passes. */
#include <float.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cunit_run.h"
#include "nn/fastmath.h"
#include "nn/augment.h"
#include "nn/layers.h"
#include "nn/model.h"
#include "test_util.h"

#define EPS 1e-2f
/* Smaller for whole networks, so a step rarely crosses a relu kink inside. */
#define NET_EPS 1e-3f
#define TOL 2e-2 /* relative, with a floor of 1e-2 on the magnitude: float forward passes */

/* Probe loss: sum of y * r in double, so that dL/dy = r. */
/* Central difference of probe(forward(...)) with respect to v[i]. */
typedef struct fd_ctx {
    nn_layer *layer;
    const float *x;
    float *y;
    const float *r;
    int batch;
} fd_ctx;

static double layer_loss(void *ctx) {
    fd_ctx *c = ctx;
    nn_layer_forward(c->layer, c->x, c->y, c->batch);
    return probe(c->y, c->r, (size_t)c->batch * c->layer->out);
}

static void check_against_fd(fd_ctx *c, float *v, const float *analytic, size_t n, const char *what) {
    double worst = worst_fd_error(layer_loss, c, v, analytic, n, EPS);
    if (worst > TOL) printf("\n  %s: worst relative error %g\n", what, worst);
    CU_ASSERT(worst <= TOL);
}

static void check_layer(nn_layer_kind kind) {
    nn_rng rng;
    nn_rng_seed(&rng, 100 + kind, 0, 0);
    int batch = 3, in = 5, out = kind == NN_LAYER_DENSE ? 4 : 5;
    nn_layer layer = {.kind = kind, .in = in, .out = out};
    float *x = random_floats(&rng, (size_t)batch * in, -2, 2);
    if (kind == NN_LAYER_RELU) /* keep inputs away from the kink */
        for (int i = 0; i < batch * in; i++) x[i] += x[i] > 0 ? 0.1f : -0.1f;
    float *w = random_floats(&rng, (size_t)in * out, -1, 1), *b = random_floats(&rng, out, -1, 1);
    float dw[20], db[4];
    layer.weight = w; layer.bias = b; layer.dweight = dw; layer.dbias = db;
    float y[15], dx[15];
    float *r = random_floats(&rng, (size_t)batch * out, -1, 1);
    nn_layer_forward(&layer, x, y, batch);
    nn_layer_backward(&layer, x, y, r, dx, batch);
    fd_ctx c = {&layer, x, y, r, batch};
    check_against_fd(&c, x, dx, (size_t)batch * in, "dx");
    if (kind == NN_LAYER_DENSE) {
        check_against_fd(&c, w, dw, (size_t)in * out, "dweight");
        check_against_fd(&c, b, db, out, "dbias");
    }
    free(x); free(w); free(b); free(r);
}

static void test_dense(void) { check_layer(NN_LAYER_DENSE); }
static void test_sigmoid(void) { check_layer(NN_LAYER_SIGMOID); }
static void test_relu(void) { check_layer(NN_LAYER_RELU); }
static void test_tanh(void) { check_layer(NN_LAYER_TANH); }

static void test_activation_values(void) {
    float x[3] = {-1, 0, 2}, y[3];
    nn_sigmoid_forward(x, y, 3);
    CU_ASSERT_DOUBLE_EQUAL(y[1], 0.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(y[2], 1 / (1 + exp(-2.0)), 1e-6);
    nn_relu_forward(x, y, 3);
    CU_ASSERT(y[0] == 0 && y[1] == 0 && y[2] == 2);
    nn_tanh_forward(x, y, 3);
    CU_ASSERT_DOUBLE_EQUAL(y[0], tanh(-1.0), 1e-6);
}

static void test_fast_exp(void) {
    /* within 4 ulp of the exact value over the whole clamped range */
    double worst = 0;
    for (double x = -87.0; x <= 88.0; x += 0.001) {
        double exact = exp((double)(float)x), got = nn_expf((float)x);
        double rel = fabs(got - exact) / exact;
        worst = rel > worst || isnan(rel) ? rel : worst;
    }
    printf("\n  nn_expf: worst relative error %.3g (float eps %.3g)\n", worst, (double)FLT_EPSILON);
    CU_ASSERT(worst < 4 * FLT_EPSILON);
    CU_ASSERT(isfinite(nn_expf(1000.0f)) && nn_expf(1000.0f) > 1e38f);
    CU_ASSERT(nn_expf(-1000.0f) >= 0.0f && nn_expf(-1000.0f) < 1e-37f);
    float x[4] = {-100, -20, 20, 100}, y[4];
    nn_sigmoid_forward(x, y, 4); /* saturates cleanly, no NaN */
    CU_ASSERT(y[0] >= 0 && y[0] < 1e-30 && y[1] < 3e-9 && y[2] == 1.0f && y[3] == 1.0f);
}

static void test_softmax_xent(void) {
    nn_rng rng;
    nn_rng_seed(&rng, 5, 0, 0);
    int batch = 4, classes = 6;
    float *z = random_floats(&rng, batch * classes, -3, 3), p[24], d[24];
    uint8_t labels[4] = {0, 5, 2, 2};
    double loss = nn_softmax_xent_forward(z, labels, p, batch, classes);
    for (int b = 0; b < batch; b++) {
        double s = 0;
        for (int c = 0; c < classes; c++) s += p[b * classes + c];
        CU_ASSERT_DOUBLE_EQUAL(s, 1.0, 1e-6);
    }
    double ref = 0;
    for (int b = 0; b < batch; b++) ref -= log(p[b * classes + labels[b]]);
    CU_ASSERT_DOUBLE_EQUAL(loss, ref, 1e-5);
    nn_softmax_xent_backward(p, labels, d, batch, classes, 0.5f);
    for (int i = 0; i < batch * classes; i++) {
        float saved = z[i];
        z[i] = saved + EPS;
        double up = nn_softmax_xent_forward(z, labels, p, batch, classes);
        z[i] = saved - EPS;
        double down = nn_softmax_xent_forward(z, labels, p, batch, classes);
        z[i] = saved;
        CU_ASSERT_DOUBLE_EQUAL(0.5 * (up - down) / (2 * EPS), d[i], 2e-3);
    }
    /* huge logits: no overflow, loss finite */
    float big[2] = {1000, -1000}, pb[2];
    uint8_t l1 = 1;
    double lb = nn_softmax_xent_forward(big, &l1, pb, 1, 2);
    CU_ASSERT(isfinite(lb) && fabs(lb - 2000) < 1e-3);
    free(z);
}

static void test_mse(void) {
    float y[4] = {0.5f, 1.0f, -2.0f, 3.0f}, t[4] = {1, 1, 0, 0}, d[4];
    CU_ASSERT_DOUBLE_EQUAL(nn_mse_forward(y, t, 2, 2), 0.5 * (0.25 + 0 + 4 + 9), 1e-6);
    nn_mse_backward(y, t, d, 2, 2, 2.0f);
    CU_ASSERT(d[0] == -1.0f && d[1] == 0.0f && d[2] == -4.0f && d[3] == 6.0f);
}

/* Whole network: the flat gradient buffer against central differences of the
 * summed loss, for every parameter. */
/* The worst relative error of the model's gradient (backward, at its current input)
 * against central differences of the summed loss, over every parameter. */
static double worst_gradient_error(nn_model *m, const uint8_t *labels, int batch) {
    nn_model_forward_backward(m, labels, batch, 1.0f);
    float *analytic = malloc(m->n_params * sizeof(float));
    memcpy(analytic, m->grads, m->n_params * sizeof(float));
    double worst = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        float saved = m->params[i];
        long correct;
        m->params[i] = saved + NET_EPS;
        nn_model_forward(m, batch);
        double up = nn_model_score(m, labels, batch, &correct, NULL);
        m->params[i] = saved - NET_EPS;
        nn_model_forward(m, batch);
        double down = nn_model_score(m, labels, batch, &correct, NULL);
        m->params[i] = saved;
        double fd = (up - down) / (2 * NET_EPS);
        double rel = fabs(fd - analytic[i]) / (fabs(fd) + 1e-2);
        worst = rel > worst || isnan(rel) ? rel : worst; /* a NaN gradient is the worst, not skipped */
    }
    free(analytic);
    return worst;
}

static void check_network(nn_activation act, nn_loss loss) {
    nn_model_spec spec = {.n_widths = 4, .widths = {6, 5, 4, 3}, .activation = act, .loss = loss};
    nn_model m;
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_model_create(&m, &spec, 4, &err), NN_OK);
    nn_model_init(&m, 11);
    nn_rng rng;
    nn_rng_seed(&rng, 12, act, loss);
    int batch = 4;
    for (int i = 0; i < batch * 6; i++) nn_model_input(&m)[i] = nn_rng_uniform(&rng);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += 0.1f * nn_rng_normal(&rng); /* biases non-zero */
    uint8_t labels[4] = {0, 2, 1, 2};
    double worst = worst_gradient_error(&m, labels, batch);
    if (worst > TOL) printf("\n  network %s/%s: worst relative error %g\n", nn_activation_name(act), nn_loss_name(loss), worst);
    CU_ASSERT(worst <= TOL);
    nn_model_free(&m);
}

static void test_network_gradients(void) {
    for (int a = 0; a < 3; a++)
        for (int l = 0; l < 2; l++) check_network((nn_activation)a, (nn_loss)l);
}

/* Gradient accumulation: two micro-batches of 3 summed by nn_model_backward_micro
 * equal one batch of 6, and only the last micro-step hands its slices over. */
static int slices_handed;
static void count_slice(void *ctx, size_t offset, size_t count) { (void)ctx, (void)offset, (void)count, slices_handed++; }

static void test_micro_steps(void) {
    nn_model_spec spec = {.n_widths = 4, .widths = {6, 5, 4, 3}, .activation = NN_ACT_TANH};
    nn_model m;
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_model_create(&m, &spec, 6, &err), NN_OK);
    nn_model_init(&m, 5);
    nn_rng rng;
    nn_rng_seed(&rng, 6, 0, 0);
    float x[6 * 6];
    for (int i = 0; i < 6 * 6; i++) x[i] = nn_rng_uniform(&rng);
    uint8_t labels[6] = {0, 2, 1, 2, 1, 0};
    memcpy(nn_model_input(&m), x, sizeof x);
    nn_model_forward_backward(&m, labels, 6, 1.0f / 6);
    float *whole = malloc(m.n_params * sizeof(float));
    memcpy(whole, m.grads, m.n_params * sizeof(float));

    m.slice_final = count_slice;
    slices_handed = 0;
    for (int micro = 0; micro < 2; micro++) {
        memcpy(nn_model_input(&m), x + micro * 3 * 6, 3 * 6 * sizeof(float));
        nn_model_forward_loss(&m, labels + micro * 3, 3);
        nn_model_backward_micro(&m, labels + micro * 3, 3, 1.0f / 6, micro, 2);
        CU_ASSERT_EQUAL(slices_handed, micro == 0 ? 0 : 3); /* three dense layers, handed over once */
    }
    double worst = 0;
    for (size_t i = 0; i < m.n_params; i++) {
        double e = fabs(m.grads[i] - whole[i]);
        worst = e > worst || isnan(e) ? e : worst; /* a NaN is the worst difference (fmax would drop it) */
    }
    CU_ASSERT(worst < 1e-6);
    free(whole);
    nn_model_free(&m);
}

/* model->final_from (the node sum begun in backward): each call's offset lies below
 * the last, the last is 0, and at each call everything from the offset up already
 * holds its final value, bit for bit the gradient of the usual order; the weights of
 * a layer are posted only once its input gradient is made (the first block of a
 * layer is posted after grad_acts[l] holds its final values). */
typedef struct final_record {
    nn_model *m;
    const float *whole;     /* the usual backward's gradient */
    const float *whole_dx;  /* and its input gradient of the second dense layer */
    size_t last;
    int calls, out_of_order, early, dx_late;
} final_record;

static void record_final(void *ctx, size_t offset) {
    final_record *r = ctx;
    r->calls++;
    r->out_of_order += offset > r->last;
    r->last = offset;
    r->early += memcmp(r->m->grads + offset, r->whole + offset, (r->m->n_params - offset) * sizeof(float)) != 0;
    const nn_layer *second = &r->m->layers[2]; /* dense, relu, dense: its dx is grad_acts[2] */
    if (offset <= (size_t)(second->dweight - r->m->grads) + (size_t)second->in * second->out)
        r->dx_late += memcmp(r->m->grad_acts[2], r->whole_dx, 20 * (size_t)second->in * sizeof(float)) != 0;
}

static void test_final_from_order(void) {
    nn_model_spec spec = {.n_widths = 4, .widths = {300, 200, 60, 10}, .activation = NN_ACT_RELU};
    nn_model m;
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_model_create(&m, &spec, 20, &err), NN_OK);
    CU_ASSERT_EQUAL_FATAL(m.layers[2].kind, NN_LAYER_DENSE);
    nn_model_init(&m, 8);
    nn_rng rng;
    nn_rng_seed(&rng, 9, 0, 0);
    float *in = nn_model_input(&m);
    for (int i = 0; i < 20 * 300; i++) in[i] = nn_rng_uniform(&rng);
    uint8_t labels[20];
    for (int b = 0; b < 20; b++) labels[b] = (uint8_t)(b % 10);
    nn_model_forward_backward(&m, labels, 20, 1.0f / 20);
    float *whole = malloc(m.n_params * sizeof(float)), *whole_dx = malloc(20 * 200 * sizeof(float));
    memcpy(whole, m.grads, m.n_params * sizeof(float));
    memcpy(whole_dx, m.grad_acts[2], 20 * 200 * sizeof(float));
    memset(m.grads, 0xff, m.n_params * sizeof(float)); /* NaNs: a part not made before its call shows */
    memset(m.grad_acts[2], 0xff, 20 * 200 * sizeof(float));
    final_record r = {&m, whole, whole_dx, m.n_params, 0, 0, 0, 0};
    m.final_from = record_final;
    m.final_from_ctx = &r;
    nn_model_forward_loss(&m, labels, 20);
    nn_model_backward(&m, labels, 20, 1.0f / 20);
    CU_ASSERT_EQUAL(memcmp(m.grads, whole, m.n_params * sizeof(float)), 0);
    CU_ASSERT(r.calls > 6); /* three layers' biases, and the 300 x 200 layer in several blocks */
    CU_ASSERT_EQUAL(r.last, 0);
    CU_ASSERT_EQUAL(r.out_of_order, 0);
    CU_ASSERT_EQUAL(r.early, 0);
    CU_ASSERT_EQUAL(r.dx_late, 0);
    free(whole);
    free(whole_dx);
    nn_model_free(&m);
}

/* Dropout with a fixed key: linear in x, so backward must equal the derivative of
 * sum(c * y) exactly; about `rate` of the units dropped, the rest scaled by
 * 1 / (1 - rate); the identity outside training; a row's mask depends only on its
 * sample (not on the batch around it) and not on the thread count. */
/* A few rows' input gradient made transposed in the scratch (dx_ws) has the bits of
 * the plain product: where both take the tile kernels (wide layers), and also where
 * the plain one would take the narrow kernels (there it must stay plain). */
static void test_dense_input_gradient_transposed(void) {
    nn_rng rng;
    nn_rng_seed(&rng, 21, 0, 0);
    const int shapes[][3] = {{800, 64, 32}, {50, 100, 16}, {100, 64, 7}, {100, 64, 16}, {784, 800, 20}, {130, 40, 40}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int in = shapes[s][0], out = shapes[s][1], batch = shapes[s][2];
        float *w = random_floats(&rng, (size_t)in * out, -1, 1), *dy = random_floats(&rng, (size_t)batch * out, -1, 1);
        float *plain = calloc((size_t)batch * in, sizeof(float)), *made = calloc((size_t)batch * in, sizeof(float));
        float *ws = calloc((size_t)in * batch, sizeof(float));
        nn_layer d = {.kind = NN_LAYER_DENSE, .in = in, .out = out, .weight = w};
        nn_dense_backward_input(&d, dy, plain, batch);
        d.dx_ws = ws;
        nn_dense_backward_input(&d, dy, made, batch);
        CU_ASSERT_EQUAL(memcmp(plain, made, (size_t)batch * in * sizeof(float)), 0);
        double worst = 0.0; /* and both are dy W^T */
        for (int m = 0; m < batch; m++)
            for (int i = 0; i < in; i++) {
                double ref = 0.0;
                for (int o = 0; o < out; o++) ref += (double)dy[(size_t)m * out + o] * w[(size_t)i * out + o];
                double e = fabs(ref - made[(size_t)m * in + i]);
                worst = e > worst || isnan(e) ? e : worst;
            }
        CU_ASSERT(worst < 1e-6 * (out + 10));
        free(w); free(dy); free(plain); free(made); free(ws);
    }
}

static void test_dropout(void) {
    enum { BATCH = 64, WIDTH = 300 };
    uint64_t samples[BATCH];
    for (int b = 0; b < BATCH; b++) samples[b] = 1000 + 7 * (uint64_t)b;
    nn_dropout_key key = {.seed = 3, .step = 11, .samples = samples, .training = true};
    nn_layer layer = {.kind = NN_LAYER_DROPOUT, .in = WIDTH, .out = WIDTH, .rate = 0.3f, .id = 1, .key = &key};
    static float x[BATCH * WIDTH], y[BATCH * WIDTH], c[BATCH * WIDTH], dx[BATCH * WIDTH], y1[WIDTH];
    nn_rng rng;
    nn_rng_seed(&rng, 9, 0, 0);
    for (int i = 0; i < BATCH * WIDTH; i++) x[i] = 0.5f + nn_rng_uniform(&rng), c[i] = nn_rng_uniform(&rng) - 0.5f;
    nn_layer_forward(&layer, x, y, BATCH);
    nn_layer_backward(&layer, x, y, c, dx, BATCH);
    long dropped = 0, wrong_scale = 0, wrong_grad = 0;
    for (int i = 0; i < BATCH * WIDTH; i++) {
        float f = y[i] / x[i]; /* the factor applied */
        if (y[i] == 0.0f) dropped++;
        else if (fabsf(f - 1.0f / 0.7f) > 1e-6f) wrong_scale++;
        if (dx[i] != c[i] * (y[i] == 0.0f ? 0.0f : 1.0f / 0.7f)) wrong_grad++; /* d sum(c y) / dx */
    }
    double share = (double)dropped / (BATCH * WIDTH);
    CU_ASSERT(share > 0.28 && share < 0.32);
    CU_ASSERT_EQUAL(wrong_scale, 0);
    CU_ASSERT_EQUAL(wrong_grad, 0);
    /* row 5 alone, as the only row of a batch: the same mask */
    key.samples = &samples[5];
    nn_layer_forward(&layer, x + 5 * WIDTH, y1, 1);
    CU_ASSERT_EQUAL(memcmp(y1, y + 5 * WIDTH, sizeof y1), 0);
    key.samples = samples;
    /* another step, another layer id: other masks; the thread count: the same */
    int saved = omp_get_max_threads();
    omp_set_num_threads(3);
    static float y3[BATCH * WIDTH];
    nn_layer_forward(&layer, x, y3, BATCH);
    omp_set_num_threads(saved);
    CU_ASSERT_EQUAL(memcmp(y3, y, sizeof y), 0);
    key.step = 12;
    nn_layer_forward(&layer, x, y3, BATCH);
    CU_ASSERT(memcmp(y3, y, sizeof y) != 0);
    /* inference: the identity */
    key.training = false;
    nn_layer_forward(&layer, x, y3, BATCH);
    CU_ASSERT_EQUAL(memcmp(y3, x, sizeof x), 0);
}

/* A network with dropout layers: the whole-network gradient against central
 * differences, the masks fixed by the key. */
static void test_network_with_dropout(void) {
    nn_model_spec spec = {.n_widths = 4, .widths = {6, 5, 4, 3}, .activation = NN_ACT_TANH,
                          .input_dropout = 0.2f, .dropout = 0.4f};
    nn_model m;
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_model_create(&m, &spec, 4, &err), NN_OK);
    CU_ASSERT_EQUAL(m.n_layers, 8); /* dropout, dense, tanh, dropout, dense, tanh, dropout, dense */
    nn_model_init(&m, 11);
    uint64_t samples[4] = {3, 1, 4, 1};
    m.dropout_key = (nn_dropout_key){.seed = 2, .step = 5, .samples = samples, .training = true};
    nn_rng rng;
    nn_rng_seed(&rng, 12, 0, 0);
    for (int i = 0; i < 4 * 6; i++) nn_model_input(&m)[i] = nn_rng_uniform(&rng);
    uint8_t labels[4] = {0, 2, 1, 2};
    CU_ASSERT(worst_gradient_error(&m, labels, 4) <= TOL); /* the masks fixed by the key */
    nn_model_free(&m);
}

/* Max-norm: hidden units' incoming weight columns over the bound are scaled back to
 * it exactly, those under it and the output layer are left alone. */
static void test_max_norm(void) {
    nn_model_spec spec = {.n_widths = 4, .widths = {30, 20, 10, 3}, .activation = NN_ACT_RELU};
    nn_model m;
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_model_create(&m, &spec, 4, &err), NN_OK);
    nn_model_init(&m, 4);
    nn_layer *first = &m.layers[0], *out = &m.layers[4];
    for (int i = 0; i < 30; i++) first->weight[i * 20 + 3] = 1.0f;      /* column 3: norm sqrt(30) */
    for (int i = 0; i < 30; i++) first->weight[i * 20 + 5] = 0.01f;     /* column 5: norm 0.055 */
    float *saved_out = malloc(sizeof(float) * 10 * 3);
    memcpy(saved_out, out->weight, sizeof(float) * 10 * 3);
    float col5 = first->weight[5];
    nn_model_max_norm(&m, 0.5f);
    for (int l = 0; l < 3; l += 2)
        for (int j = 0; j < m.layers[l].out; j++) {
            double sq = 0;
            for (int i = 0; i < m.layers[l].in; i++) sq += pow(m.layers[l].weight[i * m.layers[l].out + j], 2);
            CU_ASSERT(sqrt(sq) <= 0.5 + 1e-6);
        }
    CU_ASSERT_DOUBLE_EQUAL(first->weight[3], 0.5 / sqrt(30.0), 1e-7);
    CU_ASSERT_EQUAL(first->weight[5], col5); /* under the bound: untouched */
    CU_ASSERT_EQUAL(memcmp(saved_out, out->weight, sizeof(float) * 10 * 3), 0);
    free(saved_out);
    nn_model_free(&m);
}

static void test_param_layout(void) {
    nn_model_spec spec = {.n_widths = 4, .widths = {784, 50, 100, 10}};
    CU_ASSERT_EQUAL(nn_spec_param_count(&spec), 45360); /* the reference network */
    nn_model m;
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_model_create(&m, &spec, 8, &err), NN_OK);
    CU_ASSERT_EQUAL(m.n_layers, 5); /* dense sigmoid dense sigmoid dense */
    CU_ASSERT_PTR_EQUAL(m.layers[0].weight, m.params);
    CU_ASSERT_PTR_EQUAL(m.layers[4].bias + 10, m.params + m.n_params); /* contiguous, no gaps */
    CU_ASSERT_PTR_EQUAL(m.layers[2].dweight, m.grads + 784 * 50 + 50);
    nn_model_free(&m);
}

/* --shift: every pixel lands exactly dx right and dy down (0 where it came from
 * outside), every channel alike; the moves cover [-S, S] each way and depend on the
 * key (seed, step, sample id) only, not on the batch row the sample sits in. */
static void test_shift(void) {
    enum { N = 64, C = 2, H = 5, W = 7, S = 2 };
    static float x[N * C * H * W], orig[N * C * H * W];
    for (int i = 0; i < N * C * H * W; i++) orig[i] = x[i] = 1.0f + (float)i;
    uint64_t ids[N], reversed[N];
    for (int r = 0; r < N; r++) ids[r] = 1000 + 7 * (uint64_t)r;
    for (int r = 0; r < N; r++) reversed[r] = ids[N - 1 - r];
    nn_dropout_key key = {.seed = 3, .step = 11, .samples = ids, .training = true};
    nn_dropout_key key_rev = {.seed = 3, .step = 11, .samples = reversed, .training = true};
    const int image[3] = {C, H, W};
    nn_shift_images(x, N, image, S, &key);
    int seen[2 * S + 1][2 * S + 1] = {{0}}, wrong = 0, same_by_id = 1;
    for (int r = 0; r < N; r++) {
        int dx, dy, dx2, dy2;
        nn_shift_draw(&key, r, S, &dx, &dy);
        nn_shift_draw(&key_rev, N - 1 - r, S, &dx2, &dy2);
        same_by_id &= dx == dx2 && dy == dy2;
        CU_ASSERT_FATAL(dx >= -S && dx <= S && dy >= -S && dy <= S);
        seen[dy + S][dx + S]++;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++) {
                    int fy = y - dy, fx = xx - dx;
                    size_t at = (((size_t)r * C + c) * H + y) * W + xx;
                    float want = fy < 0 || fy >= H || fx < 0 || fx >= W ? 0.0f
                                                                         : orig[(((size_t)r * C + c) * H + fy) * W + fx];
                    wrong += x[at] != want;
                }
    }
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT(same_by_id);
    int moves = 0;
    for (int i = 0; i < 2 * S + 1; i++)
        for (int j = 0; j < 2 * S + 1; j++) moves += seen[i][j] > 0;
    CU_ASSERT(moves >= 15); /* 64 draws of 25 moves: nearly all of them appear */
    int differ = 0; /* another step moves most samples otherwise */
    for (int r = 0; r < N; r++) {
        int a, b, c2, d;
        key.step = 11, nn_shift_draw(&key, r, S, &a, &b);
        key.step = 12, nn_shift_draw(&key, r, S, &c2, &d);
        differ += a != c2 || b != d;
    }
    CU_ASSERT(differ > N / 2);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"dense backward vs finite differences", test_dense},
        {"sigmoid backward vs finite differences", test_sigmoid},
        {"relu backward vs finite differences", test_relu},
        {"tanh backward vs finite differences", test_tanh},
        {"activation values", test_activation_values},
        {"vectorisable exp", test_fast_exp},
        {"softmax cross-entropy", test_softmax_xent},
        {"mean-squared error", test_mse},
        {"whole networks: 3 activations x 2 losses", test_network_gradients},
        {"micro-steps accumulate the gradient of the whole batch", test_micro_steps},
        {"final_from: handed over top down, each part final when handed, the same bits", test_final_from_order},
        {"a few rows' input gradient made transposed: the same bits", test_dense_input_gradient_transposed},
        {"dropout: rate, scale, exact gradient, mask keyed by sample only", test_dropout},
        {"a network with dropout vs finite differences", test_network_with_dropout},
        {"max-norm scales over-long incoming weight vectors back, and only those", test_max_norm},
        {"one contiguous parameter buffer", test_param_layout},
        {"--shift moves each image exactly, keyed by sample", test_shift},
        CU_TEST_INFO_NULL};
    return nn_run_suite("layers", tests);
}
