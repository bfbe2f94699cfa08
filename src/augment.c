/* Random translations of training images, in place (see nn/augment.h). */
#include "nn/augment.h"

#include <string.h>

/* The key's id for the shift: dropout layers use 0, 1, 2, ... */
#define SHIFT_KEY_ID (-1)

void nn_shift_draw(const nn_dropout_key *key, int row, int shift, int *dx, int *dy) {
    uint64_t bits = nn_dropout_row_key(key, SHIFT_KEY_ID, row);
    uint32_t span = 2u * (uint32_t)shift + 1u;
    *dx = (int)((uint32_t)bits % span) - shift;
    *dy = (int)((uint32_t)(bits >> 32) % span) - shift;
}

/* out[y][x] = in[y - dy][x - dx], 0 outside, in place: the rows are visited so that a
 * row is read before it is overwritten (downwards moves from the bottom up), and
 * memmove copies within a row when dy = 0. */
static void shift_plane(float *p, int h, int w, int dx, int dy) {
    int width = w - (dx > 0 ? dx : -dx);
    for (int i = 0; i < h; i++) {
        int y = dy > 0 ? h - 1 - i : i, from = y - dy;
        float *row = p + (size_t)y * w;
        if (from < 0 || from >= h || width <= 0) {
            memset(row, 0, (size_t)w * sizeof *row);
            continue;
        }
        const float *src = p + (size_t)from * w;
        memmove(row + (dx > 0 ? dx : 0), src + (dx < 0 ? -dx : 0), (size_t)width * sizeof *row);
        if (dx > 0) memset(row, 0, (size_t)dx * sizeof *row);
        if (dx < 0) memset(row + width, 0, (size_t)(-dx) * sizeof *row);
    }
}

void nn_shift_images(float *x, int n, const int image[3], int shift, const nn_dropout_key *key) {
    int c = image[0], h = image[1], w = image[2];
    size_t plane = (size_t)h * w;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
        int dx, dy;
        nn_shift_draw(key, r, shift, &dx, &dy);
        if (dx == 0 && dy == 0) continue;
        for (int k = 0; k < c; k++) shift_plane(x + ((size_t)r * c + k) * plane, h, w, dx, dy);
    }
}
