#!/usr/bin/env python3
"""Scaling experiments, one command: runs nntrain over a grid of configurations and
writes one CSV row per configuration, then the plots (scripts/plot_scaling.py) and
the projection to a real cluster (scripts/project_scaling.py).

  scripts/scaling_study.py [--suites strong,weak,links,slow] [--out bench/scaling] [--quick]
                           [--ranks 1,2,4,8] [--host-only] [--train-limit N] [--deterministic]
                           [--networks reference,784-800-800-10,deep-mnist]

Suites (each row: nodes, ranks, threads, link rate, batch, epoch time, samples/s, the
time split into compute / gradient sum / data / checkpoint, speedup, efficiency,
final accuracy):
  strong  fixed global batch and data: 1, 2, 4, 8 ranks (--ranks) on this host, 1 thread
          each; ranks x threads over all the host's cores (here 1x2; on 16 cores 8x2, 4x4,
          2x8, 1x16); 1, 2, 4 emulated nodes x 1 rank (not with --host-only)
  weak    fixed batch per rank (64): the same layouts, global batch 64 x ranks
  links   2 emulated nodes x 1 rank at each link rate (unshaped, 10gbit, 1gbit, 100mbit),
          every --allreduce mode, reference network and 784-800-800-10
  slow    784-800-800-10, 2 nodes at 1gbit: plain, --compress bf16, --accumulate 4, both
--deterministic: every run in nntrain's --deterministic mode, with one number of
virtual shards for all the rows of a suite and network that share a global batch
(the smallest divisor of the batch that is at least 8 and at least their largest rank
count). Those rows then train the same model: the study checks that their test
accuracies are identical, prints it, and exits 1 if they are not.
Speedup and efficiency are against the suite's 1-rank, 1-thread run of the same
network (weak: throughput ratio; efficiency = speedup / (ranks x threads)). Emulated
nodes need root (scripts/emulated_nodes.sh); the rows that need them are skipped
without it. Needs build/nntrain (or $NNTRAIN_BIN) and data/mnist.h5.

Outputs (the outputs rule, docs/reliability.md; scripts/study_outputs.py): --out is a
directory (made if missing, where its parent exists). Its files -- scaling.csv,
scaling.partial.csv, the plots and projection.md/.png -- are checked before the first
run: each may be replaced only when it is empty or the study's own (else exit 2, one line,
nothing run). Each is written to FILE.tmp and renamed into place once whole.
  - a study that ran to its end with at least one row replaces scaling.csv, then the plots
    and the projection (scripts/plot_scaling.py, scripts/project_scaling.py);
  - a study that measured nothing (every row failed) changes nothing: exit 1;
  - a study stopped (SIGINT, SIGTERM, SIGHUP, SIGUSR1) or ended by an error leaves
    scaling.csv, the plots and the projection as they were and writes the rows it measured
    to scaling.partial.csv (none measured: nothing written); exit 128 + the signal.
"""
import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile

import plot_scaling
import project_scaling
import study_outputs
from study_outputs import Changed, Refusal, Stopped

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NNTRAIN = os.environ.get("NNTRAIN_BIN") or os.path.join(REPO, "build", "nntrain")
EMU = os.path.join(REPO, "scripts", "emulated_nodes.sh")
REFERENCE = ["--layers", "784,50,100,10"]
LARGE = ["--layers", "784,800,800,10", "--activation", "relu", "--lr", "0.05"]
# TensorFlow's "Deep MNIST" convolutional network: compute-bound where the MLPs are
# communication-bound (opt in: --networks ...,deep-mnist)
DEEP_MNIST = ["--layers", "conv5x5x32p2,pool2,conv5x5x64p2,pool2,1024,10", "--activation", "relu", "--lr", "0.05"]
NETWORKS = {"reference": REFERENCE, "784-800-800-10": LARGE, "deep-mnist": DEEP_MNIST}
FIELDS = study_outputs.CSV_FIELDS  # the CSV's columns (study_outputs tells the study's CSV by them)
PROG = "scaling_study"


def mpi_env():
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_MCA_rmaps_base_oversubscribe="1",
               OMPI_MCA_mpi_yield_when_idle="1")
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


class Nodes:
    """The emulated cluster currently up (scripts/emulated_nodes.sh), rebuilt on demand."""

    def __init__(self):
        self.up = None

    def ensure(self, count, link):
        if self.up != (count, link):
            self.down()  # ours: up refuses nodes where processes still live
            rate = [] if link == "none" else [link]
            subprocess.run([EMU, "up", str(count)] + rate, check=True, stdout=subprocess.DEVNULL)
            self.up = (count, link)

    def down(self):
        if self.up:
            subprocess.run([EMU, "down"], check=False)
            self.up = None


def child(cmd, capture=True, timeout=None, **kw):
    """subprocess.run(CMD), its output captured (CAPTURE) as text, whose child is asked to
    stop (SIGTERM, then SIGKILL after 30 s) where a stop signal ends the study, rather than
    killed at once as subprocess.run does: mpirun then ends its ranks, and the plotting
    scripts remove their FILE.tmp. A stop as it starts is handled once the child is known,
    and stops it too (study_outputs.start_child)."""
    pipe = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) if capture else {}
    # the try begins as start_child returns, with no call between (a `with p:` would call
    # Popen.__enter__, where a stop could be handled before the try, the child left running)
    p = study_outputs.start_child(cmd, **pipe, **kw)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise
    except BaseException:
        study_outputs.stop_child(p)
        raise
    finally:
        if p.stdout:
            p.stdout.close()
    return subprocess.CompletedProcess(cmd, p.returncode, out)


def draw(csv_path, out):
    """The plots and the projection from CSV_PATH into OUT, with a python that has matplotlib
    (Debian's, if the one running this is another); each script follows the outputs rule
    itself. Returns the scripts that failed (until 2026-12-08 their exit was not looked at,
    and the study ended with 0 over stale plots)."""
    python = next((py for py in (sys.executable, "/usr/bin/python3")
                   if subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode == 0),
                  sys.executable)
    return [script for script in ("plot_scaling.py", "project_scaling.py")
            if child([python, os.path.join(REPO, "scripts", script), csv_path, out], capture=False).returncode != 0]


def run(cfg, nodes, tmp, epochs, limit):
    """One configuration; returns the metrics of its steady-state epochs (all but the first)."""
    metrics = os.path.join(tmp, "m.jsonl")
    if os.path.exists(metrics):
        os.remove(metrics)
    args = [NNTRAIN, "--data", os.path.join(REPO, "data", "mnist.h5"), "--train-limit", str(limit),
            "--epochs", str(epochs), "--batch-size", str(cfg["global_batch"]), "--threads", str(cfg["threads"]),
            "--thread-tuning", "off",  # the layout asked for, even where one thread is faster
            "--allreduce", cfg["allreduce"], "--compress", cfg["compress"], "--accumulate", str(cfg["accumulate"]),
            "--metrics", metrics] + cfg["net_args"]
    if cfg.get("virtual_shards"):
        args += ["--virtual-shards", str(cfg["virtual_shards"])]
    env = mpi_env()
    env["OMP_NUM_THREADS"] = str(cfg["threads"])
    if cfg["nodes"] == 1 and cfg["link"] == "host":
        # each rank on its own cores while they last (threads bound inside them, as
        # jobs/job_env.sh does); oversubscribed layouts float
        if cfg["ranks"] * cfg["threads"] <= os.cpu_count():
            place = ["--map-by", f"slot:PE={cfg['threads']}"]  # binds to cores (hwthreads if told to count those)
            if cfg["threads"] > 1:
                env.update(OMP_PROC_BIND="close", OMP_PLACES="cores")
        else:
            place = ["--bind-to", "none"]
        cmd = ["mpirun", "-np", str(cfg["ranks"])] + place + args
    else:
        nodes.ensure(cfg["nodes"], cfg["link"])
        per_node = cfg["ranks"] // cfg["nodes"]
        cmd = [EMU, "mpirun", "-np", str(cfg["ranks"]), "--map-by", f"ppr:{per_node}:node",
               "-x", f"OMP_NUM_THREADS={cfg['threads']}"] + args
    done = child(cmd, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {done.returncode}\n{done.stdout[-2000:]}")
    with open(metrics) as f:
        records = [json.loads(line) for line in f]
    return records[1:] or records


def summarise(cfg, records):
    secs = sum(r["epoch_seconds"] for r in records)
    sum_s = sum(r["allreduce_seconds"] for r in records)
    data_s = sum(r["data_seconds"] for r in records)
    ck_s = sum(r["checkpoint_seconds"] for r in records)
    n = len(records)
    row = {k: cfg[k] for k in FIELDS if k in cfg}
    row.update(epochs=n + 1, epoch_seconds=secs / n,
               samples_per_second=sum(r["samples_per_second"] * r["epoch_seconds"] for r in records) / secs,
               compute_seconds=(secs - sum_s - data_s) / n, sum_seconds=sum_s / n, data_seconds=data_s / n,
               checkpoint_seconds=ck_s / n, sum_share=sum_s / secs, test_accuracy=records[-1]["test_accuracy"])
    return row


def configs(suites, networks, host_ranks):
    """The grid, in the order it runs (grouped by emulated-node layout)."""
    nets = [(name, NETWORKS[name]) for name in networks]
    out = []

    def add(suite, net, nodes, ranks, threads, link, batch, allreduce="shm", compress="none", accumulate=1):
        out.append(dict(suite=suite, network=net[0], net_args=net[1], nodes=nodes, ranks=ranks, threads=threads,
                        link=link, global_batch=batch, allreduce=allreduce, compress=compress,
                        accumulate=accumulate))

    for suite in ("strong", "weak"):
        if suite not in suites:
            continue
        for net in nets:
            batch = (lambda p: 512) if suite == "strong" else (lambda p: 64 * p)
            for p in host_ranks:
                add(suite, net, 1, p, 1, "host", batch(p))
            cores = os.cpu_count()
            threads = 2
            while threads <= cores:  # all the cores, split between ranks and threads
                ranks = cores // threads
                add(suite, net, 1, ranks, threads, "host", batch(ranks))
                threads *= 2
            for n in (1, 2, 4):
                add(suite, net, n, n, 1, "none", batch(n))
    if "links" in suites:
        for net in [n for n in nets if n[0] != "deep-mnist"]:  # the MLPs show the links
            for link in ("none", "10gbit", "1gbit", "100mbit"):
                for mode in ("shm", "mpi", "overlap"):
                    add("links", net, 2, 2, 1, link, 100, allreduce=mode)
    if "slow" in suites:
        big = ("784-800-800-10", LARGE)
        for compress, acc in (("none", 1), ("bf16", 1), ("none", 4), ("bf16", 4)):
            add("slow", big, 2, 2, 1, "1gbit", 100, compress=compress, accumulate=acc)
    return out


def add_speedups(rows):
    base = {}
    for r in rows:
        if r["ranks"] == 1 and r["threads"] == 1 and r["suite"] in ("strong", "weak"):
            base.setdefault((r["suite"], r["network"]), r["samples_per_second"])
    for r in rows:
        b = base.get((r["suite"], r["network"]))
        r["speedup"] = r["samples_per_second"] / b if b else ""
        r["efficiency"] = r["speedup"] / (r["ranks"] * r["threads"]) if b else ""


def add_virtual_shards(cfgs):
    """--deterministic: one V for the rows that can share a model (same suite, network
    and global batch): a divisor of the batch, at least 8 and their largest rank count."""
    most = {}
    for c in cfgs:
        key = (c["suite"], c["network"], c["global_batch"])
        most[key] = max(most.get(key, 8), c["ranks"])
    for c in cfgs:
        key = (c["suite"], c["network"], c["global_batch"])
        c["virtual_shards"] = next(d for d in range(most[key], c["global_batch"] + 1) if c["global_batch"] % d == 0) \
            if most[key] <= c["global_batch"] else c["global_batch"]
    return cfgs


def same_model_check(rows):
    """--deterministic: the rows of one suite, network, batch, accumulation and data
    (samples, epochs) train one model whatever the layout, --allreduce and --compress,
    so they must report one test accuracy. Prints each group's; returns how many
    groups disagree."""
    groups = {}
    for r in rows:
        key = (r["suite"], r["network"], r["global_batch"], r["accumulate"], r["train_limit"], r["epochs"])
        groups.setdefault(key, []).append(r)
    bad = 0
    for (suite, net, batch, acc, _, _), rs in groups.items():
        accs = sorted({r["test_accuracy"] for r in rs})
        what = f"{suite} {net}, batch {batch}" + (f" x {acc}" if acc > 1 else "")
        if len(accs) == 1:
            print(f"scaling_study: deterministic: {what}: test accuracy {100 * accs[0]:.2f}% in all {len(rs)} rows "
                  f"(V = {rs[0]['virtual_shards']})")
        else:
            bad += 1
            print(f"scaling_study: deterministic: {what}: {len(accs)} different test accuracies "
                  f"({', '.join(f'{100 * a:.4f}%' for a in accs)}): the layouts did not train the same model")
    return bad


SUITES = ("strong", "weak", "links", "slow")


class Parser(argparse.ArgumentParser):
    """Usage errors are one line and exit 2, as for nntrain."""

    def error(self, message):
        sys.stderr.write(f"scaling_study: {message} (see --help)\n")
        sys.exit(2)


def rank_list(text):
    """'1,2,4': rank counts, each 1..1024."""
    try:
        ranks = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected rank counts like 1,2,4,8") from None
    if not ranks or any(r < 1 or r > 1024 for r in ranks):
        raise argparse.ArgumentTypeError(f"'{text}': each rank count must be in 1..1024")
    return ranks


def suite_set(text):
    suites = set(text.split(","))
    unknown = sorted(suites - set(SUITES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown suite(s) {','.join(unknown)}: expected some of {','.join(SUITES)}")
    return suites


def network_list(text):
    names = text.split(",")
    unknown = [n for n in names if n not in NETWORKS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown network(s) {','.join(unknown)}: expected some of {','.join(NETWORKS)}")
    return names


def positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def csv_text(rows):
    """The study's CSV, with the speed-ups, of ROWS."""
    add_speedups(rows)
    f = io.StringIO(newline="")
    w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return f.getvalue()


def outputs(out):
    """The study's files in directory OUT: (scaling.csv, scaling.partial.csv, the plots' and
    the projection's), as study_outputs.Output."""
    return (study_outputs.csv_output(os.path.join(out, "scaling.csv")),
            study_outputs.csv_output(os.path.join(out, "scaling.partial.csv")),
            list(plot_scaling.outputs(out).values()) + list(project_scaling.outputs(out).values()))


def out_directory(out):
    """--out OUT, made if missing (its parent must exist: a typo's chain is not made); True
    where this run made it."""
    if os.path.isdir(out):
        return False
    parent = os.path.dirname(os.path.abspath(out))
    if os.path.lexists(out) or not os.path.isdir(parent):
        raise Refusal(f"--out {out}: " + ("not a directory" if os.path.lexists(out) else f"no such directory {parent}"))
    try:
        os.mkdir(out)
    except OSError as e:
        raise Refusal(f"--out {out}: cannot make the directory: {e.strerror or e}") from None
    return True


def write_csv(output, rows):
    """ROWS to OUTPUT's file (study_outputs.write_all: FILE.tmp renamed into place); the
    error's one line where it could not be written, else None."""
    temporaries = []
    try:
        study_outputs.write_all([(output, csv_text(rows).encode())], temporaries)
        return None
    except (Refusal, Changed, study_outputs.nn_outputs.LockFailed) as e:
        return str(e)
    except OSError as e:
        return f"{output.label}: cannot write: {e.strerror or e}"
    finally:
        study_outputs.abandon_all(temporaries)


def keep_partial(rows, partial, why):
    """A study cut short (WHY: "stopped by SIGINT", "ended by an error"): the old outputs
    stay as they were, the rows measured go to scaling.partial.csv (a 61-row study is not
    replaced by the 3 rows of a stopped one; the user merges them, or reruns)."""
    kept = "scaling.csv, the plots and the projection left as they were"
    if not rows:
        print(f"{PROG}: {why} before any row was measured; {kept}", flush=True)
        return
    error = write_csv(partial, rows)
    if error:
        print(f"{PROG}: {why}; the {len(rows)} rows measured are lost: {study_outputs.nn_outputs.one_line(error)}; "
              f"{kept}", flush=True)
    else:
        print(f"{PROG}: {why}; the {len(rows)} rows measured are in {partial.label}; {kept}", flush=True)


def measure(a, rows, can_emulate):
    """Runs the grid, each row measured appended to ROWS; the number of rows that failed."""
    nodes, failed = Nodes(), 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            networks = a.networks or (["reference"] if a.quick else ["reference", "784-800-800-10"])
            grid = configs(a.suites, networks, a.ranks)
            for cfg in add_virtual_shards(grid) if a.deterministic else grid:
                if cfg["link"] != "host" and not can_emulate:
                    print(f"scaling_study: skipping {cfg['suite']} {cfg['nodes']} nodes "
                          f"({'--host-only' if a.host_only else 'emulated nodes need root'})")
                    continue
                slow_link = cfg["link"] in ("100mbit", "1gbit") and cfg["network"] != "reference"
                default_limit = 6000 if a.quick else 12000
                if cfg["network"] == "deep-mnist":  # ~100x the arithmetic of a reference sample
                    default_limit = 3000
                limit = 3000 if slow_link else (a.train_limit if a.train_limit is not None else default_limit)
                epochs = 2 if slow_link else 3
                print(f"scaling_study: {cfg['suite']:6} {cfg['network']:15} {cfg['nodes']} node(s) x "
                      f"{cfg['ranks'] // cfg['nodes']} rank(s) x {cfg['threads']} thread(s), link {cfg['link']}, "
                      f"{cfg['allreduce']}, compress {cfg['compress']}, accumulate {cfg['accumulate']}", flush=True)
                try:
                    rows.append(dict(summarise(cfg, run(cfg, nodes, tmp, epochs, limit)), train_limit=limit))
                except (RuntimeError, subprocess.TimeoutExpired, subprocess.CalledProcessError, ValueError) as e:
                    # one broken layout (say, more ranks than the host can bind) costs
                    # its row, not the rows already measured
                    failed += 1
                    print(f"scaling_study: FAILED, row left out: {e}", flush=True)
    finally:
        with study_outputs.nn_outputs.signals_held():  # the emulated nodes taken down whole
            nodes.down()
    return failed


def main():
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suites", type=suite_set, default="strong,weak,links,slow")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "scaling"))
    ap.add_argument("--quick", action="store_true", help="reference network only, fewer samples")
    ap.add_argument("--networks", type=network_list,
                    help="networks of the strong, weak and links suites (default reference,784-800-800-10; quick: "
                         "reference); deep-mnist adds the convolutional network (3,000 samples an epoch)")
    ap.add_argument("--ranks", type=rank_list, default="1,2,4,8", help="rank counts of the one-host rows")
    ap.add_argument("--host-only", action="store_true", help="skip the emulated-node rows")
    ap.add_argument("--train-limit", type=positive, help="training samples per epoch (default 12000, quick 6000)")
    ap.add_argument("--deterministic", action="store_true",
                    help="nntrain --deterministic: the same model in every layout of a suite")
    a = ap.parse_args()
    if not os.access(NNTRAIN, os.X_OK):
        sys.exit("scaling_study: build/nntrain missing: run scripts/build.sh")
    can_emulate = os.geteuid() == 0 and not a.host_only
    study_outputs.catch_stop_signals()
    made_dir = False
    try:
        # every output checked before the first run (until 2026-12-07 a study wrote over
        # whatever was there, and emptied scaling.csv when stopped or when every row failed)
        made_dir = out_directory(a.out)
        study(a, can_emulate, *outputs(a.out))
    except Refusal as e:
        print(f"{PROG}: {study_outputs.nn_outputs.one_line(str(e))}", file=sys.stderr)
        sys.exit(2)
    except Stopped as e:  # before the first run, or after the rows were written
        study_outputs.ignore_stop_signals()
        print(f"{PROG}: stopped by {e.name}; {getattr(e, 'outcome', 'nothing written')}", flush=True)
        sys.exit(128 + e.signum)
    finally:
        if made_dir:  # made by this run: left behind only where something was written in it
            try:
                os.rmdir(a.out)
            except OSError:
                pass


def study(a, can_emulate, main_csv, partial, others):
    """The study in A.out: its outputs checked, the grid measured, then scaling.csv (MAIN_CSV)
    replaced and the plots and projection (OTHERS) drawn; stopped, the rows measured go to
    PARTIAL (keep_partial); nothing measured, nothing written."""
    study_outputs.check_all([main_csv, partial] + others)
    rows, failed = [], 0
    try:
        failed = measure(a, rows, can_emulate)
    except Stopped as e:  # the rows measured kept apart; the old study as it was
        study_outputs.ignore_stop_signals()
        keep_partial(rows, partial, f"stopped by {e.name}")
        sys.exit(128 + e.signum)
    except BaseException:  # a failure outside a row: likewise, then its traceback
        study_outputs.ignore_stop_signals()
        keep_partial(rows, partial, "ended by an error")
        raise
    out = study_outputs.nn_outputs.one_line(a.out)
    if not rows:
        print(f"{PROG}: no row measured ({failed} configuration(s) failed); scaling.csv, the plots and the projection "
              f"in {out} left as they were")
        sys.exit(1)
    try:
        with study_outputs.nn_outputs.signals_held():  # a stop now comes once scaling.csv is written, or not
            error = write_csv(main_csv, rows)  # scaling.csv replaced only now, whole
    except Stopped as e:
        e.outcome = f"{main_csv.label} written; the plots and the projection left as they were"
        raise
    if error:
        print(f"{PROG}: {study_outputs.nn_outputs.one_line(error)}", file=sys.stderr)
        study_outputs.ignore_stop_signals()
        keep_partial(rows, partial, "scaling.csv not written")
        sys.exit(1)
    path = main_csv.path
    print(f"scaling_study: {len(rows)} rows in {path}")
    if os.path.exists(partial.path):  # an earlier stopped study's rows: the user's to merge or remove
        print(f"scaling_study: {partial.label} (the rows of an earlier study, stopped) left as it was")
    if failed:
        print(f"scaling_study: {failed} configuration(s) failed (above)")
    if a.deterministic and same_model_check(rows):
        failed += 1
    redraw = f"scripts/plot_scaling.py and scripts/project_scaling.py {path} {out} redraw them"
    try:
        not_drawn = draw(path, a.out)
    except Stopped as e:
        e.outcome = f"{main_csv.label} written; the plots and the projection may be older than it ({redraw})"
        raise
    if not_drawn:  # each said why, in its own line above
        print(f"{PROG}: {', '.join(not_drawn)} failed: the plots and the projection may be older than "
              f"{main_csv.label} ({redraw})", file=sys.stderr)
        failed += 1
    if failed:
        sys.exit(1)

if __name__ == "__main__":
    main()
