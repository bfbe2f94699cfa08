/* A digest of a file's bytes: whether a file was written into since it was last seen,
 * where its size alone cannot tell (`cp` of a checkpoint of the same network over
 * another: the same size, other bytes). Not a cryptographic hash: it tells an edit,
 * not an attack.
 *
 * An HDF5 file's superblock "file consistency flags" are left out. HDF5 sets them in
 * the file while a program holds it open for writing (HDFView, h5py's "r+") and clears
 * them on close; the file is otherwise unchanged, and is still the one written. */
#ifndef NN_FILE_DIGEST_H
#define NN_FILE_DIGEST_H

#include <stdint.h>

/* Local. The digest of everything `fd` (open for reading) holds, from its first byte;
 * 0 on success, -1 with errno on a failed read. */
int nn_file_digest(int fd, uint64_t *digest);

#endif
