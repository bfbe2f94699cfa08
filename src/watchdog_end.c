/* Ending a job (see watchdog_end.h). The launcher that started this rank (mpirun, or
 * OpenMPI's daemon on another node) decides the job's exit code and cleans up after
 * it, so it is told in its ordinary way, not bypassed: this rank exits 1, and mpirun
 * ends the job with 1, removing its session directories and shared-memory segments.
 * A launcher may wait forever for a node whose link is lost, even after the ranks
 * are gone. So a small reaper process, in a session of its own (mpirun kills the
 * ranks' process groups), looks again after a grace period and, while the launcher
 * is still there, sends it SIGTERMs: OpenMPI's launchers end the job on the first
 * and treat more as "force": kill the local ranks, exit 1 (SIGKILL only as the last
 * resort). Once the launcher is gone, the reaper removes what it may have left on
 * this node: the job's session directory and shared-memory segments. */
#define _GNU_SOURCE /* kill, nanosleep, setsid; O_PATH */
#include "watchdog_end.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nn/error.h"
#include "nn/outputs.h"

enum launcher { NOT_MPI, HEAD, DAEMON };

/* The checkpoint's temporary: its path (for messages), and its name in its directory,
 * held from the start (removed there, never in a directory put at the path since,
 * where another run may be writing a file of that name) */
static char leftover[NN_PATH_MAX + 16];
static const char *leftover_name;
static int leftover_dir = -1;
static atomic_bool have_leftover; /* set by the main thread, read by the watchdog's */

void nn_watchdog_end_set_leftover(const char *path, const unsigned long long lock_dir[2]) {
    /* cleared first, so the watchdog's thread stops reading the name; a reader that
     * loaded `true` just before may still be reading it: harmless, as the name is set
     * once a process (trainer_setup) and only cleared after. For the same reason the
     * directory's descriptor is never closed (a number closed and given to another
     * file could send the removal elsewhere): one descriptor a run. */
    atomic_store(&have_leftover, false);
    if (!path || !path[0]) return;
    char dir[NN_PATH_MAX];
    struct stat st;
    int fd = open(nn_output_directory_of(path, dir, sizeof dir), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0 && (fstat(fd, &st) != 0 || (unsigned long long)st.st_dev != lock_dir[0] ||
                    (unsigned long long)st.st_ino != lock_dir[1])) {
        close(fd); /* not the lock's: nothing is removed, better a leftover than another's file */
        fd = -1;
    }
    if (fd < 0) return;
    leftover_dir = fd;
    snprintf(leftover, sizeof leftover, "%s", path);
    leftover_name = nn_output_name_in(fd, leftover);
    atomic_store(&have_leftover, true);
}

static enum launcher launcher_of(pid_t parent) {
    static const char *const heads[] = {"mpirun", "mpiexec", "orterun", "prterun"};
    static const char *const daemons[] = {"orted", "prted"};
    char path[64], name[32] = "";
    snprintf(path, sizeof path, "/proc/%d/comm", (int)parent);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(name, sizeof name, f)) name[0] = '\0';
        fclose(f);
    }
    name[strcspn(name, "\n")] = '\0';
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++)
        if (!strcmp(name, heads[i])) return HEAD;
    for (size_t i = 0; i < sizeof daemons / sizeof daemons[0]; i++)
        if (!strcmp(name, daemons[i])) return DAEMON;
    return NOT_MPI; /* a shell, slurmstepd: not ours to signal */
}

static void nap(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {}
}

/* What a job killed without OpenMPI's own clean-up leaves: the job family's session
 * directory (this node's) and the job's vader shared-memory segments, named
 * vader_segment.HOST.N.JOBID-IN-HEX.RANK. Listed before fork: the child may not
 * allocate. */
enum { MAX_LEFTOVERS = 64 };
static char *rm_argv[MAX_LEFTOVERS + 5];
static char segments[MAX_LEFTOVERS][300];

static void list_leftovers(void) {
    int n = 0, m = 0;
    rm_argv[n++] = "rm";
    rm_argv[n++] = "-rf";
    rm_argv[n++] = "--";
    const char *session = getenv("OMPI_MCA_orte_jobfam_session_dir");
    if (session && session[0] == '/' && strstr(session, "/ompi.")) rm_argv[n++] = (char *)session; /* OpenMPI's, no other */
    const char *jobid = getenv("OMPI_MCA_ess_base_jobid");
    char tag[32];
    snprintf(tag, sizeof tag, ".%lx.", jobid ? strtoul(jobid, NULL, 10) : 0UL);
    DIR *shm = jobid ? opendir("/dev/shm") : NULL;
    for (struct dirent *e; shm && m < MAX_LEFTOVERS && (e = readdir(shm));) {
        if (strncmp(e->d_name, "vader_segment.", 14) || !strstr(e->d_name, tag)) continue;
        snprintf(segments[m], sizeof segments[m], "/dev/shm/%s", e->d_name);
        rm_argv[n++] = segments[m++];
    }
    if (shm) closedir(shm);
    rm_argv[n] = NULL;
}

/* In a forked child of a threaded process: async-signal-safe calls only. Gives the
 * launcher `grace_ms` to end by itself, then ends it, then removes what it left. */
_Noreturn static void reap(pid_t launcher, long grace_ms) {
    for (int fd = 0; fd < 1024; fd++) close(fd); /* hold no pipe of mpirun's open: it waits for their end */
    setsid();
    for (long waited = 0; waited < grace_ms && kill(launcher, 0) == 0; waited += 100) nap(100);
    for (int i = 0; i < 4 && kill(launcher, 0) == 0; i++) {
        kill(launcher, SIGTERM);
        nap(500);
    }
    for (int i = 0; i < 30 && kill(launcher, 0) == 0; i++) nap(100);
    if (kill(launcher, 0) == 0) kill(launcher, SIGKILL);
    nap(500);
    execv("/bin/rm", rm_argv); /* the launcher is gone: what it did not clean up */
    _exit(0);
}

static void spawn_reaper(long grace_ms) {
    pid_t parent = getppid();
    if (launcher_of(parent) == NOT_MPI) return;
    list_leftovers();
    if (fork() == 0) reap(parent, grace_ms);
}

void nn_watchdog_end_job(nn_end_cause cause) {
    nn_error ignored;
    /* the checkpoint being written; a file that does not begin as HDF5 does is left alone
     * (the whole-file test for an HDF5 file of another kind needs HDF5, which is not
     * safe from this thread while the main one may be inside it) */
    if (atomic_load(&have_leftover))
        nn_output_remove_leftover_at("--checkpoint", "", leftover_dir, leftover_name, leftover, NN_HDF5_SIGNATURE,
                                     &ignored);
    pid_t parent = getppid();
    if (cause == NN_END_ALONE && launcher_of(parent) == HEAD) {
        spawn_reaper(5000);
        kill(parent, SIGTERM); /* no other node to race: mpirun ends the job quietly (no banner) */
    } else if (cause == NN_END_REMOTE && launcher_of(parent) == HEAD) {
        /* mpirun may wait for the other node forever. But a rank there may be ending
         * the job the ordinary way right now (then mpirun stops this rank during the
         * nap): a SIGTERM racing that made mpirun crash. The reaper is forked first:
         * with 3 nodes and one lost, the third node's ranks end the job, mpirun kills
         * this rank in its nap and then waits for the lost node's daemon for good (a
         * reaper forked after the nap was never forked: the job hung). Forced then,
         * OpenMPI 4.1's mpirun crashes in PMIx_Finalize (exit 139): the job ends. */
        spawn_reaper(7000);
        nap(5000);
        kill(parent, SIGTERM);
    } else {
        spawn_reaper(5000); /* a healthy launcher has ended the job by then */
    }
    _exit(NN_ERR_RUNTIME);
}

void nn_watchdog_end_watch_launcher(double timeout_s) { spawn_reaper((long)(timeout_s * 1000)); }
