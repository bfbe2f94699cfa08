#include "nn/conv_spec.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

bool nn_spec_text_is_conv(const char *text) {
    for (const char *p = text; *p; p++)
        if (isalpha((unsigned char)*p)) return true;
    return false;
}

/* ---- parsing ---- */

/* Digits only (no sign, no space), at most `max`; advances *p past them. */
static bool read_num(const char **p, long max, long *out) {
    const char *s = *p;
    long v = 0;
    if (!isdigit((unsigned char)*s)) return false;
    for (; isdigit((unsigned char)*s); s++)
        if ((v = v * 10 + (*s - '0')) > max) return false;
    *p = s;
    *out = v;
    return true;
}

static bool skip(const char **p, char c) {
    if (**p != c) return false;
    (*p)++;
    return true;
}

static const char *parse_image(const char *s, int image[3]) {
    const char *why = "an input image is written CxHxW or HxW, e.g. 1x28x28";
    long v[3] = {1, 0, 0};
    int n = 0;
    for (;;) {
        if (!read_num(&s, 1000000, &v[n++])) return why;
        if (!*s) break;
        if (n == 3 || !skip(&s, 'x')) return why;
    }
    if (n < 2) return why;
    if (n == 2) v[2] = v[1], v[1] = v[0], v[0] = 1;
    if (v[0] < 1 || v[1] < 1 || v[2] < 1) return "an input image needs at least one channel, row and column";
    for (int i = 0; i < 3; i++) image[i] = (int)v[i];
    return NULL;
}

static const char *parse_layer(const char *s, nn_conv_spec *c) {
    long k1, k2, ch, pad = 0, size;
    if (!strncmp(s, "pool", 4)) {
        s += 4;
        if (!read_num(&s, 1000, &size) || *s) return "a pool is written pool2";
        *c = (nn_conv_spec){.pool = true};
        return size == 2 ? NULL : "only 2x2 max-pooling (pool2) is supported";
    }
    if (strncmp(s, "conv", 4)) return "expected convKxKxC[pP], pool2 or a width";
    s += 4;
    if (!read_num(&s, 1000000, &k1) || !skip(&s, 'x') || !read_num(&s, 1000000, &k2) || !skip(&s, 'x') ||
        !read_num(&s, 1000000, &ch) || (skip(&s, 'p') && !read_num(&s, 1000000, &pad)) || *s)
        return "a convolution is written convKxKxC[pP]: kernel K x K, C channels, padding P (e.g. conv5x5x32p2)";
    if (k1 != k2) return "only square kernels (KxK) are supported";
    if (k1 < 1 || k1 > 64) return "the kernel size must be in 1..64";
    if (ch < 1 || ch > 65536) return "the channels must be in 1..65536";
    if (pad >= k1) return "the padding must be smaller than the kernel";
    *c = (nn_conv_spec){.k = (int)k1, .channels = (int)ch, .pad = (int)pad};
    return NULL;
}

/* One comma-separated item, the index-th. */
static const char *parse_item(nn_model_spec *s, const char *item, int index) {
    if (isdigit((unsigned char)item[0]) && strchr(item, 'x'))
        return index ? "an input image (CxHxW) can only come first" : parse_image(item, s->image);
    if (isdigit((unsigned char)item[0])) {
        long w;
        if (!read_num(&item, NN_MAX_UNITS, &w) || *item || w < 1) return "widths must be integers in 1..1000000";
        if (s->n_widths == NN_MAX_WIDTHS) return "too many widths";
        s->widths[s->n_widths++] = (int)w;
        return NULL;
    }
    if (s->n_widths > 1) return "convolutions and pools come before the dense widths";
    if (s->n_convs == NN_MAX_CONVS) return "more than 8 convolutions and pools";
    return parse_layer(item, &s->convs[s->n_convs++]);
}

int nn_spec_parse_conv(const char *name, const char *text, nn_model_spec *spec, nn_error *err) {
    nn_model_spec s = *spec;
    s.n_convs = 0;
    s.n_widths = 1; /* widths[0]: the flattened front, known once fitted to the data */
    s.widths[0] = 0;
    memset(s.image, 0, sizeof s.image);
    const char *p = text;
    for (int index = 0;; index++) {
        char item[64];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof item)
            return nn_fail(err, NN_ERR_INPUT, "%s '%s': item %d is %s", name, text, index + 1, len ? "too long" : "empty");
        memcpy(item, p, len);
        item[len] = '\0';
        const char *why = parse_item(&s, item, index);
        if (why) return nn_fail(err, NN_ERR_INPUT, "%s '%s': %s: %s", name, text, item, why);
        if (!p[len]) break;
        p += len + 1;
    }
    if (s.n_convs == 0) return nn_fail(err, NN_ERR_INPUT, "%s '%s': an input image needs a conv or pool after it", name, text);
    if (s.n_widths < 2) return nn_fail(err, NN_ERR_INPUT, "%s '%s': the number of classes must come last", name, text);
    *spec = s;
    return NN_OK;
}

/* ---- fitting and building ---- */

static void item_text(const nn_conv_spec *c, char *out, size_t cap) {
    if (c->pool) snprintf(out, cap, "pool2");
    else if (c->pad) snprintf(out, cap, "conv%dx%dx%dp%d", c->k, c->k, c->channels, c->pad);
    else snprintf(out, cap, "conv%dx%dx%d", c->k, c->k, c->channels);
}

int nn_spec_fit_image(nn_model_spec *spec, const int image[3], int dim, const char *data, const char *whose,
                      nn_error *err) {
    if (!spec->n_convs) return NN_OK;
    bool stated = spec->image[0] != 0; /* --layers 1x784,...: the data's samples seen as that image */
    if (!stated) memcpy(spec->image, image, sizeof spec->image);
    char source[NN_PATH_MAX + 96];
    if (stated)
        snprintf(source, sizeof source, "the %dx%dx%d image %s states (%s's images are %dx%dx%d)", spec->image[0],
                 spec->image[1], spec->image[2], whose, data, image[0], image[1], image[2]);
    else
        snprintf(source, sizeof source, "%s's %dx%dx%d images", data, image[0], image[1], image[2]);
    long c = spec->image[0], h = spec->image[1], w = spec->image[2];
    if (c * h * w != dim)
        return nn_fail(err, NN_ERR_INPUT, "%s: samples have %d values but %s starts with a %ldx%ldx%ld image", data, dim,
                       whose, c, h, w);
    for (int i = 0; i < spec->n_convs; i++) {
        const nn_conv_spec *l = &spec->convs[i];
        char item[64];
        item_text(l, item, sizeof item);
        if (l->pool ? h < 2 || w < 2 : l->k > h + 2 * l->pad || l->k > w + 2 * l->pad)
            return nn_fail(err, NN_ERR_INPUT, "%s: %s (layer %d) gets a %ldx%ldx%ld input from %s: %s", whose, item,
                           i + 1, c, h, w, source,
                           l->pool ? "too small to pool 2x2" : "the kernel is larger than the padded image");
        if (l->pool) h /= 2, w /= 2;
        else c = l->channels, h += 2 * l->pad - l->k + 1, w += 2 * l->pad - l->k + 1;
    }
    if (c * h * w > 100000000)
        return nn_fail(err, NN_ERR_INPUT, "%s: the convolutions' output (%ldx%ldx%ld) is too large to flatten", whose, c,
                       h, w);
    spec->widths[0] = (int)(c * h * w);
    return NN_OK;
}

bool nn_spec_same_layers(const nn_model_spec *given, const nn_model_spec *saved) {
    const nn_model_spec *a = given, *b = saved;
    if (a->n_widths != b->n_widths || a->n_convs != b->n_convs) return false;
    if (a->n_convs && a->image[0] && memcmp(a->image, b->image, sizeof a->image)) return false;
    for (int i = 0; i < a->n_convs; i++)
        if (a->convs[i].pool != b->convs[i].pool || a->convs[i].k != b->convs[i].k ||
            a->convs[i].channels != b->convs[i].channels || a->convs[i].pad != b->convs[i].pad)
            return false;
    int first = a->n_convs ? 1 : 0; /* with convs, widths[0] is derived */
    return !memcmp(a->widths + first, b->widths + first, (size_t)(a->n_widths - first) * sizeof(int));
}

size_t nn_spec_conv_param_count(const nn_model_spec *spec) {
    size_t n = 0, c = (size_t)spec->image[0];
    for (int i = 0; i < spec->n_convs; i++) {
        const nn_conv_spec *l = &spec->convs[i];
        if (l->pool) continue;
        n += (size_t)l->k * l->k * c * l->channels + (size_t)l->channels;
        c = (size_t)l->channels;
    }
    return n;
}

/* A conv layer's weights and bias at params + *offset (grads likewise). */
static void place_conv(nn_layer *l, float *params, float *grads, size_t *offset) {
    size_t nw = nn_conv_weight_count(&l->conv);
    if (params && grads) {
        l->weight = params + *offset;
        l->dweight = grads + *offset;
        l->bias = params + *offset + nw;
        l->dbias = grads + *offset + nw;
    }
    *offset += nw + (size_t)l->conv.out_c;
}

int nn_spec_build_convs(const nn_model_spec *spec, nn_layer_kind activation, nn_layer *layers, float *params,
                        float *grads, size_t *offset, size_t *ws_per_sample) {
    int n = 0, c = spec->image[0], h = spec->image[1], w = spec->image[2];
    bool chw = true; /* the data's layout, until a convolution writes HWC */
    *ws_per_sample = 0;
    for (int i = 0; i < spec->n_convs; i++) {
        const nn_conv_spec *s = &spec->convs[i];
        nn_layer *l = &layers[n++];
        if (s->pool) {
            *l = (nn_layer){.kind = NN_LAYER_POOL, .pool = {c, h, w, chw}, .in = c * h * w};
            h /= 2, w /= 2;
            l->out = c * h * w;
            continue;
        }
        nn_conv_geom g = {c, h, w, chw, s->channels, s->k, s->pad};
        *l = (nn_layer){.kind = NN_LAYER_CONV, .conv = g, .in = c * h * w, .out = (int)nn_conv_out_width(&g)};
        place_conv(l, params, grads, offset);
        size_t ws = nn_conv_workspace_floats(&g, 1);
        *ws_per_sample = ws > *ws_per_sample ? ws : *ws_per_sample;
        c = g.out_c, h = nn_conv_out_h(&g), w = nn_conv_out_w(&g), chw = false;
        layers[n++] = (nn_layer){.kind = activation, .in = l->out, .out = l->out};
    }
    return n;
}

bool nn_spec_conv_text(const nn_model_spec *spec, char *out, size_t cap) {
    if (cap < 1) return false;
    out[0] = '\0';
    if (!spec->n_convs) return false;
    size_t len = (size_t)snprintf(out, cap, "%dx%dx%d", spec->image[0], spec->image[1], spec->image[2]);
    for (int i = 0; i < spec->n_convs && len < cap; i++) {
        char item[64];
        item_text(&spec->convs[i], item, sizeof item);
        len += (size_t)snprintf(out + len, cap - len, ",%s", item);
    }
    return true;
}
