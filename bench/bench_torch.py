#!/usr/bin/python3
"""The nntrain benchmark networks in PyTorch, for comparison (bench/bench.sh runs this).

Same data (the HDF5 file nntrain reads, x/255 as float32, all in memory), same network
(dense layers, hidden activation, softmax + cross-entropy), same global batch, plain SGD
with momentum (no schedule: the learning rate does not change the cost of a step), the
training set shuffled every epoch, the last partial batch kept. Plain loops of
forward / backward / step; no evaluation inside the timed part.

  bench_torch.py --layers 784,50,100,10 --activation sigmoid --batch-size 100 \\
                 --lr 0.3 --epochs 5 --threads 1            # one process
  bench_torch.py ... --ddp 2                                   # DistributedDataParallel,
                                                               # gloo, 2 processes x 1 thread
One process: --threads T sets torch.set_num_threads(T); the BLAS library's own thread
count comes from the environment (OPENBLAS_NUM_THREADS, set by bench.sh to match).
DDP: each process reads its contiguous shard of the training set (as nntrain's ranks
do), takes its share of every global batch, and DDP averages the gradients.

Prints one JSON object on stdout: samples_per_second (steady state: epochs after the
first), per-epoch times, peak RSS per process (MiB, of the training: taken before the
test accuracy is checked), final test accuracy, versions and the BLAS library that torch
loaded.
"""
import argparse
import json
import os
import re
import resource
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/mnist.h5")
    p.add_argument("--layers", default="784,50,100,10")
    p.add_argument("--activation", default="sigmoid", choices=["sigmoid", "relu", "tanh"])
    p.add_argument("--batch-size", type=int, default=100, help="GLOBAL batch")
    p.add_argument("--lr", type=float, default=0.3)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--ddp", type=int, default=0, help="DDP processes (0: one plain process)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--train-limit", type=int, default=0, help="use only the first N training samples (0: all)")
    a = p.parse_args()
    if a.epochs < 2:
        p.error("--epochs must be at least 2 (the first epoch is not counted)")
    if a.ddp == 1 or a.ddp < 0:
        p.error("--ddp needs at least 2 processes")
    return a


def load(path, split, lo=None, hi=None):
    import h5py
    import numpy as np
    import torch
    with h5py.File(path, "r") as f:
        n = f[f"/{split}/images"].shape[0]
        lo = 0 if lo is None else lo
        hi = n if hi is None else hi
        x = f[f"/{split}/images"][lo:hi]
        y = f[f"/{split}/labels"][lo:hi]
    x = x.reshape(x.shape[0], -1).astype(np.float32)
    x /= np.float32(255.0)
    x = torch.from_numpy(x)
    y = torch.from_numpy(y.astype(np.int64))
    return x, y, n


def parse_layers(text, image):
    """nntrain's --layers: dense widths, or convKxKxC[pP] and pool2 items first (then
    the dense widths after the flattened image). Returns (convs, widths): convs as
    ("conv", k, channels, pad) / ("pool",) tuples, widths with the flattened input first."""
    convs, widths = [], []
    c, h, w = image
    for item in text.split(","):
        m = re.fullmatch(r"conv(\d+)x\1x(\d+)(?:p(\d+))?", item)
        if m:
            k, ch, pad = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
            convs.append(("conv", k, ch, pad))
            c, h, w = ch, h + 2 * pad - k + 1, w + 2 * pad - k + 1
        elif item == "pool2":
            convs.append(("pool",))
            h, w = h // 2, w // 2
        else:
            widths.append(int(item))
    if convs:
        widths.insert(0, c * h * w)
    return convs, widths


def build(widths, activation, convs=(), in_channels=1):
    import torch.nn as nn
    act = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}[activation]
    mods = []
    c = in_channels
    for layer in convs:  # the same layers as nntrain's: conv + activation, 2x2 max-pool
        if layer[0] == "conv":
            mods += [nn.Conv2d(c, layer[2], layer[1], padding=layer[3]), act()]
            c = layer[2]
        else:
            mods.append(nn.MaxPool2d(2))
    if convs:
        mods.append(nn.Flatten())
    for i in range(len(widths) - 1):
        mods.append(nn.Linear(widths[i], widths[i + 1]))
        if i + 2 < len(widths):
            mods.append(act())
    return nn.Sequential(*mods)


def blas_libraries():
    """Shared libraries with 'blas' in their name mapped into this process."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if "blas" in os.path.basename(path).lower():
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    return sorted(libs)


def cpu_capability(torch):
    """The SIMD level ATen's kernels were dispatched for (AVX2, AVX512, ...)."""
    m = re.search(r"CPU capability usage: (\S+)", torch.__config__.show())
    return m.group(1) if m else None


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def train(a, rank, world, out_queue=None):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(a.seed)  # same initial weights on every rank (DDP broadcasts anyway)
    import h5py
    with h5py.File(a.data, "r") as f:
        shape = f["/train/images"].shape[1:]
    image = (1,) * (3 - len(shape)) + tuple(shape) if len(shape) <= 3 else shape
    convs, widths = parse_layers(a.layers, image)
    B = a.batch_size

    # this rank's contiguous shard of the training set, as nntrain reads it
    import h5py
    with h5py.File(a.data, "r") as f:
        n_total = f["/train/images"].shape[0]
    if a.train_limit:
        n_total = min(n_total, a.train_limit)
    lo, hi = (rank * n_total) // world, ((rank + 1) * n_total) // world
    x, y, _ = load(a.data, "train", lo, hi)
    if convs:
        x = x.reshape(-1, *image)  # NCHW, as the dataset stores it
    elif x.shape[1] != widths[0]:
        raise SystemExit(f"bench_torch.py: data has {x.shape[1]} inputs, layers say {widths[0]}")
    model = build(widths, a.activation, convs, image[0])
    if world > 1:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(model)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)

    # the slots of each global batch are dealt round-robin (slot g -> rank g mod world),
    # so a rank's local batch is B/world (differing by at most one)
    local_b = len(range(rank, B, world))
    steps = -(-n_total // B)  # global steps per epoch, last partial batch kept
    gen = torch.Generator().manual_seed(a.seed * 1000 + rank)
    epoch_seconds = []
    losses = []
    for epoch in range(a.epochs):
        if world > 1:
            dist.barrier()
        t0 = time.perf_counter()
        perm = torch.randperm(x.shape[0], generator=gen)
        total = 0.0
        pos = 0
        for s in range(steps):
            # every rank takes the same number of steps; a rank whose shard is used up
            # wraps around (only when the shards differ in size by a sample)
            gb = min(B, n_total - s * B)
            lb = len(range(rank, gb, world))
            idx = perm[pos:pos + lb]
            if idx.numel() < lb:
                idx = torch.cat([idx, perm[:lb - idx.numel()]])
            pos += lb
            xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            out = model(xb)
            loss = F.cross_entropy(out, yb, reduction="mean")
            loss.backward()
            opt.step()
            total += loss.item() * lb
        if world > 1:
            dist.barrier()
        epoch_seconds.append(time.perf_counter() - t0)
        losses.append(total / max(pos, 1))

    # peak memory of the training, before the check below loads the test set
    rss = peak_rss_mib()
    # test accuracy outside the timed part: shows the loop really trains
    acc = None
    if rank == 0:
        xt, yt, _ = load(a.data, "test")
        if convs:
            xt = xt.reshape(-1, *image)
        with torch.no_grad():
            m = model.module if world > 1 else model
            acc = sum((m(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum().item()
                      for i in range(0, xt.shape[0], 1000)) / xt.shape[0]
    res = {"rank": rank, "epoch_seconds": epoch_seconds, "train_loss": losses,
           "test_accuracy": acc, "peak_rss_mib": rss, "n_train": n_total,
           "local_batch": local_b, "threads": torch.get_num_threads()}
    if out_queue is not None:
        out_queue.put(res)
    return res


def ddp_worker(rank, a, port, q):
    import torch.distributed as dist
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=a.ddp)
    try:
        train(a, rank, a.ddp, q)
    finally:
        dist.destroy_process_group()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    a = parse_args()
    import torch
    if a.ddp:
        import torch.multiprocessing as mp
        ctx = mp.get_context("spawn")
        q = ctx.SimpleQueue()
        mp.spawn(ddp_worker, args=(a, free_port(), q), nprocs=a.ddp, join=True)
        results = sorted((q.get() for _ in range(a.ddp)), key=lambda r: r["rank"])
        procs, threads = a.ddp, results[0]["threads"]
    else:
        results = [train(a, 0, 1)]
        procs, threads = 1, results[0]["threads"]

    r0 = results[0]
    n = r0["n_train"]
    # the slowest rank's time per epoch (they synchronise every step anyway)
    ep = [max(r["epoch_seconds"][e] for r in results) for e in range(a.epochs)]
    steady = ep[1:]
    out = {
        "framework": "pytorch", "torch_version": torch.__version__,
        "python": sys.version.split()[0], "layers": a.layers, "activation": a.activation,
        "batch_size": a.batch_size, "lr": a.lr, "momentum": a.momentum, "epochs": a.epochs,
        "processes": procs, "threads": threads, "ddp": bool(a.ddp),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "epoch_seconds": ep,
        "samples_per_second": n * len(steady) / sum(steady),
        "epoch_samples_per_second": [n / t for t in ep],
        "train_loss": r0["train_loss"], "test_accuracy": r0["test_accuracy"],
        "peak_rss_mib": [r["peak_rss_mib"] for r in results],
        "blas_libraries": blas_libraries(),
        "cpu_capability": cpu_capability(torch),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
