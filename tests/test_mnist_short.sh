#!/usr/bin/env bash
# End to end on real MNIST: a short run on the first 5000 training samples, 2 ranks,
# must reach a sane test accuracy on the full 10,000-image test set.
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
if awk -v a="${acc:-0}" 'BEGIN { exit !(a >= 88.0) }'; then echo "1 passed, 0 failed"; exit 0; fi
echo "FAIL: accuracy ${acc:-none}% below 88%"
echo "0 passed, 1 failed"
exit 1
