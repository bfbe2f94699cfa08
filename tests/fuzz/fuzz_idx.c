/* libFuzzer harness: the IDX reader (raw and gzip) on arbitrary bytes. The first
 * byte picks the expected dimensions (1 or 3), the rest is the file. Any input must
 * give NN_OK with exactly the declared bytes, or an error with a message -- never a
 * crash, a leak or an out-of-bounds access. */
#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nn/idx.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (fd < 0) { /* one in-memory file for every input */
        fd = memfd_create("idx", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) abort();
    if (size > 1 && pwrite(fd, data + 1, size - 1, 0) != (ssize_t)(size - 1)) abort();
    nn_idx idx;
    nn_error err = {0};
    int expect = data[0] & 1 ? 3 : 1;
    int status = nn_idx_read(path, expect, &idx, &err);
    if (status == NN_OK) {
        size_t bytes = 1;
        for (int d = 0; d < idx.ndim; d++) bytes *= idx.dims[d];
        if (idx.ndim != expect || (long)idx.dims[0] != idx.count) abort();
        volatile uint8_t last = idx.data[bytes - 1]; /* the buffer holds every declared byte */
        (void)last;
    } else if (!err.msg[0] || (status != NN_ERR_INPUT && status != NN_ERR_RUNTIME)) {
        abort(); /* every failure explains itself */
    }
    nn_idx_free(&idx);
    return 0;
}
