#!/usr/bin/env bash
# scripts/scaling_study.py --deterministic (issue 21): every layout of the strong suite
# trains the same model, so the study reports one test accuracy for all its rows and
# says so. Without the flag the same rows give different accuracies, so the check can
# tell. Small: the reference network, 3,000 MNIST samples, 1, 2 and 3 ranks plus the
# ranks x threads layouts of this host. A study interrupted keeps the rows it measured.
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

# Ctrl-C after the first row: the rows measured are written, not lost with the rest
NNTRAIN_BIN=$nntrain timeout 600 python3 "$repo/scripts/scaling_study.py" --suites strong --host-only --quick \
    --train-limit 3000 --ranks 1,2 --out "$dir/cut" >"$dir/cut.out" 2>&1 &
pid=$!
for _ in $(seq 6000); do [ "$(grep -c '^scaling_study: strong' "$dir/cut.out")" -ge 2 ] && break; sleep 0.05; done
kill -INT "$pid"
wait "$pid"
rc=$?
rows=$(column "$dir/cut/scaling.csv" ranks 2>/dev/null | wc -l)
if [ "$rc" -ne 0 ] && [ "$rows" -ge 1 ] && grep -q "interrupted; the $rows rows measured are in" "$dir/cut.out"; then
    echo "ok: interrupted after its first row: exit $rc, $rows row(s) kept"
else fail "interrupted after its first row: exit $rc, $rows rows in the CSV ($(tail -2 "$dir/cut.out"))"; fi

[ $fails -eq 0 ] && echo "test_scaling_study: all passed" || echo "test_scaling_study: $fails failed"
[ $fails -eq 0 ]
