#!/usr/bin/env python3
"""One nntrain benchmark run as a results.jsonl record (called by bench/bench.sh).

  nntrain_record.py BASE NET RANKS THREADS OTHER_CPU

Reads BASE.jsonl (nntrain --metrics) and BASE.rss.0 .. BASE.rss.RANKS-1 (/usr/bin/time
-f %M per rank, KiB) and prints one JSON line: samples/s over the epochs after the
first, the allreduce and data shares of that time, peak RSS per rank (MiB), the last
test accuracy, the threads per rank training went on with (nntrain's thread tuning
may settle on one), and OTHER_CPU (the percentage of the CPUs other work took).
"""
import json, sys
base, net, r, t, other = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ep = [json.loads(l) for l in open(base + ".jsonl") if l.strip()]
steady = [e for e in ep if e["epoch"] >= 2]
if not steady:
    sys.exit("no epoch after the first in " + base + ".jsonl")
secs = sum(e["epoch_seconds"] for e in steady)
n = sum(e["samples_per_second"] * e["epoch_seconds"] for e in steady)
rss = []
for rank in range(r):
    lines = [l for l in open(f"{base}.rss.{rank}").read().split() if l.strip().isdigit()]
    rss.append(int(lines[-1]) / 1024.0)
print(json.dumps({"net": net, "kind": "nntrain", "procs": r, "threads": t, "variant": "",
    "samples_per_second": n / secs,
    "epoch_samples_per_second": [e["samples_per_second"] for e in ep],
    "allreduce_share": sum(e["allreduce_seconds"] for e in steady) / secs,
    "data_share": sum(e["data_seconds"] for e in steady) / secs,
    "peak_rss_mib": rss, "test_accuracy": ep[-1]["test_accuracy"], "other_cpu": other,
    "threads_used": ep[-1].get("threads", t)}))
