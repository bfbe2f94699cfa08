#!/bin/bash
# nn_gemm reading B in place (the default) against packing every B panel
# (NN_GEMM_PACK=always, as before 5d004da) in whole trainings at a rank's few rows:
# one rank at batch 6 and 32 (a rank's share at 16 ranks of the reference network's
# 100 and 784-800-800-10's 512), and -np 2 at batch 12 and 64. ROUNDS (default 5)
# rounds, the two alternating. CSV to stdout (round,run,pack,sps,train_loss: sps the
# median of the epochs after the first). From the repository root, after building and
# scripts/fetch_mnist.sh:  bench/scaling/gemm-in-place.sh > out.csv
set -u
. scripts/mpi_env.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "round,run,pack,sps,train_loss"
run1() { # PACK NAME NP nntrain-options...
    local pack=$1 name=$2 np=$3; shift 3
    NN_GEMM_PACK=$pack OMP_NUM_THREADS=1 mpirun --oversubscribe --bind-to core -np "$np" -x NN_GEMM_PACK build/nntrain \
        --data data/mnist.h5 --threads 1 --thread-tuning off --metrics "$tmp/m.jsonl" "$@" >"$tmp/out" 2>&1
    python3 -c "
import json
rs = [json.loads(l) for l in open('$tmp/m.jsonl')][1:]
print('$round,$name,$pack,%d,%.17g' % (sorted(r['samples_per_second'] for r in rs)[len(rs) // 2], rs[-1]['train_loss']))"
    rm -f "$tmp/m.jsonl"
}
big=(--layers 784,800,800,10 --activation relu --lr 0.05)
for round in $(seq "${ROUNDS:-5}"); do
    for pack in always in-place; do
        run1 $pack "ref 1x1 b6" 1 --epochs 4 --batch-size 6
        run1 $pack "big 1x1 b32" 1 "${big[@]}" --epochs 4 --batch-size 32 --train-limit 3200
        run1 $pack "ref 2x1 b12" 2 --epochs 4 --batch-size 12
        run1 $pack "big 2x1 b64" 2 "${big[@]}" --epochs 4 --batch-size 64 --train-limit 6400
    done
done
