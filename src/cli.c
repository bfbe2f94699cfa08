#include "nn/cli.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/conv_spec.h"
#include "nn/signals.h"
#include "nn/watchdog.h"

const char *nn_cli_name(const struct option *options, int val) {
    for (const struct option *o = options; o->name; o++)
        if (o->val == val) return o->name;
    return "?";
}

/* The option argv[optind - 1] named, without any "=value", for messages. */
static void offending_name(char *const *argv, char *out, size_t cap) {
    const char *arg = argv[optind - 1];
    size_t len = strcspn(arg, "=");
    snprintf(out, cap, "%.*s", (int)(len < cap ? len : cap - 1), arg);
}

/* "--check" is a prefix of several options (--checkpoint, --checkpoint-every): getopt
 * reports it as it reports an unknown one, so the message names the candidates. Writes
 * them, comma-separated, to `out`; returns how many there are. */
static int candidates(const struct option *options, const char *name, char *out, size_t cap) {
    int count = 0;
    size_t used = 0;
    out[0] = '\0';
    if (strncmp(name, "--", 2) != 0 || name[2] == '\0') return 0;
    size_t len = strlen(name + 2);
    for (const struct option *o = options; o->name; o++)
        if (strncmp(o->name, name + 2, len) == 0 && used < cap) {
            int n = snprintf(out + used, cap - used, "%s--%s", count ? ", " : "", o->name);
            used += n > 0 ? (size_t)n : 0;
            count++;
        }
    return count;
}

static int unknown_option(const struct option *options, const char *name, nn_error *err) {
    char list[256];
    if (candidates(options, name, list, sizeof list) > 1)
        return nn_fail(err, NN_ERR_INPUT, "ambiguous option '%s': could be %s (see --help)", name, list);
    return nn_fail(err, NN_ERR_INPUT, "unknown option '%s' (see --help)", name);
}

int nn_cli_parse(int argc, char **argv, const struct option *options, nn_cli_option_fn on_option,
                 nn_cli_operand_fn on_operand, void *ctx, nn_error *err) {
    char shorts[64] = ":";  /* ':' first: a missing value is reported as ':' */
    size_t n = 1;
    for (const struct option *o = options; o->name && n + 3 < sizeof shorts; o++)
        if (o->val > 0 && o->val < 128 && isalpha(o->val)) { /* short aliases, e.g. -h */
            shorts[n++] = (char)o->val;
            if (o->has_arg) shorts[n++] = ':';
        }
    shorts[n] = '\0';
    optind = 0; /* glibc: a full restart */
    opterr = 0; /* our messages, not getopt's */
    int c, status = NN_OK;
    while (!status && (c = getopt_long(argc, argv, shorts, options, NULL)) != -1) {
        char name[64];
        if (c == '?' || c == ':') {
            offending_name(argv, name, sizeof name);
            bool long_option = strncmp(name, "--", 2) == 0;
            if (c == '?' && optopt && long_option) /* getopt's optopt: a known option given "=value" */
                status = nn_fail(err, NN_ERR_INPUT, "%s takes no value (see --help)", name);
            else {
                if (c == '?' && optopt) snprintf(name, sizeof name, "-%c", optopt); /* a short one: "-x" */
                status = c == '?' ? unknown_option(options, name, err)
                                  : nn_fail(err, NN_ERR_INPUT, "%s needs a value (see --help)", name);
            }
        } else {
            status = on_option(ctx, c, optarg, err);
        }
    }
    for (int i = optind; !status && i < argc; i++)
        status = on_operand ? on_operand(ctx, argv[i], err)
                            : nn_fail(err, NN_ERR_INPUT, "unexpected argument '%s' (see --help)", argv[i]);
    return status;
}

int nn_cli_long(const char *name, const char *text, long min, long max, long *out, nn_error *err) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno || isspace((unsigned char)text[0]))
        return nn_fail(err, NN_ERR_INPUT, "%s '%s': not an integer", name, text);
    if (v < min || v > max) return nn_fail(err, NN_ERR_INPUT, "%s %ld: must be in %ld..%ld", name, v, min, max);
    *out = v;
    return NN_OK;
}

int nn_cli_int(const char *name, const char *text, int min, int max, int *out, nn_error *err) {
    long v = 0;
    int status = nn_cli_long(name, text, min, max, &v, err);
    if (!status) *out = (int)v;
    return status;
}

int nn_cli_float(const char *name, const char *text, double min, double max, int max_inclusive, float *out,
                 nn_error *err) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno || !isfinite(v) || isspace((unsigned char)text[0]))
        return nn_fail(err, NN_ERR_INPUT, "%s '%s': not a finite number", name, text);
    float stored = (float)v;
    if (v < min || v > max || stored < min || stored > max || (!max_inclusive && (v == max || stored == max)))
        return nn_fail(err, NN_ERR_INPUT, "%s %s: must be in [%g, %g%c", name, text, min, max,
                       max_inclusive ? ']' : ')');
    *out = stored;
    return NN_OK;
}

int nn_cli_timeout(const char *name, const char *text, double *out, nn_error *err) {
    float seconds = 0.0f;
    int status = nn_cli_float(name, text, 0.0, 86400.0, 1, &seconds, err);
    if (!status && seconds > 0 && seconds < NN_WATCHDOG_MIN_TIMEOUT) /* it would end a healthy start-up */
        status = nn_fail(err, NN_ERR_INPUT, "%s %s: must be 0 (no watchdog) or at least %g s", name, text,
                         NN_WATCHDOG_MIN_TIMEOUT);
    *out = seconds;
    return status;
}

int nn_cli_path(const char *name, const char *text, char *dst, nn_error *err) {
    size_t len = strlen(text);
    if (len == 0) return nn_fail(err, NN_ERR_INPUT, "%s: empty path", name);
    if (len >= NN_PATH_MAX) return nn_fail(err, NN_ERR_INPUT, "%s: path longer than %d bytes", name, NN_PATH_MAX - 1);
    memcpy(dst, text, len + 1);
    return NN_OK;
}

int nn_cli_widths(const char *name, const char *text, nn_model_spec *spec, nn_error *err) {
    if (nn_spec_text_is_conv(text)) return nn_spec_parse_conv(name, text, spec, err);
    int n = 0;
    const char *p = text;
    while (1) {
        if (n == NN_MAX_WIDTHS) return nn_fail(err, NN_ERR_INPUT, "%s '%s': more than %d widths", name, text, NN_MAX_WIDTHS);
        char *end;
        errno = 0;
        long w = strtol(p, &end, 10);
        if (end == p || errno || w < 1 || w > 1000000 || isspace((unsigned char)*p))
            return nn_fail(err, NN_ERR_INPUT, "%s '%s': widths must be integers in 1..1000000 separated by commas",
                           name, text);
        spec->widths[n++] = (int)w;
        if (*end == '\0') break;
        if (*end != ',') return nn_fail(err, NN_ERR_INPUT, "%s '%s': unexpected '%c'", name, text, *end);
        p = end + 1;
    }
    if (n < 2) return nn_fail(err, NN_ERR_INPUT, "%s '%s': need an input and an output width", name, text);
    spec->n_widths = n;
    spec->n_convs = 0;
    return NN_OK;
}

int nn_cli_stdout_status(const char *program, int status) {
    errno = 0;
    int failed = fflush(stdout) != 0 || ferror(stdout);
    if (!failed || status != NN_OK || nn_reader_gone() || errno == EPIPE) return status;
    fprintf(stderr, "%s: standard output: write failed%s%s; the lines printed there are lost\n", program,
            errno ? ": " : "", errno ? strerror(errno) : "");
    return NN_ERR_RUNTIME;
}
