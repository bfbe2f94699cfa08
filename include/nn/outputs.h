/* Output files: the one rule that decides whether a tool may write a path, and the
 * lock that keeps two live runs off the same output. Every tool asks here before it
 * creates, truncates or renames anything, so no option, symlink or `../` can make a
 * run overwrite its own dataset, a checkpoint it reads, or /dev/null.
 *
 * The rule, for an output `path`:
 *   - it is not the same file as any input of the run (device and inode, so
 *     symlinks, hard links and `../` all count), except the one input it is meant
 *     to take the place of (a checkpoint written over the one resumed from);
 *   - it is not the same file as another output of the run, nor as another output's
 *     temporary or lock file;
 *   - if it exists, it is a regular file (never a directory, device, FIFO or socket),
 *     and, where it is renamed into place, not a mount point (a bind-mounted file);
 *   - it is not a symbolic link (nn_output_follow_link has followed those it can);
 *   - if it exists, we may write it (a file the user made read-only is not replaced,
 *     even where the directory would allow the rename);
 *   - its directory exists and lets us create the file (tried with the real name
 *     of the temporary file, so a name too long or a missing directory fails now,
 *     not after the first epoch).
 * A file replaced keeps its permissions (and, where allowed, its owner and group):
 * nn_output_keep_mode. */
#ifndef NN_OUTPUTS_H
#define NN_OUTPUTS_H

#include <stddef.h>

#include "nn/error.h"

#define NN_OUTPUTS_MAX 8

/* The first bytes of every HDF5 file this code writes (its superblock at offset 0):
 * how a checkpoint's temporary file left by a killed write is told from a user's. */
#define NN_HDF5_SIGNATURE "\x89HDF\r\n\x1a\n"

/* One run's files: what it reads and what it will write. `option` names each path
 * in messages ("--checkpoint"). Paths are borrowed, not copied. */
typedef struct nn_file_role {
    const char *option, *path;
} nn_file_role;

typedef struct nn_run_files {
    nn_file_role inputs[NN_OUTPUTS_MAX];
    int n_inputs;
    nn_file_role outputs[NN_OUTPUTS_MAX];
    const char *temporary[NN_OUTPUTS_MAX]; /* output i is built as this file first (NULL: written in place) */
    const char *replaces[NN_OUTPUTS_MAX];  /* output i may take the place of this input (NULL: none) */
    int n_outputs;
} nn_run_files;

/* Adding to the list; an empty or NULL path is skipped (an option not given). */
void nn_run_files_input(nn_run_files *files, const char *option, const char *path);
/* Returns the output's index (or -1 when skipped), for the two setters below. */
int nn_run_files_output(nn_run_files *files, const char *option, const char *path);
void nn_run_files_temporary(nn_run_files *files, int output, const char *temporary_path);
void nn_run_files_replaces(nn_run_files *files, int output, const char *input_path);

/* Every output renamed into place is built first as "<path>.tmp", beside it (the same
 * file system, so the rename is atomic). `cap` at least NN_PATH_MAX + 8. */
void nn_output_temporary_name(char *out, size_t cap, const char *path);

/* The directory of `path` ("." for a bare name), into `out` (cap NN_PATH_MAX):
 * dirname(3) on a copy, once, as it may cut its argument in place. */
const char *nn_output_directory_of(const char *path, char *out, size_t cap);

/* How `path` is named for the *at() calls given `dir_fd`, its directory
 * (nn_output_directory_of's) held: its last component; where none is held (dir_fd < 0,
 * AT_FDCWD included), the path itself. A pointer into `path`. */
const char *nn_output_name_in(int dir_fd, const char *path);

/* Local: `name` in directory `dir_fd` (AT_FDCWD: a path) is a file this process
 * created (O_EXCL) and is writing now; NULL once it is renamed into place or removed.
 * nn_output_abandon, which a stop signal's handler may call (it is
 * async-signal-safe), removes it there: a tool killed part-way leaves no half-written
 * file behind, under whatever name, and never removes one of that name in a directory
 * put at the path since. */
void nn_output_writing(int dir_fd, const char *name);
void nn_output_abandon(void);

/* Local: where a write to `path` lands. A symbolic link (or a chain of them) to a
 * regular file is followed: `path` becomes that file's real path, so a file renamed
 * into place replaces the link's target and the link stays, as a write through it
 * would. Anything else is left as given, for the rule below to judge: it refuses a
 * link still there (to nothing, a loop, or a target whose real path is too long). */
void nn_output_follow_link(char *path, size_t cap);

/* Local: applies the rule to every output. NN_ERR_INPUT with one line naming the
 * option, the path and the problem. Nothing is left changed: the file tried in the
 * directory (the temporary's name, or the output's when written in place and
 * missing) is created and at once removed, and a temporary file already there is
 * left alone (it may be a live run's). */
int nn_run_files_check(const nn_run_files *files, nn_error *err);

/* Local: NN_OK where `path` is missing, empty or not a regular file (the rule above
 * judges those), or an HDF5 file that holds every one of `marks` (NULL-ended: a link
 * where the mark starts with '/', else an attribute of the root group), as nntrain
 * writes its `kind` of file; else NN_ERR_INPUT, "<option> <path>: exists and is not
 * an nntrain <kind>; not replacing it". A user's file is never replaced. */
int nn_output_check_ours(const char *option, const char *path, const char *kind, const char *const *marks,
                         nn_error *err);

/* Local, with the output's lock held: removes `name` in directory `dir_fd` (the
 * temporary file of a write killed part-way; AT_FDCWD: a path), where it is ours, a
 * regular file of one name whose content begins as `signature` does (or is cut within
 * it; an empty file included) or with zeros where the signature would be (a node that
 * crashed before its blocks reached the disk). Anything else there, a symbolic link
 * included, is a user's file: NN_ERR_INPUT, untouched. `dir_fd` is one held since the
 * lock was taken: never a directory put at the path since, where another run may be
 * writing a file of that name; `leftover` is how messages name the file. */
int nn_output_remove_leftover_at(const char *option, const char *path, int dir_fd, const char *name,
                                 const char *leftover, const char *signature, nn_error *err);

/* Local: gives `fd`, the new file about to be renamed over `path`, path's permission
 * bits, its POSIX ACL and, where the process may, its owner and group: a private
 * checkpoint stays private (where the ACL cannot be copied, the new file is its
 * owner's alone). Nothing where `path` is not a regular file. */
void nn_output_keep_mode(int fd, const char *path);

/* Local, with the lock held: nn_output_remove_leftover_at for an HDF5 output, and
 * besides, a whole HDF5 file at `leftover` without every one of `marks` (the kind's,
 * as for nn_output_check_ours) is a user's: a dataset copied to "ck.h5.tmp" is not a
 * checkpoint's killed write. HDF5 reads it through /proc/self/fd (a file in a held
 * directory has no path of its own); where that cannot be reached, it is a user's. */
int nn_output_remove_hdf5_leftover(const char *option, const char *path, int dir_fd, const char *name,
                                   const char *leftover, const char *const *marks, nn_error *err);

/* The lock on an output, held for the life of the run: an advisory (fcntl) lock on
 * "<path>.lock", which names its holder (PID and host). The kernel drops it when
 * the holder dies, however it dies, so a killed run never blocks the next one. */
typedef struct nn_output_lock {
    int fd;     /* -1: not held */
    int dir_fd; /* its directory, held: the file is removed there, wherever the path leads by then */
    int busy;   /* set by a refused acquire: another live process holds it */
    char path[NN_PATH_MAX + 8];
} nn_output_lock;

/* Local. NN_ERR_INPUT when another live process holds the lock ("in use by
 * another run: PID 123 on host h"), when the lock file cannot be made, and when
 * "<path>.lock" is not an nntrain lock file (a symbolic link, a file of several
 * names, or a file that names no holder as nntrain writes it; empty counts as ours,
 * as a run killed while making it leaves it): a user's file there is never
 * written or removed. NN_ERR_RUNTIME when locking itself fails. */
int nn_output_lock_acquire(nn_output_lock *lock, const char *option, const char *path, nn_error *err);
/* As nn_output_lock_acquire, but a lock another live process holds is waited for,
 * up to `seconds` (polled: its holder removes the file as it ends, so there is no
 * one file to block on); still held then, the same "in use" error. */
int nn_output_lock_wait(nn_output_lock *lock, const char *option, const char *path, double seconds, nn_error *err);
/* Removes the lock file and drops the lock; a lock not held is ignored. */
void nn_output_lock_release(nn_output_lock *lock);

#endif
