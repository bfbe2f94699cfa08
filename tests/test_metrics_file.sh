#!/usr/bin/env bash
# Whose records a metrics file holds, and that they reach it:
#  - a resumed run cuts the file back to the checkpoint's epoch only where the file's
#    record of that epoch is the checkpoint's (training loss, bit for bit; an older
#    checkpoint without it: the test accuracy); another run's file, or one with
#    records after that epoch and none of it, is refused (exit 2, one line, the file
#    unchanged). Until 2026-12-07 such a file was cut and mixed with the resumed run's.
#  - the file removed or replaced during the run: exit 1 at the next record, one line,
#    nothing written to what is at the path now. Until 2026-12-07 the records went on
#    into the removed file, exit 0.
# Usage: test_metrics_file.sh NNTRAIN MAKE_TEST_DATA CKPT_TAMPER MPIEXEC WORKDIR
set -u
nntrain=$1 make_data=$2 tamper=$3 mpiexec=$4 dir=$5/metrics_file
rm -rf "$dir" && mkdir -p "$dir" && "$make_data" "$dir" >/dev/null || { echo "FAIL cannot make test data"; exit 1; }
cd "$dir" || exit 1
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -f err ] && sed 's/^/     /' err | head -5; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }
holder=
in_session() { [ -n "$holder" ] && ps -e -o pid=,sid= | awk -v s="$holder" '$2 == s {print $1}'; }
trap 'in_session | xargs -r kill -KILL 2>/dev/null' EXIT

small=(--data good.h5 --layers 16,8,3 --batch-size 8 --train-limit 48)
run() { timeout 120 "$nntrain" "${small[@]}" "$@" >out 2>err; rc=$?; }
sum() { sha256sum "$1" | cut -d' ' -f1; }
# refused NAME FILE TEXT ARGS...: the run exits 2 with the one line TEXT, FILE unchanged
refused() {
    local name=$1 file=$2 text=$3; shift 3
    local before; before=$(sum "$file")
    run "$@"
    if [ "$rc" -eq 2 ] && [ "$(cat err)" = "nntrain: $text" ] && [ "$(sum "$file")" = "$before" ]; then ok "$name"
    else fail "$name (exit $rc, $(sum "$file" | cut -c1-8) was ${before:0:8})"; fi
}
epochs() { python3 -c 'import json, sys; print(*[json.loads(l)["epoch"] for l in open(sys.argv[1])])' "$1"; }

# ---- (A) a resumed run's metrics file ----
run --epochs 4 --metrics mA.jsonl
check "run A: 4 epochs" [ "$rc" -eq 0 ]
run --epochs 1 --seed 7 --checkpoint kB.h5
check "run B: 1 epoch, a checkpoint" [ "$rc" -eq 0 ]
cp kB.h5 kB.orig
refused "run B resumed onto run A's metrics: refused, A's file unchanged" mA.jsonl \
    "--metrics mA.jsonl: holds another run's metrics (epoch 1's training loss is not the checkpoint's); not cutting it" \
    --resume kB.h5 --epochs 2 --checkpoint kB.h5 --metrics mA.jsonl
check "... and B's checkpoint unchanged" cmp -s kB.h5 kB.orig

# an older checkpoint (no training loss, no attribute checksum): its test accuracy is compared
cp kB.orig kB_old.h5 && "$tamper" kB_old.h5 drop /results train_loss && "$tamper" kB_old.h5 unsigned
refused "an older checkpoint onto another run's metrics: refused by the test accuracy" mA.jsonl \
    "--metrics mA.jsonl: holds another run's metrics (epoch 1's test accuracy is not the checkpoint's); not cutting it" \
    --resume kB_old.h5 --epochs 2 --metrics mA.jsonl

# the run's own file, resumed from its epoch-2 checkpoint: cut back to epoch 2, then 3 and 4 again
run --epochs 2 --checkpoint kC.h5 --metrics mC.jsonl && run --resume kC.h5 --epochs 4 --checkpoint kC2.h5 --metrics mC.jsonl
check "run C: 4 epochs in two parts" [ "$rc" -eq 0 ]
cp mC.jsonl mC.full
run --resume kC.h5 --epochs 4 --metrics mC.jsonl
if [ "$rc" -eq 0 ] && [ "$(epochs mC.jsonl)" = "1 2 3 4" ] && [ "$(head -2 mC.jsonl)" = "$(head -2 mC.full)" ]; then
    ok "its own file resumed from an earlier checkpoint: cut back to it, epochs 1 2 3 4"
else fail "its own file resumed from an earlier checkpoint: exit $rc, epochs $(epochs mC.jsonl)"; fi
cp mC.full mC_old.jsonl && cp kC.h5 kC_old.h5 && "$tamper" kC_old.h5 drop /results train_loss &&
    "$tamper" kC_old.h5 unsigned
run --resume kC_old.h5 --epochs 4 --metrics mC_old.jsonl
name="... and from an older checkpoint (no training loss)"
if [ "$rc" -eq 0 ] && [ "$(epochs mC_old.jsonl)" = "1 2 3 4" ]; then ok "$name"; else fail "$name: exit $rc"; fi

# records of later epochs, none of the checkpoint's: nothing shows they are the run's
grep -v '^{"epoch": 2,' mC.full >mC_gap.jsonl
refused "records after the checkpoint's epoch but none of it: refused" mC_gap.jsonl \
    "--metrics mC_gap.jsonl: has records of epochs after the checkpoint's epoch 2 but none of epoch 2 to show they are this run's; not cutting it" \
    --resume kC.h5 --epochs 4 --metrics mC_gap.jsonl
# a checkpoint before the end of epoch 1 has no epoch to compare: a file with records is refused
NNTRAIN_STOP_AT_STEP=3 run --epochs 2 --checkpoint kD.h5
check "run D: stopped in epoch 1 (exit $rc)" [ "$rc" -eq 75 ]
refused "a checkpoint of epoch 0 onto a file with records: refused" mA.jsonl \
    "--metrics mA.jsonl: has records, but the checkpoint has no completed epoch to show they are this run's; not cutting it" \
    --resume kD.h5 --metrics mA.jsonl
# a file with no records of the checkpoint's epoch or later is the run's to append to
: >empty.jsonl
run --resume kC.h5 --epochs 4 --metrics empty.jsonl
name="an empty file on resume: epochs 3 4, no warning"
if [ "$rc" -eq 0 ] && [ "$(epochs empty.jsonl)" = "3 4" ] && ! grep -q warning out err; then ok "$name"
else fail "$name: exit $rc"; fi
run --resume kC.h5 --epochs 4 --metrics new.jsonl
name="a new file on resume: epochs 3 4"
if [ "$rc" -eq 0 ] && [ "$(epochs new.jsonl)" = "3 4" ]; then ok "$name"; else fail "$name: exit $rc"; fi
head -1 mC.full >short.jsonl # the record of epoch 2 failed (a full disk), its checkpoint was saved
run --resume kC.h5 --epochs 4 --metrics short.jsonl
name="a file missing the checkpoint's epoch (its write failed): kept, a warning, epochs 1 3 4"
if [ "$rc" -eq 0 ] && [ "$(epochs short.jsonl)" = "1 3 4" ] && grep -q "warning: short.jsonl has no records of epochs 2 to 2" out
then ok "$name"; else fail "$name: exit $rc"; fi

# ---- (B) the metrics file removed or replaced during the run ----
# under_run NAME COMMAND...: a long -np 2 run with --metrics NAME.jsonl; once it has
# records, COMMAND changes the path; $rc the run's exit
under_run() {
    local name=$1; shift
    rm -f "$name.jsonl"
    setsid timeout 120 "$mpiexec" -n 2 "$nntrain" "${small[@]}" --epochs 100000 --metrics "$name.jsonl" \
        >"$name.out" 2>&1 &
    holder=$!
    for _ in $(seq 600); do [ -s "$name.jsonl" ] && break; sleep 0.1; done
    "$@"
    local start=$SECONDS
    wait "$holder"; rc=$?
    waited=$((SECONDS - start))
    for _ in $(seq 300); do [ -z "$(in_session)" ] && break; sleep 0.1; done
}
under_run removed rm removed.jsonl
if [ "$rc" -eq 1 ] && [ "$waited" -lt 60 ] && [ ! -e removed.jsonl ] &&
   grep -Eq "^nntrain: --metrics removed.jsonl: removed or replaced during the run; the records from epoch [0-9]+ on are not written$" removed.out
then ok "the metrics file removed mid-run: exit 1, one line"
else fail "the metrics file removed mid-run: exit $rc after ${waited}s: $(grep nntrain removed.out | head -2)"; fi
printf 'notes\n' >notes.txt
under_run replaced sh -c 'cp notes.txt replaced.new && mv replaced.new replaced.jsonl'
if [ "$rc" -eq 1 ] && [ "$waited" -lt 60 ] && cmp -s notes.txt replaced.jsonl &&
   grep -Eq "^nntrain: --metrics replaced.jsonl: removed or replaced during the run; the records from epoch [0-9]+ on are not written$" replaced.out
then ok "the metrics file replaced mid-run: exit 1, one line, the new file untouched"
else fail "the metrics file replaced mid-run: exit $rc after ${waited}s: $(grep nntrain replaced.out | head -2)"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
