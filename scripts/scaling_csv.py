"""Reading the CSV that scripts/scaling_study.py writes (one row per configuration),
for the plots (plot_scaling.py) and the projection (project_scaling.py): the numeric
columns as numbers; speedup and efficiency as None where the study left them empty."""
import csv

INTEGERS = ("nodes", "ranks", "threads", "global_batch", "accumulate", "epochs")
REALS = ("epoch_seconds", "samples_per_second", "compute_seconds", "sum_seconds", "data_seconds",
         "checkpoint_seconds", "sum_share", "test_accuracy")
OPTIONAL_REALS = ("speedup", "efficiency")


def load(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in INTEGERS:
            if k in r:
                r[k] = int(r[k])
        for k in REALS:
            if k in r:
                r[k] = float(r[k])
        for k in OPTIONAL_REALS:
            if k in r:
                r[k] = float(r[k]) if r[k] else None
    return rows
