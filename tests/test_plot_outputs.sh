#!/usr/bin/env bash
# The plotting scripts under the outputs rule (docs/reliability.md; scripts/study_outputs.py):
# scripts/plot_metrics.py (--out), scripts/plot_scaling.py (its five PNGs) and
# scripts/project_scaling.py (projection.md, projection.png):
#  - a file of theirs (a PNG whose tEXt Software names the script; projection.md with its
#    marker, or one written before the marker) is replaced; anything else -- another PNG,
#    a text file -- is refused, exit 2 and one line naming it, nothing written;
#  - a missing directory is refused, not made;
#  - a write that fails (a file-size limit, as a full disk) leaves the old file whole and
#    no FILE.tmp (until 2026-12-07 savefig and open(..., "w") wrote in place: a cut file);
#  - a killed run's FILE.tmp is replaced, a file of the user's at that name refused.
# The PNG cases need matplotlib (python3-matplotlib; /usr/bin/python3 is tried too) and are
# skipped, with a "skip" line, without it; projection.md's need nothing more.
# Usage: test_plot_outputs.sh REPO WORKDIR
set -u
repo=$1 dir=$2/plot_outputs
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
export MPLCONFIGDIR=$dir/mplconfig # matplotlib's font cache, made once by the first plot
fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
py=""
for p in python3 /usr/bin/python3; do
    command -v "$p" >/dev/null && "$p" -c 'import matplotlib' 2>/dev/null && { py=$p; break; }
done
plain=python3 # projection.md's cases: any python3
# limited SIZE_KB CMD...: CMD with files limited to SIZE_KB (writes beyond fail: EFBIG)
limited() { local kb=$1; shift; (ulimit -f "$kb" && "$@"); }
software() { # the PNG's tEXt Software value, or "none"
    python3 - "$1" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read(65536)
i, found = 8, "none"
while d[:8] == b"\x89PNG\r\n\x1a\n" and i + 8 <= len(d):
    n, kind = struct.unpack(">I", d[i:i + 4])[0], d[i + 4:i + 8]
    if kind == b"tEXt" and d[i + 8:i + 17] == b"Software\0":
        found = d[i + 17:i + 8 + n].decode("latin-1")
    i += 12 + n
print(found)
PY
}

# a metrics file, and a scaling study's CSV (synthetic: one host row and two links rows a network)
for e in 1 2 3; do
    echo "{\"epoch\": $e, \"train_loss\": 0.$((5 - e)), \"test_loss\": 0.$((6 - e)), \"test_accuracy\": 0.9$e, \"lr\": 0.1, \"samples_per_second\": 1000}"
done >m.jsonl
python3 - <<'PY'
import csv
fields = ["suite", "network", "nodes", "ranks", "threads", "link", "allreduce", "compress", "accumulate", "global_batch",
          "virtual_shards", "epochs", "epoch_seconds", "samples_per_second", "compute_seconds", "sum_seconds",
          "data_seconds", "checkpoint_seconds", "sum_share", "speedup", "efficiency", "test_accuracy"]
rows = []
for net, c in (("reference", 2e-6), ("784-800-800-10", 40e-6)):
    rows.append(dict(suite="strong", network=net, nodes=1, ranks=1, threads=1, link="host", allreduce="shm",
                     compress="none", accumulate=1, global_batch=100, virtual_shards="", epochs=3,
                     epoch_seconds=60 * 100 * c, samples_per_second=1 / c, compute_seconds=60 * 100 * c, sum_seconds=0,
                     data_seconds=0, checkpoint_seconds=0, sum_share=0, speedup=1, efficiency=1, test_accuracy=0.9))
    for mode in ("mpi", "shm"):
        s = 0.001 if net == "reference" else 0.02
        rows.append(dict(rows[-1], suite="links", nodes=2, ranks=2, link="1gbit", allreduce=mode,
                         epoch_seconds=60 * (50 * c + s), sum_seconds=60 * s, speedup="", efficiency=""))
with open("study.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
PY

# ---- scripts/project_scaling.py: projection.md (with or without matplotlib) ----
project() { "${py:-$plain}" "$repo/scripts/project_scaling.py" study.csv "$@" >project.out 2>&1; }
mkdir proj
if project proj && head -1 proj/projection.md | grep -q '^<!-- written by scripts/project_scaling.py' &&
   grep -q '^| 784-800-800-10 | weak |' proj/projection.md && [ ! -e proj/projection.md.tmp ]
then ok "project_scaling.py writes projection.md (its marker first)"
else fail "project_scaling.py writes projection.md: $(tail -3 project.out)"; fi
cp proj/projection.md proj.before
if project proj && cmp -s proj/projection.md proj.before
then ok "project_scaling.py replaces its own projection.md"
else fail "project_scaling.py over its own projection.md: $(tail -3 project.out)"; fi
# one written before the marker (bench/scaling's): ours too
mkdir legacy && tail -n +2 proj.before >legacy/projection.md
if project legacy && head -1 legacy/projection.md | grep -q '^<!-- written by'
then ok "project_scaling.py replaces a projection.md written before the marker"
else fail "project_scaling.py over a projection.md written before the marker: $(tail -3 project.out)"; fi
mkdir notes && echo "# Projection (my notes)" >notes/projection.md
project notes; rc=$?
if [ "$rc" -eq 2 ] && [ "$(cat notes/projection.md)" = "# Projection (my notes)" ] && [ "$(wc -l <project.out)" -eq 1 ] &&
   grep -q "^project_scaling: notes/projection.md: exists and is not a projection written by project_scaling.py; not replacing it$" project.out &&
   [ ! -e notes/projection.png ]
then ok "project_scaling.py refuses a projection.md of the user's: exit 2, one line, nothing written"
else fail "project_scaling.py over the user's projection.md: exit $rc: $(cat project.out) / $(cat notes/projection.md)"; fi
project nodir/deeper; rc=$?
if [ "$rc" -eq 2 ] && [ ! -e nodir ] && grep -q "nodir/deeper: no such directory" project.out
then ok "project_scaling.py refuses a missing directory (not made)"
else fail "project_scaling.py into a missing directory: exit $rc: $(cat project.out)"; fi
# a write that fails leaves the old projection whole (the old code cut it: open(..., "w"))
yes '| padding |' | head -c 20000 >>proj/projection.md
cp proj/projection.md proj.before
limited 1 "${py:-$plain}" "$repo/scripts/project_scaling.py" study.csv proj >project.out 2>&1; rc=$?
if [ "$rc" -eq 1 ] && cmp -s proj/projection.md proj.before && [ ! -e proj/projection.md.tmp ] &&
   [ ! -e proj/projection.png.tmp ] && grep -q "write failed: File too large" project.out
then ok "project_scaling.py whose write fails (a full disk): exit 1, the old projection.md whole, no .tmp"
else fail "project_scaling.py whose write fails: exit $rc, $(stat -c %s proj/projection.md) bytes (was $(stat -c %s proj.before)): $(tail -2 project.out)"; fi

if [ -z "$py" ]; then
    echo "skip the PNG cases of plot_metrics.py, plot_scaling.py and project_scaling.py: no python3 with matplotlib (python3-matplotlib)"
    [ $fails -eq 0 ] && echo "test_plot_outputs: all passed" || echo "test_plot_outputs: $fails failed"
    [ $fails -eq 0 ]
    exit
fi

# ---- scripts/plot_metrics.py --out ----
metrics() { "$py" "$repo/scripts/plot_metrics.py" "$@" m.jsonl >plot.out 2>&1; }
if metrics && [ "$(software curves.png)" = "nntrain scripts/plot_metrics.py" ] && metrics && [ ! -e curves.png.tmp ]
then ok "plot_metrics.py writes curves.png (tEXt Software: nntrain scripts/plot_metrics.py), then replaces it"
else fail "plot_metrics.py writes curves.png: $(cat plot.out); Software $(software curves.png)"; fi
# another PNG (matplotlib's own, for someone else), a text file: refused, kept
"$py" -c 'import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt; plt.plot([1, 2]); plt.savefig("theirs.png")'
cp theirs.png theirs.before && echo "notes" >notes.png
for f in theirs.png notes.png; do
    cp "$f" before.png
    metrics --out "$f"; rc=$?
    if [ "$rc" -eq 2 ] && cmp -s "$f" before.png && [ "$(wc -l <plot.out)" -eq 1 ] &&
       grep -q "^plot_metrics: --out $f: exists and is not a plot written by plot_metrics.py; not replacing it$" plot.out
    then ok "plot_metrics.py --out $f (not its own): exit 2, one line, the file kept"
    else fail "plot_metrics.py --out $f: exit $rc: $(cat plot.out)"; fi
done
metrics --out typo/curves.png; rc=$?
if [ "$rc" -eq 2 ] && [ ! -e typo ] && grep -q "^plot_metrics: --out typo/curves.png: no such directory" plot.out
then ok "plot_metrics.py --out typo/curves.png: exit 2, the directory not made"
else fail "plot_metrics.py --out typo/curves.png: exit $rc, $(ls -d typo 2>&1): $(cat plot.out)"; fi
metrics --out curves.pdf; rc=$?
if [ "$rc" -eq 2 ] && [ ! -e curves.pdf ] && grep -q "not a .png name" plot.out
then ok "plot_metrics.py --out curves.pdf: exit 2 (PNG only)"
else fail "plot_metrics.py --out curves.pdf: exit $rc: $(cat plot.out)"; fi
cp curves.png curves.before
limited 20 "$py" "$repo/scripts/plot_metrics.py" m.jsonl >plot.out 2>&1; rc=$?
if [ "$rc" -eq 1 ] && cmp -s curves.png curves.before && [ ! -e curves.png.tmp ] && grep -q "File too large" plot.out
then ok "plot_metrics.py whose write fails (a full disk): exit 1, the old curves.png whole, no .tmp"
else fail "plot_metrics.py whose write fails: exit $rc, $(stat -c %s curves.png) bytes (was $(stat -c %s curves.before)): $(tail -2 plot.out)"; fi
head -c 40 curves.png >curves.png.tmp # a killed run's: replaced
if metrics && [ ! -e curves.png.tmp ] && [ "$(software curves.png)" = "nntrain scripts/plot_metrics.py" ]; then ok "plot_metrics.py replaces a killed run's curves.png.tmp"
else fail "plot_metrics.py over a killed run's curves.png.tmp: $(cat plot.out)"; fi
echo "mine" >curves.png.tmp
metrics; rc=$?
if [ "$rc" -eq 2 ] && [ "$(cat curves.png.tmp)" = mine ] && grep -q "curves.png.tmp exists and is not" plot.out
then ok "plot_metrics.py refuses a curves.png.tmp of the user's"
else fail "plot_metrics.py over the user's curves.png.tmp: exit $rc: $(cat plot.out)"; fi
rm -f curves.png.tmp

# ---- scripts/plot_scaling.py ----
scaling() { "$py" "$repo/scripts/plot_scaling.py" study.csv "$@" >scaling.out 2>&1; }
mkdir plots
if scaling plots && [ "$(ls plots | tr '\n' ' ')" = "breakdown.png efficiency.png links.png speedup.png " ] &&
   [ "$(software plots/speedup.png)" = "nntrain scripts/plot_scaling.py" ] && scaling plots
then ok "plot_scaling.py writes its plots (tEXt Software: nntrain scripts/plot_scaling.py), then replaces them"
else fail "plot_scaling.py writes its plots: $(ls plots): $(tail -3 scaling.out)"; fi
cp -r plots plots.before
cp theirs.before plots/slow_link.png && cp theirs.before plots.before/slow_link.png
scaling plots; rc=$?
if [ "$rc" -eq 2 ] && diff -r plots plots.before >/dev/null && [ "$(wc -l <scaling.out)" -eq 1 ] &&
   grep -q "^plot_scaling: plots/slow_link.png: exists and is not a plot written by plot_scaling.py; not replacing it$" scaling.out
then ok "plot_scaling.py with a PNG of the user's at slow_link.png: exit 2, one line, no plot written"
else fail "plot_scaling.py with the user's slow_link.png: exit $rc: $(cat scaling.out)"; fi
rm plots/slow_link.png plots.before/slow_link.png
scaling typo; rc=$?
if [ "$rc" -eq 2 ] && [ ! -e typo ]; then ok "plot_scaling.py into a missing directory: exit 2, not made"
else fail "plot_scaling.py into a missing directory: exit $rc: $(cat scaling.out)"; fi
limited 10 "$py" "$repo/scripts/plot_scaling.py" study.csv plots >scaling.out 2>&1; rc=$?
if [ "$rc" -eq 1 ] && diff -r plots plots.before >/dev/null && [ -z "$(ls plots | grep tmp)" ] &&
   grep -q "File too large" scaling.out
then ok "plot_scaling.py whose write fails (a full disk): exit 1, the old plots whole, no .tmp"
else fail "plot_scaling.py whose write fails: exit $rc: $(ls -l plots | tr '\n' ' '): $(tail -2 scaling.out)"; fi

# ---- project_scaling.py's projection.png ----
if project proj && [ "$(software proj/projection.png)" = "nntrain scripts/project_scaling.py" ]
then ok "project_scaling.py writes projection.png (tEXt Software: nntrain scripts/project_scaling.py)"
else fail "project_scaling.py writes projection.png: $(tail -3 project.out)"; fi
cp proj/projection.md proj.before && cp theirs.before proj/projection.png
project proj; rc=$?
if [ "$rc" -eq 2 ] && cmp -s proj/projection.md proj.before && cmp -s proj/projection.png theirs.before
then ok "project_scaling.py with a PNG of the user's at projection.png: exit 2, neither file written"
else fail "project_scaling.py with the user's projection.png: exit $rc: $(cat project.out)"; fi

# ---- scripts/scaling_study.py's drawing: a plotting script's failure is reported ----
# (until 2026-12-08 the study did not look at their exit, and ended with 0 over stale plots)
mkdir -p drawn && cp theirs.before drawn/speedup.png # a PNG of the user's: plot_scaling.py refuses it
draw() {
    "$py" - "$repo/scripts" study.csv drawn <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import scaling_study
print("failed:", " ".join(scaling_study.draw(sys.argv[2], sys.argv[3])) or "none")
PY
}
draw >draw.out 2>&1
if grep -qx "failed: plot_scaling.py" draw.out && cmp -s drawn/speedup.png theirs.before &&
   [ "$(software drawn/projection.png)" = "nntrain scripts/project_scaling.py" ]
then ok "scaling_study.draw names plot_scaling.py, which refused the user's speedup.png (the projection drawn)"
else fail "scaling_study.draw with the user's speedup.png: $(cat draw.out)"; fi
rm drawn/speedup.png
draw >draw.out 2>&1
if grep -qx "failed: none" draw.out && [ "$(software drawn/speedup.png)" = "nntrain scripts/plot_scaling.py" ]
then ok "scaling_study.draw: both scripts drawn, none failed"
else fail "scaling_study.draw: $(cat draw.out)"; fi

[ $fails -eq 0 ] && echo "test_plot_outputs: all passed" || echo "test_plot_outputs: $fails failed"
[ $fails -eq 0 ]
