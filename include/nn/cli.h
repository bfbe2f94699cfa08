/* The command-line layer shared by nntrain, nneval and nnprep: getopt_long with
 * `--name value` and `--name=value`, and one strict way to read numbers and paths
 * (a malformed value is an error naming the option, never a silent zero). */
#ifndef NN_CLI_H
#define NN_CLI_H

#include <getopt.h>
#include <stddef.h>

#include "nn/error.h"
#include "nn/model.h"

/* Calls on_option(ctx, option, value) for each option of argv, where `option` is
 * getopt_long's return value (the `val` of the table entry) and `value` its
 * argument (NULL for flags). Non-option arguments go to on_operand (NULL: they
 * are an error). Unknown options and missing values are NN_ERR_INPUT with a
 * message; the first non-zero status of a callback ends the parse. Restartable:
 * resets getopt's state, so it can run more than once per process (tests). */
typedef int (*nn_cli_option_fn)(void *ctx, int option, const char *value, nn_error *err);
typedef int (*nn_cli_operand_fn)(void *ctx, const char *operand, nn_error *err);
int nn_cli_parse(int argc, char **argv, const struct option *options, nn_cli_option_fn on_option,
                 nn_cli_operand_fn on_operand, void *ctx, nn_error *err);

/* The long name of option `val` in `options` ("--epochs"), for messages. */
const char *nn_cli_name(const struct option *options, int val);

/* Strict numbers: the whole text, no leading or trailing spaces, in range. */
int nn_cli_long(const char *name, const char *text, long min, long max, long *out, nn_error *err);
int nn_cli_int(const char *name, const char *text, int min, int max, int *out, nn_error *err);
/* A finite number in [min, max] (or [min, max) when !max_inclusive). The range is
 * checked on the value as stored (a float), so 0.99999999999 for [0, 1) is refused
 * rather than silently rounded to 1. */
int nn_cli_float(const char *name, const char *text, double min, double max, int max_inclusive, float *out,
                 nn_error *err);
/* --timeout's seconds: 0 (no watchdog) or from NN_WATCHDOG_MIN_TIMEOUT to a day. */
int nn_cli_timeout(const char *name, const char *text, double *out, nn_error *err);
/* A non-empty path that fits NN_PATH_MAX. */
int nn_cli_path(const char *name, const char *text, char *dst, nn_error *err);

/* At a tool's end: `status`, or NN_ERR_RUNTIME with one line on stderr where it was
 * NN_OK but standard output could not be written (a full disk, /dev/full: what was
 * printed is lost, and an exit 0 would say all is well). A reader that left (a pipe
 * closed, `| head`) is not a failure: it chose to read no more. */
int nn_cli_stdout_status(const char *program, int status);

/* "784,50,100,10" into spec->widths (input first, classes last), or a network with
 * convolutions, "conv5x5x32p2,pool2,1024,10" (conv_spec.h). */
int nn_cli_widths(const char *name, const char *text, nn_model_spec *spec, nn_error *err);

#endif
