/* The checkpoint format's checksums: of an array (nn_checksum), and of every scalar
 * attribute (checkpoint_format.h's table), which a hand-edited setting no longer matches. */
#include "checkpoint_format.h"

#include <zlib.h>

uint32_t nn_checksum(const float *data, size_t n) {
    uLong crc = crc32(0L, Z_NULL, 0);
    const unsigned char *bytes = (const unsigned char *)data;
    size_t left = n * sizeof(float);
    while (left > 0) { /* crc32 takes a uInt length */
        uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
        crc = crc32(crc, bytes, chunk);
        bytes += chunk;
        left -= chunk;
    }
    return (uint32_t)crc;
}

/* A hand-edited setting (a negative lr, a step past the end) no longer matches. */
uint32_t checkpoint_record_checksum(const record *rec, const nn_model_spec *spec) {
    uLong crc = crc32(0L, Z_NULL, 0);
    char line[NN_PATH_MAX + 96], text[NN_PATH_MAX];
    for (int i = 0; i < N_FIELDS; i++) {
        if (fields[i].optional == LATE && field_absent(&fields[i], (const char *)rec + fields[i].offset)) continue;
        field_text(&fields[i], (const char *)rec + fields[i].offset, text, sizeof text);
        int n = snprintf(line, sizeof line, "%s/%s=%s\n", fields[i].group, fields[i].name, text);
        crc = crc32(crc, (const unsigned char *)line, (uInt)(n < (int)sizeof line ? n : (int)sizeof line - 1));
    }
    for (int i = 0; i < spec->n_widths; i++) {
        int n = snprintf(line, sizeof line, "widths[%d]=%d\n", i, spec->widths[i]);
        crc = crc32(crc, (const unsigned char *)line, (uInt)n);
    }
    for (int i = 0; i < spec->n_convs; i++) { /* format 2: image and convs too */
        const nn_conv_spec *c = &spec->convs[i];
        int n = snprintf(line, sizeof line, "image=%dx%dx%d convs[%d]=%d,%d,%d,%d\n", spec->image[0], spec->image[1],
                         spec->image[2], i, c->pool, c->k, c->channels, c->pad);
        crc = crc32(crc, (const unsigned char *)line, (uInt)n);
    }
    return (uint32_t)crc;
}
