/* Seconds on the monotonic clock, for timings taken on any thread: OpenMP worker
 * threads may not call MPI (initialised without thread support), MPI_Wtime included.
 * clock_gettime is POSIX: an includer defines _POSIX_C_SOURCE (>= 199309L) first. */
#ifndef NN_CLOCK_H
#define NN_CLOCK_H

#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 199309L
#error "nn/clock.h needs clock_gettime: define _POSIX_C_SOURCE 200809L before any include"
#endif
#include <time.h>

static inline double nn_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
