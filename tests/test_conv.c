/* Convolution and max-pooling: backward against central differences of forward,
 * forward and backward against a direct convolution in double, ties in pooling,
 * and the same bits whatever the thread count. */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cunit_run.h"
#include "nn/conv.h"
#include "nn/conv_spec.h"
#include "nn/model.h"
#include "test_util.h"

#define EPS 1e-2f
#define TOL 1e-2 /* relative, with a floor of 1e-2 on the magnitude: float forward passes */

/* Element (c, h, w) of sample b of an image in the geometry's input layout. */
static size_t in_index(const nn_conv_geom *g, int b, int c, int h, int w) {
    size_t base = (size_t)b * g->in_c * g->in_h * g->in_w;
    return base + (g->in_chw ? ((size_t)c * g->in_h + h) * g->in_w + w : ((size_t)h * g->in_w + w) * g->in_c + c);
}

/* One conv layer's buffers; loss() = probe(forward(x), r), so dL/dy = r. */
typedef struct conv_case {
    nn_conv_geom g;
    int batch;
    size_t nx, ny, nw;
    float *x, *w, *b, *y, *r, *dx, *dw, *db, *ws;
} conv_case;

static conv_case make_case(nn_conv_geom g, int batch, uint64_t seed) {
    nn_rng rng;
    nn_rng_seed(&rng, seed, 0, 0);
    conv_case c = {.g = g, .batch = batch};
    c.nx = (size_t)batch * g.in_c * g.in_h * g.in_w;
    c.ny = (size_t)batch * nn_conv_out_width(&g);
    c.nw = nn_conv_weight_count(&g);
    c.x = random_floats(&rng, c.nx, -1, 1);
    c.w = random_floats(&rng, c.nw, -1, 1);
    c.b = random_floats(&rng, g.out_c, -1, 1);
    c.r = random_floats(&rng, c.ny, -1, 1);
    c.y = calloc(c.ny, sizeof(float));
    c.dx = calloc(c.nx, sizeof(float));
    c.dw = calloc(c.nw, sizeof(float));
    c.db = calloc(g.out_c, sizeof(float));
    c.ws = calloc(nn_conv_workspace_floats(&g, batch) + 1, sizeof(float));
    return c;
}

static void free_case(conv_case *c) {
    float *all[] = {c->x, c->w, c->b, c->y, c->r, c->dx, c->dw, c->db, c->ws};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}

static void run_case(conv_case *c) {
    nn_conv_forward(&c->g, c->w, c->b, c->x, c->y, c->ws, c->batch);
    nn_conv_backward_params(&c->g, c->x, c->r, c->dw, c->db, c->ws, c->batch, false);
    nn_conv_backward_input(&c->g, c->w, c->r, c->dx, c->ws, c->batch);
}

static double case_loss(conv_case *c) {
    nn_conv_forward(&c->g, c->w, c->b, c->x, c->y, c->ws, c->batch);
    return probe(c->y, c->r, c->ny);
}

static double conv_loss(void *c) { return case_loss(c); }

/* in_c, in_h, in_w, chw, out_c, k, pad: kernel sizes 1..5 (an even one), paddings
 * 0..2, one to four channels, both input layouts, non-square images. */
static const nn_conv_geom geoms[] = {
    {1, 5, 6, true, 2, 3, 1},  {2, 4, 5, false, 3, 1, 0}, {3, 6, 5, true, 2, 5, 2}, {2, 5, 5, false, 4, 3, 0},
    {1, 7, 7, true, 1, 5, 0},  {3, 4, 4, false, 2, 2, 1}, {2, 3, 3, true, 2, 5, 2}, {4, 6, 4, false, 3, 3, 2},
};

static void test_conv_fd(void) {
    for (size_t i = 0; i < sizeof geoms / sizeof *geoms; i++) {
        conv_case c = make_case(geoms[i], 2, 10 + i);
        run_case(&c);
        double ex = worst_fd_error(conv_loss, &c, c.x, c.dx, c.nx, EPS),
               ew = worst_fd_error(conv_loss, &c, c.w, c.dw, c.nw, EPS),
               eb = worst_fd_error(conv_loss, &c, c.b, c.db, c.g.out_c, EPS);
        if (ex > TOL || ew > TOL || eb > TOL) printf("\n  geometry %zu: dx %g dw %g db %g\n", i, ex, ew, eb);
        CU_ASSERT(ex <= TOL && ew <= TOL && eb <= TOL);
        free_case(&c);
    }
}

/* The direct definition in double: y, and dx, dw, db for dy = r. */
static void direct_conv(const conv_case *c, double *y, double *dx, double *dw, double *db) {
    const nn_conv_geom *g = &c->g;
    int oh_n = nn_conv_out_h(g), ow_n = nn_conv_out_w(g), k = g->k;
    for (int b = 0; b < c->batch; b++)
        for (int oh = 0; oh < oh_n; oh++)
            for (int ow = 0; ow < ow_n; ow++)
                for (int oc = 0; oc < g->out_c; oc++) {
                    size_t o = (size_t)b * nn_conv_out_width(g) + ((size_t)oh * ow_n + ow) * g->out_c + oc;
                    double s = c->b[oc], r = c->r[o];
                    db[oc] += r;
                    for (int kh = 0; kh < k; kh++)
                        for (int kw = 0; kw < k; kw++)
                            for (int ic = 0; ic < g->in_c; ic++) {
                                int ih = oh + kh - g->pad, iw = ow + kw - g->pad;
                                if (ih < 0 || ih >= g->in_h || iw < 0 || iw >= g->in_w) continue;
                                size_t xi = in_index(g, b, ic, ih, iw), wi = (((size_t)kh * k + kw) * g->in_c + ic) * g->out_c + oc;
                                s += (double)c->x[xi] * c->w[wi];
                                dx[xi] += r * c->w[wi];
                                dw[wi] += r * c->x[xi];
                            }
                    y[o] = s;
                }
}

static double worst_vs(const float *a, const double *ref, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - ref[i]) / (fabs(ref[i]) + 1e-3);
        worst = d > worst || isnan(d) ? d : worst;
    }
    return worst;
}

static void test_conv_vs_direct(void) {
    for (size_t i = 0; i < sizeof geoms / sizeof *geoms; i++) {
        conv_case c = make_case(geoms[i], 3, 40 + i);
        run_case(&c);
        double *y = calloc(c.ny, sizeof *y), *dx = calloc(c.nx, sizeof *dx), *dw = calloc(c.nw, sizeof *dw),
               *db = calloc(c.g.out_c, sizeof *db);
        direct_conv(&c, y, dx, dw, db);
        double e[4] = {worst_vs(c.y, y, c.ny), worst_vs(c.dx, dx, c.nx), worst_vs(c.dw, dw, c.nw),
                       worst_vs(c.db, db, c.g.out_c)};
        for (int j = 0; j < 4; j++) {
            if (e[j] > 1e-4) printf("\n  geometry %zu, output %d: relative error %g\n", i, j, e[j]);
            CU_ASSERT(e[j] <= 1e-4);
        }
        free(y); free(dx); free(dw); free(db);
        free_case(&c);
    }
}

/* Micro-batches: accumulate adds the second batch's gradient to the first's. */
static void test_conv_accumulate(void) {
    conv_case c = make_case(geoms[3], 2, 77);
    run_case(&c);
    float *dw1 = malloc(c.nw * sizeof(float)), db1[4];
    memcpy(dw1, c.dw, c.nw * sizeof(float));
    memcpy(db1, c.db, sizeof db1);
    nn_conv_backward_params(&c.g, c.x, c.r, c.dw, c.db, c.ws, c.batch, true); /* the same batch again */
    double worst = 0;
    for (size_t i = 0; i < c.nw + 4; i++) { /* the weights, then the 4 biases; a NaN is the worst (fmax drops it) */
        double e = i < c.nw ? fabs(c.dw[i] - 2 * dw1[i]) : fabs(c.db[i - c.nw] - 2 * db1[i - c.nw]);
        worst = e > worst || isnan(e) ? e : worst;
    }
    CU_ASSERT(worst <= 1e-5);
    free(dw1);
    free_case(&c);
}

/* CHW and HWC inputs holding the same image give the same im2col, hence the same bits. */
static void test_conv_layouts(void) {
    nn_conv_geom chw = {3, 5, 4, true, 2, 3, 1}, hwc = chw;
    hwc.in_chw = false;
    conv_case a = make_case(chw, 2, 5), b = make_case(hwc, 2, 5);
    for (int s = 0; s < 2; s++)
        for (int ch = 0; ch < 3; ch++)
            for (int h = 0; h < 5; h++)
                for (int w = 0; w < 4; w++) b.x[in_index(&hwc, s, ch, h, w)] = a.x[in_index(&chw, s, ch, h, w)];
    run_case(&a);
    run_case(&b);
    CU_ASSERT_EQUAL(memcmp(a.y, b.y, a.ny * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(a.dw, b.dw, a.nw * sizeof(float)), 0);
    int same = 1;
    for (int s = 0; s < 2; s++)
        for (int ch = 0; ch < 3; ch++)
            for (int h = 0; h < 5; h++)
                for (int w = 0; w < 4; w++) same &= b.dx[in_index(&hwc, s, ch, h, w)] == a.dx[in_index(&chw, s, ch, h, w)];
    CU_ASSERT(same);
    free_case(&a);
    free_case(&b);
}

/* ---- max-pooling ---- */

/* Distinct values at least 0.05 apart (a shuffled ramp), so that a finite-difference
 * step never changes which element is the maximum. */
static float *distinct_floats(size_t n, uint64_t seed) {
    nn_rng rng;
    nn_rng_seed(&rng, seed, 0, 0);
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = 0.05f * (float)i - 1.0f;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(nn_rng_uniform(&rng) * (i + 1)) % (i + 1);
        float t = x[i]; x[i] = x[j]; x[j] = t;
    }
    return x;
}

static double pool_loss(const nn_pool_geom *g, const float *x, float *y, const float *r, int batch) {
    nn_maxpool_forward(g, x, y, batch);
    return probe(y, r, (size_t)batch * nn_pool_out_width(g));
}

static void check_pool_fd(nn_pool_geom g, int batch) {
    size_t nx = (size_t)batch * g.c * g.h * g.w, ny = (size_t)batch * nn_pool_out_width(&g);
    nn_rng rng;
    nn_rng_seed(&rng, 3, 0, 0);
    float *x = distinct_floats(nx, 9), *r = random_floats(&rng, ny, -1, 1), *y = malloc(ny * sizeof *y),
          *dx = malloc(nx * sizeof *dx);
    for (size_t i = 0; i < nx; i++) dx[i] = NAN; /* every element must be written */
    nn_maxpool_forward(&g, x, y, batch);
    nn_maxpool_backward(&g, x, r, dx, batch);
    double worst = 0;
    for (size_t i = 0; i < nx; i++) {
        float saved = x[i];
        x[i] = saved + 0.01f;
        double up = pool_loss(&g, x, y, r, batch);
        x[i] = saved - 0.01f;
        double down = pool_loss(&g, x, y, r, batch);
        x[i] = saved;
        double rel = fabs((up - down) / 0.02 - dx[i]) / (fabs(dx[i]) + 1e-2);
        worst = rel > worst || isnan(rel) ? rel : worst;
    }
    if (worst > TOL) printf("\n  pool %dx%dx%d: worst relative error %g\n", g.c, g.h, g.w, worst);
    CU_ASSERT(worst <= TOL);
    free(x); free(r); free(y); free(dx);
}

static void test_pool_fd(void) {
    check_pool_fd((nn_pool_geom){2, 5, 7, true}, 2); /* odd: last row and column dropped */
    check_pool_fd((nn_pool_geom){3, 4, 6, false}, 2);
    check_pool_fd((nn_pool_geom){3, 5, 7, false}, 2);
    check_pool_fd((nn_pool_geom){1, 6, 6, true}, 3);
}

/* Known values, and where the gradient of a tied window goes. */
static void test_pool_values_and_ties(void) {
    nn_pool_geom g = {1, 4, 5, true}; /* one channel: 2 x 2 windows, column 4 dropped */
    /* windows: (0,0) max 4 alone, bottom-right; (0,1) four 5s -> top-left;
     * (1,0) four 7s -> top-left; (1,1) 2 at both bottoms -> bottom-left */
    float x[20] = {1, 2, 5, 5, 9,
                   3, 4, 5, 5, 9,
                   7, 7, 0, 1, 9,
                   7, 7, 2, 2, 9};
    float y[4], dy[4] = {10, 20, 30, 40}, dx[20];
    nn_maxpool_forward(&g, x, y, 1);
    float want_y[4] = {4, 5, 7, 2};
    CU_ASSERT_EQUAL(memcmp(y, want_y, sizeof y), 0);
    nn_maxpool_backward(&g, x, dy, dx, 1);
    float want_dx[20] = {0, 0, 20, 0, 0, 0, 10, 0, 0, 0, 30, 0, 0, 0, 0, 0, 0, 40, 0, 0};
    CU_ASSERT_EQUAL(memcmp(dx, want_dx, sizeof dx), 0);
}

/* ---- thread-count independence ---- */

/* Two conv layers and a pool, forward and backward, on the given team size. */
typedef struct net_out {
    float *y1, *y2, *p, *dw1, *db1, *dw2, *db2, *dx1, *dp;
} net_out;

static void run_net(int threads, conv_case *c1, conv_case *c2, const nn_pool_geom *pg, float *p, float *dp) {
    omp_set_num_threads(threads);
    run_case(c1);
    nn_maxpool_forward(pg, c1->y, p, c1->batch);
    memcpy(c2->x, p, c2->nx * sizeof(float));
    run_case(c2);
    nn_maxpool_backward(pg, c1->y, c2->dx, dp, c1->batch);
}

static int same_bits(const conv_case *a, const conv_case *b) {
    return !memcmp(a->y, b->y, a->ny * sizeof(float)) && !memcmp(a->dx, b->dx, a->nx * sizeof(float)) &&
           !memcmp(a->dw, b->dw, a->nw * sizeof(float)) && !memcmp(a->db, b->db, a->g.out_c * sizeof(float));
}

static void test_threads(void) {
    /* big enough that im2col, col2im, pooling and the GEMMs all split among threads */
    nn_conv_geom g1 = {3, 14, 14, true, 8, 5, 2}, g2 = {8, 7, 7, false, 16, 3, 1};
    nn_pool_geom pg = {8, 14, 14, false};
    int batch = 16;
    conv_case a1 = make_case(g1, batch, 1), a2 = make_case(g2, batch, 2);
    conv_case b1 = make_case(g1, batch, 1), b2 = make_case(g2, batch, 2);
    size_t np = (size_t)batch * nn_pool_out_width(&pg), nd = a1.ny;
    float *pa = malloc(np * sizeof(float)), *pb = malloc(np * sizeof(float));
    float *da = malloc(nd * sizeof(float)), *db = malloc(nd * sizeof(float));
    int saved = omp_get_max_threads();
    run_net(1, &a1, &a2, &pg, pa, da);
    run_net(2, &b1, &b2, &pg, pb, db);
    omp_set_num_threads(saved);
    CU_ASSERT(same_bits(&a1, &b1));
    CU_ASSERT(same_bits(&a2, &b2));
    CU_ASSERT_EQUAL(memcmp(pa, pb, np * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(da, db, nd * sizeof(float)), 0);
    free(pa); free(pb); free(da); free(db);
    free_case(&a1); free_case(&a2); free_case(&b1); free_case(&b2);
}

static void test_shapes(void) {
    nn_conv_geom g = {1, 28, 28, true, 32, 5, 2};
    CU_ASSERT_EQUAL(nn_conv_out_width(&g), 32 * 28 * 28);
    CU_ASSERT_EQUAL(nn_conv_weight_count(&g), 5 * 5 * 32);
    g.pad = 0;
    CU_ASSERT_EQUAL(nn_conv_out_h(&g), 24);
    g.k = 30; /* larger than the padded image: no output */
    CU_ASSERT(nn_conv_out_h(&g) < 1);
    nn_pool_geom p = {64, 7, 7, false};
    CU_ASSERT_EQUAL(nn_pool_out_width(&p), 64 * 3 * 3);
}

/* ---- whole networks ---- */

#define NET_EPS 1e-3f
#define NET_TOL 2e-2 /* as test_layers' whole networks */

/* A spec with a convolutional front fitted to images of c x h x w. */
static nn_model_spec conv_spec(const char *layers, int c, int h, int w, nn_activation act, nn_loss loss) {
    nn_model_spec spec = {.activation = act, .loss = loss};
    nn_error err;
    int image[3] = {c, h, w};
    CU_ASSERT_EQUAL(nn_spec_parse_conv("--layers", layers, &spec, &err), NN_OK);
    CU_ASSERT_EQUAL(nn_spec_fit_image(&spec, image, c * h * w, "test", "--layers", &err), NN_OK);
    return spec;
}

static double net_loss(nn_model *m, const uint8_t *labels, int batch) {
    long correct;
    nn_model_forward(m, batch);
    return nn_model_score(m, labels, batch, &correct, NULL);
}

static double rel_error(double fd, double analytic) { return fabs(fd - analytic) / (fabs(fd) + 1e-2); }

/* The worst relative error of the model's gradient against differences of the
 * summed loss, over every parameter. Central differences, except where a step
 * moves a pool window's maximum to another element (a kink: the loss is only
 * piecewise smooth): there the gradient must equal one of the one-sided ones. */
static double worst_gradient_error(nn_model *m, const uint8_t *labels, int batch) {
    nn_model_forward_backward(m, labels, batch, 1.0f);
    float *analytic = malloc(m->n_params * sizeof(float));
    memcpy(analytic, m->grads, m->n_params * sizeof(float));
    double worst = 0, centre = net_loss(m, labels, batch);
    for (size_t i = 0; i < m->n_params; i++) {
        float saved = m->params[i];
        m->params[i] = saved + NET_EPS;
        double up = net_loss(m, labels, batch);
        m->params[i] = saved - NET_EPS;
        double down = net_loss(m, labels, batch);
        m->params[i] = saved;
        double rel = rel_error((up - down) / (2 * NET_EPS), analytic[i]);
        rel = fmin(rel, fmin(rel_error((up - centre) / NET_EPS, analytic[i]), rel_error((centre - down) / NET_EPS, analytic[i])));
        worst = rel > worst || isnan(rel) ? rel : worst;
    }
    free(analytic);
    return worst;
}

static double network_error(nn_model_spec spec, uint64_t seed) {
    nn_model m;
    nn_error err;
    int batch = 3, width = nn_spec_input_width(&spec);
    CU_ASSERT_EQUAL_FATAL(nn_model_create(&m, &spec, batch, &err), NN_OK);
    nn_model_init(&m, seed);
    nn_rng rng;
    nn_rng_seed(&rng, seed, 1, 0);
    for (int i = 0; i < batch * width; i++) nn_model_input(&m)[i] = nn_rng_uniform(&rng);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += 0.1f * nn_rng_normal(&rng); /* biases non-zero */
    uint64_t samples[3] = {7, 2, 9};
    m.dropout_key = (nn_dropout_key){.seed = 4, .step = 1, .samples = samples, .training = true};
    uint8_t labels[3] = {0, 2, 1};
    double worst = worst_gradient_error(&m, labels, batch);
    nn_model_free(&m);
    return worst;
}

/* conv (3x3, pad 1, 2 -> 3 channels), pool (odd width dropped), conv (even 2x2 kernel,
 * unpadded), flatten into two dense layers: every parameter against central
 * differences, with tanh and sigmoid, softmax and mse, with and without dropout. */
static void test_network_fd(void) {
    const char *layers = "conv3x3x3p1,pool2,conv2x2x4,5,3";
    for (int a = 0; a < 2; a++)
        for (int l = 0; l < 2; l++)
            for (int d = 0; d < 2; d++) {
                nn_model_spec spec = conv_spec(layers, 2, 5, 7, a ? NN_ACT_SIGMOID : NN_ACT_TANH, (nn_loss)l);
                CU_ASSERT_EQUAL(spec.widths[0], 4 * 1 * 2);
                spec.input_dropout = d ? 0.2f : 0.0f;
                spec.dropout = d ? 0.3f : 0.0f;
                double worst = network_error(spec, 30 + 4 * a + 2 * l + d);
                if (worst > NET_TOL) printf("\n  %s/%s/dropout %d: worst relative error %g\n", a ? "sigmoid" : "tanh",
                                        l ? "mse" : "softmax", d, worst);
                CU_ASSERT(worst <= NET_TOL);
            }
}

/* Layers and the one parameter buffer: conv weights and biases first, input side
 * first, no gaps; each parameter layer's slice handed over once, top first. */
static size_t slice_offsets[8];
static int slices;
static void record_slice(void *ctx, size_t offset, size_t count) {
    (void)ctx, (void)count;
    if (slices < 8) slice_offsets[slices] = offset;
    slices++;
}

static void test_network_layout(void) {
    nn_model_spec spec = conv_spec("conv5x5x4p2,pool2,conv3x3x6,pool2,16,10", 1, 14, 14, NN_ACT_RELU, NN_LOSS_SOFTMAX_XENT);
    CU_ASSERT_EQUAL(spec.widths[0], 6 * 2 * 2); /* 14 -> 14 -> 7 -> 5 -> 2 */
    size_t conv1 = 25 * 4 + 4, conv2 = 9 * 4 * 6 + 6, dense1 = 24 * 16 + 16;
    CU_ASSERT_EQUAL(nn_spec_param_count(&spec), conv1 + conv2 + dense1 + 16 * 10 + 10);
    nn_model m;
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_model_create(&m, &spec, 2, &err), NN_OK);
    CU_ASSERT_EQUAL(m.n_layers, 9); /* conv relu pool conv relu pool dense relu dense */
    CU_ASSERT_EQUAL(m.layers[0].kind, NN_LAYER_CONV);
    CU_ASSERT_EQUAL(m.layers[2].kind, NN_LAYER_POOL);
    CU_ASSERT(m.layers[0].conv.in_chw && !m.layers[3].conv.in_chw && !m.layers[5].pool.chw);
    CU_ASSERT_PTR_EQUAL(m.layers[0].weight, m.params);
    CU_ASSERT_PTR_EQUAL(m.layers[3].weight, m.params + conv1);
    CU_ASSERT_PTR_EQUAL(m.layers[6].dweight, m.grads + conv1 + conv2);
    CU_ASSERT_PTR_EQUAL(m.layers[8].bias + 10, m.params + m.n_params);
    nn_model_init(&m, 3);
    for (int i = 0; i < 2 * 196; i++) nn_model_input(&m)[i] = (float)(i % 17) / 17.0f;
    uint8_t labels[2] = {3, 7};
    m.slice_final = record_slice;
    slices = 0;
    nn_model_forward_backward(&m, labels, 2, 0.5f);
    CU_ASSERT_EQUAL(slices, 4);
    CU_ASSERT(slice_offsets[2] == conv1 && slice_offsets[3] == 0);
    nn_model_free(&m);
}

/* Max-norm after convolutions: the hidden dense layer's columns are held to the
 * bound; the convolutions' filters and the output layer are left alone. */
static void test_max_norm_after_conv(void) {
    nn_model_spec spec = conv_spec("conv3x3x2p1,pool2,8,4", 1, 6, 6, NN_ACT_RELU, NN_LOSS_SOFTMAX_XENT);
    nn_model m;
    nn_error err;
    CU_ASSERT_EQUAL_FATAL(nn_model_create(&m, &spec, 2, &err), NN_OK);
    nn_model_init(&m, 1);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] *= 10.0f; /* every column over the bound */
    float *saved = malloc(m.n_params * sizeof(float));
    memcpy(saved, m.params, m.n_params * sizeof(float));
    nn_model_max_norm(&m, 0.5f);
    nn_layer *dense = &m.layers[3], *out = &m.layers[5];
    CU_ASSERT_EQUAL_FATAL(dense->kind, NN_LAYER_DENSE);
    for (int j = 0; j < dense->out; j++) {
        double sq = 0;
        for (int i = 0; i < dense->in; i++) sq += pow(dense->weight[i * dense->out + j], 2);
        CU_ASSERT_DOUBLE_EQUAL(sqrt(sq), 0.5, 1e-5);
    }
    size_t conv = nn_layer_param_count(&m.layers[0]), first_out = (size_t)(out->weight - m.params);
    CU_ASSERT_EQUAL(memcmp(saved, m.params, conv * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(saved + first_out, out->weight, (m.n_params - first_out) * sizeof(float)), 0);
    free(saved);
    nn_model_free(&m);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"conv backward vs finite differences (8 geometries)", test_conv_fd},
        {"conv forward and backward vs a direct convolution in double", test_conv_vs_direct},
        {"conv parameter gradient accumulates micro-batches", test_conv_accumulate},
        {"conv: CHW and HWC inputs give the same bits", test_conv_layouts},
        {"maxpool backward vs finite differences", test_pool_fd},
        {"maxpool values; a tied window's gradient goes to its first maximum", test_pool_values_and_ties},
        {"conv and pool: 1 and 2 threads give the same bits", test_threads},
        {"output shapes", test_shapes},
        {"conv networks vs finite differences (2 activations x 2 losses x dropout)", test_network_fd},
        {"conv network: layers, one contiguous parameter buffer, slices handed over", test_network_layout},
        {"max-norm after convolutions: hidden dense columns only", test_max_norm_after_conv},
        CU_TEST_INFO_NULL};
    return nn_run_suite("conv", tests);
}
