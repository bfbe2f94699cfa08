/* The outputs rule's one question about content (see outputs.h): is the file that
 * an output would replace one that nntrain wrote? Asked of HDF5 files only, by the
 * marks each format always carries, so a user's file of any other kind, or an HDF5
 * file of another program, is never replaced. */
#define _POSIX_C_SOURCE 200809L /* fstatat */
#include <fcntl.h>
#include <hdf5.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>

#include "nn/outputs.h"

/* Whether the open file holds `mark`: a link when it starts with '/', else an
 * attribute of the root group. */
static bool has_mark(hid_t file, const char *mark) {
    if (mark[0] == '/') return H5Lexists(file, mark, H5P_DEFAULT) > 0;
    return H5Aexists_by_name(file, "/", mark, H5P_DEFAULT) > 0;
}

/* The file opened read-only, or -1 where it is not a whole HDF5 file (another kind of
 * file, or one cut short); quietly: that is an answer here, not an error to print. */
static hid_t open_quietly(const char *path) {
    H5E_auto2_t old_handler;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_handler, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    H5Eset_auto2(H5E_DEFAULT, old_handler, old_data);
    return file;
}

static bool has_marks(hid_t file, const char *const *marks) {
    bool all = true;
    for (const char *const *m = marks; all && *m; m++) all = has_mark(file, *m);
    return all;
}

int nn_output_check_ours(const char *option, const char *path, const char *kind, const char *const *marks,
                         nn_error *err) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return NN_OK; /* nothing of value there */
    hid_t file = open_quietly(path);
    bool ours = file >= 0 && has_marks(file, marks);
    if (file >= 0) H5Fclose(file);
    if (ours) return NN_OK;
    return nn_fail(err, NN_ERR_INPUT, "%s %s: exists and is not an nntrain %s; not replacing it", option, path, kind);
}

int nn_output_remove_hdf5_leftover(const char *option, const char *path, int dir_fd, const char *name,
                                   const char *leftover, const char *const *marks, nn_error *err) {
    char held[64 + NN_PATH_MAX]; /* the name in the held directory, as a path HDF5 can open */
    struct stat st, reached;
    snprintf(held, sizeof held, "/proc/self/fd/%d/%s", dir_fd, name);
    const char *open_as = dir_fd == AT_FDCWD ? name : held;
    bool file_there = fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
    /* no /proc, or another file there by now: unknown, so a user's */
    bool unknown = file_there && (stat(open_as, &reached) != 0 || reached.st_ino != st.st_ino);
    hid_t file = file_there && !unknown ? open_quietly(open_as) : -1;
    bool foreign = unknown || (file >= 0 && !has_marks(file, marks)); /* whole, and of another kind: put there */
    if (file >= 0) H5Fclose(file);
    if (foreign)
        return nn_fail(err, NN_ERR_INPUT, "%s %s: %s exists and is not a file this tool was writing; not touching it",
                       option, path, leftover);
    return nn_output_remove_leftover_at(option, path, dir_fd, name, leftover, NN_HDF5_SIGNATURE, err);
}
