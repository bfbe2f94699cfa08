/* Where an output goes, as the run found it: the file at its path (or nothing) and its
 * directory, both held for the run. An output built as "<path>.tmp" is renamed into
 * place only where that is still so: a file put at the path during the run, a file
 * removed and another made at its name, a file written into, or the directory moved
 * away and made anew is someone else's, and is never replaced.
 *
 * Held, not merely remembered: an O_PATH descriptor (it reads nothing, so it needs no
 * read permission) keeps an inode number from being given to another file while the
 * run lasts; ext4 gives a freed number to the next file at once, so a number and a
 * size alone let a new file of the old one's size pass for it. A file written into
 * in place is told by its size and, where it can be read, a digest of its bytes
 * (nn/file_digest.h: one written to the same size, as a `cp` of another checkpoint of
 * the same network, is told too). Only that read goes through the descriptor: HDF5
 * never reopens the file (it cannot open a file another program holds open for
 * writing, and the descriptor is not such a hold). */
#ifndef NN_OUTPUT_PLACE_H
#define NN_OUTPUT_PLACE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "nn/error.h"

typedef struct nn_output_held {
    int fd; /* -1: nothing held (nothing was there) */
    dev_t dev;
    ino_t ino;
    off_t size; /* a file's; a directory's is not compared (it changes as files come and go) */
    bool digested;   /* a regular file's bytes noted (nn_output_place_check): compared too */
    uint64_t digest; /* nn_file_digest of them */
} nn_output_held;

typedef struct nn_output_place {
    nn_output_held file, dir;
    const char *kind; /* in messages: "is not the <kind> this run checked or wrote" */
} nn_output_place;

#define NN_OUTPUT_PLACE_NONE {{-1, 0, 0, 0, false, 0}, {-1, 0, 0, 0, false, 0}, "file"}

/* Local: takes the place of `path` as it is now (letting go of what `place` held).
 * Taken before the caller looks at the file's content (is it one of ours?), and
 * checked after: a file swapped in between is not the one held. */
void nn_output_place_take(nn_output_place *place, const char *path, const char *kind);

/* Where a file beside the output (its temporary) is made, written and removed: the
 * held directory's descriptor (AT_FDCWD where none is held) and `path`'s name in it,
 * for the *at() calls; never a directory put at the path since. */
int nn_output_place_at(const nn_output_place *place, const char *path, const char **name);

/* NN_OK where an output may be put at `path` now (see above); else NN_ERR_RUNTIME,
 * "LABEL: ...; `lost`" (LABEL: how the caller names the output, "ck.h5" or "--out
 * m.h5"; lost: what the run gives up, "this checkpoint is not saved"). The first check
 * after nn_output_place_take, made once the caller has looked at the file's content,
 * notes the file's bytes (they are not read before: a large file named by mistake is
 * refused unread). */
int nn_output_place_check(nn_output_place *place, const char *path, const char *label, const char *lost,
                          nn_error *err);

/* A temporary that could not be made or written in the held directory: where the
 * place changed meanwhile (its directory removed, so that making a file there fails
 * with "No such file or directory"; or a file put at the path), that change is the
 * reason reported, in place of the failure (the run's output is lost either way, and
 * the change is what the user did); else `status` and `err` are returned as they are. */
int nn_output_place_reason(const nn_output_place *place, const char *path, const char *label, const char *lost,
                           int status, nn_error *err);

/* Checked, then `temporary` renamed to `path`; where nothing was there, so that a file
 * put there since is never replaced (renameat2's RENAME_NOREPLACE, where the file
 * system has it), in the held directory. The file put in place is what the place
 * holds after. On failure `temporary` is left for the caller to remove
 * (nn_output_place_remove). */
int nn_output_place_rename(nn_output_place *place, const char *temporary, const char *path, const char *label,
                           const char *lost, nn_error *err);

/* The temporary file removed from the held directory (not from one put at its path
 * since, where another run may be writing a file of that name). */
void nn_output_place_remove(const nn_output_place *place, const char *temporary);

void nn_output_place_release(nn_output_place *place);

#endif
