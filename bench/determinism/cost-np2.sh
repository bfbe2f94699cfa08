#!/bin/bash
# What --deterministic costs at -np 2 on this machine: the default mode against
# --deterministic, alternated round by round in one command, on the reference network
# (784-50-100-10 sigmoid, batch 100, V = 10) and 784-800-800-10 relu (batch 512, V = 8).
# OLD=path/to/another/nntrain adds a third column, that binary's --deterministic (for
# a before-and-after of a change). Writes CSV to stdout: round,network,mode,
# samples_per_second (the median of the epochs after the first). From the repository
# root, after building and scripts/fetch_mnist.sh:
#   bench/determinism/cost-np2.sh [rounds] > out.csv
set -u
rounds=${1:-3}
. scripts/mpi_env.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "round,network,mode,samples_per_second"
run1() { # MODE NETWORK BINARY nntrain-options...
    local mode=$1 net=$2 bin=$3; shift 3
    OMP_NUM_THREADS=1 mpirun -np 2 "$bin" --data data/mnist.h5 --thread-tuning off --metrics "$tmp/m.jsonl" "$@" \
        >"$tmp/out" 2>&1 || { echo "$mode $net failed: $(tail -1 "$tmp/out")" >&2; return; }
    python3 -c "
import json
rs = [json.loads(l) for l in open('$tmp/m.jsonl')][1:]
print('$round,$net,$mode,%d' % sorted(r['samples_per_second'] for r in rs)[len(rs) // 2])"
    rm -f "$tmp/m.jsonl"
}
ref=(--epochs 4)
big=(--layers 784,800,800,10 --activation relu --batch-size 512 --epochs 3 --train-limit 20480)
for round in $(seq "$rounds"); do
    for net in ref big; do
        declare -n opts=$net
        run1 default $net build/nntrain "${opts[@]}"
        run1 det $net build/nntrain "${opts[@]}" --deterministic
        [ -n "${OLD:-}" ] && run1 det-old $net "$OLD" "${opts[@]}" --deterministic
    done
done
