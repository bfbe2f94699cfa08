/* Internal to the watchdog: ending a job that makes no progress, in a way that lets
 * OpenMPI clean up (its session directory, shared-memory segments) and gives one
 * exit code, 1, whatever the layout. */
#ifndef NN_WATCHDOG_END_H
#define NN_WATCHDOG_END_H

/* A file to remove before the end ("" for none); copied. */
void nn_watchdog_end_set_leftover(const char *path);

/* Removes the leftover, has the launcher end the job, and exits this process with 1.
 * `remote`: the cause may be on another node. Called from the watchdog thread:
 * makes no MPI call. */
_Noreturn void nn_watchdog_end_job(int remote);

/* After MPI_Finalize, on one rank of each node: if the launcher has not ended
 * `timeout_s` after this rank (a lost node's daemon can hold it forever), end it and
 * remove what it left. Returns at once. */
void nn_watchdog_end_watch_launcher(double timeout_s);

#endif
