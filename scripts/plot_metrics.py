#!/usr/bin/python3
"""Training curves from nntrain --metrics files (JSON Lines, one object per epoch):

  scripts/plot_metrics.py [--out curves.png] [--title TEXT] RUN.jsonl [RUN2.jsonl ...]

One PNG with four panels -- training and test loss, test accuracy, learning rate,
samples/s -- per epoch, every run overlaid and named by its file (or LABEL=FILE; an
argument that names an existing file is that file, '=' and all: runs/lr=0.1.jsonl).
A resumed run's file holds every epoch once, so it plots as one curve. Needs
matplotlib (Debian: python3-matplotlib; run with /usr/bin/python3 if another python
comes first on PATH).

--out follows the outputs rule (docs/reliability.md; scripts/study_outputs.py): it must
end in .png and its directory must exist; an existing file is replaced only when it is
empty or a plot this script wrote (a PNG whose tEXt "Software" is "nntrain
scripts/plot_metrics.py"), by way of OUT.tmp renamed into place once whole, so a failure
or a signal leaves the old file as it was; anything else is refused (exit 2, one line)
before the plot is drawn."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study_outputs  # noqa: E402

PROG = "plot_metrics"


def split_spec(spec):
    """(label, path) of one argument, FILE or LABEL=FILE. An argument that names an existing
    file is that file, '=' and all (runs/lr=0.1.jsonl: once misread as the label runs/lr and
    the file 0.1.jsonl, which plotted another run without a word); otherwise the label ends
    at the FIRST '=', so a path given after a label may hold '=' too."""
    label, sep, path = spec.partition("=")
    if os.path.exists(spec) or not sep:
        label, path = "", spec
    return label or os.path.splitext(os.path.basename(path))[0], path


def load(spec):
    label, path = split_spec(spec)
    try:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"plot_metrics: {path}: {e}" + (f" (from {spec}, read as LABEL=FILE)" if path != spec else ""))
    if not rows:
        sys.exit(f"plot_metrics: {path}: no epochs")
    return label, rows


def output(path):
    """--out PATH as an output of this script: a .png name (the plot is always PNG: until
    2026-12-07 --out curves.pdf wrote a PDF, which no check could tell from the user's)."""
    if not path.lower().endswith(".png"):
        raise study_outputs.Refusal(f"--out {path}: not a .png name; this script writes PNG only")
    return study_outputs.png_output(path, "plot_metrics.py", f"--out {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="metrics files, optionally LABEL=FILE")
    ap.add_argument("--out", default="curves.png")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    out = output(a.out)
    study_outputs.check_all([out])  # before the work: a file not ours, no such directory
    runs = [load(spec) for spec in a.runs]
    try:  # here, not at the top: split_spec and load can be used (and tested) without it
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_metrics: matplotlib is missing: apt-get install python3-matplotlib (and run /usr/bin/python3)")
    fig, ax = plt.subplots(2, 2, figsize=(11, 7.5))
    for label, rows in runs:
        ep = [r["epoch"] for r in rows]
        line, = ax[0][0].plot(ep, [r["train_loss"] for r in rows], "-", label=f"{label} train")
        ax[0][0].plot(ep, [r["test_loss"] for r in rows], "--", color=line.get_color(), label=f"{label} test")
        if "validation_loss" in rows[0]:
            ax[0][0].plot(ep, [r["validation_loss"] for r in rows], ":", color=line.get_color(),
                          label=f"{label} validation")
        ax[0][1].plot(ep, [100 * r["test_accuracy"] for r in rows], "-", color=line.get_color(), label=f"{label} test")
        if "validation_accuracy" in rows[0]:
            ax[0][1].plot(ep, [100 * r["validation_accuracy"] for r in rows], ":", color=line.get_color(),
                          label=f"{label} validation")
        ax[1][0].plot(ep, [r["lr"] for r in rows], "-", color=line.get_color(), label=label)
        ax[1][1].plot(ep, [r["samples_per_second"] for r in rows], "-", color=line.get_color(), label=label)
    ax[0][0].set(yscale="log", ylabel="loss (mean per sample)", title="loss")
    ax[0][1].set(ylabel="accuracy (%)", title="accuracy")
    best = max(100 * r["test_accuracy"] for _, rows in runs for r in rows)
    ax[0][1].set_ylim(max(0, best - 5), min(100, best + 0.5))
    ax[1][0].set(ylabel="learning rate", title="learning rate (at the epoch's end)")
    ax[1][1].set(ylabel="samples/s", title="training throughput")
    for a_ in ax.flat:
        a_.set_xlabel("epoch")
        a_.grid(alpha=0.3)
        a_.legend(fontsize=7)
    if a.title:
        fig.suptitle(a.title)
    fig.tight_layout()
    # whole, to OUT.tmp, then renamed into place (until 2026-12-07 savefig wrote over any file
    # at --out, in place, and made any directory it named)
    study_outputs.save(PROG, [(out, study_outputs.png_bytes(fig, "plot_metrics.py", dpi=110))])
    print(f"plot_metrics: {a.out}")


if __name__ == "__main__":
    study_outputs.run_main(PROG, main)
