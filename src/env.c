/* nntrain's environment variables, checked (see nn/env.h). */
#include "nn/env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/cli.h"

/* The words a choice takes, and the range a count takes. */
static const struct {
    const char *name, *words; /* words: space-separated; NULL for a count */
    long least, most;
} knobs[] = {
    {"NN_NODE_SUM", "static chunked early factors auto", 0, 0},
    {"NN_NODE_PARAMS", "shared private", 0, 0},
    {"NN_EXACT_SUM", "mpi", 0, 0},
    {"NN_GEMM_PACK", "always in-place", 0, 0},
    {"NN_TUNE_BLOCK", NULL, 1, 1000000},
    {"NN_FACTOR_ITEMS", NULL, 1, 1000000},
    {"NN_FACTOR_MIN_TILE", NULL, 1, 1000000000},
    {"NNTRAIN_STOP_AT_STEP", NULL, 0, 1000000000000000L},
};
enum { N_KNOBS = sizeof knobs / sizeof knobs[0] };

const char *nn_env(const char *name) {
    const char *value = getenv(name);
    return value && *value ? value : NULL;
}

/* Whether `value` is one of the space-separated `words`. */
static int is_word(const char *value, const char *words) {
    size_t n = strlen(value);
    for (const char *w = words; *w;) {
        size_t len = strcspn(w, " ");
        if (len == n && !strncmp(w, value, n)) return 1;
        w += len + (w[len] == ' ');
    }
    return 0;
}

/* A count in [least, most] (least >= 0): nn_cli_long's strict reading (the whole
 * value, no spaces), and no sign; -1 where it is not. */
static long parse_count(const char *value, long least, long most) {
    nn_error ignored;
    long v;
    return value[0] != '+' && !nn_cli_long("", value, least, most, &v, &ignored) ? v : -1;
}

long nn_env_count(const char *name, long unset) {
    const char *value = nn_env(name);
    for (int k = 0; value && k < N_KNOBS; k++)
        if (!strcmp(knobs[k].name, name)) {
            long v = parse_count(value, knobs[k].least, knobs[k].most);
            return v < 0 ? unset : v;
        }
    return unset;
}

/* "a b c" as "a, b or c", as the options' messages list their words. */
static void list_words(const char *words, char *out, size_t size) {
    const char *last = strrchr(words, ' ');
    out[0] = '\0';
    for (const char *w = words; *w;) {
        size_t len = strcspn(w, " ");
        const char *sep = w == words ? "" : w == last + 1 ? " or " : ", ";
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%.*s", sep, (int)len, w);
        w += len + (w[len] == ' ');
    }
}

int nn_env_check(nn_error *err) {
    for (int k = 0; k < N_KNOBS; k++) {
        const char *value = nn_env(knobs[k].name);
        if (!value) continue;
        if (knobs[k].words && !is_word(value, knobs[k].words)) {
            char list[128];
            list_words(knobs[k].words, list, sizeof list);
            return nn_fail(err, NN_ERR_INPUT, "environment: %s=%.64s: expected %s", knobs[k].name, value, list);
        }
        if (!knobs[k].words && parse_count(value, knobs[k].least, knobs[k].most) < 0)
            return nn_fail(err, NN_ERR_INPUT, "environment: %s=%.64s: expected an integer in %ld..%ld", knobs[k].name,
                           value, knobs[k].least, knobs[k].most);
    }
    return NN_OK;
}
