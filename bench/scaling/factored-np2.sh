#!/bin/bash
# The factored sum against the chunked sum on this 2-core machine: -np 2 with one shared
# copy of the weights (the only 2-rank layout where both run), 5 rounds alternating the
# two, four networks. Writes CSV to stdout (round,net,batch,sum,sps,sum_pct,train_loss,kept:
# sps and sum_pct the medians of the epochs after the first; kept: with NN_NODE_SUM=auto,
# the sum the run's timing kept, factored or chunked). From the repository root,
# after building and scripts/fetch_mnist.sh:  bench/scaling/factored-np2.sh > out.csv
# SUMS (default "chunked factors") names the NN_NODE_SUM values to alternate, NETS
# (default "big512 big64 ref cnn") the networks, ROUNDS (5) the rounds, NP (2) the ranks.
set -u
. scripts/mpi_env.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "round,net,batch,sum,sps,sum_pct,train_loss,kept"
run1() { # SUM NET BATCH nntrain-options...
    local sum=$1 net=$2 b=$3; shift 3
    case " ${NETS:-big512 big64 ref cnn} " in *" $net$b "* | *" $net "*) ;; *) return ;; esac
    NN_NODE_PARAMS=shared NN_NODE_SUM=$sum OMP_NUM_THREADS=1 mpirun --oversubscribe ${BIND_ARGS:-} -np "${NP:-2}" -x NN_NODE_SUM -x NN_NODE_PARAMS build/nntrain \
        --data data/mnist.h5 --thread-tuning off --metrics "$tmp/m.jsonl" --batch-size "$b" "$@" >"$tmp/out" 2>&1
    local kept; kept=$(grep -o 'training goes on with the [a-z]*' "$tmp/out" | awk '{print $NF}')
    python3 -c "
import json, sys
rs = [json.loads(l) for l in open('$tmp/m.jsonl')][1:]
mid = lambda v: sorted(v)[len(v) // 2]
print('$round,$net,$b,$sum,%d,%.1f,%.17g,$kept' % (mid([r['samples_per_second'] for r in rs]),
      mid([100 * r['allreduce_seconds'] / r['epoch_seconds'] for r in rs]), rs[-1]['train_loss']))"
    rm -f "$tmp/m.jsonl"
}
for round in $(seq "${ROUNDS:-5}"); do
    for sum in ${SUMS:-chunked factors}; do
        run1 $sum big 512 --layers 784,800,800,10 --activation relu --lr 0.05 --epochs 3 --train-limit 20480
        run1 $sum big 64 --layers 784,800,800,10 --activation relu --lr 0.05 --epochs 3 --train-limit 6400
        run1 $sum ref 100 --layers 784,50,100,10 --epochs 4
        run1 $sum cnn 64 --layers conv5x5x32p2,pool2,conv5x5x64p2,pool2,1024,10 --activation relu --lr 0.05 --epochs 3 --train-limit 1600
    done
done
