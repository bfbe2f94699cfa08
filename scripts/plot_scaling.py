#!/usr/bin/env python3
"""Plots of a scaling study's CSV (scripts/scaling_study.py):
  plot_scaling.py bench/scaling/scaling.csv bench/scaling
writes speedup.png (against ideal), efficiency.png, breakdown.png (time per epoch as
stacked bars: compute, gradient sum, data, checkpoint), links.png (samples/s per link
rate and --allreduce mode) and slow_link.png (compression and accumulation at 1 Gbit/s).
Needs matplotlib (Debian: python3-matplotlib).

The plots follow the outputs rule (docs/reliability.md; scripts/study_outputs.py): the
directory must exist; a plot there is replaced only when it is empty or one this script
wrote (a PNG whose tEXt "Software" is "nntrain scripts/plot_scaling.py"); all five are
checked before any is drawn (anything else: exit 2, one line, nothing written), drawn
in memory, written to NAME.png.tmp and synced, then renamed into place, so a failure or
a signal leaves the old plots as they were."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study_outputs  # noqa: E402
from scaling_csv import load  # noqa: E402

PROG = "plot_scaling"
PLOTS = ("speedup.png", "efficiency.png", "breakdown.png", "links.png", "slow_link.png")
matplotlib = plt = None  # imported by main(): the names and outputs() are used without it (scaling_study.py)


def outputs(out):
    """The plots in directory OUT, as outputs of this script (study_outputs.Output), by name."""
    return {name: study_outputs.png_output(os.path.join(out, name), "plot_scaling.py") for name in PLOTS}


def layout(r):
    where = "host" if r["link"] == "host" else "emulated nodes"
    return f"{r['network']}, {where}" + (f", {r['threads']} threads" if r["threads"] > 1 else "")


def series(rows, suite):
    """(label, [(workers, row)]) for the rank-count layouts of a suite."""
    groups = {}
    for r in rows:
        if r["suite"] == suite and r["speedup"] is not None:
            groups.setdefault(layout(r), []).append((r["ranks"] * r["threads"], r))
    return sorted(groups.items())


def powers_of_two(top):
    """1, 2, 4, ... up to top (at least up to 8)."""
    ticks = [1]
    while ticks[-1] < max(top, 8):
        ticks.append(ticks[-1] * 2)
    return ticks


def host_cores(rows):
    """The cores of the machine that measured: the ranks x threads rows span them all
    (scaling_study splits every core between ranks and threads); else this one's."""
    split = [r["ranks"] * r["threads"] for r in rows if r["threads"] > 1 and r["link"] == "host"]
    return max(split) if split else os.cpu_count()


def log_ticks(ax, ticks):
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def plot_speedup(rows, cores):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, suite in zip(axes, ("strong", "weak")):
        top = 1
        for label, pts in series(rows, suite):
            pts.sort(key=lambda p: p[0])
            ax.plot([p[0] for p in pts], [p[1]["speedup"] for p in pts], "o-", label=label)
            top = max(top, max(p[0] for p in pts))
        ax.plot([1, top], [1, top], "k--", lw=1, label="ideal")
        ax.axvline(cores, color="grey", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log", xlabel=f"ranks x threads (the machine measured: {cores} cores, dotted)",
               ylabel="speedup (samples/s ratio)", title=f"{suite} scaling")
        log_ticks(ax, powers_of_two(top))
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_yticks([0.5] + powers_of_two(top))
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_efficiency(rows):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, suite in zip(axes, ("strong", "weak")):
        for label, pts in series(rows, suite):
            pts.sort(key=lambda p: p[0])
            ax.plot([p[0] for p in pts], [100 * p[1]["efficiency"] for p in pts], "o-", label=label)
        ax.axhline(100, color="k", ls="--", lw=1)
        ax.set(xscale="log", xlabel="ranks x threads", ylabel="parallel efficiency (%)", title=f"{suite} scaling",
               ylim=(0, 110))
        log_ticks(ax, powers_of_two(max(r["ranks"] * r["threads"] for r in rows)))
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def plot_breakdown(rows):
    picked = [r for r in rows if r["suite"] == "strong"]
    nets = sorted({r["network"] for r in picked})
    fig, axes = plt.subplots(1, len(nets), figsize=(6 * len(nets), 4.5), squeeze=False)
    for ax, net in zip(axes[0], nets):
        rs = [r for r in picked if r["network"] == net]
        labels = [f"{r['nodes']}n x {r['ranks'] // r['nodes']}r x {r['threads']}t" +
                  ("" if r["link"] == "host" else " emu") for r in rs]
        bottom = [0.0] * len(rs)
        for key, name in (("compute_seconds", "compute"), ("sum_seconds", "gradient sum"),
                          ("data_seconds", "data"), ("checkpoint_seconds", "checkpoint")):
            vals = [r[key] for r in rs]
            ax.bar(labels, vals, bottom=bottom, label=name)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set(ylabel="seconds per epoch", title=f"strong scaling, {net}: where an epoch goes")
        ax.tick_params(axis="x", rotation=60, labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_links(rows):
    picked = [r for r in rows if r["suite"] == "links"]
    if not picked:
        return
    nets = sorted({r["network"] for r in picked})
    links = ["none", "10gbit", "1gbit", "100mbit"]
    modes = ["shm", "mpi", "overlap"]
    fig, axes = plt.subplots(1, len(nets), figsize=(6 * len(nets), 4.2), squeeze=False)
    for ax, net in zip(axes[0], nets):
        for i, mode in enumerate(modes):
            vals = []
            for link in links:
                hit = [r for r in picked if r["network"] == net and r["link"] == link and r["allreduce"] == mode]
                vals.append(hit[0]["samples_per_second"] if hit else 0)
            ax.bar([x + (i - 1) * 0.27 for x in range(len(links))], vals, width=0.27, label=mode)
        ax.set_xticks(range(len(links)))
        ax.set_xticklabels(["unshaped" if l == "none" else l for l in links])
        ax.set(yscale="log", ylabel="samples/s", title=f"2 emulated nodes x 1 rank, {net}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_slow(rows):
    picked = [r for r in rows if r["suite"] == "slow"]
    if not picked:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [f"{'bf16' if r['compress'] == 'bf16' else 'fp32'}, accumulate {r['accumulate']}" for r in picked]
    ax.bar(labels, [r["samples_per_second"] for r in picked], color="tab:blue")
    for i, r in enumerate(picked):
        ax.text(i, r["samples_per_second"], f"{r['samples_per_second']:,.0f}\n{100 * r['sum_share']:.0f}% sum",
                ha="center", va="bottom", fontsize=8)
    ax.set(ylabel="samples/s", title="784-800-800-10, 2 emulated nodes at 1 Gbit/s")
    ax.margins(y=0.2)
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return fig


def main():
    global matplotlib, plt
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out = sys.argv[2]
    if not os.path.isdir(out):  # until 2026-12-07 any directory named was made (a typo too)
        raise study_outputs.Refusal(f"{out}: no such directory")
    plots = outputs(out)
    study_outputs.check_all(plots.values())  # before the work: nothing drawn, nothing written
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_scaling: matplotlib is missing: apt-get install python3-matplotlib")
    rows = load(sys.argv[1])
    figures = {"speedup.png": plot_speedup(rows, host_cores(rows)), "efficiency.png": plot_efficiency(rows),
               "breakdown.png": plot_breakdown(rows), "links.png": plot_links(rows),
               "slow_link.png": plot_slow(rows)}
    # links.png and slow_link.png only where the study has those suites
    study_outputs.save(PROG, [(plots[name], study_outputs.png_bytes(fig, "plot_scaling.py", dpi=110))
                              for name, fig in figures.items() if fig is not None])
    print(f"plot_scaling: plots in {out}")


if __name__ == "__main__":
    study_outputs.run_main(PROG, main)
