#!/usr/bin/env python3
"""nntrain against PyTorch on a convolutional network, one command (issue 22).

  bench/bench_cnn.py [--layers conv5x5x32p2,pool2,conv5x5x64p2,pool2,1024,10]
                     [--batch-size 64] [--train-limit 6400] [--epochs 3] [--rounds 3]
                     [--out bench/cnn]

Default: TensorFlow's "Deep MNIST" network at batch 64, relu, SGD with momentum. Each
round runs, in turn: nntrain 2 ranks x 1 thread, nntrain 1 rank x 2 threads, PyTorch
(Debian's python3-torch, oneDNN convolutions) with 1 and with 2 intra-op threads, and
a big single-precision matrix product on all the cores (torch.mm, 2048^2: the machine's
practical FLOP limit, measured in the same run). Rounds alternate so that a machine
whose speed drifts hurts every configuration alike; the medians are reported.

samples/s counts the epochs after the first (warm-up) of --train-limit samples each.
FLOP per sample is counted from the layer shapes (a multiply-add is 2 FLOP; forward,
weight gradient and input gradient of every layer but the first conv's input gradient),
so "share of limit" = samples/s x FLOP per sample / the matrix product's FLOP/s.

Writes DIR/cnn_bench.csv (every run) and prints a Markdown table of the medians.
Needs build/nntrain, data/mnist.h5 and /usr/bin/python3 with torch and h5py, and
OpenBLAS (apt-get install python3-torch python3-h5py libopenblas0-pthread): without it
Debian's torch falls back to the reference BLAS (6 GFLOP/s on 2 cores here against 117
with OpenBLAS), which is not PyTorch at its best.
"""
import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

from bench_torch import parse_layers  # same directory: the layer-list parser

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NNTRAIN = os.environ.get("NNTRAIN_BIN") or os.path.join(REPO, "build", "nntrain")
TORCH_PY = "/usr/bin/python3"  # Debian's: python3-torch lives there


def flop_per_sample(layers, image=(1, 28, 28)):
    """Training FLOP of one sample: 2 x multiply-adds of forward, weight gradient and
    input gradient (none for the first layer, whose input is the data). The layers are
    read by bench_torch.py's parser, the one the PyTorch side builds its network from."""
    convs, widths = parse_layers(layers, image)
    c, h, w = image
    macs = []  # multiply-adds of each layer's forward pass
    for layer in convs:
        if layer[0] == "conv":
            k, ch, pad = layer[1], layer[2], layer[3]
            h, w = h + 2 * pad - k + 1, w + 2 * pad - k + 1
            macs.append(h * w * ch * k * k * c)
            c = ch
        else:
            h, w = h // 2, w // 2
    macs += [widths[i] * widths[i + 1] for i in range(len(widths) - 1)]
    return 2 * (2 * sum(macs) + sum(macs[1:]))


def run_nntrain(a, ranks, threads, tmp):
    metrics = os.path.join(tmp, "m.jsonl")
    if os.path.exists(metrics):
        os.remove(metrics)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMPI_MCA_rmaps_base_oversubscribe="1")
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    place = ["--map-by", f"slot:PE={threads}"] if ranks * threads <= os.cpu_count() else ["--bind-to", "none"]
    cmd = ["mpirun", "-np", str(ranks)] + place + [
        NNTRAIN, "--data", a.data, "--layers", a.layers, "--activation", "relu", "--batch-size", str(a.batch_size),
        "--lr", "0.05", "--train-limit", str(a.train_limit), "--epochs", str(a.epochs), "--threads", str(threads),
        "--thread-tuning", "off", "--metrics", metrics]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=3600)
    with open(metrics) as f:
        records = [json.loads(line) for line in f][1:]
    secs = sum(r["epoch_seconds"] for r in records)
    return sum(r["samples_per_second"] * r["epoch_seconds"] for r in records) / secs


def run_torch(a, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    cmd = [TORCH_PY, os.path.join(REPO, "bench", "bench_torch.py"), "--data", a.data, "--layers", a.layers,
           "--activation", "relu", "--batch-size", str(a.batch_size), "--lr", "0.05", "--epochs", str(a.epochs),
           "--train-limit", str(a.train_limit), "--threads", str(threads)]
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=3600)
    return json.loads(done.stdout.strip().splitlines()[-1])["samples_per_second"]


def run_matmul_limit():
    code = ("import time, torch\n"
            f"torch.set_num_threads({os.cpu_count()})\n"
            "a = torch.randn(2048, 2048); b = torch.randn(2048, 2048)\n"
            "best = 1e9\n"
            "for _ in range(8):\n"
            "    t = time.perf_counter(); torch.mm(a, b); best = min(best, time.perf_counter() - t)\n"
            "print(2 * 2048 ** 3 / best)\n")
    done = subprocess.run([TORCH_PY, "-c", code], check=True, capture_output=True, text=True, timeout=600)
    return float(done.stdout.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(REPO, "data", "mnist.h5"))
    ap.add_argument("--layers", default="conv5x5x32p2,pool2,conv5x5x64p2,pool2,1024,10")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--train-limit", type=int, default=6400)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "cnn"))
    a = ap.parse_args()
    if a.epochs < 2 or a.rounds < 1 or a.train_limit < a.batch_size:
        ap.error("--epochs must be at least 2, --rounds at least 1, --train-limit at least the batch")
    configs = [("nntrain 2 ranks x 1 thread", lambda t: run_nntrain(a, 2, 1, t)),
               ("nntrain 1 rank x 2 threads", lambda t: run_nntrain(a, 1, 2, t)),
               ("PyTorch 1 process x 1 thread", lambda t: run_torch(a, 1)),
               ("PyTorch 1 process x 2 threads", lambda t: run_torch(a, 2))]
    flop = flop_per_sample(a.layers)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for name, fn in configs:
                rate = fn(tmp)
                rows.append(dict(round=r + 1, config=name, samples_per_second=rate))
                print(f"bench_cnn: round {r + 1}: {name}: {rate:,.0f} samples/s", flush=True)
            limit = run_matmul_limit()
            rows.append(dict(round=r + 1, config="limit: torch.mm 2048^2, all cores (FLOP/s)", samples_per_second=limit))
            print(f"bench_cnn: round {r + 1}: matrix product {limit / 1e9:.0f} GFLOP/s", flush=True)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "cnn_bench.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["round", "config", "samples_per_second"])
        w.writeheader()
        w.writerows(rows)
    med = {name: statistics.median(r["samples_per_second"] for r in rows if r["config"] == name)
           for name in dict.fromkeys(r["config"] for r in rows)}
    limit = med.pop("limit: torch.mm 2048^2, all cores (FLOP/s)")
    torch_best = max(v for k, v in med.items() if k.startswith("PyTorch"))
    print(f"\n{a.layers}, batch {a.batch_size}, {flop / 1e6:.1f} MFLOP a training sample; medians of {a.rounds} "
          f"rounds; limit {limit / 1e9:.0f} GFLOP/s (torch.mm 2048^2 on {os.cpu_count()} cores)\n")
    print("| configuration | samples/s | x PyTorch's best | GFLOP/s | share of limit |")
    print("|---|---:|---:|---:|---:|")
    for name, v in med.items():
        print(f"| {name} | {v:,.0f} | {v / torch_best:.2f} | {v * flop / 1e9:.0f} | {100 * v * flop / limit:.0f}% |")
    print(f"\nbench_cnn: every run in {path}")


if __name__ == "__main__":
    sys.exit(main())
