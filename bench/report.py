#!/usr/bin/env python3
"""Write bench/results.md from a benchmark's raw results (called by bench/bench.sh).

  report.py DIR OUT [AGAIN]

DIR holds what bench.sh collected: meta.txt (key=value lines), results.jsonl (one
record per training run), blas.jsonl and blas_square.jsonl (bench_blas), and
blas_info.json (+ blas_info_coretype.json when OPENBLAS_CORETYPE was set). The
Markdown report goes to OUT and to stdout. AGAIN, when not empty, is the command
line of a `bench.sh --report DIR` run that wrote the report again.
"""
import json, os, sys
tmp, out, again = sys.argv[1], sys.argv[2], sys.argv[3]
meta = dict(l.rstrip("\n").split("=", 1) for l in open(f"{tmp}/meta.txt"))
rd = lambda p: [json.loads(l) for l in open(p) if l.strip()] if os.path.exists(p) else []
runs, blas, square = rd(f"{tmp}/results.jsonl"), rd(f"{tmp}/blas.jsonl"), rd(f"{tmp}/blas_square.jsonl")
info = json.load(open(f"{tmp}/blas_info.json"))
info_ct = json.load(open(f"{tmp}/blas_info_coretype.json")) if os.path.exists(f"{tmp}/blas_info_coretype.json") else None
cores = int(meta["cores"])
NETS = {"small": ("784-50-100-10 sigmoid", 100, 0.3), "large": ("784-800-800-10 relu", 128, 0.05)}

def best(rows):  # the fastest undisturbed run, else the fastest run
    calm = [r for r in rows if r.get("other_cpu", 0) < 10]
    return max(calm or rows, key=lambda r: r["samples_per_second"])

# the faster of the passes for every layout
fastest = {}
for x in blas:
    k = (x["net"], x["procs"], x["threads"], x["batch"])
    if k not in fastest or x["gflops"] > fastest[k]["gflops"]:
        fastest[k] = x
blas = sorted(fastest.values(), key=lambda x: (list(NETS).index(x["net"]), x["procs"] * x["threads"], x["procs"], x["threads"]))
sq = {}
for x in square:
    if x["threads"] not in sq or x["gflops"] > sq[x["threads"]]["gflops"]:
        sq[x["threads"]] = x
square = [sq[t] for t in sorted(sq)]

def limit(net, procs, threads):
    """OpenBLAS on the step's shapes with procs processes of at most threads threads"""
    b = -(-NETS[net][1] // procs)
    cands = [x for x in blas if x["net"] == net and x["procs"] == procs and x["batch"] == b
             and x["threads"] <= threads]
    return max(cands, key=lambda x: x["gflops"], default=None)

lines = []
P = lines.append
P("# nntrain benchmark\n")
P(f"- **Date:** {meta['date']}; the benchmark took {int(meta['seconds']) // 60} min {int(meta['seconds']) % 60} s")
busy_runs = [r for r in runs if r.get("other_cpu", 0) >= 10]
P(f"- **Other work on the machine:** load average {meta.get('loadavg_start', '?')} at the start, "
  f"{meta['loadavg']} at the end; each run waited up to {meta.get('quiet_wait', '?')} s for the CPUs "
  f"to be under 10% busy, and a run during which other work took 10% of the CPUs or more was run "
  f"again (3 tries at most; the table keeps the fastest undisturbed run, else the fastest): "
  f"{len(busy_runs)} of {len(runs)} training runs "
  f"were disturbed so")
P(f"- **Machine:** {meta['cpu']}, {cores} cores ({meta['simd'].strip()}), {meta['os']}, Linux {meta['kernel']}")
P(f"- **Code:** nntrain commit `{meta['commit']}`"
  + (" (`-dirty`: the working tree had uncommitted changes)" if meta["commit"].endswith("-dirty") else "")
  + f", gcc {meta['gcc']}, {meta['mpi']}")
torch_rows = [r for r in runs if r["kind"].startswith("pytorch")]
if torch_rows:
    t0 = torch_rows[0]
    P(f"- **PyTorch:** {t0['torch_version']} (Debian python3-torch, Python {t0['python']}, ATen CPU capability "
      f"{t0.get('cpu_capability')}), BLAS loaded: {', '.join(os.path.basename(p) for p in t0['blas_libraries']) or 'none found'}")
P(f"- **OpenBLAS:** core `{info['corename']}` (`openblas_get_corename()`), config `{info['config']}`"
  + ("; `OPENBLAS_CORETYPE` was not set" if not info_ct else
     f"; `OPENBLAS_CORETYPE` was set and would have selected `{info_ct['corename']}`: it was unset for every run"))
if meta["env_cleared"]:
    P(f"- **Cleared from the environment for every run:** `{meta['env_cleared']}`")
P(f"- **Command:** `{meta['command']}` (epochs per run: {meta['epochs_small']} for the small network, "
  f"{meta['epochs_large']} for the large one; each configuration run {meta['repeat']} time(s), the fastest kept)"
  + (f"; this report was written again from its raw results with `{again}`" if again else ""))
P("")
P("samples/s: the training throughput of the epochs after the first (total samples / total "
  "time, evaluation excluded), whole job. ×PyTorch: samples/s divided by PyTorch's best "
  "single-process figure for the same network. GEMM limit: samples/s × FLOP per sample ÷ the "
  "OpenBLAS SGEMM rate on the same GEMM shapes with the same number of processes and at most "
  "as many threads each (table below). "
  "allreduce and data: shares of the epoch time in the gradient sum (shared memory within a node by default) and assembling batches. "
  "Peak RSS: maximum resident memory of each rank / process.\n")
P("| network | configuration | samples/s | ×PyTorch | GEMM limit | allreduce | data | peak RSS/rank (MiB) |")
P("|---|---|---:|---:|---:|---:|---:|---:|")
details = []
for net, (title, batch, lr) in NETS.items():
    nrun = [r for r in runs if r["net"] == net]
    if not nrun:
        continue
    single = [r for r in nrun if r["kind"] == "pytorch"]
    groups = {}
    for r in nrun:
        groups.setdefault((r["kind"], r["procs"], r["threads"], r["variant"]), []).append(r)
    bests = {k: best(v) for k, v in groups.items()}
    torch_best = max((v for k, v in bests.items() if k[0] == "pytorch"),
                     key=lambda r: r["samples_per_second"], default=None)
    n_torch = sum(1 for k in bests if k[0] == "pytorch")
    ordered = [v for k, v in bests.items() if k[0] == "nntrain"]
    if torch_best:
        ordered.append(torch_best)
    ordered += [v for k, v in bests.items() if k[0] == "pytorch-ddp"]
    for r in ordered:
        sps = r["samples_per_second"]
        lim = limit(net, r["procs"], r["threads"])
        frac = f"{sps * lim['flop_per_sample'] / (lim['gflops'] * 1e9):.0%}" if lim else "–"
        ratio = f"{sps / torch_best['samples_per_second']:.2f}" if torch_best else "–"
        if r["kind"] == "nntrain":
            conf = f"nntrain {r['procs']} rank{'s' if r['procs'] > 1 else ''} × {r['threads']} thread{'s' if r['threads'] > 1 else ''}"
            if r.get("threads_used", r["threads"]) != r["threads"]:
                conf += f" (ran on {r['threads_used']}: measured faster, see --thread-tuning)"
            ar, da = f"{r['allreduce_share']:.1%}", f"{r['data_share']:.1%}"
        elif r["kind"] == "pytorch":
            conf = (f"PyTorch 1 process × {r['threads']} intra-op thread{'s' if r['threads'] > 1 else ''}, "
                    f"{r['variant']} (best of {n_torch} settings)")
            ar, da = "–", "–"
        else:
            conf = f"PyTorch DDP {r['procs']} processes × {r['threads']} thread"
            ar, da = "–", "–"
        rss = max(r["peak_rss_mib"])
        mark = " *" if r.get("other_cpu", 0) >= 10 else ""
        P(f"| {title}, batch {batch} | {conf} | {sps:,.0f}{mark} | {ratio} | {frac} | {ar} | {da} | {rss:.0f} |")
    # details: every configuration and repetition, epoch by epoch
    details.append(f"\n**{title}, batch {batch}, lr {lr}**\n")
    for k, v in groups.items():
        for r in v:
            kind = {"nntrain": "nntrain", "pytorch": "PyTorch", "pytorch-ddp": "PyTorch DDP"}[r["kind"]]
            eps = ", ".join(f"{x:,.0f}" for x in r["epoch_samples_per_second"])
            acc = r.get("test_accuracy")
            other = r.get("other_cpu", 0)
            details.append(f"- {kind} {r['procs']}×{r['threads']}{' ' + r['variant'] if r['variant'] else ''}: "
                           f"{r['samples_per_second']:,.0f} samples/s; per epoch (the first not counted) {eps}; "
                           + (f"**other work took {other}% of the CPUs during the run**; " if other >= 10
                              else f"other work {other}% of the CPUs; ") +
                           f"test accuracy after the run {acc:.2%}; peak RSS per rank "
                           + ", ".join(f"{x:.0f}" for x in r["peak_rss_mib"]) + " MiB")

if any(r.get("other_cpu", 0) >= 10 for r in runs):
    P("\n\\* other work took 10% of the CPUs or more during this run: the figure is low.")
P("\n## The GEMM limit\n")
P("One training step's GEMMs, row-major, per dense layer in→out with b samples per process: "
  "forward Y[b,out] = X[b,in]·W[in,out], weight gradient dW[in,out] = Xᵀ[in,b]·dY[b,out], "
  "input gradient dX[b,in] = dY[b,out]·Wᵀ (not for the first layer). FLOP per sample = "
  "Σ 2·M·N·K / b. OpenBLAS `cblas_sgemm` runs the whole step repeatedly (`bench/bench_blas.c`, "
  "best of many ~50 ms trials, the faster of a pass at the start and one at the end of the "
  "benchmark); with several processes, that many copies run at once and their "
  "rates add up (`--procs`). Fastest epoch = 60,000 × FLOP per sample ÷ that rate.\n")
P("| network | processes × threads | batch per process | FLOP/sample | OpenBLAS GFLOP/s | limit samples/s | fastest epoch (s) |")
P("|---|---|---:|---:|---:|---:|---:|")
for x in blas:
    title = NETS[x["net"]][0]
    rate = x["gflops"] * 1e9 / x["flop_per_sample"]
    P(f"| {title} | {x['procs']} × {x['threads']} | {x['batch']} | {x['flop_per_sample'] / 1e6:.3f} M | "
      f"{x['gflops']:.1f} | {rate:,.0f} | {60000 / rate:.2f} |")
for s in square:
    P(f"\nLarge square SGEMM {s['square']}³, {s['threads']} thread{'s' if s['threads'] > 1 else ''}: "
      f"**{s['gflops']:.1f} GFLOP/s**.")
per = [x for x in blas if "per_gemm" in x]
if per:
    P("\nEach GEMM of a step on its own, GFLOP/s (1 process; M×N×K):\n")
    for x in per:
        P(f"- {NETS[x['net']][0]}, batch {x['batch']}, {x['threads']} thread(s): "
          + "; ".join(f"L{g['layer']} {g['kind']} {g['m']}×{g['n']}×{g['k']} {g['gflops']:.0f}" for g in x["per_gemm"]))

P("\n## Every run\n")
lines += details
P("\n## Notes\n")
P("- PyTorch trains the same network on the same data (the HDF5 file, x/255 in memory as "
  "float32), same global batch, SGD with momentum 0.9 and the same learning rate (constant: the "
  "schedule does not change the cost of a step), shuffled every epoch, last partial batch kept, "
  "plain forward/backward/step loops, no evaluation in the timed part. DDP: gloo backend, "
  "each process reads its contiguous shard and takes its share of every global batch, as "
  "nntrain's ranks do; its time per epoch is the slowest process's.")
P("- PyTorch with more than one thread runs with `OMP_WAIT_POLICY=passive` (and "
  "`OPENBLAS_NUM_THREADS` = its thread count): Debian's torch calls OpenBLAS (pthreads) for "
  "its GEMMs while its own OpenMP workers busy-wait by default, and on a machine with as "
  "many cores as threads the two fight for the cores (measured here on 784-800-800-10, 2 "
  "threads: about 1,000–3,000 samples/s with the default wait policy against 5,000–10,000 "
  "passive, when this benchmark was written; `--torch-active` measures it). DDP processes "
  "run with 1 thread each; the parent process that spawns them is not counted in the "
  "peak RSS.")
P("- nntrain uses its own GEMM kernels (`src/kernels.c`), not OpenBLAS; OpenBLAS here is "
  "the yardstick for what the cores can do on these shapes. The limit assumes no time "
  "outside GEMMs (activations, softmax, the SGD update, batch assembly and the Allreduce all "
  "come on top), so 100% is out of reach.")
P("- The GEMM limit of R processes × T threads is the faster of OpenBLAS with T threads and "
  "with 1 thread per process: on the small network's tiny GEMMs OpenBLAS is often slower "
  "with 2 threads than with 1.")
P("- The figures are wall-clock throughputs on a small virtual machine that may be shared; "
  "other work shows up as slower epochs (see the per-epoch figures above), runs it disturbed "
  "are run again, and `--repeat N` keeps the fastest of N runs. Even undisturbed, the same "
  "binary varies by 10–20% from run to run here: compare figures from one report.")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
