#!/usr/bin/env python3
"""scripts/project_scaling.py's model on a synthetic study whose gradient sums follow
an Allreduce with known latency and bandwidth exactly: the fit must recover them,
the model must reproduce every row (0% error), and efficiency must fall with nodes."""
import csv
import importlib.util
import os
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
scripts = os.path.join(here, "..", "scripts")
sys.path.insert(0, scripts)  # project_scaling imports scaling_csv from there
spec = importlib.util.spec_from_file_location("project", os.path.join(scripts, "project_scaling.py"))
project = importlib.util.module_from_spec(spec)
spec.loader.exec_module(project)

ALPHA, BETA, COMPUTE = 50e-6, 100e6, {"reference": 2e-6, "784-800-800-10": 40e-6}
failed = 0


def check(name, ok):
    global failed
    print(("ok   " if ok else "FAIL ") + name)
    failed += not ok


def row(suite, net, nodes, link, batch=100, steps=60):
    per_step = batch / nodes * COMPUTE[net]
    sum_s = 0.0 if link == "host" else project.allreduce_time(nodes, project.wire_bytes(net, "none"), ALPHA, BETA)
    epoch = steps * (per_step + sum_s)
    return dict(suite=suite, network=net, nodes=nodes, ranks=nodes, threads=1, link=link, allreduce="mpi",
                compress="none", accumulate=1, global_batch=batch, epochs=3, epoch_seconds=epoch,
                samples_per_second=steps * batch / epoch, compute_seconds=steps * per_step,
                sum_seconds=steps * sum_s, data_seconds=0.0, checkpoint_seconds=0.0)


rows = [row("strong", net, 1, "host") for net in COMPUTE]
rows += [row("links", net, 2, "1gbit") for net in COMPUTE]
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "s.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    loaded = project.load(path)
fits = project.fit_links(loaded)
alpha, beta = fits["1gbit"]
check(f"fitted latency {alpha * 1e6:.3f} us is 50 us", abs(alpha - ALPHA) < 1e-9)
check(f"fitted bandwidth {beta / 1e6:.3f} MB/s is 100 MB/s", abs(beta / BETA - 1) < 1e-6)
c = project.compute_per_sample(loaded)
check("compute per sample measured from the 1-rank runs", all(abs(c[n] / COMPUTE[n] - 1) < 1e-9 for n in COMPUTE))
errors = [abs(pred / meas - 1) for _, pred, meas in project.check(loaded, fits, c, cores=16)]
check(f"the model reproduces the {len(errors)} emulated rows exactly", len(errors) == 2 and max(errors) < 1e-6)
effs = [project.project(c["784-800-800-10"], "784-800-800-10", n, "weak", "none", 1)[0] for n in (16, 64, 256)]
check("weak-scaling efficiency falls with the node count", effs[0] > effs[1] > effs[2] and effs[0] <= 1)
plain = project.project(c["784-800-800-10"], "784-800-800-10", 256, "weak", "none", 1)[0]
both = project.project(c["784-800-800-10"], "784-800-800-10", 256, "weak", "bf16", 4)[0]
check("compression and accumulation raise the projected efficiency", both > plain)
sys.exit(1 if failed else 0)
