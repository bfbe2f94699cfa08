#include "nn/error.h"

#include <stdarg.h>
#include <stdio.h>

/* `text` into `out` with its control characters written out ("\n", "\x1b"): a path
 * or value holding a newline would otherwise break the message's one line. */
static void escape_controls(const char *text, char *out, size_t cap) {
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)text; *c && n + 1 < cap; c++) {
        char esc[8];
        int len = *c == '\n' ? snprintf(esc, sizeof esc, "\\n")
                  : *c == '\t' ? snprintf(esc, sizeof esc, "\\t")
                  : *c < 0x20 || *c == 0x7f ? snprintf(esc, sizeof esc, "\\x%02x", *c)
                                            : snprintf(esc, sizeof esc, "%c", *c);
        if (n + (size_t)len >= cap) break;
        for (int i = 0; i < len; i++) out[n++] = esc[i];
    }
    out[n] = '\0';
}

const char *nn_one_line(const char *text, char *out, size_t cap) {
    escape_controls(text, out, cap);
    return out;
}

static int record(nn_error *err, int status, int local, const char *fmt, va_list ap) {
    if (err) {
        char text[sizeof err->msg];
        vsnprintf(text, sizeof text, fmt, ap);
        escape_controls(text, err->msg, sizeof err->msg);
        err->status = status;
        err->local = local;
    }
    return status;
}

int nn_fail(nn_error *err, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record(err, status, 0, fmt, ap);
    va_end(ap);
    return status;
}

int nn_fail_local(nn_error *err, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record(err, status, 1, fmt, ap);
    va_end(ap);
    return status;
}
