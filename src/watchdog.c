/* The watchdog (see watchdog.h). Each rank's last progress -- a monotonic time, its
 * step and phase -- lives in a board in shared memory, one entry per rank of the
 * node, so a rank can read its neighbours' progress even when they are stopped. The
 * thread wakes a few times a second; when this rank's own progress is older than
 * the timeout it prints one line naming the ranks that are behind, asks its MPI
 * launcher to end the job, and ends the process with exit 1. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#include "nn/watchdog.h"

#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nn/comm.h"

typedef struct post {
    _Alignas(64) atomic_llong beat_ns; /* CLOCK_MONOTONIC: the same clock for every process of a node */
    atomic_long step;
    atomic_int phase;
    atomic_llong alive_ns;             /* the watchdog thread's last look: stale when the process is frozen */
    int rank;                          /* global rank */
} post;

static struct {
    double timeout_s;
    MPI_Comm node;
    MPI_Win win;
    post *board;                       /* [local_size] */
    int local_rank, local_size;
    pthread_t thread;
    int running;                       /* the thread was started */
    atomic_int quit;
} dog = {.node = MPI_COMM_NULL, .win = MPI_WIN_NULL};

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const char *phase_name(int phase) {
    static const char *const names[] = {"idle", "computing its step", "waiting in the gradient sum",
                                        "evaluating or checkpointing"};
    return names[phase];
}

void nn_watchdog_beat(long step, nn_phase phase) {
    if (!dog.board) return;
    post *me = &dog.board[dog.local_rank];
    atomic_store_explicit(&me->step, step, memory_order_relaxed);
    atomic_store_explicit(&me->phase, (int)phase, memory_order_relaxed);
    atomic_store_explicit(&me->beat_ns, now_ns(), memory_order_release);
}

/* One line: how long this rank waited, and which ranks of its node are not where it
 * is. Returns how many of those there are (0: the rank missing is on another node). */
static int report(long long now) {
    const post *me = &dog.board[dog.local_rank];
    long step = atomic_load(&me->step);
    int phase = atomic_load(&me->phase);
    char line[1024];
    int n = snprintf(line, sizeof line, "nntrain: rank %d: no progress for %.0f s (--timeout) at step %ld, %s",
                     me->rank, (now - atomic_load(&me->beat_ns)) / 1e9, step, phase_name(phase));
    int behind = 0;
    for (int l = 0; l < dog.local_size && n < (int)sizeof line; l++) {
        const post *p = &dog.board[l];
        long s = atomic_load(&p->step);
        int ph = atomic_load(&p->phase);
        double frozen = (now - atomic_load(&p->alive_ns)) / 1e9;
        if (l == dog.local_rank || (s == step && ph == phase && frozen < 2.0)) continue; /* waiting like this rank */
        behind++;
        n += snprintf(line + n, sizeof line - n, "; rank %d is at step %ld, %s, last progress %.0f s ago", p->rank, s,
                      phase_name(ph), (now - atomic_load(&p->beat_ns)) / 1e9);
        if (frozen >= 2.0 && n < (int)sizeof line)
            n += snprintf(line + n, sizeof line - n, ", its process frozen for %.0f s (stopped?)", frozen);
    }
    if (!behind && n < (int)sizeof line)
        snprintf(line + n, sizeof line - n, "; every rank of this node waits likewise: the rank missing is on another node");
    fprintf(stderr, "%s; ending the job\n", line);
    fflush(stderr);
    return behind;
}

/* Asks the launcher that started this rank (mpirun, or OpenMPI's daemon on a remote
 * node) to end the job. When the rank missing is on another node, its link may be
 * lost, and mpirun then waits for that node's daemon forever, even after SIGTERM
 * (seen on emulated nodes): the launcher gets SIGKILL. Only MPI launchers are
 * signalled (not, say, a shell or slurmstepd). */
static void end_launcher(int sig) {
    static const char *const launchers[] = {"mpirun", "mpiexec", "orterun", "orted", "prterun", "prted"};
    char path[64], name[32] = "";
    pid_t parent = getppid();
    snprintf(path, sizeof path, "/proc/%d/comm", (int)parent);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(name, sizeof name, f)) name[0] = '\0';
        fclose(f);
    }
    name[strcspn(name, "\n")] = '\0';
    for (size_t i = 0; i < sizeof launchers / sizeof launchers[0]; i++)
        if (!strcmp(name, launchers[i])) kill(parent, sig);
}

static void *watch(void *unused) {
    (void)unused;
    const long long timeout_ns = (long long)(dog.timeout_s * 1e9);
    const struct timespec nap = {0, 250000000}; /* 4 looks a second */
    long long woke = now_ns();
    while (!atomic_load(&dog.quit)) {
        nanosleep(&nap, NULL);
        post *me = &dog.board[dog.local_rank];
        long long now = now_ns(), last = atomic_load_explicit(&me->beat_ns, memory_order_acquire);
        if (now - woke > 1000000000LL) { /* this process itself was frozen (SIGSTOP): its clock restarts */
            atomic_compare_exchange_strong(&me->beat_ns, &last, now);
            last = now;
        }
        woke = now;
        atomic_store(&me->alive_ns, now);
        if (atomic_load(&me->phase) != NN_PHASE_IDLE && now - last > timeout_ns) {
            int others_behind = report(now);
            if (!others_behind) { /* SIGKILL ahead: give mpirun a second to pass our line on */
                const struct timespec second = {1, 0};
                nanosleep(&second, NULL);
            }
            end_launcher(others_behind ? SIGTERM : SIGKILL);
            _exit(NN_ERR_RUNTIME); /* no MPI call from this thread */
        }
    }
    return NULL;
}

int nn_watchdog_start(MPI_Comm comm, double timeout_s, nn_error *err) {
    if (timeout_s <= 0) return NN_OK;
    int rank;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &dog.node);
    MPI_Comm_rank(dog.node, &dog.local_rank);
    MPI_Comm_size(dog.node, &dog.local_size);
    void *mine, *base = NULL;
    /* local rank 0 allocates the board, with room to align it (MPI promises less than 64 bytes) */
    MPI_Aint bytes = dog.local_rank == 0 ? (MPI_Aint)(dog.local_size * sizeof(post) + alignof(post)) : 0;
    int rc = MPI_Win_allocate_shared(bytes, 1, MPI_INFO_NULL, dog.node, &mine, &dog.win);
    MPI_Aint size;
    int disp;
    if (rc == MPI_SUCCESS) rc = MPI_Win_shared_query(dog.win, 0, &size, &disp, &base);
    dog.board = (post *)(((uintptr_t)base + alignof(post) - 1) / alignof(post) * alignof(post));
    if (rc != MPI_SUCCESS) /* MPI's default handler aborts before this; a custom one might not */
        return nn_comm_agree(comm, nn_fail(err, NN_ERR_RUNTIME, "watchdog: cannot share a board in memory"), err);
    dog.board[dog.local_rank].rank = rank;
    dog.timeout_s = timeout_s;
    atomic_store(&dog.quit, 0);
    nn_watchdog_beat(0, NN_PHASE_IDLE);
    atomic_store(&dog.board[dog.local_rank].alive_ns, now_ns());
    MPI_Barrier(dog.node); /* every entry initialised before anyone reads it */
    dog.running = pthread_create(&dog.thread, NULL, watch, NULL) == 0;
    return nn_comm_agree(comm, dog.running ? NN_OK : nn_fail(err, NN_ERR_RUNTIME, "watchdog: cannot start its thread"),
                         err);
}

void nn_watchdog_stop(void) {
    if (dog.running) {
        atomic_store(&dog.quit, 1);
        pthread_join(dog.thread, NULL);
        dog.running = 0;
    }
    dog.board = NULL;
    if (dog.win != MPI_WIN_NULL) MPI_Win_free(&dog.win);
    if (dog.node != MPI_COMM_NULL) MPI_Comm_free(&dog.node);
}
