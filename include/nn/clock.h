/* Seconds on the monotonic clock, for timings taken on any thread: OpenMP worker
 * threads may not call MPI (initialised without thread support), MPI_Wtime included. */
#ifndef NN_CLOCK_H
#define NN_CLOCK_H

#include <time.h>

static inline double nn_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
