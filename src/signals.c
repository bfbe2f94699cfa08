#define _POSIX_C_SOURCE 200809L /* sigaction */
#include "nn/signals.h"

#include <signal.h>
#include <unistd.h>

#include "nn/env.h"

static volatile sig_atomic_t stop_signal;
static long stop_at_step = -1;

static void on_signal(int sig) {
    if (stop_signal && stop_signal != SIGPIPE) _exit(128 + sig); /* second signal: the user means it */
    stop_signal = sig;
}

/* Whoever read the output is gone (`nntrain | head`, a tee that died): stop as for a
 * stop signal, at a step's end with a checkpoint, instead of dying between the
 * checkpoint and its metrics record. The write itself fails (EPIPE) and the run's
 * next lines raise it again: those are not a second request. */
static void on_broken_pipe(int sig) {
    if (!stop_signal) stop_signal = sig;
}

void nn_signals_install(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* MPI and file I/O carry on; we look at the flag each step */
    static const int stops[] = {SIGTERM, SIGUSR1, SIGINT, SIGHUP};
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) sigaction(stops[i], &sa, NULL);
    sa.sa_handler = on_broken_pipe;
    sigaction(SIGPIPE, &sa, NULL);
    stop_at_step = nn_env_count("NNTRAIN_STOP_AT_STEP", -1);
}

int nn_stop_requested(long global_step) {
    return stop_signal != 0 || (stop_at_step >= 0 && global_step >= stop_at_step);
}
