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

#include "nn/outputs.h"

static const nn_output_held nothing_held = {-1, 0, 0, 0};

/* What `path` is now, held; nothing_held where nothing is there. */
static nn_output_held hold(const char *path, int flags) {
    nn_output_held held = nothing_held;
    struct stat st;
    int fd = open(path, O_PATH | O_CLOEXEC | flags);
    if (fd >= 0 && fstat(fd, &st) == 0) held = (nn_output_held){fd, st.st_dev, st.st_ino, st.st_size};
    else if (fd >= 0) close(fd);
    return held;
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
    place->file = hold(path, 0);
    place->dir = hold(nn_output_directory_of(path, dir, sizeof dir), O_DIRECTORY);
    place->kind = kind;
}

int nn_output_place_check(const nn_output_place *place, const char *path, const char *label, const char *lost,
                          nn_error *err) {
    char dir[NN_PATH_MAX];
    struct stat st;
    if (place->dir.fd >= 0 &&
        (stat(nn_output_directory_of(path, dir, sizeof dir), &st) != 0 || !same_inode(&place->dir, &st)))
        return nn_fail(err, NN_ERR_RUNTIME, "%s: its directory is not the one this run started in (moved or replaced "
                       "during the run); %s", label, lost);
    if (stat(path, &st) != 0) return NN_OK; /* nothing there: nothing replaced */
    if (place->file.fd < 0)
        return nn_fail(err, NN_ERR_RUNTIME, "%s: a file was put there during the run; not replacing it, and %s", label,
                       lost);
    if (!same_inode(&place->file, &st) || st.st_size != place->file.size)
        return nn_fail(err, NN_ERR_RUNTIME, "%s: is not the %s this run checked or wrote (replaced or changed during "
                       "the run); not replacing it, and %s", label, place->kind, lost);
    return NN_OK;
}

/* A name in the held directory: renamed and removed there, never in a directory put
 * at its path since (where another run may be writing a file of the same name). */
typedef struct place_name {
    int dir;
    const char *name;
} place_name;

static place_name in_place(const nn_output_place *place, const char *path) {
    const char *slash = strrchr(path, '/');
    if (place->dir.fd < 0) return (place_name){AT_FDCWD, path};
    return (place_name){place->dir.fd, slash ? slash + 1 : path};
}

/* rename, but never over a file: where the file system cannot promise that (EINVAL),
 * the check just made is all there is */
static int rename_no_replace(place_name from, place_name to) {
    if (renameat2(from.dir, from.name, to.dir, to.name, RENAME_NOREPLACE) == 0) return 0;
    return errno == EINVAL || errno == ENOSYS ? renameat(from.dir, from.name, to.dir, to.name) : -1;
}

int nn_output_place_rename(nn_output_place *place, const char *temporary, const char *path, const char *label,
                           const char *lost, nn_error *err) {
    /* the file written is held next as it is now, not as whatever the path names or
     * holds after the rename */
    nn_output_held written = hold(temporary, 0);
    int status = nn_output_place_check(place, path, label, lost, err);
    if (!status && written.fd < 0)
        status = nn_fail(err, NN_ERR_RUNTIME, "%s: vanished before it was put in place; %s", temporary, lost);
    place_name from = in_place(place, temporary), to = in_place(place, path);
    if (!status && (place->file.fd < 0 ? rename_no_replace(from, to) : renameat(from.dir, from.name, to.dir, to.name)))
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
    place_name name = in_place(place, temporary);
    unlinkat(name.dir, name.name, 0);
}

void nn_output_place_release(nn_output_place *place) {
    let_go(&place->file);
    let_go(&place->dir);
}
