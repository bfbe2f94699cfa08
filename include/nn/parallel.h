/* Loops that use the OpenMP threads only when there is enough work to pay for them. */
#ifndef NN_PARALLEL_H
#define NN_PARALLEL_H

/* Runs `body` over ranges [begin, end) (two longs it may read) that cover [0, n):
 * when `large`, ranges of `chunk` shared out among the threads (static schedule);
 * otherwise one range [0, n) on the calling thread, with no parallel region at all:
 * even one whose if() clause is false costs libgomp a team set-up per call (in the
 * column sums that was 7% of the reference network's step at -np 2). The ranges
 * must be independent of one another. */
#define NN_PARALLEL_RANGES(n, chunk, large, body)                                   \
    do {                                                                            \
        if (large) {                                                                \
            _Pragma("omp parallel for schedule(static)")                            \
            for (long nn_c_ = 0; nn_c_ < (n); nn_c_ += (chunk)) {                   \
                long begin = nn_c_, end = nn_c_ + (chunk) < (n) ? nn_c_ + (chunk) : (n); \
                body;                                                               \
            }                                                                       \
        } else {                                                                    \
            long begin = 0, end = (n);                                              \
            body;                                                                   \
        }                                                                           \
    } while (0)

#endif
