#!/usr/bin/env bash
# scripts/scaling_study.py --deterministic (issue 21): every layout of the strong suite
# trains the same model, so the study reports one test accuracy for all its rows and
# says so. Without the flag the same rows give different accuracies, so the check can
# tell. Small: the reference network, 3,000 MNIST samples, 1, 2 and 3 ranks plus the
# ranks x threads layouts of this host. The outputs rule: a study interrupted leaves the
# earlier study as it was and writes the rows it measured to scaling.partial.csv; one that
# measured nothing changes nothing; a file of the user's among its outputs is refused
# before the first run.
# Usage: test_scaling_study.sh NNTRAIN REPO WORKDIR
set -u
nntrain=$1 repo=$2 dir=$3/scaling_study
rm -rf "$dir" && mkdir -p "$dir"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
study() { NNTRAIN_BIN=$nntrain timeout 600 python3 "$repo/scripts/scaling_study.py" --suites strong --host-only --quick \
    --train-limit 3000 "$@"; }

# the CSV's column NAME, one value a row
column() { python3 -c 'import csv,sys; print("\n".join(r[sys.argv[2]] for r in csv.DictReader(open(sys.argv[1]))))' "$@"; }

study --deterministic --ranks 1,2,3 --out "$dir/det" >"$dir/det.out" 2>&1 || fail "--deterministic: exit $? ($(tail -3 "$dir/det.out"))"
rows=$(column "$dir/det/scaling.csv" test_accuracy | wc -l)
accs=$(column "$dir/det/scaling.csv" test_accuracy | sort -u | wc -l)
shards=$(column "$dir/det/scaling.csv" virtual_shards | sort -u | tr '\n' ' ')
if [ "$rows" -lt 4 ] || [ "$accs" -ne 1 ]; then fail "--deterministic: $rows rows, $accs different accuracies"
elif [ "$shards" != "8 " ]; then fail "--deterministic: virtual_shards column '$shards', expected 8"
elif ! grep -q "deterministic: strong reference, batch 512: test accuracy .* in all $rows rows (V = 8)" "$dir/det.out"; then
    fail "--deterministic: the study did not say the accuracy is one: $(grep deterministic "$dir/det.out")"
else echo "ok: --deterministic, $rows layouts, one test accuracy $(column "$dir/det/scaling.csv" test_accuracy | head -1)"; fi

study --ranks 1,2 --out "$dir/plain" >"$dir/plain.out" 2>&1 || fail "default mode: exit $? ($(tail -3 "$dir/plain.out"))"
if [ "$(column "$dir/plain/scaling.csv" test_accuracy | head -2 | sort -u | wc -l)" -ne 2 ]; then
    fail "default mode: 1 and 2 ranks gave the same accuracy: the check could not tell"
else echo "ok: without it, 1 and 2 ranks differ ($(column "$dir/plain/scaling.csv" test_accuracy | head -2 | tr '\n' ' '))"; fi

# The outputs rule (docs/reliability.md; scripts/study_outputs.py). The study of "plain"
# (its CSV, plots and projection) stands for an earlier study in the directory.
cp -r "$dir/plain" "$dir/cut" && cp -r "$dir/plain" "$dir/earlier"
# Ctrl-C after the first row: the earlier study left as it was, the rows measured written
# apart, to scaling.partial.csv (until 2026-12-07 scaling.csv was replaced by the rows
# measured, and by its header alone where none was)
NNTRAIN_BIN=$nntrain timeout 600 python3 "$repo/scripts/scaling_study.py" --suites strong --host-only --quick \
    --train-limit 3000 --ranks 1,2 --out "$dir/cut" >"$dir/cut.out" 2>&1 &
pid=$!
for _ in $(seq 6000); do [ "$(grep -c '^scaling_study: strong' "$dir/cut.out")" -ge 2 ] && break; sleep 0.05; done
kill -INT "$pid"
wait "$pid"
rc=$?
rows=$(column "$dir/cut/scaling.partial.csv" ranks 2>/dev/null | wc -l)
if [ "$rc" -eq 130 ] && [ "$rows" -ge 1 ] && diff -r -x scaling.partial.csv "$dir/cut" "$dir/earlier" >/dev/null &&
   grep -q "stopped by SIGINT; the $rows rows measured are in $dir/cut/scaling.partial.csv; scaling.csv, the plots and the projection left as they were" "$dir/cut.out"
then echo "ok: interrupted after its first row: exit $rc, the earlier study kept, $rows row(s) in scaling.partial.csv"
else fail "interrupted after its first row: exit $rc, $rows rows in scaling.partial.csv, $(diff -rq "$dir/cut" "$dir/earlier" | tr '\n' ' ') ($(tail -2 "$dir/cut.out"))"; fi
# every row failed: nothing measured, nothing changed (until 2026-12-07: scaling.csv emptied,
# projection.md rewritten with empty tables)
rm -f "$dir/cut/scaling.partial.csv"
NNTRAIN_BIN=/bin/false timeout 600 python3 "$repo/scripts/scaling_study.py" --suites strong --host-only --quick \
    --ranks 1 --out "$dir/cut" >"$dir/none.out" 2>&1
rc=$?
if [ "$rc" -eq 1 ] && diff -r "$dir/cut" "$dir/earlier" >/dev/null &&
   grep -q "^scaling_study: no row measured (2 configuration(s) failed); scaling.csv, the plots and the projection in $dir/cut left as they were$" "$dir/none.out"
then echo "ok: every row failed: exit 1, every output left as it was"
else fail "every row failed: exit $rc, $(diff -rq "$dir/cut" "$dir/earlier" | tr '\n' ' ') ($(tail -2 "$dir/none.out"))"; fi
# a file of the user's among the outputs: refused before the first run, nothing written
mkdir "$dir/theirs" && echo "my notes" >"$dir/theirs/speedup.png"
study --ranks 1 --out "$dir/theirs" >"$dir/theirs.out" 2>&1
rc=$?
if [ "$rc" -eq 2 ] && [ "$(ls "$dir/theirs")" = speedup.png ] && [ "$(cat "$dir/theirs/speedup.png")" = "my notes" ] &&
   [ "$(cat "$dir/theirs.out")" = "scaling_study: $dir/theirs/speedup.png: exists and is not a plot written by plot_scaling.py; not replacing it" ]
then echo "ok: a file of the user's at speedup.png: exit 2, one line, before any run"
else fail "a file of the user's at speedup.png: exit $rc, $(ls "$dir/theirs" | tr '\n' ' '): $(head -3 "$dir/theirs.out")"; fi

[ $fails -eq 0 ] && echo "test_scaling_study: all passed" || echo "test_scaling_study: $fails failed"
[ $fails -eq 0 ]
