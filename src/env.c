/* nntrain's environment variables, checked (see nn/env.h). */
#define _POSIX_C_SOURCE 200809L /* environ */
#include "nn/env.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/cli.h"
#include "nn/comm.h"

/* The words a choice takes, and the range a count takes; `alike`: a knob every rank
 * must be given the same (it picks a collective path: ranks that differ would wait
 * in different collectives for good). NN_GEMM_PACK gives the same bits either way,
 * NN_TUNE_BLOCK is agreed by MPI_MAX, the NN_FACTOR_ knobs are rank 0's, and a stop
 * at a step on one rank is a signal to that rank. */
static const struct {
    const char *name, *words; /* words: space-separated; NULL for a count */
    long least, most;
    bool alike;
} knobs[] = {
    {"NN_NODE_SUM", "static chunked early factors auto", 0, 0, true},
    {"NN_NODE_PARAMS", "shared private", 0, 0, true},
    {"NN_EXACT_SUM", "mpi", 0, 0, true},
    {"NN_GEMM_PACK", "always in-place", 0, 0, false},
    {"NN_TUNE_BLOCK", NULL, 1, 1000000, false},
    {"NN_FACTOR_ITEMS", NULL, 1, 1000000, false},
    {"NN_FACTOR_MIN_TILE", NULL, 1, 1000000000, false},
    {"NNTRAIN_STOP_AT_STEP", NULL, 0, 1000000000000000L, false},
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

/* The edit distance between a and b, letters' case ignored: insertions, deletions,
 * substitutions and swaps of neighbours (the usual typing slips), each 1. */
static int edit_distance(const char *a, int na, const char *b, int nb) {
    enum { MAX_NAME = 48 };
    int d[MAX_NAME + 1][MAX_NAME + 1];
    if (na > MAX_NAME || nb > MAX_NAME) return MAX_NAME;
    for (int i = 0; i <= na; i++)
        for (int j = 0; j <= nb; j++) {
            if (!i || !j) {
                d[i][j] = i + j;
                continue;
            }
            int same = toupper((unsigned char)a[i - 1]) == toupper((unsigned char)b[j - 1]);
            int best = d[i - 1][j - 1] + !same;
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && toupper((unsigned char)a[i - 1]) == toupper((unsigned char)b[j - 2]) &&
                toupper((unsigned char)a[i - 2]) == toupper((unsigned char)b[j - 1]) && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[na][nb];
}

/* The knob a variable's name misspells (within 2 slips, or the knob's name in another
 * case), or -1: a misspelt knob would otherwise be a quiet default. Names far from
 * every knob are left alone: the environment holds the job's and scripts' own. */
static int misspelt_knob(const char *entry) {
    int n = (int)strcspn(entry, "=");
    if (!entry[n] || !entry[n + 1]) return -1; /* empty: unset, as for the knobs */
    for (int k = 0; k < N_KNOBS; k++) {
        int len = (int)strlen(knobs[k].name);
        if (n == len && !strncmp(entry, knobs[k].name, (size_t)n)) return -1; /* the knob itself */
    }
    for (int k = 0; k < N_KNOBS; k++)
        if (edit_distance(entry, n, knobs[k].name, (int)strlen(knobs[k].name)) <= 2) return k;
    return -1;
}

/* OMP_NUM_THREADS, OpenMP's own (not a knob: its neighbours KMP_NUM_THREADS and
 * GOMP_NUM_THREADS are real variables, so no spelling check). OpenMP warns once and
 * ignores "abc" or "0" (then nntrain's ranks would take every core each), and would
 * start 5000 threads. A list ("8,1") sets nested levels: every count is held to
 * --threads' range 1..1024; space around them is allowed, as OpenMP allows it. */
static int check_omp_num_threads(nn_error *err) {
    const char *value = nn_env("OMP_NUM_THREADS"), *p = value;
    if (!value) return NN_OK;
    long count;
    bool too_many = false;
    do {
        while (isspace((unsigned char)*p)) p++;
        char *end = (char *)p;
        count = isdigit((unsigned char)*p) ? strtol(p, &end, 10) : 0; /* strtol's overflow, LONG_MAX: too many */
        too_many |= count > 1024;
        for (p = end; isspace((unsigned char)*p);) p++;
    } while (count >= 1 && *p == ',' && p++);
    if (count < 1 || *p)
        return nn_fail(err, NN_ERR_INPUT, "environment: OMP_NUM_THREADS=%.64s: expected a thread count (1..1024) or "
                       "a list of counts", value);
    if (too_many)
        return nn_fail(err, NN_ERR_INPUT, "environment: OMP_NUM_THREADS=%.64s: more than 1024 threads", value);
    return NN_OK;
}

int nn_env_check(nn_error *err) {
    extern char **environ;
    for (char **entry = environ; entry && *entry; entry++) {
        int k = misspelt_knob(*entry);
        if (k >= 0)
            return nn_fail(err, NN_ERR_INPUT, "environment: %.*s: no such variable; did you mean %s?",
                           (int)strcspn(*entry, "="), *entry, knobs[k].name);
    }
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
    return check_omp_num_threads(err);
}

int nn_env_agree(MPI_Comm comm, nn_error *err) {
    int status = NN_OK;
    for (int k = 0; k < N_KNOBS && !status; k++) {
        if (!knobs[k].alike) continue;
        const char *value = nn_env(knobs[k].name);
        if (value && !strcmp(value, "auto")) value = NULL; /* NN_NODE_SUM's default, said or not */
        char hint[96];
        snprintf(hint, sizeof hint, "give every rank the same (mpirun -x %s)", knobs[k].name);
        status = nn_comm_agree_same(comm, value ? value : "", value ? strlen(value) + 1 : 0, knobs[k].name, hint, err);
    }
    return status;
}
