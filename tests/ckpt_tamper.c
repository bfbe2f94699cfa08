/* Damages a checkpoint in place, the way the bad-checkpoint tests need:
 *   ckpt_tamper FILE weight      change one weight (the checksum no longer matches)
 *   ckpt_tamper FILE nan-weight  make one weight a NaN (likewise)
 *   ckpt_tamper FILE version N   set format_version to N
 *   ckpt_tamper FILE real-version  store format_version as the real 1.5
 *   ckpt_tamper FILE set GROUP NAME VALUE  set (or add) an attribute: an integer when
 *                                          VALUE has no '.', 'e' or "nan", else a real
 *   ckpt_tamper FILE drop GROUP NAME  remove an attribute (with `unsigned`: a file of a
 *                                     build from before the attribute)
 *   ckpt_tamper FILE unsigned      drop the attribute checksum (/integrity), as files
 *                                  written before it have none
 *   ckpt_tamper FILE loss VALUE    set rank 0's /progress/loss_partial (no checksum covers it)
 *   ckpt_tamper FILE widths W0,W1,...  set /model/widths (and n_params to match)
 *   ckpt_tamper FILE sparse W0,W1,...  the same, and layer datasets of those shapes that
 *                                      were never written (chunked: they take no room) */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int set_attr(hid_t file, const char *group, const char *name, const char *text) {
    int real = strpbrk(text, ".eE") || strstr(text, "nan");
    long long i = atoll(text);
    double d = atof(text);
    if (H5Aexists_by_name(file, group, name, H5P_DEFAULT) > 0) H5Adelete_by_name(file, group, name, H5P_DEFAULT);
    hid_t space = H5Screate(H5S_SCALAR), type = real ? H5T_NATIVE_DOUBLE : H5T_NATIVE_LLONG;
    hid_t attr = H5Acreate_by_name(file, group, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = attr < 0 || H5Awrite(attr, type, real ? (const void *)&d : (const void *)&i) < 0;
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    return rc;
}

/* /model/widths as given, and /model/n_params as those widths' dense network has. */
static int set_widths(hid_t file, const char *list) {
    int widths[64], n = 0;
    long long params = 0;
    for (const char *p = list; *p && n < 64; p += strspn(p, ",")) {
        widths[n] = atoi(p);
        if (n > 0) params += (long long)widths[n - 1] * widths[n] + widths[n];
        n++;
        p += strcspn(p, ",");
    }
    char text[32];
    snprintf(text, sizeof text, "%lld", params);
    hsize_t dims[1] = {(hsize_t)n};
    H5Adelete_by_name(file, "/model", "widths", H5P_DEFAULT);
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t attr = H5Acreate_by_name(file, "/model", "widths", H5T_NATIVE_INT, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = attr < 0 || H5Awrite(attr, H5T_NATIVE_INT, widths) < 0;
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    return rc || set_attr(file, "/model", "n_params", text);
}

/* /model and /optimizer/velocity's dense layers remade as the widths say, chunked and
 * never written: a file of a few KB that promises any number of parameters. */
static int sparse_layers(hid_t file, const char *list) {
    int widths[64], n = 0, rc = 0;
    for (const char *p = list; *p && n < 64; p += strspn(p, ",")) widths[n++] = atoi(p), p += strcspn(p, ",");
    const char *groups[] = {"/model", "/optimizer/velocity"};
    for (int g = 0; g < 2; g++)
        for (int i = 0; i + 1 < n; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s/dense%d", groups[g], i + 1);
            if (H5Lexists(file, name, H5P_DEFAULT) > 0) H5Ldelete(file, name, H5P_DEFAULT);
            hid_t group = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            hsize_t wdims[2] = {(hsize_t)widths[i], (hsize_t)widths[i + 1]}, chunk[2] = {1, 1};
            hsize_t bdims[1] = {(hsize_t)widths[i + 1]}, bchunk[1] = {1};
            hid_t wspace = H5Screate_simple(2, wdims, NULL), bspace = H5Screate_simple(1, bdims, NULL);
            hid_t wplist = H5Pcreate(H5P_DATASET_CREATE), bplist = H5Pcreate(H5P_DATASET_CREATE);
            H5Pset_chunk(wplist, 2, chunk);
            H5Pset_chunk(bplist, 1, bchunk);
            hid_t w = H5Dcreate2(group, "weight", H5T_NATIVE_FLOAT, wspace, H5P_DEFAULT, wplist, H5P_DEFAULT);
            hid_t b = H5Dcreate2(group, "bias", H5T_NATIVE_FLOAT, bspace, H5P_DEFAULT, bplist, H5P_DEFAULT);
            rc |= group < 0 || w < 0 || b < 0;
            H5Dclose(w), H5Dclose(b), H5Pclose(wplist), H5Pclose(bplist), H5Sclose(wspace), H5Sclose(bspace);
            H5Gclose(group);
        }
    return rc || set_widths(file, list);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ckpt_tamper FILE weight|nan-weight|version N|real-version|set GROUP NAME VALUE|drop GROUP NAME|unsigned|loss VALUE|"
                        "widths|sparse W0,W1,...\n");
        return 2;
    }
    hid_t file = H5Fopen(argv[1], H5F_ACC_RDWR, H5P_DEFAULT);
    if (file < 0) return 1;
    int rc = 1;
    if (!strcmp(argv[2], "weight") || !strcmp(argv[2], "nan-weight")) {
        hid_t dset = H5Dopen2(file, "/model/dense1/weight", H5P_DEFAULT);
        hid_t space = H5Dget_space(dset);
        hsize_t start[2] = {0, 0}, count[2] = {1, 1};
        H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
        hid_t mem = H5Screate_simple(2, count, NULL);
        float w;
        if (H5Dread(dset, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, &w) >= 0) {
            w = strcmp(argv[2], "weight") ? NAN : w + 1.0f;
            rc = H5Dwrite(dset, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, &w) < 0;
        }
        H5Sclose(mem);
        H5Sclose(space);
        H5Dclose(dset);
    } else if (!strcmp(argv[2], "real-version")) {
        double v = 1.5;
        hid_t space = H5Screate(H5S_SCALAR);
        H5Adelete(file, "format_version");
        hid_t attr = H5Acreate2(file, "format_version", H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT);
        rc = attr < 0 || H5Awrite(attr, H5T_NATIVE_DOUBLE, &v) < 0;
        if (attr >= 0) H5Aclose(attr);
        H5Sclose(space);
    } else if (!strcmp(argv[2], "set") && argc == 6) {
        rc = set_attr(file, argv[3], argv[4], argv[5]);
    } else if (!strcmp(argv[2], "drop") && argc == 5) {
        rc = H5Adelete_by_name(file, argv[3], argv[4], H5P_DEFAULT) < 0;
    } else if (!strcmp(argv[2], "loss") && argc == 4) {
        double v = atof(argv[3]); /* atof reads "nan" and "inf" too */
        hid_t dset = H5Dopen2(file, "/progress/loss_partial", H5P_DEFAULT);
        hid_t space = H5Dget_space(dset);
        hsize_t start[1] = {0}, count[1] = {1};
        H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
        hid_t mem = H5Screate_simple(1, count, NULL);
        rc = H5Dwrite(dset, H5T_NATIVE_DOUBLE, mem, space, H5P_DEFAULT, &v) < 0;
        H5Sclose(mem);
        H5Sclose(space);
        H5Dclose(dset);
    } else if (!strcmp(argv[2], "widths") && argc == 4) {
        rc = set_widths(file, argv[3]);
    } else if (!strcmp(argv[2], "sparse") && argc == 4) {
        rc = sparse_layers(file, argv[3]);
    } else if (!strcmp(argv[2], "unsigned")) {
        rc = H5Ldelete(file, "/integrity", H5P_DEFAULT) < 0;
    } else if (!strcmp(argv[2], "version") && argc == 4) {
        long long v = atoll(argv[3]);
        hid_t attr = H5Aopen(file, "format_version", H5P_DEFAULT);
        rc = H5Awrite(attr, H5T_NATIVE_LLONG, &v) < 0;
        H5Aclose(attr);
    }
    H5Fclose(file);
    return rc;
}
