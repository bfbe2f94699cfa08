#!/usr/bin/env bash
# End to end on real MNIST: a short run on the first 5000 training samples, 2 ranks,
# must reach a sane test accuracy on the full 10,000-image test set; then the same
# with the last 1000 of them held out (--validation 1000): 4000 train on, and the
# held-out accuracy is reported every epoch, close to the test accuracy.
# Usage: test_mnist_short.sh NNTRAIN MPIEXEC DATA WORKDIR
set -u
nntrain=$1 mpiexec=$2 data=$3 dir=$4
if [ ! -f "$data" ]; then
    echo "FAIL: $data is missing: run scripts/fetch_mnist.sh first (scripts/test.sh does)"
    exit 1
fi
timeout 300 "$mpiexec" -n 2 "$nntrain" --data "$data" --train-limit 5000 --epochs 5 --batch-size 32 --lr 0.3 \
    --metrics "$dir/mnist_short.jsonl" | tee "$dir/mnist_short.log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || { echo "FAIL: nntrain exited $rc"; exit 1; }
acc=$(sed -n 's/.*final test accuracy \([0-9.]*\)%.*/\1/p' "$dir/mnist_short.log")
echo "final test accuracy: ${acc:-none}%"
passed=0 failed=0
if awk -v a="${acc:-0}" 'BEGIN { exit !(a >= 88.0) }'; then passed=$((passed + 1)); echo "ok   accuracy ${acc}%"
else failed=$((failed + 1)); echo "FAIL: accuracy ${acc:-none}% below 88%"; fi

timeout 300 "$mpiexec" -n 2 "$nntrain" --data "$data" --train-limit 5000 --validation 1000 --epochs 5 --batch-size 32 \
    --lr 0.3 --metrics "$dir/mnist_val.jsonl" >"$dir/mnist_val.log" 2>&1
rc=$?
val=$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(len(r), r[-1]["validation_accuracy"], r[-1]["test_accuracy"])' "$dir/mnist_val.jsonl" 2>/dev/null)
read -r epochs vacc tacc <<<"${val:-0 0 0}"
if [ "$rc" -eq 0 ] && grep -q "4000 train (+1000 validation) / 10000 test" "$dir/mnist_val.log" && [ "$epochs" -eq 5 ] &&
   awk -v v="$vacc" -v t="$tacc" 'BEGIN { exit !(v > 0.85 && v - t < 0.05 && t - v < 0.05) }'
then passed=$((passed + 1)); echo "ok   --validation 1000: 4000 train on, validation accuracy $vacc every epoch (test $tacc)"
else failed=$((failed + 1)); echo "FAIL: --validation 1000 (exit $rc, validation $vacc, test $tacc)"; cat "$dir/mnist_val.log"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
