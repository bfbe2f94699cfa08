/* Where an output goes, held for the run, and the rename that puts it there (see
 * nn/output_place.h). */
#define _GNU_SOURCE /* O_PATH, renameat2 */
#include "nn/output_place.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/file_digest.h"
#include "nn/outputs.h"

static const nn_output_held nothing_held = {-1, 0, 0, 0, false, 0};

/* The digest of the held file's bytes, read through its descriptor (the same inode,
 * whatever its path names now); -1 where it cannot be read (no read permission, no
 * /proc): its size is then all there is to compare. */
static int digest_held(const nn_output_held *held, uint64_t *digest) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", held->fd);
    int fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return -1;
    struct stat st;
    int status = fstat(fd, &st) == 0 && st.st_dev == held->dev && st.st_ino == held->ino ? nn_file_digest(fd, digest)
                                                                                          : -1;
    close(fd);
    return status;
}

/* What `name` in directory `dir` (AT_FDCWD: a path) is now, held; nothing_held where
 * nothing is there. */
static nn_output_held hold(int dir, const char *name, int flags) {
    nn_output_held held = nothing_held;
    struct stat st;
    int fd = openat(dir, name, O_PATH | O_CLOEXEC | flags);
    if (fd >= 0 && fstat(fd, &st) == 0) held = (nn_output_held){fd, st.st_dev, st.st_ino, st.st_size, false, 0};
    else if (fd >= 0) close(fd);
    return held;
}

/* The held file's bytes, noted: from here on a change of them is a change. Taken once
 * the file is known to be one the run may replace (its content checked, or written by
 * the run), not as it is held: a large file named by mistake is refused unread. */
static void note_bytes(nn_output_held *held) {
    struct stat st;
    if (held->fd >= 0 && !held->digested && fstat(held->fd, &st) == 0 && S_ISREG(st.st_mode))
        held->digested = digest_held(held, &held->digest) == 0;
}

/* The held file's bytes as they were when held, where both then and now can be read */
static bool same_bytes(const nn_output_held *held) {
    uint64_t now;
    return !held->digested || digest_held(held, &now) != 0 || now == held->digest;
}

static void let_go(nn_output_held *held) {
    if (held->fd >= 0) close(held->fd);
    *held = nothing_held;
}

static int same_inode(const nn_output_held *held, const struct stat *st) {
    return held->fd >= 0 && st->st_dev == held->dev && st->st_ino == held->ino;
}

void nn_output_place_take(nn_output_place *place, const char *path, const char *kind) {
    nn_output_place_release(place);
    char dir[NN_PATH_MAX];
    place->file = hold(AT_FDCWD, path, 0);
    place->dir = hold(AT_FDCWD, nn_output_directory_of(path, dir, sizeof dir), O_DIRECTORY);
    place->kind = kind;
}

/* A name in the held directory: made, renamed and removed there, never in a directory
 * put at its path since (where another run may be writing a file of the same name). */
int nn_output_place_at(const nn_output_place *place, const char *path, const char **name) {
    int dir = place->dir.fd >= 0 ? place->dir.fd : AT_FDCWD;
    *name = nn_output_name_in(dir, path);
    return dir;
}

/* nn_output_place_check; `found`: whether anything (a link included) is at the path */
static int look(const nn_output_place *place, const char *path, const char *label, const char *lost, int *found,
                nn_error *err) {
    char dir[NN_PATH_MAX];
    struct stat st;
    *found = 0;
    if (place->dir.fd >= 0 &&
        (stat(nn_output_directory_of(path, dir, sizeof dir), &st) != 0 || !same_inode(&place->dir, &st)))
        return nn_fail(err, NN_ERR_RUNTIME, "%s: its directory is not the one this run started in (moved or replaced "
                       "during the run); %s", label, lost);
    const char *name;
    int at = nn_output_place_at(place, path, &name);
    if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return NN_OK; /* nothing there: nothing replaced */
    *found = 1;
    if (place->file.fd < 0)
        return nn_fail(err, NN_ERR_RUNTIME, "%s: a file was put there during the run; not replacing it, and %s", label,
                       lost);
    if (!same_inode(&place->file, &st) || st.st_size != place->file.size || !same_bytes(&place->file))
        return nn_fail(err, NN_ERR_RUNTIME, "%s: is not the %s this run checked or wrote (replaced or changed during "
                       "the run); not replacing it, and %s", label, place->kind, lost);
    return NN_OK;
}

int nn_output_place_check(nn_output_place *place, const char *path, const char *label, const char *lost,
                          nn_error *err) {
    int found, status = look(place, path, label, lost, &found, err);
    if (!status) note_bytes(&place->file); /* the first check after the take: the file the caller checked */
    return status;
}

int nn_output_place_reason(const nn_output_place *place, const char *path, const char *label, const char *lost,
                           int status, nn_error *err) {
    int found, changed = look(place, path, label, lost, &found, err); /* err untouched where unchanged */
    return changed ? changed : status;
}

/* rename, but never over a file: where the file system cannot promise that (EINVAL),
 * the check just made is all there is */
static int rename_no_replace(int dir, const char *from, const char *to) {
    if (renameat2(dir, from, dir, to, RENAME_NOREPLACE) == 0) return 0;
    return errno == EINVAL || errno == ENOSYS ? renameat(dir, from, dir, to) : -1;
}

int nn_output_place_rename(nn_output_place *place, const char *temporary, const char *path, const char *label,
                           const char *lost, nn_error *err) {
    const char *from, *to;
    int dir = nn_output_place_at(place, temporary, &from);
    nn_output_place_at(place, path, &to);
    /* the file written is held next as it is now, not as whatever the path names or
     * holds after the rename */
    nn_output_held written = hold(dir, from, O_NOFOLLOW);
    note_bytes(&written); /* what this run wrote: the next save replaces it only unchanged */
    int found, status = look(place, path, label, lost, &found, err);
    if (!status && written.fd < 0)
        status = nn_fail(err, NN_ERR_RUNTIME, "%s: vanished before it was put in place; %s", temporary, lost);
    /* where nothing is there now (a file removed, or none at start), nothing may be replaced */
    if (!status && (found ? renameat(dir, from, dir, to) : rename_no_replace(dir, from, to)) != 0)
        status = errno == EEXIST ? nn_fail(err, NN_ERR_RUNTIME, "%s: a file was put there during the run; not "
                                           "replacing it, and %s", label, lost)
                                 : nn_fail(err, NN_ERR_RUNTIME, "%s: cannot put %s in place: %s; %s", label, temporary,
                                           strerror(errno), lost);
    if (status) {
        let_go(&written);
        return status;
    }
    let_go(&place->file); /* the replaced file's inode is let go */
    place->file = written;
    return NN_OK;
}

void nn_output_place_remove(const nn_output_place *place, const char *temporary) {
    const char *name;
    int dir = nn_output_place_at(place, temporary, &name);
    unlinkat(dir, name, 0);
}

void nn_output_place_release(nn_output_place *place) {
    let_go(&place->file);
    let_go(&place->dir);
}
