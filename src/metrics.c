/* Each epoch's figures: gathered over the ranks, printed as a line, and appended to the
 * metrics file (JSON Lines), whose records are kept whole and whose foreign content is
 * never overwritten. */
#define _POSIX_C_SOURCE 200809L /* getline, ftruncate */
#include "nn/metrics.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/outputs.h"

void nn_metrics_gather(nn_epoch_stats *st, const nn_epoch_clock *clock, double loss_sum, double epoch_samples,
                       int batch, MPI_Comm comm) {
    /* the epoch's time is the slowest rank's; the sum's, its barrier waits' and the
     * data's are the mean over the ranks: each rank's sum and data are disjoint parts of
     * its steps, and its waits a part of its sum, so the shares of the means add up to
     * at most 100% and the wait stays within the sum (maxima, taken from different
     * ranks, once summed to 158%, and put a wait of 98% beside a sum of 97%) */
    double compute = clock->steps - clock->exchange - clock->data;
    double shares[4] = {clock->exchange, clock->data, clock->exchange_wait, compute};
    double most[3] = {clock->steps, compute, -compute}; /* the slowest epoch, the most and least computing */
    MPI_Allreduce(MPI_IN_PLACE, most, 3, MPI_DOUBLE, MPI_MAX, comm);
    MPI_Allreduce(MPI_IN_PLACE, shares, 4, MPI_DOUBLE, MPI_SUM, comm);
    double slowest = most[0];
    MPI_Allreduce(MPI_IN_PLACE, &loss_sum, 1, MPI_DOUBLE, MPI_SUM, comm);
    int ranks;
    MPI_Comm_size(comm, &ranks);
    st->train_loss = loss_sum / epoch_samples;
    st->epoch_seconds = slowest;
    st->allreduce_seconds = shares[0] / ranks;
    st->data_seconds = shares[1] / ranks;
    st->allreduce_wait_seconds = shares[2] / ranks;
    st->compute_seconds = shares[3] / ranks;
    st->compute_max_seconds = most[1];
    st->compute_min_seconds = -most[2];
    st->samples_per_second = (double)clock->steps_done * batch / slowest;
}

void nn_metrics_print_line(FILE *out, const nn_epoch_stats *s) {
    fprintf(out,
            "epoch %3d/%d  train_loss %.4f  test_loss %.4f  test_acc %6.2f%%  "
            "time %.2fs  %.0f samples/s  allreduce %.1f%%  data %.1f%%  lr %.4g",
            s->epoch, s->epochs, s->train_loss, s->test_loss, 100.0 * s->test_accuracy,
            s->epoch_seconds, s->samples_per_second,
            s->epoch_seconds > 0 ? 100.0 * s->allreduce_seconds / s->epoch_seconds : 0.0,
            s->epoch_seconds > 0 ? 100.0 * s->data_seconds / s->epoch_seconds : 0.0, s->lr);
    if (s->has_validation) fprintf(out, "  val_acc %6.2f%%", 100.0 * s->validation_accuracy);
    if (s->checkpoint_seconds > 0) fprintf(out, "  checkpoint %.3fs", s->checkpoint_seconds);
    fputc('\n', out);
    fflush(out);
}

int nn_metrics_format_json(char *out, size_t cap, const nn_epoch_stats *s) {
    int n = snprintf(out, cap,
            /* losses with all 17 digits: resumed runs are compared bit for bit */
            "{\"epoch\": %d, \"train_loss\": %.17g, \"test_loss\": %.17g, \"test_accuracy\": %.17g, "
            "\"epoch_seconds\": %.6f, \"eval_seconds\": %.6f, \"samples_per_second\": %.1f, "
            "\"allreduce_seconds\": %.6f, \"allreduce_wait_seconds\": %.6f, \"data_seconds\": %.6f, "
            "\"compute_seconds\": %.6f, \"compute_max_seconds\": %.6f, \"compute_min_seconds\": %.6f, "
            "\"checkpoint_seconds\": %.6f, \"lr\": %.9g, \"ranks\": %d, \"threads\": %d",
            s->epoch, s->train_loss, s->test_loss, s->test_accuracy, s->epoch_seconds, s->eval_seconds,
            s->samples_per_second, s->allreduce_seconds, s->allreduce_wait_seconds, s->data_seconds,
            s->compute_seconds, s->compute_max_seconds, s->compute_min_seconds, s->checkpoint_seconds, s->lr, s->ranks,
            s->threads);
    size_t used = n > 0 && (size_t)n < cap ? (size_t)n : cap;
    if (s->node_sum) n += snprintf(out + used, cap - used, ", \"node_sum\": \"%s\"", s->node_sum);
    used = n > 0 && (size_t)n < cap ? (size_t)n : cap;
    if (s->has_validation)
        n += snprintf(out + used, cap - used, ", \"validation_loss\": %.17g, \"validation_accuracy\": %.17g",
                      s->validation_loss, s->validation_accuracy);
    used = n > 0 && (size_t)n < cap ? (size_t)n : cap;
    n += snprintf(out + used, cap - used, "}\n");
    return n;
}

/* How every record of ours begins: the epoch, then the training loss. */
static const char record_start[] = "{\"epoch\": ", record_second[] = ", \"train_loss\": ";

/* Whether the line's first n bytes follow how every record begins -- the epoch's key,
 * its digits, the training loss's key -- as far as they go; `through` gets whether
 * they go past the training loss's key. */
static int begins_as_record(const char *line, size_t n, int *through) {
    size_t prefix = sizeof record_start - 1, second = sizeof record_second - 1;
    *through = 0;
    if (strncmp(line, record_start, n < prefix ? n : prefix) != 0) return 0;
    if (n <= prefix) return 1;
    size_t digits = 0;
    while (prefix + digits < n && line[prefix + digits] >= '0' && line[prefix + digits] <= '9') digits++;
    size_t at = prefix + digits, left = n - at;
    if (left == 0) return 1;
    if (digits == 0 || strncmp(line + at, record_second, left < second ? left : second) != 0) return 0;
    *through = left >= second;
    return 1;
}

/* Whether a line is a record of ours: a whole one begins with the epoch, then the
 * training loss, has the ranks and threads (every record has, since the first
 * version) and ends its object. One cut short by a failed write (the last, without
 * its newline) begins as ours do, as far as it goes; and unless a whole record of
 * ours comes before it, it must reach past the training loss's key, so that a
 * user's `{"epoch": 1}` or `{` with no newline is not taken for one. Another tool's
 * log of `{"epoch": 1, "loss": ...}` lines is not ours. */
static int is_record(const char *line, size_t n, int whole, int after_record) {
    int through;
    if (!begins_as_record(line, n, &through)) return 0;
    if (!whole) return through || after_record;
    return through && strstr(line, ", \"ranks\": ") && strstr(line, ", \"threads\": ") && n >= 2 &&
           line[n - 2] == '}';
}

/* What an existing metrics file holds, read to the end. */
typedef struct kept_part {
    long keep;         /* where the kept part ends: after the last whole record of an epoch
                          <= keep_epochs (0 for keep_epochs < 0); -1: a line that is not a
                          record of ours makes the file someone else's */
    int last_epoch;    /* the last kept record's epoch (0: none) */
    double train_loss, test_accuracy; /* its values (NaN: none read) */
    int cuts_records;  /* whole records lie beyond the kept part */
} kept_part;

/* A record's number after `"key": ` (NaN where it has none). */
static double record_value(const char *line, const char *key) {
    const char *at = strstr(line, key);
    if (!at) return NAN;
    char *end;
    double v = strtod(at + strlen(key), &end);
    return end == at + strlen(key) ? NAN : v;
}

static kept_part kept_length(FILE *in, int keep_epochs) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long offset = 0;
    kept_part k = {.train_loss = NAN, .test_accuracy = NAN};
    int cut = keep_epochs < 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        size_t prefix = sizeof record_start - 1;
        int whole = line[n - 1] == '\n';
        if (!is_record(line, (size_t)n, whole, offset > 0)) { k.keep = -1; break; }
        offset += n;
        if (!whole) continue; /* a record cut short by a failed write */
        long epoch = strtol(line + prefix, NULL, 10);
        if (!cut && (epoch > keep_epochs || epoch < k.last_epoch)) cut = 1;
        if (cut) { k.cuts_records = 1; continue; } /* beyond the cut */
        k.keep = offset, k.last_epoch = (int)epoch;
        k.train_loss = record_value(line, record_second);
        k.test_accuracy = record_value(line, "\"test_accuracy\": ");
    }
    free(line);
    return k;
}

/* A resumed run's file: NN_OK where it may be cut back to the checkpoint's epoch. */
static int check_resumed(const nn_metrics_file *f, const kept_part *k, const nn_metrics_resume *r, nn_error *err) {
    if (k->last_epoch == r->epoch && r->epoch > 0) { /* the record the checkpoint knows of */
        const char *what = r->train_loss >= 0 && k->train_loss != r->train_loss ? "training loss"
                           : r->test_accuracy >= 0 && k->test_accuracy != r->test_accuracy ? "test accuracy"
                                                                                         : NULL;
        if (what)
            return nn_fail(err, NN_ERR_INPUT, "--metrics %s: holds another run's metrics (epoch %d's %s is not the "
                           "checkpoint's); not cutting it", f->path, r->epoch, what);
        return NN_OK;
    }
    if (!k->cuts_records) return NN_OK; /* nothing of the epoch or later: appended to */
    if (r->epoch == 0)
        return nn_fail(err, NN_ERR_INPUT, "--metrics %s: has records, but the checkpoint has no completed epoch to show "
                       "they are this run's; not cutting it", f->path);
    return nn_fail(err, NN_ERR_INPUT, "--metrics %s: has records of epochs after the checkpoint's epoch %d but none of "
                   "epoch %d to show they are this run's; not cutting it", f->path, r->epoch, r->epoch);
}

int nn_metrics_open(nn_metrics_file *f, int dir_fd, const char *path, const nn_metrics_resume *resume,
                    nn_error *err) {
    f->path = path;
    /* read and write through one descriptor: the file checked is the file written, and
     * one we may write but not read (its content unknown, so maybe a user's) is refused */
    if (dir_fd < 0) dir_fd = AT_FDCWD;
    f->fd = openat(dir_fd, nn_output_name_in(dir_fd, path), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (f->fd < 0)
        return nn_fail(err, NN_ERR_INPUT, "--metrics %s: cannot open it to read and write: %s", path, strerror(errno));
    struct stat st; /* written in place: another name of the file (a backup's hard link) would change too */
    if (fstat(f->fd, &st) != 0) {
        int saved = errno;
        nn_metrics_close(f);
        return nn_fail(err, NN_ERR_RUNTIME, "--metrics %s: cannot stat it: %s", path, strerror(saved));
    }
    f->dev = (unsigned long long)st.st_dev, f->ino = (unsigned long long)st.st_ino;
    if (st.st_nlink > 1) {
        nn_metrics_close(f);
        return nn_fail(err, NN_ERR_INPUT, "--metrics %s: has %lu hard links, and a metrics file is written in place: "
                       "every name would change; not writing it (a copy has one name)", path, (unsigned long)st.st_nlink);
    }
    int copy = dup(f->fd); /* fclose closes the copy; the offset they share is set by nn_metrics_cut */
    FILE *in = copy >= 0 ? fdopen(copy, "r") : NULL;
    if (!in) {
        int saved = errno;
        if (copy >= 0) close(copy);
        nn_metrics_close(f);
        return nn_fail(err, NN_ERR_RUNTIME, "--metrics %s: cannot read: %s", path, strerror(saved));
    }
    kept_part k = kept_length(in, resume ? resume->epoch : -1);
    int unread = ferror(in);
    fclose(in);
    if (unread) {
        nn_metrics_close(f);
        return nn_fail(err, NN_ERR_RUNTIME, "--metrics %s: cannot read it", path);
    }
    if (k.keep < 0) {
        nn_metrics_close(f);
        return nn_fail(err, NN_ERR_INPUT, "--metrics %s: holds something other than nntrain's metrics; not overwriting it",
                       path);
    }
    int status = resume ? check_resumed(f, &k, resume, err) : NN_OK;
    if (status) {
        nn_metrics_close(f);
        return status;
    }
    f->last_epoch = k.last_epoch;
    f->keep = k.keep;
    return NN_OK;
}

int nn_metrics_cut(nn_metrics_file *f, nn_error *err) {
    if (f->fd < 0) return NN_OK;
    if (ftruncate(f->fd, f->keep) != 0 || lseek(f->fd, f->keep, SEEK_SET) < 0) {
        int saved = errno;
        nn_metrics_close(f);
        return nn_fail(err, NN_ERR_RUNTIME, "--metrics %s: cannot cut back to the resumed epoch: %s", f->path,
                       strerror(saved));
    }
    return NN_OK;
}

int nn_metrics_append(nn_metrics_file *f, const nn_epoch_stats *s, nn_error *err) {
    char line[1024];
    int n = nn_metrics_format_json(line, sizeof line, s);
    if (n < 0 || (size_t)n >= sizeof line) return nn_fail(err, NN_ERR_RUNTIME, "%s: metrics record too long", f->path);
    /* the path still names the file opened: one removed, or replaced (mv), would take
     * the rest of the run's records unseen, and the file now there is not the run's */
    struct stat now;
    int gone = stat(f->path, &now) != 0;
    if (gone && errno != ENOENT)
        return nn_fail(err, NN_ERR_RUNTIME, "--metrics %s: cannot check that it is still the run's file: %s; the records "
                       "from epoch %d on are not written", f->path, strerror(errno), s->epoch);
    if (gone || (unsigned long long)now.st_dev != f->dev || (unsigned long long)now.st_ino != f->ino)
        return nn_fail(err, NN_ERR_RUNTIME, "--metrics %s: removed or replaced during the run; the records from epoch %d "
                       "on are not written", f->path, s->epoch);
    off_t start = lseek(f->fd, 0, SEEK_CUR);
    for (int done = 0; done < n;) {
        ssize_t w = write(f->fd, line + done, (size_t)(n - done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int saved = w < 0 ? errno : ENOSPC;
            /* undo the part written: the file keeps whole records only */
            if (start >= 0 && ftruncate(f->fd, start) == 0) lseek(f->fd, start, SEEK_SET);
            return nn_fail(err, NN_ERR_RUNTIME, "%s: cannot write metrics: %s", f->path, strerror(saved));
        }
        done += (int)w;
    }
    return NN_OK;
}

void nn_metrics_close(nn_metrics_file *f) {
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
}
