/* HDF5 files built in memory and written out whole by plain write(2) calls.
 *
 * Why: HDF5 1.10 cannot close a file whose last flush failed (a full disk, a
 * quota): its close fails, the library is left holding a half-freed file, and the
 * process crashes in MPI_Finalize (nntrain: exit 139) or loops at exit (nnprep). In
 * memory (the core driver, no file behind it) nothing fails that way, and the
 * write's own errno names the reason. The cost: the file's image, and one copy of it,
 * in memory while it is written. */
#ifndef NN_HDF5_IMAGE_H
#define NN_HDF5_IMAGE_H

#include <hdf5.h>
#include <stdbool.h>
#include <stddef.h>

/* A new HDF5 file in memory (`name` identifies it to HDF5 only; nothing is created on
 * disk), grown `expected_bytes` at a time; < 0 where HDF5 refuses. */
hid_t nn_hdf5_image_create(const char *name, size_t expected_bytes);

/* Closes `file` in every case; before that, writes its image to `name` in the
 * directory `dir_fd` (openat's: AT_FDCWD takes a path; created, or truncated; never
 * through a symbolic link) and fsyncs it, with the permissions of `replaces`, the file
 * it is to be renamed over (NULL: none). `exclusive`: `name` must not exist (a file
 * there is not the caller's: EEXIST, and it is left alone), and a file this call made
 * and could not write whole is removed. 0, or -1 with errno set (ENOMEM for the
 * image's copy, EIO where HDF5 could not make the image). */
int nn_hdf5_image_write(hid_t file, int dir_fd, const char *name, const char *replaces, bool exclusive);

#endif
