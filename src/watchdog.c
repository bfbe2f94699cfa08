/* The watchdog (see watchdog.h). Each rank's last progress -- a monotonic time, its
 * step and phase -- lives in a post: a process-local one until the node's board in
 * shared memory exists (and again after it is freed), then this rank's entry of the
 * board, where a rank can read its neighbours' progress even when they are stopped.
 * The thread wakes a few times a second; when no rank of the node has made progress
 * for the timeout, the lowest live rank prints one line saying what it saw, and ends
 * the job (watchdog_end.c). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#include "nn/watchdog.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/comm.h"
#include "watchdog_end.h"

typedef struct post {
    _Alignas(64) atomic_llong beat_ns; /* CLOCK_MONOTONIC: the same clock for every process of a node */
    atomic_long step;
    atomic_int phase;
    atomic_llong alive_ns;             /* the watchdog thread's last look: stale when the process is frozen */
    atomic_int ending;                 /* this rank's watchdog is ending the job: no other need speak */
    int rank;                          /* global rank; -1: not known yet */
} post;

#define FROZEN_NS 2000000000LL         /* a thread that looks 4 times a second missed 8 looks */

static struct {
    const char *program;               /* names the tool in the line that ends the job */
    double timeout_s;
    pthread_mutex_t lock;              /* a look by the thread against switching posts */
    post local;                        /* before and after the board */
    post *me;                          /* &local, or this rank's entry of the board */
    post *board;                       /* [local_size]; NULL: none */
    int local_rank, local_size, world_size;
    MPI_Comm node;
    MPI_Win win;
    pthread_t thread;
    int running, begun;                /* the thread was started; by nn_watchdog_begin */
    atomic_int quit;
} dog = {.program = "nntrain", .lock = PTHREAD_MUTEX_INITIALIZER, .node = MPI_COMM_NULL, .win = MPI_WIN_NULL};

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const char *phase_name(int phase) {
    static const char *const names[] = {"idle", "computing its step", "waiting in the gradient sum",
                                        "evaluating or checkpointing", "starting (MPI_Init, reading its input)",
                                        "finishing (MPI_Finalize)"};
    return names[phase];
}

void nn_watchdog_beat(long step, nn_phase phase) {
    if (!dog.me) return;
    if (step >= 0) atomic_store_explicit(&dog.me->step, step, memory_order_relaxed);
    atomic_store_explicit(&dog.me->phase, (int)phase, memory_order_relaxed);
    atomic_store_explicit(&dog.me->beat_ns, now_ns(), memory_order_release);
}

void nn_watchdog_alive(void) {
    if (dog.me) atomic_store_explicit(&dog.me->beat_ns, now_ns(), memory_order_release);
}

static int frozen(const post *p, long long now) { return now - atomic_load(&p->alive_ns) >= FROZEN_NS; }

/* The newest progress of the node: a rank waiting while a neighbour works (rank 0
 * writing the checkpoint) is not stuck. Sets *first to the lowest rank that is not
 * frozen: the one to speak for the node; -1 where a rank of the node is already
 * ending the job (it has spoken). */
static long long newest_beat(long long now, int *first) {
    long long newest = atomic_load_explicit(&dog.me->beat_ns, memory_order_acquire);
    bool ending = false;
    *first = dog.local_rank;
    for (int l = dog.board ? dog.local_size - 1 : -1; l >= 0; l--) {
        long long b = atomic_load_explicit(&dog.board[l].beat_ns, memory_order_acquire);
        if (b > newest) newest = b;
        if (!frozen(&dog.board[l], now)) *first = l;
        ending |= atomic_load(&dog.board[l].ending) != 0;
    }
    if (ending) *first = -1;
    return newest;
}

/* One line: how long this rank waited, which ranks of its node are not where it is,
 * or, if none, what the whole node waits for. Returns where the cause may be. */
static nn_end_cause report(long long now, long long since) {
    const post *me = dog.me;
    long step = atomic_load(&me->step);
    int phase = atomic_load(&me->phase);
    double waited = (now - since) / 1e9;
    char line[1024], who[32] = "";
    if (me->rank >= 0) snprintf(who, sizeof who, " rank %d:", me->rank);
    int n = snprintf(line, sizeof line, "%s:%s no progress for %.0f s (--timeout) at step %ld, %s", dog.program, who, waited,
                     step, phase_name(phase));
    int behind = 0;
    for (int l = 0; dog.board && l < dog.local_size && n < (int)sizeof line; l++) {
        const post *p = &dog.board[l];
        long s = atomic_load(&p->step);
        int ph = atomic_load(&p->phase);
        if (p == me || (s == step && ph == phase && !frozen(p, now))) continue; /* waiting like this rank */
        behind++;
        n += snprintf(line + n, sizeof line - n, "; rank %d is at step %ld, %s, last progress %.0f s ago", p->rank, s,
                      phase_name(ph), (now - atomic_load(&p->beat_ns)) / 1e9);
        if (frozen(p, now) && n < (int)sizeof line)
            n += snprintf(line + n, sizeof line - n, ", its process frozen for %.0f s (stopped?)",
                          (now - atomic_load(&p->alive_ns)) / 1e9);
    }
    if (dog.board && !behind && n < (int)sizeof line) { /* nobody here is behind: say what all wait for */
        if (dog.local_size == dog.world_size)
            snprintf(line + n, sizeof line - n, "; every rank waits likewise");
        else if (phase == NN_PHASE_SUM)
            snprintf(line + n, sizeof line - n, "; every rank of this node waits likewise: the sum between nodes has "
                     "not completed in %.0f s", waited);
        else
            snprintf(line + n, sizeof line - n, "; every rank of this node waits likewise, for another node");
    }
    fprintf(stderr, "%s; ending the job\n", line);
    fflush(stderr);
    if (dog.board && dog.local_size == dog.world_size) return NN_END_ALONE;
    return !dog.board || !behind ? NN_END_REMOTE : NN_END_LOCAL;
}

/* Whether every rank of this node waits as this one does, for another node: then it
 * gives a node that has something concrete to say (a stopped rank) the first word. */
static int node_waits_for_another(long long now) {
    if (!dog.board || dog.local_size == dog.world_size) return 0;
    long step = atomic_load(&dog.me->step);
    int phase = atomic_load(&dog.me->phase);
    for (int l = 0; l < dog.local_size; l++) {
        const post *p = &dog.board[l];
        if (p != dog.me && (atomic_load(&p->step) != step || atomic_load(&p->phase) != phase || frozen(p, now)))
            return 0;
    }
    return 1;
}

static void *watch(void *unused) {
    (void)unused;
    const long long timeout_ns = (long long)(dog.timeout_s * 1e9);
    const struct timespec nap = {0, 250000000}; /* 4 looks a second */
    long long woke = now_ns();
    while (!atomic_load(&dog.quit)) {
        nanosleep(&nap, NULL);
        pthread_mutex_lock(&dog.lock);
        post *me = dog.me;
        long long now = now_ns(), last = atomic_load_explicit(&me->beat_ns, memory_order_acquire);
        if (now - woke > 1000000000LL) /* this process itself was frozen (SIGSTOP): its clock restarts */
            atomic_compare_exchange_strong(&me->beat_ns, &last, now);
        woke = now;
        atomic_store(&me->alive_ns, now);
        int first;
        long long newest = newest_beat(now, &first);
        /* Alone (no board), the node's other ranks give its first one time to speak for all */
        long long patience = timeout_ns + (!dog.board && dog.local_rank > 0 ? 10000000000LL : 0);
        if (node_waits_for_another(now)) patience += 3000000000LL; /* let the node with a finding speak first */
        if (atomic_load(&me->phase) != NN_PHASE_IDLE && now - newest > patience && first == dog.local_rank) {
            atomic_store(&me->ending, 1);
            nn_watchdog_end_job(report(now, newest)); /* no MPI call from this thread; does not return */
        }
        pthread_mutex_unlock(&dog.lock);
    }
    return NULL;
}

static int launch(double timeout_s) {
    dog.timeout_s = timeout_s;
    atomic_store(&dog.quit, 0);
    dog.running = pthread_create(&dog.thread, NULL, watch, NULL) == 0;
    return dog.running;
}

/* The rank before MPI_Init says it: from the launcher's environment. */
static int rank_from_environment(void) {
    static const char *const names[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (getenv(names[i])) return atoi(getenv(names[i]));
    return -1;
}

void nn_watchdog_begin(const char *program, double timeout_s) {
    if (timeout_s <= 0 || dog.running) return;
    dog.program = program;
    dog.local.rank = rank_from_environment();
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    dog.local_rank = local ? atoi(local) : 0;
    dog.me = &dog.local;
    nn_watchdog_beat(0, NN_PHASE_START);
    atomic_store(&dog.local.alive_ns, now_ns());
    dog.begun = launch(timeout_s);
}

static void switch_post(post *to, post *board) {
    pthread_mutex_lock(&dog.lock);
    atomic_store(&to->step, atomic_load(&dog.me->step));
    atomic_store(&to->phase, atomic_load(&dog.me->phase));
    atomic_store(&to->beat_ns, atomic_load(&dog.me->beat_ns));
    atomic_store(&to->alive_ns, now_ns());
    dog.me = to;
    dog.board = board;
    pthread_mutex_unlock(&dog.lock);
}

int nn_watchdog_start(MPI_Comm comm, double timeout_s, nn_error *err) {
    if (timeout_s <= 0) return NN_OK;
    int rank;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &dog.world_size);
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
    if (rc != MPI_SUCCESS) /* MPI's default handler aborts before this; a custom one might not */
        return nn_comm_agree(comm, nn_fail(err, NN_ERR_RUNTIME, "watchdog: cannot share a board in memory"), err);
    post *board = (post *)(((uintptr_t)base + alignof(post) - 1) / alignof(post) * alignof(post));
    post *entry = &board[dog.local_rank];
    entry->rank = rank;
    atomic_init(&entry->ending, 0); /* the window's memory is not promised zeroed (a singleton's was not) */
    dog.local.rank = rank;
    if (!dog.me) { /* not begun: this run's watching starts now */
        dog.me = &dog.local;
        nn_watchdog_beat(0, NN_PHASE_START);
    }
    switch_post(entry, NULL);
    MPI_Barrier(dog.node); /* every entry initialised before anyone reads it */
    pthread_mutex_lock(&dog.lock);
    dog.board = board;
    pthread_mutex_unlock(&dog.lock);
    int ok = dog.running || launch(timeout_s);
    return nn_comm_agree(comm, ok ? NN_OK : nn_fail(err, NN_ERR_RUNTIME, "watchdog: cannot start its thread"), err);
}

void nn_watchdog_remove_on_timeout(const char *path, const unsigned long long lock_dir[2]) {
    nn_watchdog_end_set_leftover(path, lock_dir);
}

void nn_watchdog_stop(void) {
    nn_watchdog_beat(-1, NN_PHASE_FINISH);
    if (dog.me && dog.me != &dog.local) switch_post(&dog.local, NULL);
    if (!dog.begun) nn_watchdog_end();
    if (dog.win != MPI_WIN_NULL) MPI_Win_free(&dog.win);
    if (dog.node != MPI_COMM_NULL) MPI_Comm_free(&dog.node);
}

void nn_watchdog_end(void) {
    if (dog.running) {
        atomic_store(&dog.quit, 1);
        pthread_join(dog.thread, NULL);
        if (dog.begun && dog.local_rank == 0) nn_watchdog_end_watch_launcher(dog.timeout_s); /* the whole life */
        dog.running = dog.begun = 0;
    }
    dog.me = NULL;
}
