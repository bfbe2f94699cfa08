/* Internal to the watchdog: ending a job that makes no progress, in a way that lets
 * OpenMPI clean up (its session directory, shared-memory segments) and gives one
 * exit code, 1, whatever the layout. */
#ifndef NN_WATCHDOG_END_H
#define NN_WATCHDOG_END_H

/* A file to remove before the end ("" for none); copied. */
void nn_watchdog_end_set_leftover(const char *path, const unsigned long long lock_dir[2]);

typedef enum nn_end_cause {
    NN_END_ALONE,  /* the job is this node's alone */
    NN_END_LOCAL,  /* a rank of this node is behind */
    NN_END_REMOTE  /* maybe on another node: every rank here waits, or none is visible */
} nn_end_cause;

/* Removes the leftover, has the launcher end the job, and exits this process with 1.
 * Called from the watchdog thread: makes no MPI call. */
_Noreturn void nn_watchdog_end_job(nn_end_cause cause);

/* After MPI_Finalize, on one rank of each node: if the launcher has not ended
 * `timeout_s` after this rank (a lost node's daemon can hold it forever), end it and
 * remove what it left. Returns at once. */
void nn_watchdog_end_watch_launcher(double timeout_s);

#endif
