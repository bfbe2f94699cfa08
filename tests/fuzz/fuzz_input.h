/* Reading decisions out of a fuzz input: each call consumes bytes; past the end,
 * every answer is 0 (so a short input still describes a whole file). */
#ifndef FUZZ_INPUT_H
#define FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct fuzz_input {
    const uint8_t *data;
    size_t size, pos;
} fuzz_input;

static inline uint8_t take_byte(fuzz_input *in) { return in->pos < in->size ? in->data[in->pos++] : 0; }

static inline uint64_t take_u64(fuzz_input *in) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | take_byte(in);
    return v;
}

/* A small number most of the time, an extreme one now and then. */
static inline long long take_number(fuzz_input *in, long long typical_max) {
    uint8_t how = take_byte(in);
    if (how < 200) return typical_max > 0 ? (long long)(take_byte(in) % (typical_max + 1)) : 0;
    if (how < 220) return -(long long)take_byte(in);
    return (long long)take_u64(in);
}

#endif
