#!/usr/bin/env bash
# Issue 20 measurement kit: nntrain's node-local gradient sum on a 16-core node.
# Run from the repository root:  bash .device/run.sh     (ends by ~300 s whatever happens)
#
# Two nntrain builds, alternated per layout (timings drift up to 1.5x between commands):
#   base = 52a32af, new2 = branch node-sum 9f45f6e (see .device/VERSIONS): the chunked
#   sum (chunks taken by whichever rank is free, each chunk's SGD step as it is summed);
#   new2static = new2 with NN_NODE_SUM=static: the merged main's path (each rank sums and
#   updates its own slice), to tell the chunked sum's share of the gain;
#   new2sh = new2 with NN_NODE_PARAMS=shared: at 2 ranks (private copies by default),
#   the shared copy with the chunked sum.
# Rows go to $OUT (default .device/out) as soon as measured, and to stdout:
#   train.csv   kind,binary,layout,ranks,threads,net,batch,train_limit,epochs,
#               sps_last,sum_pct_last,sps_mean,sum_pct_mean,data_pct_last,train_loss_last,wall_s,rc,
#               wait_pct_last (new2*: the longest barrier wait of a rank, % of the epoch)
#               (sps = samples/s of the whole job, evaluation excluded; *_last: the last epoch;
#                *_mean: epochs after the first; sum_pct: the gradient sum's share of the epoch;
#                train_loss_last with 17 digits: base and new2 must agree exactly)
#   reduce_bench.csv  reduce_bench,binary,ranks,mode,bytes,iterations,us_per_sum,busbw_GBps
#   torch.csv   torch,threads,net,batch,samples_per_s,epoch_seconds...,rc
#   log.txt     every command and its exit status; logs/ the output of failed runs
set -u
K=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
START=$SECONDS
DEADLINE=${DEADLINE:-300}      # seconds after start by which everything has ended
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

# a variant -> its binary and environment: EXE and the NN_NODE_* values
variant() { # NAME
    exe=$1 params= nsum=
    case $1 in
    new2static) exe=new2 nsum=static ;;
    new2sh) exe=new2 params=shared ;;
    new2priv) exe=new2 params=private ;;
    esac
}

# one nntrain run: BIN(base|new2|new2static|new2sh) NET RANKS THREADS [BATCH] [KIND]
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
    local exe params nsum; variant "$bin"
    local t0=$SECONDS
    NN_NODE_PARAMS=$params NN_NODE_SUM=$nsum bounded 40 12 nn-mpirun -np "$r" "${map[@]}" -x OMP_NUM_THREADS="$t" -x OMP_PROC_BIND=close \
        -x OMP_PLACES=cores -x NN_NODE_PARAMS -x NN_NODE_SUM "$K/bin/nntrain.$exe" --data "$DATA" --layers "${LAYERS[$net]}" --activation "${ACT[$net]}" \
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

# base and new2 on one layout, the order alternating from one call to the next
flip=0
pair() { # NET RANKS THREADS [BATCH] [KIND]
    if ((flip)); then train new2 "$@"; train base "$@"; else train base "$@"; train new2 "$@"; fi
    flip=$((1 - flip))
}
# base, new2 and a third variant, the order rotating
turn=0
trio() { # THIRD NET RANKS THREADS
    local third=$1; shift
    local order=(base new2 "$third" base new2)
    for b in "${order[@]:turn:3}"; do train "$b" "$@"; done
    turn=$(((turn + 1) % 3))
}

reduce_bench() { # BIN(base|new2|new2static) RANKS
    local bin=$1 r=$2 exe params nsum; variant "$bin"
    ((r > NP_MAX || $(left) < 10)) && return
    [[ -x $K/bin/bench_reduce.$exe ]] || return
    local sec; sec=$(python3 -c 'import sys; print("%.3f" % (0.04 * float(sys.argv[1])))' "$SCALE")
    local map=(--bind-to "$BIND" --map-by core); [[ $BIND == none ]] && map=(--bind-to none)
    local t0=$SECONDS
    local modes=step,sum; [[ $bin == new2static ]] && modes=step
    NN_NODE_PARAMS=$params NN_NODE_SUM=$nsum bounded 30 8 nn-mpirun -np "$r" "${map[@]}" -x NN_NODE_PARAMS -x NN_NODE_SUM \
        -x OMP_NUM_THREADS=1 "$K/bin/bench_reduce.$exe" --label "$bin" --seconds "$sec" --modes $modes --sizes "$RB_SIZES" \
        >"$TMP/rb-$bin-$r.out" 2>&1
    local rc=$?
    log "reduce_bench $bin np=$r rc=$rc ($((SECONDS - t0))s)"
    grep '^reduce_bench,' "$TMP/rb-$bin-$r.out" | while read -r l; do row reduce_bench.csv "$l"; done
    ((rc == 0)) || cp "$TMP/rb-$bin-$r.out" "$OUT/logs/rb-$bin-$r.txt"
}
RB_SIZES=65536,181440,1048576,5107240

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
        --activation "${ACT[$net]}" --batch-size "$b" --lr "${LR[$net]}" --momentum 0.9 --epochs 2 \
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

# 1. 16 x 1, both nets: base, new2 and new2static (the merged main's path) rotating
trio new2static big 16 1
trio new2static ref 16 1
# 2. the node sum alone at 16 ranks
reduce_bench new2 16; reduce_bench base 16; reduce_bench new2static 16
# 3. the other strong layouts; 2 x 1 also with the shared copy (new2sh)
trio new2static big 8 1
trio new2static ref 8 1
for lay in "4 4" "8 2"; do
    pair big $lay
    pair ref $lay
done
trio new2sh big 2 1
trio new2sh ref 2 1
# 4. weak scaling at 64 samples a rank
pair big 16 1 1024 weak; pair big 1 1 64 weak
pair ref 16 1 1024 weak; pair ref 1 1 64 weak
# 5. 16 x 1 the second time (the other order)
trio new2static big 16 1
trio new2static ref 16 1
# 6. PyTorch's single process (2 epochs: the second is the figure)
torch 16 big; torch 4 big; torch 16 ref; torch 4 ref
# 7. while time is left: the main layouts again
for lay in "16 1" "4 4" "8 2" "8 1" "16 1"; do
    if [[ $lay == "16 1" ]]; then trio new2static big $lay; trio new2static ref $lay; continue; fi
    pair big $lay
    pair ref $lay
done
log "done"
