/* Preemption: SIGTERM, SIGUSR1 (what SLURM sends before a kill), SIGINT or SIGHUP
 * asks training to stop after the current step, with a checkpoint (exit 75). A
 * second signal exits at once. SIGPIPE (the output's reader is gone) asks the same,
 * and is never a second signal. */
#ifndef NN_SIGNALS_H
#define NN_SIGNALS_H

/* Install the handlers: first thing in main, so a signal during start-up (MPI_Init,
 * reading the data) is a stop request too, not a death. Again after MPI_Init, in
 * case it installed handlers of its own. */
void nn_signals_install(void);

/* Non-zero once a stop was requested on THIS rank (the ranks agree in the training
 * loop). NNTRAIN_STOP_AT_STEP=K in the environment also requests a stop once global
 * step K is done: a deterministic stand-in for a signal, used by the tests. */
int nn_stop_requested(long global_step);

#endif
