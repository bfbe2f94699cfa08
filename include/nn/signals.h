/* Preemption: SIGTERM, SIGUSR1 (what SLURM sends before a kill), SIGINT or SIGHUP
 * asks training to stop after the current step, with a checkpoint (exit 75). A
 * second signal exits at once. SIGPIPE (the output's reader is gone) asks the same,
 * and is never a second signal. A stop signal ignored when the process started
 * (nohup, a shell's background job) stays ignored. */
#ifndef NN_SIGNALS_H
#define NN_SIGNALS_H

/* Install the handlers: first thing in main, so a signal during start-up (MPI_Init,
 * reading the data) is a stop request too, not a death. Again after MPI_Init, in
 * case it installed handlers of its own. */
void nn_signals_install(void);

/* The stop signals (SIGTERM, SIGUSR1, SIGINT, SIGHUP) to `handler`, except one the
 * process was started with ignored (nohup's SIGHUP, a background job's SIGINT): that
 * stays ignored. nn_signals_install's, and nnprep's own. */
void nn_signals_catch_stops(void (*handler)(int));

/* Non-zero once a stop was requested on THIS rank (the ranks agree in the training
 * loop). NNTRAIN_STOP_AT_STEP=K in the environment also requests a stop once global
 * step K is done: a deterministic stand-in for a signal, used by the tests. */
int nn_stop_requested(long global_step);

/* Non-zero once SIGPIPE came: whoever read this process's output is gone. */
int nn_reader_gone(void);

#endif
