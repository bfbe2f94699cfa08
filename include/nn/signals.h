/* Preemption: SIGTERM or SIGUSR1 (what SLURM sends before a kill) asks training to
 * stop after the current step, with a checkpoint. A second signal exits at once. */
#ifndef NN_SIGNALS_H
#define NN_SIGNALS_H

/* Install the handlers. */
void nn_signals_install(void);

/* Non-zero once a stop was requested on THIS rank (the ranks agree in the training
 * loop). NNTRAIN_STOP_AT_STEP=K in the environment also requests a stop once global
 * step K is done: a deterministic stand-in for a signal, used by the tests. */
int nn_stop_requested(long global_step);

#endif
