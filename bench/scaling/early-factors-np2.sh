#!/bin/bash
# The factored sum begun in backward (this build) against the factored sum after a barrier
# (OLD: nntrain built from the commit before it, e.g. git worktree add /tmp/wt 16b1fbf and
# cmake -S /tmp/wt -B /tmp/wt/build -DCMAKE_BUILD_TYPE=Release), and the chunked sum begun in
# backward, at -np 2 with one shared copy of the weights; ROUNDS (3) rounds alternating. CSV to
# stdout. With one core busy: BIND_ARGS="--bind-to core --map-by core" while
# taskset -c 1 bash -c "while :; do :; done" runs. From the repository root after building.
set -u
. scripts/mpi_env.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "round,net,batch,variant,sps,sum_pct,train_loss"
run1() { local bin=$1 sum=$2 var=$3 net=$4 b=$5; shift 5
    NN_NODE_PARAMS=shared NN_NODE_SUM=$sum OMP_NUM_THREADS=1 mpirun ${BIND_ARGS:-} -np 2 -x NN_NODE_SUM -x NN_NODE_PARAMS $bin \
        --data data/mnist.h5 --thread-tuning off --metrics "$tmp/m.jsonl" --batch-size "$b" "$@" >"$tmp/out" 2>&1 || { echo "FAIL $var"; return; }
    python3 -c "
import json
rs = [json.loads(l) for l in open('$tmp/m.jsonl')][1:]
mid = lambda v: sorted(v)[len(v) // 2]
print('$round,$net,$b,$var,%d,%.1f,%.17g' % (mid([r['samples_per_second'] for r in rs]), mid([100 * r['allreduce_seconds'] / r['epoch_seconds'] for r in rs]), rs[-1]['train_loss']))"
    rm -f "$tmp/m.jsonl"; }
for round in $(seq ${ROUNDS:-3}); do
  for v in "${OLD:-/tmp/wt/build/nntrain} factors factors-barrier" "build/nntrain factors factors-early" "build/nntrain early early"; do
    set -- $v
    run1 $1 $2 $3 big 512 --layers 784,800,800,10 --activation relu --lr 0.05 --epochs 3 --train-limit 20480
    run1 $1 $2 $3 ref 100 --layers 784,50,100,10 --epochs 4
  done
done
