/* The outputs rule's one question about content (see outputs.h): is the file that
 * an output would replace one that nntrain wrote? Asked of HDF5 files only, by the
 * marks each format always carries, so a user's file of any other kind, or an HDF5
 * file of another program, is never replaced. */
#include <hdf5.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "nn/outputs.h"

/* Whether the open file holds `mark`: a link when it starts with '/', else an
 * attribute of the root group. */
static bool has_mark(hid_t file, const char *mark) {
    if (mark[0] == '/') return H5Lexists(file, mark, H5P_DEFAULT) > 0;
    return H5Aexists_by_name(file, "/", mark, H5P_DEFAULT) > 0;
}

int nn_output_check_ours(const char *option, const char *path, const char *kind, const char *const *marks,
                         nn_error *err) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return NN_OK; /* nothing of value there */
    H5E_auto2_t old_handler; /* a file that is not HDF5 is an answer here, not an error to print */
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_handler, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    bool ours = file >= 0;
    for (const char *const *m = marks; ours && *m; m++) ours = has_mark(file, *m);
    if (file >= 0) H5Fclose(file);
    H5Eset_auto2(H5E_DEFAULT, old_handler, old_data);
    if (ours) return NN_OK;
    return nn_fail(err, NN_ERR_INPUT, "%s %s: exists and is not an nntrain %s; not replacing it", option, path, kind);
}
