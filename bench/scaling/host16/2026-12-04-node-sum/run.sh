#!/usr/bin/env bash
# Issue 20 measurement kit: nntrain's node-local gradient sum on a 16-core node.
# Run from the repository root:  bash .device/run.sh     (ends by ~450 s whatever happens)
#
# Two nntrain builds, alternated per layout (timings drift up to 1.5x between commands):
#   base = 52a32af (main), new = branch node-sum (see .device/VERSIONS);
#   newpriv = new with NN_NODE_PARAMS=private (private copies of the weights, as base,
#   but the new barrier): tells the shared copy of the weights from the barrier.
# Rows go to $OUT (default .device/out) as soon as measured, and to stdout:
#   train.csv   kind,binary,layout,ranks,threads,net,batch,train_limit,epochs,
#               sps_last,sum_pct_last,sps_mean,sum_pct_mean,data_pct_last,train_loss_last,wall_s,rc,
#               wait_pct_last (new only: the longest barrier wait of a rank, % of the epoch)
#               (sps = samples/s of the whole job, evaluation excluded; *_last: the last epoch;
#                *_mean: epochs after the first; sum_pct: the gradient sum's share of the epoch;
#                train_loss_last with 17 digits: base and new must agree exactly)
#   reduce_bench.csv  reduce_bench,binary,ranks,mode,bytes,iterations,us_per_sum,busbw_GBps
#   torch.csv   torch,threads,net,batch,samples_per_s,epoch_seconds...,rc
#   log.txt     every command and its exit status; logs/ the output of failed runs
set -u
K=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
START=$SECONDS
DEADLINE=${DEADLINE:-450}      # seconds after start by which everything has ended
SCALE=${SCALE:-1}              # dry runs: multiply the work by this (e.g. 0.1)
NP_MAX=${NP_MAX:-16}           # dry runs: 2 (layouts needing more ranks are skipped)
BIND=${BIND:-core}             # dry runs: none
OUT=${OUT:-$K/out}
mkdir -p "$OUT/logs"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/nnkit.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
source "$K/env.sh"
export OMPI_MCA_btl_vader_single_copy_mechanism=none
log() { echo "[$((SECONDS - START))s] $*" | tee -a "$OUT/log.txt" >&2; }
left() { echo $((DEADLINE - (SECONDS - START))); }
row() { # FILE LINE: append and show at once
    echo "$2" >>"$OUT/$1"; echo "$2"; }

# a command bounded by T seconds and by the deadline (skipped when less than MIN is left)
bounded() { # T MIN CMD...
    local t=$1 min=$2; shift 2
    local l; l=$(($(left) - 3))
    if ((l < min)); then log "skip (only ${l}s left): $*"; return 124; fi
    ((t > l)) && t=$l
    timeout -k 3 "$t" "$@"
}

echo "kind,binary,layout,ranks,threads,net,batch,train_limit,epochs,sps_last,sum_pct_last,sps_mean,sum_pct_mean,data_pct_last,train_loss_last,wall_s,rc,wait_pct_last" >"$OUT/train.csv"
echo "reduce_bench,binary,ranks,mode,bytes,iterations,us_per_sum,busbw_GBps,wait_us,sum_us,copy_us" >"$OUT/reduce_bench.csv"
echo "torch,threads,net,batch,samples_per_s,epoch_seconds,rc" >"$OUT/torch.csv"

{ date -u; nproc; lscpu 2>/dev/null; command -v numactl >/dev/null && numactl -H; cat "$K/VERSIONS" 2>/dev/null; } >"$OUT/machine.txt" 2>&1
log "start; $(nproc) cpus; deadline ${DEADLINE}s"

# the data: IDX -> HDF5 with the kit's nnprep
DATA=$TMP/mnist.h5
bounded 60 10 nn-ld "$K/bin/nnprep" --out "$DATA" "$K/data" >"$OUT/logs/nnprep.txt" 2>&1 || { log "nnprep failed"; exit 1; }
log "data ready"

# nets: name -> nntrain flags
declare -A LAYERS=([big]=784,800,800,10 [ref]=784,50,100,10)
declare -A ACT=([big]=relu [ref]=sigmoid)
declare -A LR=([big]=0.05 [ref]=0.3)

# the training set used per run: long enough for ~0.3-1 s epochs at the expected speed
limit_for() { # net ranks threads batch
    local net=$1 p=$(($2 * $3)) b=$4 n
    if [[ $net == ref ]]; then n=60000
    elif ((p == 1)); then n=8192
    elif ((p <= 4)); then n=16384
    else n=40960; fi
    n=$(python3 -c 'import sys; n, s, b = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]); print(min(60000, max(4 * b, int(n * s))))' "$n" "$SCALE" "$b")
    echo "$n"
}

# one nntrain run: BIN(base|new|newpriv) NET RANKS THREADS [BATCH] [KIND]
train() {
    local bin=$1 net=$2 r=$3 t=$4 b=${5:-} kind=${6:-strong}
    (($(left) < 15)) && return
    [[ -z $b ]] && { [[ $net == big ]] && b=512 || b=100; }
    local e=3; [[ $net == ref ]] && e=4
    ((r * t > NP_MAX && r > 1)) && r=$((NP_MAX / t > 0 ? NP_MAX / t : 1))
    local n; n=$(limit_for "$net" "$r" "$t" "$b")
    local name=$kind-$bin-$net-${r}x$t-b$b
    local m=$TMP/$name.jsonl
    rm -f "$m"
    local map=(--bind-to "$BIND" --map-by core)
    ((t > 1)) && map=(--map-by "slot:PE=$t" --bind-to "$BIND")
    [[ $BIND == none ]] && map=(--bind-to none)
    local exe=$bin params=
    [[ $bin == newpriv ]] && exe=new params=private
    local t0=$SECONDS
    NN_NODE_PARAMS=$params bounded 40 12 nn-mpirun -np "$r" "${map[@]}" -x OMP_NUM_THREADS="$t" -x OMP_PROC_BIND=close \
        -x OMP_PLACES=cores -x NN_NODE_PARAMS "$K/bin/nntrain.$exe" --data "$DATA" --layers "${LAYERS[$net]}" --activation "${ACT[$net]}" \
        --batch-size "$b" --lr "${LR[$net]}" --momentum 0.9 --epochs "$e" --train-limit "$n" \
        --threads "$t" --thread-tuning off --timeout 60 --metrics "$m" >"$TMP/$name.out" 2>&1
    local rc=$?
    log "$name rc=$rc ($((SECONDS - t0))s)"
    ((rc == 0)) || cp "$TMP/$name.out" "$OUT/logs/$name.txt"
    local stats
    stats=$(python3 - "$m" <<'EOF' 2>/dev/null
import json, sys
try:
    rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
except OSError:
    rs = []
if not rs:
    print(",,,,,|"); sys.exit()
last, rest = rs[-1], (rs[1:] or rs)
pct = lambda r, k: 100.0 * r[k] / r["epoch_seconds"] if r["epoch_seconds"] > 0 else 0.0
sps = sum(r["samples_per_second"] for r in rest) / len(rest)
sumpct = sum(pct(r, "allreduce_seconds") for r in rest) / len(rest)
wait = "%.1f" % pct(last, "allreduce_wait_seconds") if "allreduce_wait_seconds" in last else ""
print("%.0f,%.1f,%.0f,%.1f,%.1f,%.17g|%s" % (last["samples_per_second"], pct(last, "allreduce_seconds"), sps, sumpct,
                                             pct(last, "data_seconds"), last["train_loss"], wait))
EOF
)
    [[ -z $stats ]] && stats=",,,,,|"
    row train.csv "$kind,$bin,${r}x$t,$r,$t,$net,$b,$n,$e,${stats%|*},$((SECONDS - t0)),$rc,${stats#*|}"
}

# base and new on one layout, the order alternating from one call to the next
flip=0
pair() { # NET RANKS THREADS [BATCH] [KIND]
    if ((flip)); then train new "$@"; train base "$@"; else train base "$@"; train new "$@"; fi
    flip=$((1 - flip))
}
# base, new and newpriv, the order rotating
turn=0
trio() { # NET RANKS THREADS
    local order=(base new newpriv base new)
    for b in "${order[@]:turn:3}"; do train "$b" "$@"; done
    turn=$(((turn + 1) % 3))
}

reduce_bench() { # BIN(base|new|newpriv) RANKS
    local bin=$1 r=$2 exe=$1 params=
    [[ $bin == newpriv ]] && exe=new params=private
    ((r > NP_MAX || $(left) < 10)) && return
    [[ -x $K/bin/bench_reduce.$exe ]] || return
    local sec; sec=$(python3 -c 'import sys; print("%.3f" % (0.04 * float(sys.argv[1])))' "$SCALE")
    local map=(--bind-to "$BIND" --map-by core); [[ $BIND == none ]] && map=(--bind-to none)
    local t0=$SECONDS
    local modes=step,sum; [[ $bin == newpriv ]] && modes=step
    NN_NODE_PARAMS=$params bounded 30 8 nn-mpirun -np "$r" "${map[@]}" -x NN_NODE_PARAMS "$K/bin/bench_reduce.$exe" \
        --label "$bin" --seconds "$sec" --modes $modes >"$TMP/rb-$bin-$r.out" 2>&1
    local rc=$?
    log "reduce_bench $bin np=$r rc=$rc ($((SECONDS - t0))s)"
    grep '^reduce_bench,' "$TMP/rb-$bin-$r.out" | while read -r l; do row reduce_bench.csv "$l"; done
    ((rc == 0)) || cp "$TMP/rb-$bin-$r.out" "$OUT/logs/rb-$bin-$r.txt"
}

torch() { # THREADS NET
    local t=$1 net=$2 b; [[ $net == big ]] && b=512 || b=100
    (($(left) < 18)) && return
    local py=python3 shim=""
    python3 -c 'import torch' 2>/dev/null || { log "no torch: skip"; return; }
    python3 -c 'import h5py' 2>/dev/null || shim=$K/pyshim
    local pin=""; command -v taskset >/dev/null && pin="taskset -c 0-$((t - 1))"
    local t0=$SECONDS
    bounded 40 15 env PYTHONPATH="$shim" NN_IDX_DIR="$K/data" OMP_NUM_THREADS="$t" MKL_NUM_THREADS="$t" \
        $pin $py "$K/bench_torch.py" --data "$DATA" --layers "${LAYERS[$net]}" \
        --activation "${ACT[$net]}" --batch-size "$b" --lr "${LR[$net]}" --momentum 0.9 --epochs 3 \
        --threads "$t" >"$TMP/torch-$t-$net.out" 2>&1
    local rc=$?
    log "torch $t threads $net rc=$rc ($((SECONDS - t0))s)"
    local s
    s=$(tail -n 1 "$TMP/torch-$t-$net.out" | python3 -c '
import json, sys
try:
    d = json.loads(sys.stdin.read()); print("%.0f,%s" % (d["samples_per_second"], " ".join("%.3f" % x for x in d["epoch_seconds"])))
except Exception:
    print(",")' 2>/dev/null)
    row torch.csv "torch,$t,$net,$b,$s,$rc"
    ((rc == 0)) || cp "$TMP/torch-$t-$net.out" "$OUT/logs/torch-$t-$net.txt"
}

# 1. the layouts that matter most, both nets, base and new (and newpriv) alternating
for lay in "16 1" "8 1" "4 4"; do
    trio big $lay
    trio ref $lay
done
pair big 1 1
pair ref 1 1
# 2. the node sum alone
for r in 16 8 4 2; do
    if ((r % 4 == 0)); then reduce_bench new $r; reduce_bench base $r; else reduce_bench base $r; reduce_bench new $r; fi
done
reduce_bench newpriv 16
# 3. PyTorch's best single process, and weak scaling at 64 samples a rank
torch 16 big; torch 16 ref
pair big 16 1 1024 weak; pair big 1 1 64 weak
pair ref 16 1 1024 weak; pair ref 1 1 64 weak
# 4. the other layouts
for lay in "2 1" "4 1" "8 2" "2 8" "1 16"; do
    pair big $lay
    pair ref $lay
done
torch 4 big; torch 4 ref
# 5. while time is left: the main layouts again (the other order)
for lay in "16 1" "8 1" "4 4" "16 1" "8 1"; do
    pair big $lay
    pair ref $lay
done
log "done"
