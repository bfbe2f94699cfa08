/* Reading IDX files (the MNIST format), raw or gzip-compressed.
 *
 * Layout: bytes 0x00 0x00 0x08 <ndim>, then ndim big-endian uint32 sizes, then
 * exactly prod(sizes) bytes of uint8 data.
 *
 * We inflate with zlib's z_stream rather than gzread: gzread returns success for a
 * gzip file whose 8-byte trailer (CRC and length) is missing whenever the last read
 * ends exactly at the end of the data, so a truncated download would pass unchecked. */
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
#define INPUT_BUFFER_BYTES (1u << 16)
#define GZIP_WINDOW_BITS (15 + 16) /* 32 KiB window, gzip header and trailer */

_Static_assert(LONG_MAX >= UINT32_MAX, "nn_idx.count (long) must hold any uint32 dimension");

/* ---- a byte stream over a raw or gzip file ------------------------------------------- */

typedef struct idx_stream {
    FILE *file;
    int gzip;         /* the file starts with the gzip magic 1f 8b */
    int member_ended; /* gzip: the last member's trailer was read and its CRC checked */
    int zstatus;      /* gzip: the first inflate error, or Z_OK */
    int read_errno;   /* the I/O error that stopped reading, or 0 */
    z_stream z;       /* next_in/avail_in is the input buffer for raw files too */
    unsigned char in[INPUT_BUFFER_BYTES];
} idx_stream;

static size_t fill_input(idx_stream *s) {
    size_t got = fread(s->in, 1, sizeof s->in, s->file);
    if (got < sizeof s->in && ferror(s->file)) s->read_errno = errno ? errno : EIO;
    s->z.next_in = s->in;
    s->z.avail_in = (uInt)got;
    return got;
}

static int stream_open(const char *path, idx_stream **out, nn_error *err) {
    idx_stream *s = calloc(1, sizeof *s);
    if (!s) return nn_fail(err, NN_ERR_RUNTIME, "%s: out of memory", path);
    s->file = fopen(path, "rb");
    if (!s->file) {
        int saved = errno;
        free(s);
        return nn_fail(err, NN_ERR_INPUT, "%s: cannot open: %s", path, strerror(saved));
    }
    fill_input(s);
    s->gzip = s->z.avail_in >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b;
    if (s->gzip && inflateInit2(&s->z, GZIP_WINDOW_BITS) != Z_OK) {
        fclose(s->file);
        free(s);
        return nn_fail(err, NN_ERR_RUNTIME, "%s: cannot start zlib (out of memory?)", path);
    }
    *out = s;
    return NN_OK;
}

static void stream_close(idx_stream *s) {
    if (s->gzip) inflateEnd(&s->z);
    fclose(s->file);
    free(s);
}

static size_t read_raw(idx_stream *s, uint8_t *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        if (s->z.avail_in == 0 && fill_input(s) == 0) break;
        size_t take = n - done < s->z.avail_in ? n - done : s->z.avail_in;
        memcpy(buf + done, s->z.next_in, take);
        s->z.next_in += take;
        s->z.avail_in -= (uInt)take;
        done += take;
    }
    return done;
}

static size_t read_gzip(idx_stream *s, uint8_t *buf, size_t n) {
    size_t done = 0;
    while (done < n && s->zstatus == Z_OK) {
        if (s->z.avail_in == 0 && fill_input(s) == 0) break;
        if (s->member_ended) { /* input goes on after a member: concatenated gzip */
            inflateReset(&s->z);
            s->member_ended = 0;
        }
        size_t want = n - done < UINT_MAX ? n - done : UINT_MAX;
        s->z.next_out = buf + done;
        s->z.avail_out = (uInt)want;
        int ret = inflate(&s->z, Z_NO_FLUSH);
        done += want - s->z.avail_out;
        if (ret == Z_STREAM_END) s->member_ended = 1;
        else if (ret != Z_OK && ret != Z_BUF_ERROR) s->zstatus = ret;
    }
    return done;
}

/* Up to n bytes of content; fewer only at the end of the file or on an error. */
static size_t stream_read(idx_stream *s, void *buf, size_t n) {
    return s->gzip ? read_gzip(s, buf, n) : read_raw(s, buf, n);
}

/* An I/O or gzip error that stopped the stream, if any (else NN_OK). */
static int stream_error(const idx_stream *s, const char *path, nn_error *err) {
    if (s->read_errno)
        return nn_fail(err, NN_ERR_RUNTIME, "%s: read error: %s", path, strerror(s->read_errno));
    if (s->zstatus == Z_MEM_ERROR) return nn_fail(err, NN_ERR_RUNTIME, "%s: out of memory", path);
    if (s->zstatus != Z_OK)
        return nn_fail(err, NN_ERR_INPUT, "%s: corrupt gzip data (%s)", path,
                       s->z.msg ? s->z.msg : zError(s->zstatus));
    return NN_OK;
}

/* After a short read. `what` says what was cut short, e.g. "the header needs 16 bytes". */
static int fail_short_read(const idx_stream *s, const char *path, const char *what, size_t got,
                           nn_error *err) {
    int status = stream_error(s, path, err);
    if (status != NN_OK) return status;
    return nn_fail(err, NN_ERR_INPUT, "%s: truncated: %s, found only %zu", path, what, got);
}

/* After the data: the file must end here, and a gzip stream must end with its trailer. */
static int stream_finish(idx_stream *s, const char *path, size_t data_bytes, nn_error *err) {
    unsigned char extra;
    if (stream_read(s, &extra, 1) != 0)
        return nn_fail(err, NN_ERR_INPUT, "%s: trailing bytes after the %zu data bytes the "
                       "header declares", path, data_bytes);
    int status = stream_error(s, path, err);
    if (status == NN_OK && s->gzip && !s->member_ended)
        status = nn_fail(err, NN_ERR_INPUT, "%s: truncated: the gzip stream ends without its "
                         "trailer", path);
    return status;
}

/* ---- the IDX format ------------------------------------------------------------------ */

static uint32_t big_endian_u32(const unsigned char b[4]) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Magic number and dimensions; on success fills out->ndim, dims, count and *data_bytes. */
static int read_header(idx_stream *s, const char *path, int expect_ndim, nn_idx *out,
                       size_t *data_bytes, nn_error *err) {
    unsigned char magic[4];
    size_t got = stream_read(s, magic, sizeof magic);
    if (got < sizeof magic)
        return fail_short_read(s, path, "an IDX header needs at least 4 bytes", got, err);
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
    got = stream_read(s, sizes, header_bytes);
    if (got < header_bytes) {
        char what[64];
        snprintf(what, sizeof what, "the header needs %zu bytes", 4 + header_bytes);
        return fail_short_read(s, path, what, 4 + got, err);
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
static int read_data(idx_stream *s, const char *path, size_t total, uint8_t **data,
                     nn_error *err) {
    size_t capacity = total < ((size_t)1 << 20) ? total : (size_t)1 << 20;
    size_t filled = 0;
    uint8_t *buf = malloc(capacity);
    if (!buf) return nn_fail(err, NN_ERR_RUNTIME, "%s: out of memory", path);
    for (;;) {
        filled += stream_read(s, buf + filled, capacity - filled);
        if (filled == total) break;
        if (filled < capacity) {
            char what[96];
            snprintf(what, sizeof what, "the header declares %zu data bytes", total);
            int status = fail_short_read(s, path, what, filled, err);
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
    int status = stream_finish(s, path, total, err);
    if (status != NN_OK) {
        free(buf);
        return status;
    }
    *data = buf;
    return NN_OK;
}

int nn_idx_read(const char *path, int expect_ndim, nn_idx *out, nn_error *err) {
    memset(out, 0, sizeof *out);
    idx_stream *s = NULL;
    int status = stream_open(path, &s, err);
    if (status != NN_OK) return status;

    size_t data_bytes = 0;
    status = read_header(s, path, expect_ndim, out, &data_bytes, err);
    if (status == NN_OK) status = read_data(s, path, data_bytes, &out->data, err);
    stream_close(s);
    if (status != NN_OK) memset(out, 0, sizeof *out);
    return status;
}

void nn_idx_free(nn_idx *idx) {
    if (!idx) return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}
