#!/usr/bin/env python3
"""Projection of nntrain to a real cluster, from a scaling study's CSV
(scripts/scaling_study.py):

  scripts/project_scaling.py bench/scaling/scaling.csv bench/scaling

The model. A step of G samples on N nodes of R ranks each costs
    t_step = K * t_compute + t_node_sum + t_between_nodes
  t_compute       = (G / K) / (N R) * c: c, the compute seconds per sample and core,
                    is measured (1-rank run of the same network on this host);
  t_node_sum      = 2 S / b_shm: the shared-memory sum within a node (each rank reads
                    its slice of every segment, then writes the result back), with
                    S = 4 P bytes and b_shm = 3.5 GB/s, measured with 16 ranks on a
                    16-core node (bench/scaling/host16: 784-800-800-10's 5.1 MB sum took
                    2.8-3.2 ms a step, waits for the slowest rank included; 10 GB/s had
                    been assumed before); zero with one rank per node;
  t_between_nodes = 2 log2(N) alpha + 2 (N - 1) / N * S_wire / beta: Allreduce as a
                    reduce-scatter and an allgather by recursive halving and doubling
                    (Rabenseifner's algorithm, what MPI libraries use for large
                    vectors: log latency, bandwidth-optimal) of S_wire bytes;
                    S_wire = 4 P bytes (fp32) or 2 P (--compress bf16), P parameters;
  K: --accumulate (one sum per K micro-steps of G / K samples).
alpha and beta are fitted, per emulated link rate, to the measured gradient-sum time
of the two networks over 2 nodes (the links suite); the model is then checked
against every emulated row (the error is printed and written), and evaluated with
alpha = 2 us and beta = 11 GB/s: a typical 100 Gbit/s InfiniBand network (EDR/HDR100;
MPI latency 1-2 us, ~90% of the line rate), 16 ranks per node.
Writes projection.md (tables) and projection.png (efficiency against nodes; with
matplotlib). They follow the outputs rule (docs/reliability.md; scripts/study_outputs.py):
the directory must exist; each is replaced only when it is empty or one this script wrote
(projection.md: its first line the marker below; projection.png: a PNG whose tEXt
"Software" is "nntrain scripts/project_scaling.py"), checked before the work (anything
else: exit 2, one line, nothing written), written to FILE.tmp and renamed into place, so
a failure or a signal leaves the old files as they were.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scaling_csv  # noqa: E402
import study_outputs  # noqa: E402

PROG = "project_scaling"


def outputs(out):
    """projection.md and projection.png in directory OUT, as outputs of this script."""
    return {"projection.md": study_outputs.md_output(os.path.join(out, "projection.md")),
            "projection.png": study_outputs.png_output(os.path.join(out, "projection.png"), "project_scaling.py")}

PARAMS = {"reference": 45360, "784-800-800-10": 784 * 800 + 800 + 800 * 800 + 800 + 800 * 10 + 10,
          "deep-mnist": 5 * 5 * 32 + 32 + 5 * 5 * 32 * 64 + 64 + 3136 * 1024 + 1024 + 1024 * 10 + 10}
IB_ALPHA, IB_BETA, RANKS_PER_NODE, SHM_BANDWIDTH = 2e-6, 11e9, 16, 3.5e9


def load(path):
    """The study's rows, each with its SGD steps per epoch."""
    rows = scaling_csv.load(path)
    for r in rows:
        r["steps"] = r["epoch_seconds"] * r["samples_per_second"] / r["global_batch"] / r["accumulate"]
    return rows


def wire_bytes(net, compress):
    return PARAMS[net] * (2 if compress == "bf16" else 4)


def allreduce_time(nodes, nbytes, alpha, beta):
    return 0.0 if nodes == 1 else 2 * math.log2(nodes) * alpha + 2 * (nodes - 1) / nodes * nbytes / beta


def fit_links(rows):
    """alpha, beta per link rate from the mpi-mode rows of the links suite (2 nodes):
    sum per step = 2 alpha + S / beta for the two networks' sizes S."""
    fits = {}
    for link in sorted({r["link"] for r in rows if r["suite"] == "links"}):
        pts = [(wire_bytes(r["network"], r["compress"]), r["sum_seconds"] / r["steps"])
               for r in rows if r["suite"] == "links" and r["link"] == link and r["allreduce"] == "mpi"]
        if len(pts) < 2:
            continue
        (s1, t1), (s2, t2) = sorted(pts)[0], sorted(pts)[-1]
        inv_beta = max((t2 - t1) / (s2 - s1), 1e-12)
        alpha = max((t1 - s1 * inv_beta) / 2, 0.0)
        fits[link] = (alpha, 1 / inv_beta)
    return fits


def compute_per_sample(rows):
    """Seconds of compute per sample and core, from the 1-rank 1-thread host runs."""
    c = {}
    for r in rows:
        if r["link"] == "host" and r["ranks"] == 1 and r["threads"] == 1:
            c.setdefault(r["network"], r["compute_seconds"] / (r["steps"] * r["global_batch"] * r["accumulate"]))
    return c


def check(rows, fits, c, cores=None):
    """Model against every emulated row: predicted and measured seconds per step."""
    cores = cores or os.cpu_count()
    out = []
    for r in rows:
        link = r["link"]
        if link == "host" or r["network"] not in c:
            continue
        alpha, beta = fits.get(link, fits.get("none", (0, 1e30)))
        per_rank = r["global_batch"] * r["accumulate"] / r["ranks"]
        # the emulated nodes share this machine's cores: more nodes than cores slow compute
        crowd = max(1.0, r["ranks"] * r["threads"] / cores)
        pred = per_rank * c[r["network"]] * crowd + allreduce_time(r["nodes"], wire_bytes(r["network"], r["compress"]), alpha, beta)
        meas = (r["epoch_seconds"] - r["data_seconds"]) / r["steps"]
        out.append((r, pred, meas))
    return out


def project(c, net, nodes, kind, compress, accumulate):
    """Parallel efficiency and samples/s on `nodes` InfiniBand nodes of 16 ranks."""
    nbytes = wire_bytes(net, compress)

    node_sum = 2 * 4 * PARAMS[net] / SHM_BANDWIDTH

    def step(n, batch):  # K micro-steps of batch / K samples, one sum
        return batch / (n * RANKS_PER_NODE) * c + node_sum + allreduce_time(n, nbytes, IB_ALPHA, IB_BETA)

    if kind == "strong":  # a fixed global batch of 65,536 samples per step
        batch = 65536
        t1, tn = step(1, batch), step(nodes, batch)
        return (t1 / tn) / nodes, batch / tn
    batch = 64 * RANKS_PER_NODE * nodes * accumulate  # weak: 64 samples per rank and micro-step
    t1, tn = step(1, 64 * RANKS_PER_NODE * accumulate), step(nodes, batch)
    return t1 / tn, batch / tn


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out = sys.argv[2]
    if not os.path.isdir(out):
        raise study_outputs.Refusal(f"{out}: no such directory")
    files = outputs(out)
    study_outputs.check_all(files.values())  # before the work: nothing written
    rows = load(sys.argv[1])
    fits, c = fit_links(rows), compute_per_sample(rows)
    lines = [study_outputs.MARKER_MD, "# Projection", "", "Fitted links (Allreduce between 2 emulated nodes, mpi mode):", "",
             "| link | alpha (latency) | beta (bandwidth) |", "|---|---:|---:|"]
    for link, (alpha, beta) in fits.items():
        lines.append(f"| {link} | {alpha * 1e6:.0f} us | {beta / 1e6:,.0f} MB/s |")
    lines += ["", "Compute per sample and core (measured): " +
              ", ".join(f"{net} {v * 1e6:.2f} us" for net, v in c.items()), "",
              "Model against every emulated measurement (seconds per step, data assembly excluded):", "",
              "| suite | network | nodes x ranks | link | mode | compress | acc | measured | model | error |",
              "|---|---|---|---|---|---|---:|---:|---:|---:|"]
    errors = []
    for r, pred, meas in check(rows, fits, c):
        err = (pred - meas) / meas
        errors.append(abs(err))
        lines.append(f"| {r['suite']} | {r['network']} | {r['nodes']} x {r['ranks'] // r['nodes']} | {r['link']} | "
                     f"{r['allreduce']} | {r['compress']} | {r['accumulate']} | {meas * 1e3:.2f} ms | "
                     f"{pred * 1e3:.2f} ms | {err:+.0%} |")
    if errors:
        errors.sort()
        lines += ["", f"Model error over {len(errors)} emulated rows: median {errors[len(errors) // 2]:.0%}, "
                      f"worst {errors[-1]:.0%}."]
    lines += ["", f"Projected to 100 Gbit/s InfiniBand (alpha {IB_ALPHA * 1e6:.0f} us, beta {IB_BETA / 1e9:.0f} GB/s), "
                  f"{RANKS_PER_NODE} ranks per node; strong: global batch 65,536 per step; weak: 64 samples per "
                  "rank and micro-step. Efficiency (samples/s in millions):", "",
              "| network | scaling | sum | 16 nodes | 64 | 256 | 1024 |", "|---|---|---|---:|---:|---:|---:|"]
    curves = {}
    for net in c:
        for kind in ("strong", "weak"):
            # accumulation only pays where the step's batch may grow (weak scaling)
            variants = ((("none", 1), ("bf16", 1)) if kind == "strong" else
                        (("none", 1), ("bf16", 1), ("none", 4), ("bf16", 4)))
            for compress, acc in variants:
                label = f"{'bf16' if compress == 'bf16' else 'fp32'}" + (f", accumulate {acc}" if acc > 1 else "")
                cells, curve = [], []
                for n in (16, 64, 256, 1024):
                    eff, sps = project(c[net], net, n, kind, compress, acc)
                    cells.append(f"{eff:.0%} ({sps / 1e6:,.1f})")
                for n in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024):
                    curve.append((n, project(c[net], net, n, kind, compress, acc)[0]))
                curves[(net, kind, label)] = curve
                lines.append(f"| {net} | {kind} | {label} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    written = [(files["projection.md"], text.encode())]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        study_outputs.save(PROG, written)
        print(text)
        print(f"{PROG}: projection.png not drawn: matplotlib is missing (python3-matplotlib)", file=sys.stderr)
        return
    nets = list(c)
    fig, axes = plt.subplots(len(nets), 2, figsize=(11, 4 * len(nets)), squeeze=False)
    for i, net in enumerate(nets):
        for j, kind in enumerate(("strong", "weak")):
            ax = axes[i][j]
            for (n_, k_, label), curve in curves.items():
                if n_ == net and k_ == kind:
                    ax.plot([p[0] for p in curve], [100 * p[1] for p in curve], "o-", ms=3, label=label)
            ax.set(xscale="log", ylim=(0, 105), xlabel="nodes (16 ranks each)", ylabel="parallel efficiency (%)",
                   title=f"{net}, {kind} scaling, 100 Gbit/s InfiniBand (model)")
            ax.legend(fontsize=7)
    fig.tight_layout()
    written.append((files["projection.png"], study_outputs.png_bytes(fig, "project_scaling.py", dpi=110)))
    study_outputs.save(PROG, written)  # both written whole before either is put in place
    print(text)


if __name__ == "__main__":
    study_outputs.run_main(PROG, main)
