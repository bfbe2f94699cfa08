/* Output places (nn/output_place.h), step by step with nothing racing them: what the
 * shell tests catch by pausing a run at a lucky moment, checked here at each moment. */
#define _GNU_SOURCE /* mkdtemp, openat */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "cunit_run.h"
#include "nn/output_place.h"

static char root[1024]; /* short, so that every path made from it fits NN_PATH_MAX */

/* root/NAME, in `buf` */
static const char *in_root(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", root, name);
    return buf;
}

static void put_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

static int has(const nn_error *err, const char *words) { return strstr(err->msg, words) != NULL; }

/* An output out.h5 in a fresh directory root/NAME, its place taken (nothing there yet). */
typedef struct output {
    char dir[1100], path[NN_PATH_MAX];
    nn_output_place place;
} output;

static void set_up(output *o, const char *name) {
    in_root(o->dir, sizeof o->dir, name);
    CU_ASSERT_EQUAL_FATAL(mkdir(o->dir, 0777), 0);
    snprintf(o->path, sizeof o->path, "%s/out.h5", o->dir);
    o->place = (nn_output_place)NN_OUTPUT_PLACE_NONE;
    nn_output_place_take(&o->place, o->path, "checkpoint");
}

/* The temporary written in the held directory and renamed into place (`n` bytes of
 * `bytes`). */
static int write_bytes_and_rename(nn_output_place *place, const char *path, const void *bytes, size_t n,
                                  nn_error *err) {
    char tmp[NN_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    const char *name;
    int dir = nn_output_place_at(place, tmp, &name);
    int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd < 0)
        return nn_output_place_reason(place, path, path, "lost",
                                      nn_fail(err, NN_ERR_RUNTIME, "%s: %s", tmp, strerror(errno)), err);
    CU_ASSERT_EQUAL((size_t)write(fd, bytes, n), n);
    close(fd);
    int status = nn_output_place_rename(place, tmp, path, path, "lost", err);
    if (status) nn_output_place_remove(place, tmp);
    return status;
}

static int write_and_rename(nn_output_place *place, const char *path, const char *text, nn_error *err) {
    return write_bytes_and_rename(place, path, text, strlen(text), err);
}

/* `n` bytes of `bytes` written over the file at `path` from `offset`, in place (its
 * inode and, where they fit, its size kept: as `cp` or an editor that writes in place) */
static void write_in_place(const char *path, long offset, const void *bytes, size_t n) {
    int fd = open(path, O_WRONLY);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(pwrite(fd, bytes, n, offset), (ssize_t)n);
    close(fd);
}

static void read_back(const char *path, char *buf, size_t size) {
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Nothing there at start: the first output is put there, and the next replaces it. */
static void test_saves_in_turn(void) {
    output o;
    char text[64];
    nn_error err;
    set_up(&o, "turns");
    CU_ASSERT_EQUAL(nn_output_place_check(&o.place, o.path, o.path, "lost", &err), NN_OK);
    CU_ASSERT_EQUAL(write_and_rename(&o.place, o.path, "first", &err), NN_OK);
    CU_ASSERT_EQUAL(write_and_rename(&o.place, o.path, "second", &err), NN_OK);
    read_back(o.path, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "second");
    nn_output_place_release(&o.place);
}

/* A file put where there was nothing, or one put over the output: kept, and said. */
static void test_someone_elses_file_kept(void) {
    output o;
    char text[64];
    nn_error err;
    set_up(&o, "others");
    put_file(o.path, "notes");
    CU_ASSERT_EQUAL(write_and_rename(&o.place, o.path, "ours", &err), NN_ERR_RUNTIME);
    CU_ASSERT(has(&err, "a file was put there during the run"));
    read_back(o.path, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "notes");

    nn_output_place_take(&o.place, o.path, "checkpoint"); /* the notes, taken as the run's own */
    CU_ASSERT_EQUAL(write_and_rename(&o.place, o.path, "ours", &err), NN_OK);
    /* removed, and a file of the same size made at its name (ext4 may give it the number) */
    CU_ASSERT_EQUAL(unlink(o.path), 0);
    put_file(o.path, "mine");
    CU_ASSERT_EQUAL(write_and_rename(&o.place, o.path, "later", &err), NN_ERR_RUNTIME);
    CU_ASSERT(has(&err, "is not the checkpoint this run checked or wrote"));
    read_back(o.path, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "mine");
    char tmp[NN_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", o.path);
    CU_ASSERT_EQUAL(access(tmp, F_OK), -1); /* its temporary removed */
    nn_output_place_release(&o.place);
}

/* Written into in place to the same size (`cp` of another checkpoint of the same
 * network over it): told by its bytes, kept (the size alone let it pass until
 * 2026-12-08). The file the run checked at start is compared the same way. */
static void test_written_into_same_size_kept(void) {
    output o;
    char text[64];
    nn_error err;
    set_up(&o, "same-size");
    CU_ASSERT_EQUAL(write_and_rename(&o.place, o.path, "epoch 1", &err), NN_OK);
    write_in_place(o.path, 0, "notes 1", 7);
    CU_ASSERT_EQUAL(write_and_rename(&o.place, o.path, "epoch 2", &err), NN_ERR_RUNTIME);
    CU_ASSERT(has(&err, "is not the checkpoint this run checked or wrote"));
    read_back(o.path, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "notes 1");

    nn_output_place_take(&o.place, o.path, "checkpoint"); /* as at start: held, its content checked, */
    CU_ASSERT_EQUAL(nn_output_place_check(&o.place, o.path, o.path, "lost", &err), NN_OK); /* still held */
    write_in_place(o.path, 6, "2", 1);
    CU_ASSERT_EQUAL(write_and_rename(&o.place, o.path, "epoch 3", &err), NN_ERR_RUNTIME);
    read_back(o.path, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "notes 2");
    nn_output_place_release(&o.place);
}

/* The start of an HDF5 file, superblock version `version` (its consistency flags
 * zero), then bytes up to 64. */
static void hdf5_head(unsigned char *head, int version) {
    static const unsigned char signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    for (int i = 0; i < 64; i++) head[i] = (unsigned char)(i * 7 + 3);
    memcpy(head, signature, 8);
    head[8] = (unsigned char)version;
    memset(head + 20, 0, 4);
    head[11] = 0;
}

/* An HDF5 file that another program holds open for writing (HDFView, h5py's "r+")
 * has its superblock's consistency flags set, and is otherwise the file written: the
 * saves go on. Any other byte changed is a change. (Versions 0 and 1 by hand; 2 and 3,
 * whose superblock checksum covers the flags, as HDF5 writes them, below.) */
static void test_hdf5_open_flags_not_a_change(void) {
    const struct { int version, at; } flags[] = {{0, 20}, {1, 23}};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        output o;
        unsigned char head[64];
        nn_error err;
        char name[32];
        snprintf(name, sizeof name, "hdf5-v%d", flags[i].version);
        set_up(&o, name);
        hdf5_head(head, flags[i].version);
        CU_ASSERT_EQUAL(write_bytes_and_rename(&o.place, o.path, head, sizeof head, &err), NN_OK);
        write_in_place(o.path, flags[i].at, "\x01", 1); /* opened for writing elsewhere */
        CU_ASSERT_EQUAL(write_bytes_and_rename(&o.place, o.path, head, sizeof head, &err), NN_OK);
        write_in_place(o.path, 40, "\x00", 1); /* a byte of the file itself */
        CU_ASSERT_EQUAL(write_bytes_and_rename(&o.place, o.path, head, sizeof head, &err), NN_ERR_RUNTIME);
        nn_output_place_release(&o.place);
    }
}

static size_t read_all(const char *path, unsigned char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* A real HDF5 file, of each superblock version HDF5 1.10 writes (0, 2, 3), held open
 * for writing by HDF5 (as a viewer would) while the run saves over it: the bytes HDF5
 * changes then (the flags, and in versions 2 and 3 the superblock's checksum) are no
 * change, and the save goes on. */
static void test_hdf5_held_open_for_writing(void) {
    const H5F_libver_t lows[] = {H5F_LIBVER_EARLIEST, H5F_LIBVER_V18, H5F_LIBVER_LATEST};
    static unsigned char before[1 << 16], held[1 << 16];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    for (size_t i = 0; i < sizeof lows / sizeof lows[0]; i++) {
        output o;
        nn_error err;
        char name[32];
        snprintf(name, sizeof name, "hdf5-low%zu", i);
        set_up(&o, name);
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        H5Pset_libver_bounds(fapl, lows[i], H5F_LIBVER_LATEST);
        hid_t file = H5Fcreate(o.path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
        CU_ASSERT_FATAL(file >= 0);
        H5Gclose(H5Gcreate2(file, "/model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        H5Fclose(file);
        nn_output_place_take(&o.place, o.path, "checkpoint");
        CU_ASSERT_EQUAL(nn_output_place_check(&o.place, o.path, o.path, "lost", &err), NN_OK);
        size_t n = read_all(o.path, before, sizeof before);
        hid_t viewer = H5Fopen(o.path, H5F_ACC_RDWR, fapl);
        CU_ASSERT_FATAL(viewer >= 0);
        CU_ASSERT(read_all(o.path, held, sizeof held) == n && memcmp(before, held, n) != 0); /* HDF5 marked it */
        CU_ASSERT_EQUAL(write_and_rename(&o.place, o.path, "saved", &err), NN_OK);
        H5Fclose(viewer);
        H5Pclose(fapl);
        nn_output_place_release(&o.place);
    }
}

/* The directory removed and made again before the temporary is made: the reason given
 * is the directory, not the "No such file or directory" that making a file in the
 * removed one gives (CI's sanitizer run paused nntrain just there). */
static void test_directory_made_again(void) {
    output o;
    char text[64];
    nn_error err;
    set_up(&o, "remade");
    CU_ASSERT_EQUAL(write_and_rename(&o.place, o.path, "ours", &err), NN_OK);
    CU_ASSERT_EQUAL(unlink(o.path), 0);
    CU_ASSERT_EQUAL(rmdir(o.dir), 0);
    CU_ASSERT_EQUAL(mkdir(o.dir, 0777), 0);
    CU_ASSERT_EQUAL(write_and_rename(&o.place, o.path, "later", &err), NN_ERR_RUNTIME);
    CU_ASSERT(has(&err, "its directory is not the one this run started in"));
    CU_ASSERT(!has(&err, "No such file"));
    CU_ASSERT_EQUAL(access(o.path, F_OK), -1);
    /* the directory moved away (not removed) and made anew: the temporary is made in the
     * held one, where it goes, and the rename is refused there */
    put_file(o.path, "notes");
    nn_output_place_take(&o.place, o.path, "checkpoint");
    char moved[1200];
    snprintf(moved, sizeof moved, "%s.old", o.dir);
    CU_ASSERT_EQUAL(rename(o.dir, moved), 0);
    CU_ASSERT_EQUAL(mkdir(o.dir, 0777), 0);
    CU_ASSERT_EQUAL(write_and_rename(&o.place, o.path, "later", &err), NN_ERR_RUNTIME);
    CU_ASSERT(has(&err, "its directory is not the one this run started in"));
    char kept[1300];
    snprintf(kept, sizeof kept, "%s/out.h5", moved);
    read_back(kept, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "notes"); /* kept where it went, and no temporary beside it */
    snprintf(kept, sizeof kept, "%s/out.h5.tmp", moved);
    CU_ASSERT_EQUAL(access(kept, F_OK), -1);
    nn_output_place_release(&o.place);
}

/* Unchanged, the place lets the failure's own reason through. */
static void test_reason_kept_when_nothing_moved(void) {
    output o;
    nn_error err;
    set_up(&o, "still");
    int status =
        nn_output_place_reason(&o.place, o.path, o.path, "lost", nn_fail(&err, NN_ERR_RUNTIME, "disk full"), &err);
    CU_ASSERT_EQUAL(status, NN_ERR_RUNTIME);
    CU_ASSERT_STRING_EQUAL(err.msg, "disk full");
    nn_output_place_release(&o.place);
}

int main(void) {
    const char *tmp = getenv("NN_TEST_TMP");
    snprintf(root, sizeof root, "%s/output-place-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) return 1;
    CU_TestInfo tests[] = {
        {"nothing there, then the run's own: each save replaces the last", test_saves_in_turn},
        {"a file put there, or removed and another made there: kept", test_someone_elses_file_kept},
        {"the directory made again: it is the reason, not ENOENT", test_directory_made_again},
        {"written into in place to the same size: kept", test_written_into_same_size_kept},
        {"an HDF5 file held open for writing elsewhere: still the one written", test_hdf5_open_flags_not_a_change},
        {"... HDF5's own files, superblock versions 0, 2 and 3", test_hdf5_held_open_for_writing},
        {"nothing moved: the failure's own reason", test_reason_kept_when_nothing_moved},
        CU_TEST_INFO_NULL};
    int failed = nn_run_suite("output places", tests);
    char cmd[NN_PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (!failed && system(cmd) != 0) return 1;
    return failed;
}
