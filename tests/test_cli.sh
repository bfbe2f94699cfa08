#!/usr/bin/env bash
# nntrain's command line end to end under mpiexec: a good run succeeds and writes
# its metrics; the three sum modes train alike; --help and --version; runtime
# failures (divergence) exit 1 with their reason. (Every bad input ->
# exit 2 with one line is the table of test_hostile.sh.)
# Usage: test_cli.sh NNTRAIN MAKE_TEST_DATA MPIEXEC WORKDIR
set -u
nntrain=$1 make_data=$2 mpiexec=$3 dir=$4/cli
here=$(cd "$(dirname "$0")" && pwd) # check_metrics.py lives next to this script
rm -rf "$dir" && mkdir -p "$dir" && "$make_data" "$dir" || { echo "FAIL cannot make test data"; exit 1; }
passed=0 failed=0

# run NP ARGS... : runs nntrain, leaves exit code in $rc, stdout in $out, stderr in $err
run() {
    local np=$1; shift
    timeout 60 "$mpiexec" -n "$np" "$nntrain" "$@" >"$dir/out" 2>"$dir/err"
    rc=$? out=$(cat "$dir/out") err=$(cat "$dir/err")
}
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; echo "     exit $rc; stderr: $err"; }

good=(--data "$dir/good.h5" --layers 16,8,3 --batch-size 8)

run 2 "${good[@]}" --epochs 3 --metrics "$dir/m.jsonl"
if [ "$rc" -eq 0 ] && [[ "$out" == *"done: 3 epochs"* ]]; then ok "good run"; else fail "good run"; fi
if [ -f "$dir/m.jsonl" ] && [ "$(wc -l <"$dir/m.jsonl")" -eq 3 ] &&
   python3 "$here/check_metrics.py" cli-run "$dir/m.jsonl"; then ok "metrics JSON Lines"; else fail "metrics JSON Lines"; fi

# The default dataset missing (the usual first run outside the repository): one line
# that says how to make it; a --data named by the user is only "cannot read".
mkdir -p "$dir/elsewhere"
rc=$(cd "$dir/elsewhere" && timeout 60 "$mpiexec" -n 2 "$nntrain" --epochs 1 >"$dir/out" 2>"$dir/err"; echo $?)
err=$(cat "$dir/err")
if [ "$rc" -eq 2 ] && [ "$(grep -c '^nntrain: ' <<<"$err")" -eq 1 ] &&
   grep -qF "nntrain: data/mnist.h5: no such file (the default --data, relative to this directory): make it with scripts/fetch_mnist.sh, or give --data FILE" <<<"$err"
then ok "the default data missing: says how to make it"; else fail "the default data missing: says how to make it"; fi

# An environment knob set empty (job scripts export NAME= for "no choice") is unset:
# the same header and the same training as without it (nn/env.h).
run 3 "${good[@]}" --epochs 2 --metrics "$dir/plain.jsonl"
plain_header=$(head -n 1 <<<"$out")
NN_NODE_SUM= NN_NODE_PARAMS= NN_GEMM_PACK= NN_FACTOR_ITEMS= NN_TUNE_BLOCK= \
    run 3 "${good[@]}" --epochs 2 --metrics "$dir/empty.jsonl"
if [ "$rc" -eq 0 ] && [ -n "$plain_header" ] && [ "$(head -n 1 <<<"$out")" = "$plain_header" ] &&
   cmp -s <(cut -d, -f1-4 "$dir/plain.jsonl") <(cut -d, -f1-4 "$dir/empty.jsonl"); then
    ok "empty environment knobs: as unset"
else fail "empty environment knobs: as unset (header '$(head -n 1 <<<"$out")', not '$plain_header')"; fi

# The three ways of summing gradients give the same training, bit for bit, on 2
# ranks (a + b == b + a in floating point).
# Each run must exit 0 and name its own mode in the header (else a mode that was
# ignored would compare the default with itself).
modes_ran=0
for mode in shm mpi overlap; do
    run 2 "${good[@]}" --layers 16,32,32,3 --epochs 3 --allreduce "$mode" --metrics "$dir/sum-$mode.jsonl"
    [ "$rc" -eq 0 ] && grep -q "; allreduce $mode\b" <<<"$out" && modes_ran=$((modes_ran + 1))
done
if [ "$modes_ran" -eq 3 ] && cmp -s <(cut -d, -f1-4 "$dir/sum-shm.jsonl") <(cut -d, -f1-4 "$dir/sum-mpi.jsonl") &&
   cmp -s <(cut -d, -f1-4 "$dir/sum-shm.jsonl") <(cut -d, -f1-4 "$dir/sum-overlap.jsonl") &&
   [ "$(wc -l <"$dir/sum-shm.jsonl")" -eq 3 ]; then ok "--allreduce shm, mpi, overlap: identical losses"
else fail "--allreduce shm, mpi, overlap: identical losses ($modes_ran of 3 ran, exit 0, their mode in the header)"; fi

# --threads 2: the first steps are timed on both threads and on one (3 warm-up
# steps, then 2 rounds of a block on each; test_thread_tuning checks the schedule
# and the choice),
# and training goes on the faster way, which it says; the results are those of one
# thread, bit for bit, and so with the tuning off, and neither says anything of it.
# (Steps this small make blocks of at most 256 steps: 3 + 2 x 2 x 256 = 1027 steps to
# measure, fewer than the run's 18 x 64.)
tuning=(--data "$dir/good.h5" --layers 16,32,32,3 --batch-size 1 --epochs 18)
run 1 "${tuning[@]}" --threads 2 --metrics "$dir/tuned.jsonl"
tuned_line=$(grep -E '^nntrain: mean step on 2, 1 threads: ([0-9]+|-), ([0-9]+|-) us \(blocks of [0-9]+ steps\): training goes on with (2 threads|1 thread) per rank$' <<<"$out")
tuned_threads=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])["threads"])' "$dir/tuned.jsonl" 2>/dev/null)
[[ $tuned_line == *"with 2 threads"* ]] && expect_threads=2 || expect_threads=1
run 1 "${tuning[@]}" --threads 1 --metrics "$dir/one.jsonl"
silent=$(grep -c "mean step on" <<<"$out")
run 1 "${tuning[@]}" --threads 2 --thread-tuning off --metrics "$dir/untuned.jsonl"
silent=$((silent + $(grep -c "mean step on" <<<"$out")))
if [ -n "$tuned_line" ] && [ "$tuned_threads" = "$expect_threads" ] && [ "$silent" -eq 0 ] &&
   cmp -s <(cut -d, -f1-4 "$dir/tuned.jsonl") <(cut -d, -f1-4 "$dir/one.jsonl") &&
   cmp -s <(cut -d, -f1-4 "$dir/tuned.jsonl") <(cut -d, -f1-4 "$dir/untuned.jsonl") &&
   [ "$(wc -l <"$dir/tuned.jsonl")" -eq 18 ]
then ok "--thread-tuning: the choice is said and recorded; losses identical to 1 thread and to tuning off"
else fail "--thread-tuning: expected the choice's line, metrics threads $expect_threads (got '$tuned_threads'), identical losses"; fi

run 1 --help
missing=()
for o in --data --layers --activation --epochs --batch-size --lr --momentum \
         --weight-decay --seed --train-limit --metrics --threads --checkpoint --checkpoint-every --resume \
         --allreduce --lr-schedule --loss --timeout --thread-tuning --version; do
    [[ "$out" == *"$o"* ]] || missing+=("$o")
done
if [ "$rc" -eq 0 ] && [ "${#missing[@]}" -eq 0 ]; then ok "--help lists every option"
else fail "--help lists every option (missing: ${missing[*]:-none})"; fi
run 1 --version
if [ "$rc" -eq 0 ] && [[ "$out" =~ ^nntrain\ [0-9]+\.[0-9]+\.[0-9]+$ ]]; then ok "--version"; else fail "--version"; fi


# The leftover of a killed checkpoint write (FILE.tmp) goes at the next start, even
# when that run then stops on bad input; here one whose blocks never reached the disk
# (zeros; test_outputs has a cut-off one, and a user's file there, which stays).
head -c 100000 /dev/zero >"$dir/stale.h5.tmp"
run 2 --data "$dir/good.h5" --checkpoint "$dir/stale.h5"
if [ "$rc" -eq 2 ] && [ ! -e "$dir/stale.h5.tmp" ]; then ok "a stale FILE.tmp is removed at start"
else fail "a stale FILE.tmp is removed at start (exit $rc)"; fi

# An output is a regular file: /dev/full (or any device) is refused before any work.
# (A real full disk, a tmpfs that fills up, is test_outputs.sh's: exit 1, whole records.)
run 2 "${good[@]}" --epochs 2 --metrics /dev/full
if [ "$rc" -eq 2 ] && [[ "$err" == *"--metrics /dev/full: is a device"* ]]
then ok "metrics on a device: exit 2 and the reason"; else fail "metrics on a device: expected exit 2"; fi

# Divergence ends a run with exit 1 and says where; no NaN or Inf reaches a checkpoint
# or the metrics, and the line says whether a checkpoint is there. Batch 4 goes NaN in
# epoch 2 or grows over 100 times its first epoch's loss while staying finite; a
# machine with other kernels (AVX-512) may round its way to the other reason, so
# either is accepted (test_textbook checks the non-finite detectors on their own).
# Since the loss of a first epoch is bounded too (100 x ln(classes)), the runaway can end the first epoch.
diverged_reason='training diverged: (the loss or a weight is not finite|the training loss .* is over 100 (times the first epoch.s \([^)]*\)|x ln\([0-9]+ classes\) = [0-9]+)) at epoch [0-9]+, step [0-9]+'
nonfinite() { h5dump "$1" 2>/dev/null | grep -qiwE 'nan|-?inf'; } # h5dump writes them so
# the checkpoint CK, if any, is from before the epoch that diverged: it never counts it
# complete, and (with METRICS) each epoch it counts has its record there, the diverged one none
before_divergence() {
    local ck=$1 metrics=${2:-} done_epochs bad_epoch
    [ ! -e "$ck" ] && return 0
    done_epochs=$(h5dump -a /progress/epochs_completed "$ck" 2>/dev/null | grep -o '(0): [0-9]*' | grep -o '[0-9]*$')
    bad_epoch=$(grep -o 'at epoch [0-9]*' "$dir/err" | grep -o '[0-9]*$')
    [ -n "$done_epochs" ] && [ -n "$bad_epoch" ] && [ "$done_epochs" -lt "$bad_epoch" ] &&
        { [ -z "$metrics" ] || [ "$(grep -c . "$metrics")" -eq "$done_epochs" ]; }
}
rm -f "$dir/diverged.h5" "$dir/diverged.jsonl"
run 2 --data "$dir/good.h5" --layers 16,8,3 --batch-size 4 --lr 100 --weight-decay 1 --epochs 20 \
    --checkpoint "$dir/diverged.h5" --metrics "$dir/diverged.jsonl"
said="No checkpoint was written before it."; [ -e "$dir/diverged.h5" ] && said="The last checkpoint is kept."
if [ "$rc" -eq 1 ] && grep -qE "^nntrain: $diverged_reason.*\. $said\$" "$dir/err" &&
   ! nonfinite "$dir/diverged.h5" && before_divergence "$dir/diverged.h5" "$dir/diverged.jsonl" &&
   ! grep -qiE 'nan|inf' "$dir/diverged.jsonl"
then ok "NaN divergence: exit 1, epoch and step named, '$said', no NaN in the checkpoint or metrics"
else fail "NaN divergence: expected exit 1, 'training diverged', '$said', a clean checkpoint and metrics: $err"; fi
# the same with a checkpoint every 2 steps: one is there (written in the epoch that
# diverges, before its end: its weights huge but finite), whole, and the line says it is kept
rm -f "$dir/diverged.h5"
run 2 --data "$dir/good.h5" --layers 16,8,3 --batch-size 4 --lr 100 --weight-decay 1 --epochs 20 \
    --checkpoint "$dir/diverged.h5" --checkpoint-every 2
if [ "$rc" -eq 1 ] && grep -qE "^nntrain: $diverged_reason.*\. The last checkpoint is kept\.\$" "$dir/err" &&
   h5dump -H "$dir/diverged.h5" >/dev/null 2>&1 && h5dump -d /model/dense1/weight "$dir/diverged.h5" >/dev/null 2>&1 &&
   ! nonfinite "$dir/diverged.h5" && before_divergence "$dir/diverged.h5"
then ok "divergence after checkpoints: the last one kept, no NaN or Inf in any of its arrays"
else fail "divergence after checkpoints: expected exit 1, 'The last checkpoint is kept.' and a finite checkpoint: $err"; fi
run 2 --data "$dir/good.h5" --layers 16,8,3 --batch-size 8 --lr 100 --weight-decay 1 --epochs 20
if [ "$rc" -eq 1 ] && grep -qE "^nntrain: $diverged_reason" "$dir/err"
then ok "runaway loss: exit 1, 'training diverged'"
else fail "runaway loss: expected exit 1 and 'training diverged'"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
