#define _POSIX_C_SOURCE 200809L /* sigaction */
#include "nn/signals.h"

#include <signal.h>
#include <unistd.h>

#include "nn/env.h"

static volatile sig_atomic_t stop_signal, broken_pipe;
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
    broken_pipe = 1;
    if (!stop_signal) stop_signal = sig;
}

/* A stop signal the process was started with ignored stays ignored: `nohup` ignores
 * SIGHUP, a shell ignores SIGINT in its background jobs, and each means it. Seen once,
 * at the first call, before any handler of ours (or MPI_Init's) is in place. */
static const int stops[] = {SIGTERM, SIGUSR1, SIGINT, SIGHUP};
enum { N_STOPS = sizeof stops / sizeof stops[0] };
static int ignored_at_start[N_STOPS], started = 0;

void nn_signals_catch_stops(void (*handler)(int)) {
    for (int i = 0; i < N_STOPS && !started; i++) {
        struct sigaction old;
        ignored_at_start[i] = sigaction(stops[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN;
    }
    started = 1;
    struct sigaction sa = {0};
    sa.sa_handler = handler;
    sigfillset(&sa.sa_mask); /* one handler at a time */
    sa.sa_flags = SA_RESTART; /* MPI and file I/O carry on; we look at the flag each step */
    for (int i = 0; i < N_STOPS; i++)
        if (!ignored_at_start[i]) sigaction(stops[i], &sa, NULL);
}

void nn_signals_install(void) {
    nn_signals_catch_stops(on_signal);
    struct sigaction sa = {0};
    sa.sa_handler = on_broken_pipe;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGPIPE, &sa, NULL);
    stop_at_step = nn_env_count("NNTRAIN_STOP_AT_STEP", -1);
}

int nn_stop_requested(long global_step) {
    return stop_signal != 0 || (stop_at_step >= 0 && global_step >= stop_at_step);
}

int nn_reader_gone(void) { return broken_pipe; }
