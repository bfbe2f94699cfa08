/* HDF5 files built in memory, written out whole (see nn/hdf5_image.h). */
#define _POSIX_C_SOURCE 200809L /* fsync */
#include "nn/hdf5_image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "nn/outputs.h"
#include "nn/watchdog.h"

hid_t nn_hdf5_image_create(const char *name, size_t expected_bytes) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    hid_t file = H5Pset_fapl_core(fapl, expected_bytes, 0) >= 0 ? H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)
                                                                 : -1;
    H5Pclose(fapl);
    return file;
}

/* `size` bytes to `name` in `dir_fd`, synced; -1 with errno set where they cannot be. */
static int write_bytes(int dir_fd, const char *name, const unsigned char *bytes, size_t size, const char *replaces,
                       bool exclusive) {
    int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | (exclusive ? O_EXCL : O_TRUNC) | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) return -1;
    nn_output_keep_mode(fd, replaces);
    const size_t most = (size_t)64 << 20; /* a piece at a time: the watchdog hears progress */
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, bytes + done, size - done < most ? size - done : most);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : ENOSPC;
            close(fd);
            if (exclusive) unlinkat(dir_fd, name, 0); /* made here, by this call: no half-written file stays */
            errno = saved;
            return -1;
        }
        done += (size_t)n;
        nn_watchdog_alive();
    }
    int synced = fsync(fd), saved = errno;
    int closed = close(fd);
    if (synced == 0 && closed == 0) return 0;
    saved = synced != 0 ? saved : errno;
    if (exclusive) unlinkat(dir_fd, name, 0);
    errno = saved;
    return -1;
}

int nn_hdf5_image_write(hid_t file, int dir_fd, const char *name, const char *replaces, bool exclusive) {
    /* the flush puts the superblock's end-of-file address into the image */
    ssize_t size = H5Fflush(file, H5F_SCOPE_LOCAL) >= 0 ? H5Fget_file_image(file, NULL, 0) : -1;
    unsigned char *image = size > 0 ? malloc((size_t)size) : NULL;
    int made = image && H5Fget_file_image(file, image, (size_t)size) == size;
    H5Fclose(file); /* in memory: nothing to fail */
    int rc = made ? write_bytes(dir_fd, name, image, (size_t)size, replaces, exclusive) : -1;
    if (!made) errno = size > 0 && !image ? ENOMEM : EIO;
    free(image);
    return rc;
}
