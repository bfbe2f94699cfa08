/* The exact fixed-point sum (see exact_sum.h). */
#include "nn/exact_sum.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/env.h"
#include "nn/reduce.h"

int nn_exact_create(nn_exact_sum *s, size_t n, int words, long contributions, nn_error *err) {
    memset(s, 0, sizeof *s);
    s->n = n;
    s->words = words;
    s->acc = calloc(n + (size_t)words, sizeof *s->acc);
    if (!s->acc) return nn_fail(err, NN_ERR_RUNTIME, "exact sum: out of memory (%zu values)", n);
    /* limit * 2^40 * contributions <= 2^62: the sum of any rank count stays in int64 */
    double parts = contributions > 0 ? (double)contributions : 1.0;
    s->limit = (float)fmin(ldexp(1.0, 62 - NN_EXACT_FRACTION_BITS) / parts, 0x1p11); /* 0x1p11: add_range's */
    s->loss_limit = ldexp(1.0, 62 - NN_EXACT_LOSS_BITS) / parts;
    return NN_OK;
}

void nn_exact_free(nn_exact_sum *s) {
    if (s->node) nn_reducer_free(s->node); /* which holds acc */
    else free(s->acc);
    free(s->segs);
    free(s->counts);
    memset(s, 0, sizeof *s);
}

void nn_exact_clear(nn_exact_sum *s) {
    memset(s->acc, 0, (s->n + (size_t)s->words) * sizeof *s->acc);
    s->bad = 0;
}

void nn_exact_clear_words(nn_exact_sum *s) {
    memset(s->acc + s->n, 0, (size_t)s->words * sizeof *s->acc);
    s->bad = 0;
}

/* One stretch. x * 2^40 is exact in double; adding 1.5 * 2^52 rounds it to the
 * nearest integer (ties to even: a fixed rule, so every rank rounds alike), which
 * then sits in the low bits of the double: its bits minus the constant's are the
 * int64. Exact for |x * 2^40| < 2^51, which the limit (<= 2^11) keeps; the loop has
 * no branch and no float-to-int64 instruction, so it vectorises on any x86-64. The
 * range test is written so that NaN fails it too. */
static inline __attribute__((always_inline)) int64_t
grid_range(int64_t *restrict acc, const float *restrict x, float limit, size_t begin, size_t end, const int store) {
    const double scale = 0x1p40, magic = 0x1.8p52;
    int64_t magic_bits, bad = 0;
    memcpy(&magic_bits, &magic, sizeof magic_bits);
    for (size_t i = begin; i < end; i++) {
        int64_t ok = fabsf(x[i]) < limit, bits;
        double rounded = (double)x[i] * scale + magic;
        memcpy(&bits, &rounded, sizeof bits);
        bad += 1 - ok;
        acc[i] = (store ? 0 : acc[i]) + ((bits - magic_bits) & -ok);
    }
    return bad;
}

/* The first contribution of a stretch stores (no clearing pass over the whole
 * accumulator, which is 8 bytes a parameter); later ones add. */
static int64_t add_range(int64_t *restrict acc, const float *restrict x, float limit, size_t begin, size_t end,
                         int store) {
    return store ? grid_range(acc, x, limit, begin, end, 1) : grid_range(acc, x, limit, begin, end, 0);
}

void nn_exact_add(nn_exact_sum *s, const float *x, size_t offset, size_t count, int store) {
    enum { CHUNK = 1 << 14 };
    const long chunks = (long)((count + CHUNK - 1) / CHUNK);
    int64_t bad = 0, *acc = s->acc + offset;
    if (chunks <= 8) { /* small: not worth waking the team (even a false if() clause sets one up) */
        s->bad += add_range(acc, x, s->limit, 0, count, store);
        return;
    }
#pragma omp parallel for schedule(static) reduction(+ : bad)
    for (long c = 0; c < chunks; c++) {
        size_t begin = (size_t)c * CHUNK, end = begin + CHUNK < count ? begin + CHUNK : count;
        bad += add_range(acc, x, s->limit, begin, end, store);
    }
    s->bad += bad;
}

int64_t nn_exact_loss_word(const nn_exact_sum *s, double x, int *bad) {
    if (!(fabs(x) < s->loss_limit)) {
        *bad = 1;
        return 0;
    }
    return (int64_t)(x * ldexp(1.0, NN_EXACT_LOSS_BITS));
}

double nn_exact_loss_value(int64_t word) { return ldexp((double)word, -NN_EXACT_LOSS_BITS); }

void nn_exact_allreduce(nn_exact_sum *s, MPI_Comm comm) {
    const size_t total = s->n + (size_t)s->words, max_count = 1u << 30; /* MPI counts are int */
    for (size_t off = 0; off < total; off += max_count) {
        size_t count = total - off < max_count ? total - off : max_count;
        MPI_Allreduce(MPI_IN_PLACE, s->acc + off, (int)count, MPI_INT64_T, MPI_SUM, comm);
    }
}

void nn_exact_to_floats(const nn_exact_sum *s, float *out) {
    const double unit = ldexp(1.0, -NN_EXACT_FRACTION_BITS);
    const long n = (long)s->n;
#pragma omp parallel for schedule(static) if (n > (1 << 17))
    for (long i = 0; i < n; i++) out[i] = (float)((double)s->acc[i] * unit);
}

/* Each rank's part of the n + words values, made once for the communicator's size. */
static int make_layout(nn_exact_sum *s, MPI_Comm comm) {
    int p;
    MPI_Comm_size(comm, &p);
    if (s->nranks == p) return 0;
    free(s->counts);
    s->counts = malloc(2 * (size_t)p * sizeof *s->counts);
    if (!s->counts) return -1;
    s->displs = s->counts + p;
    const long long total = (long long)(s->n + (size_t)s->words);
    for (int r = 0; r < p; r++) {
        s->displs[r] = (int)(r * total / p);
        s->counts[r] = (int)((r + 1) * total / p) - s->displs[r];
    }
    s->nranks = p;
    return 0;
}

int nn_exact_share(nn_exact_sum *s, MPI_Comm comm, nn_error *err) {
    const size_t total = s->n + (size_t)s->words;
    const char *force = nn_env("NN_EXACT_SUM"); /* "mpi": the path between nodes, for tests on one */
    if (force && !strcmp(force, "mpi")) return NN_OK;
    nn_reducer *red;
    int status = nn_reducer_create(&red, comm, 2 * total, err); /* an int64 takes two floats' room */
    if (status) return status;
    int local, locals; /* every rank sees the same mode, node count and, on one node, size */
    nn_reducer_local(red, &local, &locals);
    if (nn_reducer_mode(red) != NN_REDUCE_SHARED || nn_reducer_nodes(red) != 1 || locals < 2) {
        nn_reducer_free(red);
        return NN_OK;
    }
    s->segs = malloc((size_t)locals * sizeof *s->segs);
    if (!s->segs) status = nn_fail(err, NN_ERR_RUNTIME, "exact sum: out of memory");
    MPI_Allreduce(MPI_IN_PLACE, &status, 1, MPI_INT, MPI_MAX, comm);
    if (status) {
        nn_reducer_free(red);
        free(s->segs);
        s->segs = NULL;
        return nn_fail(err, NN_ERR_RUNTIME, "exact sum: out of memory on a rank");
    }
    for (int l = 0; l < locals; l++) s->segs[l] = (const int64_t *)(const void *)nn_reducer_segment(red, l);
    free(s->acc);
    s->acc = (int64_t *)(void *)nn_reducer_buffer(red); /* 64-byte aligned, zeroed by its owner */
    s->node = red;
    s->node_out = nn_reducer_shared(red);
    s->local = local;
    s->locals = locals;
    return NN_OK;
}

/* This rank's slice of the n + words values on the node. */
static void node_slice(const nn_exact_sum *s, size_t *begin, size_t *end) {
    const size_t total = s->n + (size_t)s->words;
    *begin = total * (size_t)s->local / (size_t)s->locals;
    *end = total * (size_t)(s->local + 1) / (size_t)s->locals;
}

/* One node: after a barrier (every accumulator complete), each rank adds its slice of
 * all of them, block by block (integer adds: exact, in any order), writes them as
 * floats into the node's shared vector and keeps the words' exact sums in its own
 * accumulator (where nn_exact_summed_word finds them; no other rank reads that slice
 * of it); after a second
 * barrier (every slice summed, so the accumulators may be written again) every rank
 * copies that vector. */
static void sum_on_node(nn_exact_sum *s, float *out) {
    enum { BLOCK = 512 };
    const size_t total = s->n + (size_t)s->words;
    const double unit = ldexp(1.0, -NN_EXACT_FRACTION_BITS);
    size_t begin, end;
    node_slice(s, &begin, &end);
    nn_reducer_barrier(s->node);
    const long blocks = (long)((end - begin + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) if (blocks > 256)
    for (long b = 0; b < blocks; b++) {
        size_t lo = begin + (size_t)b * BLOCK, len = end - lo < BLOCK ? end - lo : BLOCK;
        int64_t sum[BLOCK];
        memcpy(sum, s->segs[0] + lo, len * sizeof *sum);
        for (int l = 1; l < s->locals; l++)
            for (size_t i = 0; i < len; i++) sum[i] += s->segs[l][lo + i];
        size_t values = lo >= s->n ? 0 : s->n - lo < len ? s->n - lo : len;
        for (size_t i = 0; i < values; i++) s->node_out[lo + i] = (float)((double)sum[i] * unit);
        for (size_t i = values; i < len; i++) { /* the words */
            s->acc[lo + i] = sum[i];
            s->node_out[lo + i] = (float)sum[i];
        }
    }
    nn_reducer_barrier(s->node);
    memcpy(out, s->node_out, total * sizeof *out);
}

void nn_exact_sum_floats(nn_exact_sum *s, float *out, MPI_Comm comm) {
    if (s->node) {
        sum_on_node(s, out);
        return;
    }
    const size_t total = s->n + (size_t)s->words;
    MPI_Comm_rank(comm, &s->rank);
    s->plain = total > (size_t)INT_MAX || make_layout(s, comm); /* MPI counts are int; or no memory */
    if (s->plain) {
        nn_exact_allreduce(s, comm);
        nn_exact_to_floats(s, out);
        for (int w = 0; w < s->words; w++) out[s->n + (size_t)w] = (float)s->acc[s->n + (size_t)w];
        return;
    }
    /* in place, this rank's summed part lands at the start of acc */
    MPI_Reduce_scatter(MPI_IN_PLACE, s->acc, s->counts, MPI_INT64_T, MPI_SUM, comm);
    const long begin = s->displs[s->rank], count = s->counts[s->rank];
    const double unit = ldexp(1.0, -NN_EXACT_FRACTION_BITS);
    for (long i = 0; i < count; i++) {
        size_t at = (size_t)(begin + i);
        out[at] = at < s->n ? (float)((double)s->acc[i] * unit) : (float)s->acc[i];
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, out, s->counts, s->displs, MPI_FLOAT, comm);
}

const int64_t *nn_exact_summed_word(const nn_exact_sum *s, int w) {
    size_t at = s->n + (size_t)w;
    if (s->node) {
        size_t begin, end;
        node_slice(s, &begin, &end);
        return at >= begin && at < end ? s->acc + at : NULL;
    }
    if (s->plain) return s->rank == 0 ? s->acc + at : NULL; /* summed everywhere: rank 0 answers */
    size_t begin = (size_t)s->displs[s->rank], end = begin + (size_t)s->counts[s->rank];
    return at >= begin && at < end ? s->acc + (at - begin) : NULL;
}
