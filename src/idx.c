/* Reading IDX files (the MNIST format), raw or gzip-compressed.
 *
 * Layout: bytes 0x00 0x00 0x08 <ndim>, then ndim big-endian uint32 sizes, then
 * exactly prod(sizes) bytes of uint8 data. zlib's gzread reads raw files
 * transparently, so one code path serves both. */
#include "nn/idx.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
#define IDX_MAX_DIMS 4

/* gzread takes an unsigned length and returns an int: read in pieces well below INT_MAX. */
#define READ_PIECE (1u << 30)

_Static_assert(LONG_MAX >= UINT32_MAX, "nn_idx.count (long) must hold any uint32 dimension");

/* Read up to n bytes; returns how many were read (short only at end of file or on error). */
static size_t gz_read_fully(gzFile file, void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        size_t want = n - done < READ_PIECE ? n - done : READ_PIECE;
        int got = gzread(file, (char *)buf + done, (unsigned)want);
        if (got <= 0) break;
        done += (size_t)got;
    }
    return done;
}

/* Why zlib stopped: NN_OK at a plain end of file, else the error. Z_BUF_ERROR means a
 * gzip stream cut short, which the caller reports as truncation (*cut_short = 1). */
static int zlib_failure(gzFile file, const char *path, int *cut_short, nn_error *err) {
    int zstatus = Z_OK;
    const char *zmsg = gzerror(file, &zstatus);
    *cut_short = zstatus == Z_BUF_ERROR;
    if (zstatus == Z_OK || zstatus == Z_BUF_ERROR) return NN_OK;
    if (zstatus == Z_ERRNO)
        return nn_fail(err, NN_ERR_RUNTIME, "%s: read error: %s", path, strerror(errno));
    if (zstatus == Z_MEM_ERROR) return nn_fail(err, NN_ERR_RUNTIME, "%s: out of memory", path);
    size_t len = strlen(path); /* zlib's message starts "<path>: "; name the path once */
    if (strncmp(zmsg, path, len) == 0 && strncmp(zmsg + len, ": ", 2) == 0) zmsg += len + 2;
    return nn_fail(err, NN_ERR_INPUT, "%s: corrupt gzip data (%s)", path, zmsg);
}

/* After a short read. `what` says what was cut short, e.g. "the header needs 16 bytes". */
static int fail_short_read(gzFile file, const char *path, const char *what, size_t got,
                           nn_error *err) {
    int cut_short;
    int status = zlib_failure(file, path, &cut_short, err);
    if (status != NN_OK) return status;
    return nn_fail(err, NN_ERR_INPUT, "%s: truncated: %s, found only %zu", path, what, got);
}

static uint32_t big_endian_u32(const unsigned char b[4]) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Magic number and dimensions; on success fills out->ndim, dims, count and *data_bytes. */
static int read_header(gzFile file, const char *path, int expect_ndim, nn_idx *out,
                       size_t *data_bytes, nn_error *err) {
    unsigned char magic[4];
    size_t got = gz_read_fully(file, magic, sizeof magic);
    if (got < sizeof magic)
        return fail_short_read(file, path, "an IDX header needs at least 4 bytes", got, err);
    if (magic[0] != 0 || magic[1] != 0 || magic[2] != IDX_TYPE_UBYTE)
        return nn_fail(err, NN_ERR_INPUT,
                       "%s: not an IDX file of uint8 (magic %02x %02x %02x %02x, "
                       "expected 00 00 08 nn)", path, magic[0], magic[1], magic[2], magic[3]);
    int ndim = magic[3];
    if (ndim != expect_ndim)
        return nn_fail(err, NN_ERR_INPUT, "%s: has %d dimensions, expected %d", path, ndim,
                       expect_ndim);
    if (ndim < 1 || ndim > IDX_MAX_DIMS)
        return nn_fail(err, NN_ERR_INPUT, "%s: %d dimensions is not supported (1 to %d)", path,
                       ndim, IDX_MAX_DIMS);

    unsigned char sizes[4 * IDX_MAX_DIMS];
    size_t header_bytes = 4 * (size_t)ndim;
    got = gz_read_fully(file, sizes, header_bytes);
    if (got < header_bytes) {
        char what[64];
        snprintf(what, sizeof what, "the header needs %zu bytes", 4 + header_bytes);
        return fail_short_read(file, path, what, 4 + got, err);
    }

    size_t total = 1;
    for (int d = 0; d < ndim; d++) {
        uint32_t size = big_endian_u32(sizes + 4 * d);
        if (size == 0) return nn_fail(err, NN_ERR_INPUT, "%s: dimension %d is 0", path, d);
        if (total > SIZE_MAX / size)
            return nn_fail(err, NN_ERR_INPUT, "%s: dimensions too large (size overflows)", path);
        total *= size;
        out->dims[d] = size;
    }
    out->ndim = ndim;
    out->count = (long)out->dims[0];
    *data_bytes = total;
    return NN_OK;
}

/* Read exactly `total` bytes into a buffer that grows as data arrives, so a header that
 * lies about a huge size gives "truncated" rather than a failed giant allocation. */
static int read_data(gzFile file, const char *path, size_t total, uint8_t **data,
                     nn_error *err) {
    size_t capacity = total < ((size_t)1 << 20) ? total : (size_t)1 << 20;
    size_t filled = 0;
    uint8_t *buf = malloc(capacity);
    if (!buf) return nn_fail(err, NN_ERR_RUNTIME, "%s: out of memory", path);
    for (;;) {
        size_t got = gz_read_fully(file, buf + filled, capacity - filled);
        filled += got;
        if (filled == total) break;
        if (filled < capacity) {
            char what[96];
            snprintf(what, sizeof what, "the header declares %zu data bytes", total);
            int status = fail_short_read(file, path, what, filled, err);
            free(buf);
            return status;
        }
        size_t grown = capacity > total / 2 ? total : capacity * 2;
        uint8_t *bigger = realloc(buf, grown);
        if (!bigger) {
            free(buf);
            return nn_fail(err, NN_ERR_RUNTIME, "%s: out of memory (%zu bytes)", path, total);
        }
        buf = bigger;
        capacity = grown;
    }

    /* End of file must come now, and a gzip stream must end cleanly: zlib checks its
     * CRC and length only on reaching the stream's end. */
    unsigned char extra;
    int cut_short = 0;
    int status = NN_OK;
    if (gz_read_fully(file, &extra, 1) != 0)
        status = nn_fail(err, NN_ERR_INPUT, "%s: trailing bytes after the %zu data bytes the "
                         "header declares", path, total);
    else if ((status = zlib_failure(file, path, &cut_short, err)) == NN_OK && cut_short)
        status = nn_fail(err, NN_ERR_INPUT, "%s: truncated: the gzip stream ends without "
                         "its trailer", path);
    if (status != NN_OK) {
        free(buf);
        return status;
    }
    *data = buf;
    return NN_OK;
}

int nn_idx_read(const char *path, int expect_ndim, nn_idx *out, nn_error *err) {
    memset(out, 0, sizeof *out);
    errno = 0;
    gzFile file = gzopen(path, "rb");
    if (!file)
        return nn_fail(err, NN_ERR_INPUT, "%s: cannot open: %s", path,
                       errno ? strerror(errno) : "out of memory");
    gzbuffer(file, 1u << 18); /* fewer, larger reads: the default 8 KiB is slow for 47 MB */

    size_t data_bytes = 0;
    int status = read_header(file, path, expect_ndim, out, &data_bytes, err);
    if (status == NN_OK) status = read_data(file, path, data_bytes, &out->data, err);
    gzclose(file);
    if (status != NN_OK) memset(out, 0, sizeof *out);
    return status;
}

void nn_idx_free(nn_idx *idx) {
    if (!idx) return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}
