#include "nn/metrics.h"

void nn_metrics_print_line(FILE *out, const nn_epoch_stats *s) {
    fprintf(out,
            "epoch %3d/%d  train_loss %.4f  test_loss %.4f  test_acc %6.2f%%  "
            "time %.2fs  %.0f samples/s  allreduce %.1f%%  data %.1f%%  lr %.4g",
            s->epoch, s->epochs, s->train_loss, s->test_loss, 100.0 * s->test_accuracy,
            s->epoch_seconds, s->samples_per_second,
            s->epoch_seconds > 0 ? 100.0 * s->allreduce_seconds / s->epoch_seconds : 0.0,
            s->epoch_seconds > 0 ? 100.0 * s->data_seconds / s->epoch_seconds : 0.0, s->lr);
    if (s->checkpoint_seconds > 0) fprintf(out, "  checkpoint %.3fs", s->checkpoint_seconds);
    fputc('\n', out);
    fflush(out);
}

void nn_metrics_write_json(FILE *out, const nn_epoch_stats *s) {
    fprintf(out,
            /* losses with all 17 digits: resumed runs are compared bit for bit */
            "{\"epoch\": %d, \"train_loss\": %.17g, \"test_loss\": %.17g, \"test_accuracy\": %.17g, "
            "\"epoch_seconds\": %.6f, \"eval_seconds\": %.6f, \"samples_per_second\": %.1f, "
            "\"allreduce_seconds\": %.6f, \"data_seconds\": %.6f, \"checkpoint_seconds\": %.6f, "
            "\"lr\": %.9g, \"ranks\": %d, \"threads\": %d}\n",
            s->epoch, s->train_loss, s->test_loss, s->test_accuracy, s->epoch_seconds, s->eval_seconds,
            s->samples_per_second, s->allreduce_seconds, s->data_seconds, s->checkpoint_seconds, s->lr, s->ranks,
            s->threads);
    fflush(out);
}
