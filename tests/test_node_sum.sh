#!/bin/bash
# The node's sum, five ways, one result: NN_NODE_SUM=static (each rank sums its
# slice), chunked (chunks to whichever rank is free, after a barrier), early (those
# chunks begun during backward, as every rank frees their layers:
# nn_reducer_set_early), factors (dense weight gradients made from the ranks'
# factors, factor_sum.h) and auto (the default: early and factors timed against each
# other on the first steps, switching every 2 steps here with NN_TUNE_BLOCK=2, then
# the faster kept: trainer_tuning.c) must give
# bit-identical checkpoints (h5diff without a tolerance over /model and /optimizer)
# and the same losses and accuracies: at 3, 4 and 5 ranks of one node (where the
# node keeps one copy of the weights), and at 2 with NN_NODE_PARAMS=shared; with
# dropout and max-norm, --threads 2, a convolutional front, and on MNIST with more
# than 256 rows a rank (where nn_gemm cuts the product into slices, so the factored
# sum adds each rank's product on its own) and a hidden layer of 300, cut into tiles
# both ways (8 x 3 at 3 ranks), and at 16 ranks (the 16-core node's count, finer tiles
# too); with 2 threads a rank, whose threads take the factored
# sum's items side by side, at 200 rows a rank (where its tiles take nn_gemm_sum, the
# running total in registers, but for the narrow last columns). The header names the
# sum in use. And nn_gemm's B
# read in place or packed (NN_GEMM_PACK=always) gives the same checkpoint.
# Usage: test_node_sum.sh NNTRAIN MAKE_TEST_DATA MPIEXEC MNIST WORKDIR
set -u
nntrain=$1 make_data=$2 mpiexec=$3 mnist=$4 dir=$5/node_sum
rm -rf "$dir" && mkdir -p "$dir" && "$make_data" "$dir" >/dev/null || exit 1
fails=0 passed=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# run NAME NP SUM [options]: trains into NAME.h5 and NAME.jsonl with NN_NODE_SUM=SUM
run() {
    local name=$1 np=$2 sum=$3
    shift 3
    rm -f "$dir/$name.h5" "$dir/$name.jsonl"
    NN_NODE_SUM=$sum NN_TUNE_BLOCK=2 timeout 300 "$mpiexec" -n "$np" -x NN_NODE_SUM -x NN_NODE_PARAMS -x NN_TUNE_BLOCK \
        -x NN_FACTOR_MIN_TILE -x NN_FACTOR_ITEMS "$nntrain" --checkpoint "$dir/$name.h5" \
        --metrics "$dir/$name.jsonl" --thread-tuning off --timeout 120 "$@" >"$dir/$name.out" 2>&1 ||
        fail "$name: nntrain exited $?: $(grep -m1 '^nntrain: ' "$dir/$name.out" | grep -v network)"
}
scores() { grep -o '"\(train_loss\|test_loss\|test_accuracy\)": [^,]*' "$dir/$1.jsonl" 2>/dev/null; }

# check WHAT NP [options]: the five sums agree, and the headers name the sums in use
check() {
    local what=$1 np=$2 s
    shift 2
    for s in static chunked early factors auto; do run "$s" "$np" "$s" "$@"; done
    grep -q 'or factored sum, timed on the first steps' "$dir/auto.out" ||
        fail "$what: the header does not say the sums are timed: $(grep -m1 allreduce "$dir/auto.out")"
    grep -q 'factored sum begun in backward' "$dir/factors.out" ||
        fail "$what: the header does not say 'factored sum begun in backward': $(grep -m1 allreduce "$dir/factors.out")"
    grep -q 'chunked sum begun in backward' "$dir/early.out" ||
        fail "$what: the header does not say 'chunked sum begun in backward': $(grep -m1 allreduce "$dir/early.out")"
    grep -q 'chunked sum)' "$dir/chunked.out" ||
        fail "$what: the header does not say 'chunked sum)': $(grep -m1 allreduce "$dir/chunked.out")"
    grep -m1 '; allreduce shm (shared memory, 1 node' "$dir/static.out" | grep -vq ' sum[ ),]' ||
        fail "$what: the header names a chunked or factored sum for static: $(grep -m1 allreduce "$dir/static.out")"
    for s in static chunked early auto; do
        if ! h5diff "$dir/factors.h5" "$dir/$s.h5" /model /model >"$dir/diff" 2>&1 ||
            ! h5diff "$dir/factors.h5" "$dir/$s.h5" /optimizer /optimizer >>"$dir/diff" 2>&1; then
            fail "$what: the factored and $s sums' checkpoints differ: $(head -c 300 "$dir/diff")"
        elif [ -z "$(scores factors)" ] || [ "$(scores factors)" != "$(scores "$s")" ]; then
            fail "$what: the factored and $s sums' metrics differ (or are missing)"
        else
            passed=$((passed + 1))
            echo "ok   $what: factored = $s"
        fi
    done
}

small=(--data "$dir/good.h5" --batch-size 16 --epochs 3 --lr 0.3)
check "3 ranks, tanh" 3 "${small[@]}" --layers 16,12,8,3 --activation tanh
# 12 steps: the timing (3 warm-up steps, 2 rounds of 2 blocks of 2) is over after 11
if grep -q '^nntrain: mean step with the factored sum begun in backward, the chunked sum begun in backward: [0-9]*, [0-9]* us (blocks of 2 steps): training goes on with the \(factored\|chunked\) sum' "$dir/auto.out"; then
    passed=$((passed + 1)); echo "ok   auto: both sums timed, one kept, said"
else fail "auto: no line on the sums timed: $(grep -m1 'mean step' "$dir/auto.out")"; fi
# auto stopped after 2 of 6 epochs and resumed (its timing starts over: 3 warm-up steps
# and 2 rounds of 2 blocks of 2 in the 16 steps left) = the same 6 epochs in one run
sixth=("${small[@]}" --layers 16,12,8,3 --activation tanh --epochs 6)
run straight 3 early "${sixth[@]}"
resume_run() { # NAME [nntrain options]: auto, into resumed.h5
    NN_NODE_SUM=auto NN_TUNE_BLOCK=2 timeout 300 "$mpiexec" -n 3 -x NN_NODE_SUM -x NN_TUNE_BLOCK "$nntrain" \
        --checkpoint "$dir/resumed.h5" --thread-tuning off --timeout 120 "${@:2}" \
        >"$dir/$1.out" 2>&1
}
rm -f "$dir/resumed.h5"
NNTRAIN_STOP_AT_STEP=8 resume_run stopped "${sixth[@]}"; rc=$?
resume_run resumed --resume "$dir/resumed.h5" || fail "auto, resumed: nntrain exited $?"
if [ "$rc" -eq 75 ] && grep -q 'training goes on with' "$dir/resumed.out" &&
    h5diff "$dir/straight.h5" "$dir/resumed.h5" /model /model >"$dir/diff" 2>&1 &&
    h5diff "$dir/straight.h5" "$dir/resumed.h5" /optimizer /optimizer >>"$dir/diff" 2>&1; then
    passed=$((passed + 1)); echo "ok   auto, stopped after 2 epochs and resumed (timed again) = one run"
else fail "auto, stopped (exit $rc, 75 expected) and resumed: not timed again, or not the one run's checkpoint: $(head -c 300 "$dir/diff")"; fi
# the metrics name the sum each epoch ended on: the one kept, for auto; none for static
kept=early; grep -q 'goes on with the factored sum' "$dir/auto.out" && kept=factors
sums_said=$(for s in static chunked early factors auto; do
    tail -n 1 "$dir/$s.jsonl" | grep -o '"node_sum": "[a-z]*"' || echo none; done | tr '\n' ' ')
if [ "$sums_said" = "none \"node_sum\": \"chunked\" \"node_sum\": \"early\" \"node_sum\": \"factors\" \"node_sum\": \"$kept\" " ]; then
    passed=$((passed + 1)); echo "ok   the metrics' node_sum: $sums_said"
else fail "the metrics' node_sum (static chunked early factors auto, auto kept $kept): $sums_said"; fi
check "4 ranks, relu, dropout, max-norm" 4 "${small[@]}" --layers 16,40,24,3 --activation relu --dropout 0.3 \
    --input-dropout 0.1 --max-norm 2
check "5 ranks, 2 threads each" 5 "${small[@]}" --layers 16,64,3 --threads 2
NN_NODE_PARAMS=shared check "2 ranks, one shared copy of the weights" 2 "${small[@]}" --layers 16,12,8,3
check "3 ranks, a convolutional front" 3 "${small[@]}" --layers conv2x2x4p1,pool2,10,3 --activation relu
if [ -f "$mnist" ]; then
    check "3 ranks, MNIST, 400 rows a rank" 3 --data "$mnist" --train-limit 2400 --batch-size 1200 --epochs 2 \
        --lr 0.2 --layers 784,300,10
    mnist2=(--data "$mnist" --train-limit 2400 --batch-size 600 --epochs 2 --lr 0.2 --layers 784,300,10 --threads 2)
    check "3 ranks of 2 threads, MNIST, 200 rows a rank" 3 "${mnist2[@]}"
    # finer tiles (the plan's knobs, for measurements): more of them, the same bits
    NN_FACTOR_MIN_TILE=512 NN_FACTOR_ITEMS=64 run fine 3 factors "${mnist2[@]}"
    tiles() { grep -o '[0-9]* tiles a step' "$dir/$1.out" | grep -o '^[0-9]*'; }
    if [ -n "$(tiles factors)" ] && [ "$(tiles fine)" -gt $(($(tiles factors) * 2)) ] 2>/dev/null &&
        h5diff "$dir/early.h5" "$dir/fine.h5" /model /model >"$dir/diff" 2>&1; then
        passed=$((passed + 1)); echo "ok   finer tiles ($(tiles fine), not $(tiles factors)): the same checkpoint"
    else fail "finer tiles: $(tiles fine) against $(tiles factors) tiles, or a checkpoint unlike the early sum's: $(head -c 300 "$dir/diff")"; fi
    # the 16-core node's count: 16 ranks of the reference network at batch 100 (6 or 7
    # rows a rank), and the finer tiles its kit measures there (NN_FACTOR_MIN_TILE=2800)
    ref16=(--data "$mnist" --train-limit 1600 --batch-size 100 --epochs 2 --lr 0.3 --layers 784,50,100,10)
    check "16 ranks, the reference network, 6-7 rows a rank" 16 "${ref16[@]}"
    NN_FACTOR_MIN_TILE=2800 run fine16 16 factors "${ref16[@]}"
    if [ "$(tiles fine16)" -gt "$(tiles factors)" ] 2>/dev/null &&
        h5diff "$dir/early.h5" "$dir/fine16.h5" /model /model >"$dir/diff" 2>&1; then
        passed=$((passed + 1)); echo "ok   16 ranks, finer tiles ($(tiles fine16), not $(tiles factors)): the same checkpoint"
    else fail "16 ranks, finer tiles: $(tiles fine16) against $(tiles factors) tiles, or a checkpoint unlike the early sum's: $(head -c 300 "$dir/diff")"; fi
else
    fail "$mnist is missing: run scripts/fetch_mnist.sh first (scripts/test.sh does)"
fi
# where it does not apply: --accumulate keeps the chunked sum (the factors hold one micro-batch)
run acc 3 factors "${small[@]}" --layers 16,12,3 --accumulate 2
if grep -q 'chunked sum' "$dir/acc.out"; then passed=$((passed + 1)); echo "ok   --accumulate 2: the chunked sum"
else fail "--accumulate 2 should keep the chunked sum: $(grep -m1 allreduce "$dir/acc.out")"; fi

# nn_gemm reads B in place for a few tiles of rows (a rank's rows at 3 ranks here),
# NN_GEMM_PACK=always packs it as before: the same bits
if [ -f "$mnist" ]; then
    for pack in in-place always; do
        NN_GEMM_PACK=$pack timeout 300 "$mpiexec" -n 3 -x NN_GEMM_PACK "$nntrain" --data "$mnist" --train-limit 1800 \
            --batch-size 18 --epochs 1 --layers 784,50,100,10 --checkpoint "$dir/pack-$pack.h5" --thread-tuning off \
            --timeout 120 >"$dir/pack-$pack.out" 2>&1 || fail "NN_GEMM_PACK=$pack: nntrain exited $?"
    done
    if h5diff "$dir/pack-in-place.h5" "$dir/pack-always.h5" /model /model >"$dir/diff" 2>&1; then
        passed=$((passed + 1)); echo "ok   B read in place = packed (MNIST, 6 rows a rank)"
    else fail "B read in place and packed differ: $(head -c 300 "$dir/diff")"; fi
fi

echo "$passed passed, $fails failed"
[ "$fails" -eq 0 ]
