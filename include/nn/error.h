/* Error reporting: library functions return a status code and fill an nn_error;
 * only the tools print and exit. The codes are the process exit codes. */
#ifndef NN_ERROR_H
#define NN_ERROR_H

#include <stddef.h>

enum nn_status {
    NN_OK = 0,
    NN_ERR_RUNTIME = 1, /* the machine failed us: out of memory, I/O, MPI */
    NN_ERR_INPUT = 2,   /* the user gave us something wrong: option, file, shape */
    NN_STOPPED = 75     /* stopped by a signal after writing a checkpoint (EX_TEMPFAIL: requeue) */
};

/* One size for every path buffer (Linux's PATH_MAX). */
#define NN_PATH_MAX 4096

typedef struct nn_error {
    int status;     /* one of nn_status */
    int local;      /* what this rank alone sees (its node's files): nn_comm_agree names the rank */
    /* one line, no trailing newline (nn_fail writes out control characters); room for
     * three paths of the longest length and the reason after them */
    char msg[3 * NN_PATH_MAX + 512];
} nn_error;

/* Record an error (printf-style) and return its status, so callers can write
 *   return nn_fail(err, NN_ERR_INPUT, "%s: no dataset /train/images", path); */
int nn_fail(nn_error *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same, for a failure of this rank's own view, which another node may not share:
 * a path it cannot open (a node-local disk, another working directory). Content
 * errors of a file every rank reads are not local, though one rank meets them. */
int nn_fail_local(nn_error *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* `text` as one line, its control characters written out ("\n", "\x1b") as nn_fail
 * writes them: for a user's path in a line the tools print (a path holding a newline
 * would break the line a script reads). Returns `out`; NN_ONE_LINE_MAX holds any path. */
#define NN_ONE_LINE_MAX (4 * NN_PATH_MAX)
const char *nn_one_line(const char *text, char *out, size_t cap);

#endif
