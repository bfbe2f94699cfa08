#include "nn/metrics.h"

void nn_metrics_gather(nn_epoch_stats *st, const nn_epoch_clock *clock, double loss_sum, double epoch_samples,
                       int batch, MPI_Comm comm) {
    /* the epoch's time is the slowest rank's; the sum's and the data's the mean over the
     * ranks: each rank's two are disjoint parts of its steps, so the shares of the mean
     * add up to at most 100% (maxima taken separately, from two ranks, summed to 158%) */
    double times[3] = {clock->steps, clock->exchange, clock->data};
    MPI_Allreduce(MPI_IN_PLACE, &times[0], 1, MPI_DOUBLE, MPI_MAX, comm);
    MPI_Allreduce(MPI_IN_PLACE, &times[1], 2, MPI_DOUBLE, MPI_SUM, comm);
    MPI_Allreduce(MPI_IN_PLACE, &loss_sum, 1, MPI_DOUBLE, MPI_SUM, comm);
    int ranks;
    MPI_Comm_size(comm, &ranks);
    st->train_loss = loss_sum / epoch_samples;
    st->epoch_seconds = times[0];
    st->allreduce_seconds = times[1] / ranks;
    st->data_seconds = times[2] / ranks;
    st->samples_per_second = (double)clock->steps_done * batch / times[0];
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

int nn_metrics_write_json(FILE *out, const nn_epoch_stats *s) {
    int written = fprintf(out,
            /* losses with all 17 digits: resumed runs are compared bit for bit */
            "{\"epoch\": %d, \"train_loss\": %.17g, \"test_loss\": %.17g, \"test_accuracy\": %.17g, "
            "\"epoch_seconds\": %.6f, \"eval_seconds\": %.6f, \"samples_per_second\": %.1f, "
            "\"allreduce_seconds\": %.6f, \"data_seconds\": %.6f, \"checkpoint_seconds\": %.6f, "
            "\"lr\": %.9g, \"ranks\": %d, \"threads\": %d",
            s->epoch, s->train_loss, s->test_loss, s->test_accuracy, s->epoch_seconds, s->eval_seconds,
            s->samples_per_second, s->allreduce_seconds, s->data_seconds, s->checkpoint_seconds, s->lr, s->ranks,
            s->threads);
    if (written >= 0 && s->has_validation)
        written = fprintf(out, ", \"validation_loss\": %.17g, \"validation_accuracy\": %.17g", s->validation_loss,
                          s->validation_accuracy);
    if (written >= 0) written = fprintf(out, "}\n");
    return written < 0 || fflush(out) != 0;
}
