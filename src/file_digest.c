/* A file's digest (nn/file_digest.h). */
#define _POSIX_C_SOURCE 200809L /* pread */
#include "nn/file_digest.h"

#include "nn/outputs.h" /* NN_HDF5_SIGNATURE */
#include "nn/watchdog.h"

#include <errno.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

enum { BLOCK = 1 << 14 }; /* on the stack: whichever thread asks */

/* Where an HDF5 superblock at the file's start keeps its consistency flags (the HDF5
 * file format specification, "Superblock"): 4 bytes at offset 20 in versions 0 and 1;
 * in versions 2 and 3 one byte at offset 11, and the superblock's checksum, which covers
 * it, after the four addresses that follow it (each as wide as byte 9 says). Zeroed in
 * `head` before it is digested. */
static void leave_out_open_flags(unsigned char *head, size_t n) {
    if (n < 24 || memcmp(head, NN_HDF5_SIGNATURE, 8) != 0) return;
    if (head[8] <= 1) {
        memset(head + 20, 0, 4);
    } else if (head[8] <= 3) {
        size_t checksum = 12 + 4 * (size_t)head[9];
        head[11] = 0;
        if (checksum + 4 <= n) memset(head + checksum, 0, 4);
    }
}

/* `n` bytes of `fd` from `at`, fewer only at its end (a read may return less) */
static ssize_t read_block(int fd, unsigned char *buf, size_t n, off_t at) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, at + (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* 64-bit words mixed in one multiply each (FNV-1a's prime, a word at a time: a byte at
 * a time is 8 times slower, and a checkpoint may be tens of megabytes). */
static uint64_t mix(uint64_t h, const unsigned char *bytes, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, bytes + i, 8);
        h = (h ^ w) * 1099511628211ULL;
        h ^= h >> 32;
    }
    for (; i < n; i++) h = (h ^ bytes[i]) * 1099511628211ULL;
    return h;
}

int nn_file_digest(int fd, uint64_t *digest) {
    unsigned char buf[BLOCK];
    uint64_t h = 14695981039346656037ULL;
    off_t at = 0;
    for (;;) {
        ssize_t n = read_block(fd, buf, BLOCK, at);
        if (n < 0) return -1;
        if (at == 0) leave_out_open_flags(buf, (size_t)n);
        h = mix(h, buf, (size_t)n);
        at += n;
        if (at % (64 << 20) == 0) nn_watchdog_alive(); /* a large file on slow storage is progress too */
        if (n < BLOCK) break;
    }
    *digest = h ^ (uint64_t)at; /* the length too: a cut file of the same words is another file */
    return 0;
}
