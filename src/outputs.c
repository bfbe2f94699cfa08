/* Whether a tool may write a path, and the lock a run holds on its outputs (see
 * nn/outputs.h for the rule). */
#define _GNU_SOURCE /* realpath, gethostname */
#include "nn/outputs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "nn/clock.h" /* after a system header: _GNU_SOURCE has set _POSIX_C_SOURCE */

void nn_run_files_input(nn_run_files *files, const char *option, const char *path) {
    if (path && path[0] && files->n_inputs < NN_OUTPUTS_MAX)
        files->inputs[files->n_inputs++] = (nn_file_role){option, path};
}

int nn_run_files_output(nn_run_files *files, const char *option, const char *path) {
    if (!path || !path[0] || files->n_outputs >= NN_OUTPUTS_MAX) return -1;
    int i = files->n_outputs++;
    files->outputs[i] = (nn_file_role){option, path};
    files->temporary[i] = files->replaces[i] = NULL;
    return i;
}

void nn_run_files_temporary(nn_run_files *files, int output, const char *temporary_path) {
    if (output >= 0) files->temporary[output] = temporary_path;
}

void nn_run_files_replaces(nn_run_files *files, int output, const char *input_path) {
    if (output >= 0) files->replaces[output] = input_path;
}

void nn_output_temporary_name(char *out, size_t cap, const char *path) { snprintf(out, cap, "%s.tmp", path); }

const char *nn_output_directory_of(const char *path, char *out, size_t cap) {
    char copy[NN_PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    snprintf(out, cap, "%s", dirname(copy));
    return out;
}

const char *nn_output_name_in(int dir_fd, const char *path) {
    const char *slash = strrchr(path, '/');
    return dir_fd >= 0 && slash ? slash + 1 : path;
}

/* The temporary file being written, for a signal handler: the name is copied before
 * the flag is raised, so a handler never reads it half-written. */
static char writing_name[NN_PATH_MAX + 8];
static int writing_dir = AT_FDCWD;
static volatile sig_atomic_t writing;

void nn_output_writing(int dir_fd, const char *name) {
    writing = 0;
    if (name && strlen(name) < sizeof writing_name) {
        memcpy(writing_name, name, strlen(name) + 1);
        writing_dir = dir_fd;
        atomic_signal_fence(memory_order_seq_cst); /* the name whole before the flag, for the handler */
        writing = 1;
    }
}

void nn_output_abandon(void) {
    if (writing) unlinkat(writing_dir, writing_name, 0);
    writing = 0;
}

/* ---- what a path names ---- */

/* A file as the kernel knows it (it exists), else its would-be name: its directory
 * as the kernel knows it (device and inode, so "a/../b.h5", "./b.h5" and a name
 * through a bind mount of the directory are the same file to be) and its base name. */
typedef struct identity {
    int exists, parent_known;
    struct stat st, parent;
    char name[NN_PATH_MAX * 2]; /* the directory resolved, where it cannot be stat'ed */
    char base[NN_PATH_MAX];
} identity;

static void identify(const char *path, identity *id) {
    id->exists = stat(path, &id->st) == 0;
    char parent[NN_PATH_MAX], base_copy[NN_PATH_MAX], resolved[PATH_MAX];
    nn_output_directory_of(path, parent, sizeof parent);
    snprintf(base_copy, sizeof base_copy, "%s", path);
    snprintf(id->base, sizeof id->base, "%s", basename(base_copy));
    id->parent_known = stat(parent, &id->parent) == 0;
    const char *dir = realpath(parent, resolved) ? resolved : parent;
    snprintf(id->name, sizeof id->name, "%s/%s", dir, id->base);
}

static int same_file(const identity *a, const identity *b) {
    if (a->exists && b->exists) return a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino;
    if (a->exists || b->exists) return 0;
    if (a->parent_known && b->parent_known)
        return a->parent.st_dev == b->parent.st_dev && a->parent.st_ino == b->parent.st_ino &&
               strcmp(a->base, b->base) == 0;
    return strcmp(a->name, b->name) == 0;
}

static const char *kind_of(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

static bool is_link(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

void nn_output_follow_link(char *path, size_t cap) {
    struct stat target;
    char resolved[PATH_MAX];
    if (!is_link(path) || stat(path, &target) != 0 || !S_ISREG(target.st_mode)) return;
    if (realpath(path, resolved) && strlen(resolved) < cap) strcpy(path, resolved);
}

/* ---- the rule ---- */

/* Can a file be created under this exact name? Tried for real (and undone), so a
 * missing directory, a name too long or a read-only directory fail here. A
 * regular file already there may be a live run's temporary file: left alone (the
 * caller removes a dead run's leftover once it holds the lock). */
static int try_create(const nn_file_role *out, const char *name, nn_error *err) {
    struct stat st;
    if (lstat(name, &st) == 0) {
        if (!S_ISREG(st.st_mode))
            return nn_fail(err, NN_ERR_INPUT, "%s %s: its temporary file %s exists and is %s; not touching it",
                           out->option, out->path, name, kind_of(st.st_mode));
        return access(name, W_OK) == 0 ? NN_OK
                                       : nn_fail(err, NN_ERR_INPUT, "%s %s: cannot write %s: %s", out->option,
                                                 out->path, name, strerror(errno));
    }
    int fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd < 0) return nn_fail(err, NN_ERR_INPUT, "%s %s: cannot create %s: %s", out->option, out->path, name, strerror(errno));
    close(fd);
    unlink(name);
    return NN_OK;
}

/* A link still there after nn_output_follow_link, which follows every link to a
 * file it can: one that leads nowhere (writing through it would create a file the
 * user never named), or whose target's real path cannot be had (too long to name:
 * the rename would replace the link). */
static int refuse_link(const nn_file_role *out, nn_error *err) {
    struct stat st;
    const char *why = stat(out->path, &st) != 0 ? strerror(errno) : "it cannot be followed to its file's real path";
    char target[NN_PATH_MAX];
    ssize_t n = readlink(out->path, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    return nn_fail(err, NN_ERR_INPUT, "%s %s: is a symbolic link to %s (%s); give the file's own path", out->option,
                   out->path, target, why);
}

/* The files written for output i: the file itself, its temporary file ("" if none)
 * and its lock file (nn_output_lock_acquire's name). */
enum { ITSELF, TEMPORARY, LOCK, N_ROLES };
typedef char output_names[N_ROLES][NN_PATH_MAX + 8];

static void names_of(const nn_run_files *files, int i, output_names names) {
    snprintf(names[ITSELF], sizeof names[ITSELF], "%s", files->outputs[i].path);
    snprintf(names[TEMPORARY], sizeof names[TEMPORARY], "%s", files->temporary[i] ? files->temporary[i] : "");
    snprintf(names[LOCK], sizeof names[LOCK], "%s.lock", files->outputs[i].path);
}

/* Outputs i and k share no file: a checkpoint at the metrics' lock file would be
 * overwritten by the lock and removed with it at the end. */
static int check_apart(const nn_run_files *files, int i, int k, nn_error *err) {
    static const char *const role[N_ROLES] = {"", "the temporary file", "the lock file"};
    output_names mine, theirs;
    names_of(files, i, mine);
    names_of(files, k, theirs);
    const nn_file_role *out = &files->outputs[i], *other = &files->outputs[k];
    identity x[N_ROLES], y[N_ROLES]; /* each name identified once */
    for (int r = 0; r < N_ROLES; r++) {
        if (mine[r][0]) identify(mine[r], &x[r]);
        if (theirs[r][0]) identify(theirs[r], &y[r]);
    }
    for (int a = 0; a < N_ROLES; a++) {
        if (!mine[a][0]) continue;
        for (int b = 0; b < N_ROLES; b++) {
            if (!theirs[b][0] || !same_file(&x[a], &y[b])) continue;
            if (a == ITSELF && b == ITSELF)
                return nn_fail(err, NN_ERR_INPUT, "%s %s: is the same file as %s %s; give each output its own file",
                               out->option, out->path, other->option, other->path);
            if (a == ITSELF)
                return nn_fail(err, NN_ERR_INPUT, "%s %s: is %s of %s %s; give each output its own file", out->option,
                               out->path, role[b], other->option, other->path);
            return nn_fail(err, NN_ERR_INPUT, "%s %s: its %s %s is %s%s%s %s; give each output its own file", out->option,
                           out->path, role[a] + strlen("the "), mine[a], role[b], b == ITSELF ? "" : " of ",
                           other->option, other->path);
        }
    }
    return NN_OK;
}

/* Whether `path` is the root of a mount: a file bind-mounted there (as containers do)
 * cannot be replaced by a rename (EBUSY), only written in place. Unknown: no. */
static bool is_mount_root(const char *path) {
    struct statx stx;
    return statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &stx) == 0 && (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
           (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* The first input of the run that is the file `id` names; -1: none. */
static int input_matching(const nn_run_files *files, const identity *id) {
    for (int k = 0; k < files->n_inputs; k++) {
        identity other;
        identify(files->inputs[k].path, &other);
        if (same_file(id, &other)) return k;
    }
    return -1;
}

/* An existing output that a file renamed over it is to replace: writable (a file made
 * read-only is the user's wish, not the directory's), not a mount point, and not
 * another user's in a sticky directory; else every save would fail after the
 * epoch's work. */
static int check_renamable(const nn_file_role *out, const struct stat *st, nn_error *err) {
    if (access(out->path, W_OK) != 0)
        return nn_fail(err, NN_ERR_INPUT, "%s %s: cannot write: %s; not replacing it", out->option, out->path,
                       strerror(errno));
    if (is_mount_root(out->path))
        return nn_fail(err, NN_ERR_INPUT, "%s %s: is a mount point (a file mounted there) and cannot be replaced; "
                       "give a path in a directory", out->option, out->path);
    char parent[NN_PATH_MAX];
    struct stat dir;
    uid_t me = geteuid();
    if (me != 0 && st->st_uid != me && stat(nn_output_directory_of(out->path, parent, sizeof parent), &dir) == 0 &&
        (dir.st_mode & S_ISVTX) &&
        dir.st_uid != me) /* the kernel lets only the file's or the directory's owner rename over it */
        return nn_fail(err, NN_ERR_INPUT, "%s %s: belongs to another user, in a directory with the sticky bit (as "
                       "/tmp) where only its owner may replace it; not replacing it", out->option, out->path);
    return NN_OK;
}

/* "standard output" or "standard error" where the file `st` is what this process
 * writes them to (`> run.log`): the tool's own lines and the output would overwrite
 * each other, or the output would replace the log; else NULL. */
static const char *standard_stream_of(const struct stat *st) {
    static const char *const names[3] = {NULL, "standard output", "standard error"};
    for (int fd = 1; fd <= 2; fd++) {
        struct stat stream;
        if (fstat(fd, &stream) == 0 && S_ISREG(stream.st_mode) && stream.st_dev == st->st_dev &&
            stream.st_ino == st->st_ino)
            return names[fd];
    }
    return NULL;
}

/* "ck.h5/" names a directory; where ck.h5 is a file, saying so ("names a directory")
 * sent users looking for a directory that is not there. */
static int refuse_trailing_slash(const nn_file_role *out, size_t len, nn_error *err) {
    char bare[NN_PATH_MAX];
    struct stat st;
    while (len > 1 && out->path[len - 1] == '/') len--;
    snprintf(bare, sizeof bare, "%.*s", (int)len, out->path);
    if (len < sizeof bare && stat(bare, &st) == 0 && !S_ISDIR(st.st_mode))
        return nn_fail(err, NN_ERR_INPUT, "%s %s: ends in '/', but %s is %s, not a directory; give its path without "
                       "the '/'", out->option, out->path, bare, S_ISREG(st.st_mode) ? "a file" : kind_of(st.st_mode));
    return nn_fail(err, NN_ERR_INPUT, "%s %s: names a directory, not a file", out->option, out->path);
}

static int check_output(const nn_run_files *files, int i, nn_error *err) {
    const nn_file_role *out = &files->outputs[i];
    size_t len = strlen(out->path);
    if (out->path[len - 1] == '/') return refuse_trailing_slash(out, len, err);
    identity id;
    identify(out->path, &id);
    if (id.exists && !S_ISREG(id.st.st_mode))
        return nn_fail(err, NN_ERR_INPUT, "%s %s: is %s; an output must be a regular file", out->option, out->path,
                       kind_of(id.st.st_mode));
    if (is_link(out->path)) return refuse_link(out, err);
    const char *stream = id.exists ? standard_stream_of(&id.st) : NULL;
    if (stream)
        return nn_fail(err, NN_ERR_INPUT, "%s %s: is the file this run's %s goes to; give the output a file of its own",
                       out->option, out->path, stream);
    identity allowed; /* the input it is meant to take the place of, if any */
    if (files->replaces[i]) identify(files->replaces[i], &allowed);
    int k = input_matching(files, &id);
    if (k >= 0 && !(files->replaces[i] && same_file(&id, &allowed)))
        return nn_fail(err, NN_ERR_INPUT, "%s %s: is the same file as %s %s, which this run reads; not overwriting it",
                       out->option, out->path, files->inputs[k].option, files->inputs[k].path);
    for (k = 0; k < i; k++)
        if (check_apart(files, i, k, err)) return err->status;
    if (files->temporary[i]) {
        identity tmp;
        identify(files->temporary[i], &tmp);
        if ((k = input_matching(files, &tmp)) >= 0)
            return nn_fail(err, NN_ERR_INPUT, "%s %s: its temporary file %s is %s %s, which this run reads",
                           out->option, out->path, files->temporary[i], files->inputs[k].option,
                           files->inputs[k].path);
        if (id.exists && check_renamable(out, &id.st, err)) return err->status;
        return try_create(out, files->temporary[i], err);
    }
    if (id.exists) { /* written in place: it must be writable as it is */
        if (access(out->path, W_OK) != 0)
            return nn_fail(err, NN_ERR_INPUT, "%s %s: cannot write: %s", out->option, out->path, strerror(errno));
        return NN_OK;
    }
    return try_create(out, out->path, err);
}

int nn_run_files_check(const nn_run_files *files, nn_error *err) {
    int status = NN_OK;
    for (int i = 0; i < files->n_outputs && !status; i++) status = check_output(files, i, err);
    return status;
}

/* ---- a killed run's leftover ---- */

int nn_output_remove_leftover_at(const char *option, const char *path, int dir_fd, const char *name,
                                 const char *leftover, const char *signature, nn_error *err) {
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT) return NN_OK;
    struct stat st;
    bool ours = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1;
    if (ours) { /* what was written of it begins as ours does (a killed write may be cut
                 * anywhere), or reads as zeros (blocks a crashed node never wrote) */
        char head[64], zeros[64] = {0};
        size_t want = strlen(signature) < sizeof head ? strlen(signature) : sizeof head;
        ssize_t n = pread(fd, head, want, 0);
        ours = n >= 0 && (n == st.st_size || (size_t)n == want) &&
               (!memcmp(head, signature, (size_t)n) || !memcmp(head, zeros, (size_t)n));
    }
    if (fd >= 0) close(fd);
    if (!ours)
        return nn_fail(err, NN_ERR_INPUT, "%s %s: %s exists and is not a file this tool was writing; not touching it",
                       option, path, leftover);
    unlinkat(dir_fd, name, 0);
    return NN_OK;
}

void nn_output_keep_mode(int fd, const char *path) {
    struct stat old, now;
    if (!path || stat(path, &old) != 0 || !S_ISREG(old.st_mode) || fstat(fd, &now) != 0) return;
    if ((now.st_uid != old.st_uid || now.st_gid != old.st_gid) && fchown(fd, old.st_uid, old.st_gid) != 0) {
        /* not ours to give away (a user who is not root): the mode still holds */
    }
    if (fchmod(fd, old.st_mode & 0777) != 0) { /* best effort: the file is whole either way */ }
    /* A POSIX ACL (Linux keeps it in this attribute): with one, the mode's group bits
     * are the ACL's mask, not the owning group's, so the mode alone would open the
     * file to its group. Copied whole; the new file's own (inherited from a default
     * ACL of the directory) dropped where the old had none. Where it cannot be copied
     * the new file is its owner's alone: never more open than the old one. */
    static const char acl[] = "system.posix_acl_access";
    char entries[4096];
    ssize_t n = getxattr(path, acl, entries, sizeof entries);
    bool too_long = n < 0 && errno == ERANGE;
    if ((n > 0 && fsetxattr(fd, acl, entries, (size_t)n, 0) != 0) || too_long) {
        if (fchmod(fd, old.st_mode & 0700) != 0) { /* as above */ }
    } else if (n < 0 && fremovexattr(fd, acl) != 0) { /* none there, or no ACLs on this filesystem */ }
}

/* ---- the lock ---- */

/* What the lock file says of its holder, for the refused run's message. */
static void read_holder(int fd, char *out, size_t cap) {
    ssize_t n = pread(fd, out, cap - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    if (!out[0]) snprintf(out, cap, "a process that has not said who it is");
}

/* Whether an existing lock file is nntrain's: a regular file of one name (not a link
 * of any kind), empty (a run killed as it made it) or naming its holder as this code
 * writes it. Anything else at "<path>.lock" is a user's, never written or removed. */
static bool lock_file_is_ours(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) return false;
    if (st.st_size == 0) return true;
    char text[320], host[300];
    long pid;
    int used = 0;
    ssize_t n = st.st_size < (off_t)sizeof text ? pread(fd, text, sizeof text - 1, 0) : -1;
    if (n != st.st_size) return false;
    text[n] = '\0';
    return sscanf(text, "PID %ld on host %299[^\n]\n%n", &pid, host, &used) == 2 && used == n && pid > 0;
}

/* nn_output_lock_acquire's work, with the lock file's directory held */
static int take_lock(nn_output_lock *lock, int dir_fd, const char *name, const char *option, const char *path,
                     nn_error *err) {
    /* The holder removes the file as it ends: a lock taken on a file already
     * unlinked (or replaced) is no lock at all, so check and try again. */
    for (int attempt = 0; attempt < 16; attempt++) {
        /* O_NOFOLLOW: a symbolic link there is refused (ELOOP), never followed;
         * O_NONBLOCK: a FIFO there does not hang the open */
        int fd = openat(dir_fd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0666);
        if (fd < 0 && errno == ELOOP)
            return nn_fail(err, NN_ERR_INPUT, "%s %s: its lock file %s is a symbolic link; not touching it", option,
                           path, lock->path);
        if (fd < 0) /* a refused path, as the output's own checks: usage, not a runtime failure */
            return nn_fail(err, NN_ERR_INPUT, "%s %s: cannot create lock file %s: %s", option, path, lock->path,
                           strerror(errno));
        if (!lock_file_is_ours(fd)) {
            close(fd);
            return nn_fail(err, NN_ERR_INPUT, "%s %s: %s exists and is not an nntrain lock file; not touching it",
                           option, path, lock->path);
        }
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fcntl(fd, F_SETLK, &fl) != 0) {
            int saved = errno;
            char holder[256];
            read_holder(fd, holder, sizeof holder);
            close(fd);
            lock->busy = saved == EACCES || saved == EAGAIN;
            if (lock->busy)
                return nn_fail(err, NN_ERR_INPUT, "%s %s: in use by another run (%s; lock file %s); give this run another file",
                               option, path, holder, lock->path);
            return nn_fail(err, NN_ERR_RUNTIME, "%s %s: cannot lock %s: %s", option, path, lock->path, strerror(saved));
        }
        struct stat held, named;
        if (fstat(fd, &held) == 0 && fstatat(dir_fd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
            held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
            char host[256] = "unknown";
            gethostname(host, sizeof host - 1);
            char holder[300];
            int n = snprintf(holder, sizeof holder, "PID %ld on host %s\n", (long)getpid(), host);
            if (ftruncate(fd, 0) != 0 || pwrite(fd, holder, (size_t)n, 0) != n) { /* the lock holds all the same */ }
            lock->fd = fd;
            return NN_OK;
        }
        close(fd);
    }
    return nn_fail(err, NN_ERR_RUNTIME, "%s %s: cannot lock %s: it keeps being replaced", option, path, lock->path);
}

int nn_output_lock_acquire(nn_output_lock *lock, const char *option, const char *path, nn_error *err) {
    lock->fd = lock->dir_fd = -1;
    lock->busy = 0;
    if (snprintf(lock->path, sizeof lock->path, "%s.lock", path) >= (int)sizeof lock->path)
        return nn_fail(err, NN_ERR_INPUT, "%s %s: the name is too long", option, path);
    /* the directory first, and the lock file made in it: removed there at the end */
    char dir[NN_PATH_MAX];
    int dir_fd = open(nn_output_directory_of(path, dir, sizeof dir), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return nn_fail(err, NN_ERR_INPUT, "%s %s: cannot create lock file %s: %s", option, path, lock->path,
                       strerror(errno));
    int status = take_lock(lock, dir_fd, nn_output_name_in(dir_fd, lock->path), option, path, err);
    if (status) close(dir_fd);
    else lock->dir_fd = dir_fd;
    return status;
}

int nn_output_lock_wait(nn_output_lock *lock, const char *option, const char *path, double seconds, nn_error *err) {
    const struct timespec poll = {0, 100 * 1000 * 1000};
    double until = nn_seconds() + seconds;
    for (;;) {
        int status = nn_output_lock_acquire(lock, option, path, err);
        if (status == NN_OK || !lock->busy || nn_seconds() >= until) return status;
        nanosleep(&poll, NULL);
    }
}

void nn_output_lock_release(nn_output_lock *lock) {
    if (lock->fd < 0) return;
    /* in the directory it was made in (its path may lead elsewhere by now: a directory
     * moved away and made anew, a link re-pointed), and only the file this run locked,
     * not one put at its name since */
    int dir = lock->dir_fd >= 0 ? lock->dir_fd : AT_FDCWD;
    const char *name = nn_output_name_in(dir, lock->path);
    struct stat held, named;
    if (fstat(lock->fd, &held) == 0 && fstatat(dir, name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
        held.st_dev == named.st_dev && held.st_ino == named.st_ino)
        unlinkat(dir, name, 0); /* while still locked: a waiting run then retries on a fresh file */
    close(lock->fd);
    if (lock->dir_fd >= 0) close(lock->dir_fd);
    lock->fd = lock->dir_fd = -1;
}
