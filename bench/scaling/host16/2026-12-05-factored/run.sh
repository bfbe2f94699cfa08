#!/usr/bin/env bash
# Issue 20, third run: the node's factored sum, the chunked sum begun in backward, and nn_gemm
# reading B in place for a rank's few rows, on a 16-core node.
# Run from the repository root:  bash .device/run.sh    (ends by $DEADLINE s, default 420)
# Built by bench/scaling/host16/2026-12-05-factored/prepare.sh (one nntrain, see VERSIONS).
#
# Variants of the one binary, alternated per layout (timings drift up to 1.5x between
# commands, so before and after are measured side by side):
#   chunked = NN_NODE_SUM=chunked (the default until b138a72): every rank makes its whole
#             gradient, the node sums them in chunks taken by whichever rank is free, after
#             a barrier (the second run);
#   factors = NN_NODE_SUM=factors: dense weight gradients made from the ranks' factors
#             (src/factor_sum.c), bit-identical to chunked; since 2026-12-06 its tiles begin in
#             backward too, and (since the 6th, later) a rank's threads take them side by side
#             (8 x 2, 4 x 4, 2 x 8: until then those layouts took them after a barrier);
#   early   = NN_NODE_SUM=early (the default since): the chunked sum begun during backward, each rank summing
#             the layers every rank has finished instead of waiting at a barrier for the
#             slowest (nn_reducer_set_early), bit-identical to chunked;
#   packed  = early with NN_GEMM_PACK=always: nn_gemm packs every B panel, as before
#             5d004da (since then it reads B in place for up to 6 tiles of rows, as a
#             rank's share of the batch at 16 x 1: 6-7 rows of ref, 32 of big); same bits;
#   auto    = NN_NODE_SUM=auto (the default since 2026-12-06): early and factors timed against
#             each other on the first steps of the run, the faster kept (src/trainer_tuning.c;
#             the log line says which: "training goes on with ...");
#   fewer   = factors with NN_FACTOR_ITEMS=3 (about 3 work items a rank, not 6: less
#             re-reading of the factors, a coarser balance);
#   fine    = factors with NN_FACTOR_MIN_TILE=2800 (tiles down to 2800 weights, not 4096):
#             the reference network's bottom layer, whose tiles come ready last, in 14 tiles
#             of 56 x 50 rather than 9 of 88 x 50, so that 16 workers take them in one
#             round of shorter tiles (19 tiles a step, not 12; gemm.txt's 1/2, 1/4 and 1/8
#             lines say what finer tiles cost on one core). Does the tiles' grain matter?
#   det     = --deterministic (issue 21: dense nets take the product over the global batch,
#             src/global_product.c; the conv net the per-shard int64 sum), with V = 16
#             (ref: 20) so that 16 ranks may run; its loss differs from the others'.
# Rows go to $OUT (default .device/out) as soon as measured, and to stdout:
#   train.csv   kind,variant,layout,ranks,threads,net,batch,train_limit,epochs,
#               sps_last,sum_pct_last,sps_mean,sum_pct_mean,data_pct_last,train_loss_last,wall_s,rc,wait_pct_last,
#               compute_pct_last,compute_max_pct_last,compute_min_pct_last,node_sum_last
#               (sps = samples/s of the whole job, evaluation excluded; *_last: the last epoch;
#                *_mean: epochs after the first; sum_pct: the gradient sum's share of the epoch,
#                the factored products counted as computing; train_loss_last with 17 digits:
#                the variants of a layout must agree exactly; compute_*: the ranks' mean, busiest and
#                idlest time outside the sum and the data, as shares of the epoch; node_sum_last: the
#                sum the last epoch ended on, from the metrics: early, factors, chunked, or empty)
#   torch.csv (PyTorch in the same command), machine.txt, log.txt, logs/ (failed runs),
#   gemm.txt (bench_gemm on one core: the step's GEMMs, and a factored-sum tile at 16
#   ranks made as nn_gemm's products added one by one against nn_gemm_sum)
set -u
K=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
START=$SECONDS
DEADLINE=${DEADLINE:-420}
SCALE=${SCALE:-1}              # dry runs: multiply the work by this (e.g. 0.1)
NP_MAX=${NP_MAX:-16}           # dry runs: 4 (layouts needing more ranks shrink)
BIND=${BIND:-core}             # dry runs: none
OUT=${OUT:-$K/out}
mkdir -p "$OUT/logs"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/nnkit.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
source "$K/env.sh"
export OMPI_MCA_btl_vader_single_copy_mechanism=none
log() { echo "[$((SECONDS - START))s] $*" | tee -a "$OUT/log.txt" >&2; }
left() { echo $((DEADLINE - (SECONDS - START))); }
row() { echo "$2" >>"$OUT/$1"; echo "$2"; }
bounded() { # T MIN CMD...: bounded by T seconds and the deadline (skipped under MIN left)
    local t=$1 min=$2; shift 2
    local l; l=$(($(left) - 3))
    if ((l < min)); then log "skip (only ${l}s left): $*"; return 124; fi
    ((t > l)) && t=$l
    timeout -k 3 "$t" "$@"
}

echo "kind,variant,layout,ranks,threads,net,batch,train_limit,epochs,sps_last,sum_pct_last,sps_mean,sum_pct_mean,data_pct_last,train_loss_last,wall_s,rc,wait_pct_last,compute_pct_last,compute_max_pct_last,compute_min_pct_last,node_sum_last" >"$OUT/train.csv"
echo "torch,threads,net,batch,samples_per_s,epoch_seconds,rc" >"$OUT/torch.csv"
{ date -u; nproc; lscpu 2>/dev/null; command -v numactl >/dev/null && numactl -H; df -h /dev/shm; cat "$K/VERSIONS" 2>/dev/null; } >"$OUT/machine.txt" 2>&1
log "start; $(nproc) cpus; deadline ${DEADLINE}s"

DATA=$TMP/mnist.h5
bounded 60 10 nn-ld "$K/bin/nnprep" --out "$DATA" "$K/data" >"$OUT/logs/nnprep.txt" 2>&1 || { log "nnprep failed"; exit 1; }
log "data ready"
pin=""; command -v taskset >/dev/null && pin="taskset -c 0"
bounded 40 10 nn-ld $pin "$K/bin/bench_gemm" 1 5 >"$OUT/gemm.txt" 2>&1; log "bench_gemm rc=$?"

# nets: big = 784-800-800-10 relu (batch 512), ref = the reference network (batch 100),
# cnn = TensorFlow's Deep-MNIST net (batch 64; 3.2M of its 3.3M weights are dense)
declare -A LAYERS=([big]=784,800,800,10 [ref]=784,50,100,10 [cnn]=conv5x5x32p2,pool2,conv5x5x64p2,pool2,1024,10)
declare -A ACT=([big]=relu [ref]=sigmoid [cnn]=relu)
declare -A LR=([big]=0.05 [ref]=0.3 [cnn]=0.05)
declare -A BATCH=([big]=512 [ref]=100 [cnn]=64)
declare -A VSHARDS=([big]=16 [ref]=20 [cnn]=16)

limit_for() { # NET RANKS THREADS BATCH: training samples per epoch (~0.3-1 s epochs)
    local net=$1 p=$(($2 * $3)) b=$4 n
    case $net in
    ref) n=60000 ;;
    cnn) n=$((p == 1 ? 1600 : 6400)) ;;
    *) if ((p == 1)); then n=8192; elif ((p <= 4)); then n=16384; else n=40960; fi ;;
    esac
    python3 -c 'import sys; n, s, b = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]); print(min(60000, max(4 * b, int(n * s))))' "$n" "$SCALE" "$b"
}

variant() { # NAME -> the environment (and options) of that variant
    nsum= items= mintile= pack= det=()
    case $1 in
    packed) nsum=early pack=always ;;
    det) nsum=chunked det=(--deterministic --virtual-shards "${VSHARDS[$net]}") ;;
    chunked) nsum=chunked ;;
    early) nsum=early ;;
    auto) nsum=auto ;;
    factors) nsum=factors ;;
    fewer) nsum=factors items=3 ;;
    fine) nsum=factors mintile=2800 ;;
    esac
}

train() { # VARIANT NET RANKS THREADS [BATCH] [KIND]
    local v=$1 net=$2 r=$3 t=$4 b=${5:-} kind=${6:-strong}
    (($(left) < 15)) && return
    [[ -z $b ]] && b=${BATCH[$net]}
    local e=3; [[ $net == ref ]] && e=4
    ((r * t > NP_MAX && r > 1)) && r=$((NP_MAX / t > 0 ? NP_MAX / t : 1))
    local n; n=$(limit_for "$net" "$r" "$t" "$b")
    local name=$kind-$v-$net-${r}x$t-b$b m=$TMP/$kind-$v-$net-${r}x$t-b$b.jsonl
    rm -f "$m"
    local map=(--bind-to "$BIND" --map-by core)
    ((t > 1)) && map=(--map-by "slot:PE=$t" --bind-to "$BIND")
    [[ $BIND == none ]] && map=(--bind-to none)
    local nsum items mintile pack det; variant "$v"
    local t0=$SECONDS
    NN_NODE_SUM=$nsum NN_FACTOR_ITEMS=$items NN_FACTOR_MIN_TILE=$mintile NN_GEMM_PACK=$pack bounded 45 12 \
        nn-mpirun -np "$r" "${map[@]}" -x OMP_NUM_THREADS="$t" -x OMP_PROC_BIND=close -x OMP_PLACES=cores \
        -x NN_NODE_SUM -x NN_FACTOR_ITEMS -x NN_FACTOR_MIN_TILE -x NN_GEMM_PACK "$K/bin/nntrain" --data "$DATA" \
        --layers "${LAYERS[$net]}" --activation "${ACT[$net]}" --batch-size "$b" --lr "${LR[$net]}" --momentum 0.9 \
        --epochs "$e" --train-limit "$n" --threads "$t" --thread-tuning off --timeout 60 --metrics "$m" "${det[@]}" \
        >"$TMP/$name.out" 2>&1
    local rc=$?
    log "$name rc=$rc ($((SECONDS - t0))s) $(grep -o 'factored sum\( begun in backward\)\?\(, [0-9]* tiles a step\)\?\|chunked sum begun in backward\|chunked sum' "$TMP/$name.out" | head -1)$(grep -o ' backward: [0-9, -]* us (blocks of [0-9]* steps): training goes on with the [a-z ]*' "$TMP/$name.out" | head -1)"
    ((rc == 0)) || cp "$TMP/$name.out" "$OUT/logs/$name.txt"
    local stats
    stats=$(python3 - "$m" <<'PY' 2>/dev/null
import json, sys
try:
    rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
except OSError:
    rs = []
if not rs:
    print(",,,,,|,,,,"); sys.exit()
last, rest = rs[-1], (rs[1:] or rs)
pct = lambda r, k: 100.0 * r[k] / r["epoch_seconds"] if r["epoch_seconds"] > 0 else 0.0
sps = sum(r["samples_per_second"] for r in rest) / len(rest)
sumpct = sum(pct(r, "allreduce_seconds") for r in rest) / len(rest)
wait = "%.1f" % pct(last, "allreduce_wait_seconds") if "allreduce_wait_seconds" in last else ""
if "compute_seconds" in last:
    wait += "," + ",".join("%.1f" % pct(last, k) for k in ("compute_seconds", "compute_max_seconds", "compute_min_seconds"))
else:
    wait += ",,,"
wait += "," + last.get("node_sum", "")
print("%.0f,%.1f,%.0f,%.1f,%.1f,%.17g|%s" % (last["samples_per_second"], pct(last, "allreduce_seconds"), sps, sumpct,
                                             pct(last, "data_seconds"), last["train_loss"], wait))
PY
)
    [[ -z $stats ]] && stats=",,,,,|,,,,"
    row train.csv "$kind,$v,${r}x$t,$r,$t,$net,$b,$n,$e,${stats%|*},$((SECONDS - t0)),$rc,${stats#*|}"
}

flip=0
pair() { # NET RANKS THREADS [BATCH] [KIND]: chunked and factors, the order alternating
    if ((flip)); then train factors "$@"; train chunked "$@"; else train chunked "$@"; train factors "$@"; fi
    flip=$((1 - flip))
}
turn=0
trio() { # NET RANKS THREADS [BATCH] [KIND]: chunked, early and factors, the order rotating
    local order=(chunked early factors chunked early) v
    for v in "${order[@]:turn:3}"; do train "$v" "$@"; done
    turn=$(((turn + 1) % 3))
}

torch() { # THREADS NET
    local t=$1 net=$2 b=${BATCH[$2]}
    (($(left) < 20)) && return
    python3 -c 'import torch' 2>/dev/null || { log "no torch: skip"; return; }
    local shim=""; python3 -c 'import h5py' 2>/dev/null || shim=$K/pyshim
    local pin=""; command -v taskset >/dev/null && pin="taskset -c 0-$((t - 1))"
    local lim=""; [[ $net == cnn ]] && lim="--train-limit 6400"
    local t0=$SECONDS
    bounded 45 18 env PYTHONPATH="$shim" NN_IDX_DIR="$K/data" OMP_NUM_THREADS="$t" MKL_NUM_THREADS="$t" \
        $pin python3 "$K/bench_torch.py" --data "$DATA" --layers "${LAYERS[$net]}" --activation "${ACT[$net]}" \
        --batch-size "$b" --lr "${LR[$net]}" --momentum 0.9 --epochs 2 --threads "$t" $lim >"$TMP/torch-$t-$net.out" 2>&1
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

# 1. 16 x 1, the goal's layout
trio big 16 1
trio ref 16 1
train packed ref 16 1; train packed big 16 1
train auto big 16 1; train auto ref 16 1
train fine ref 16 1; train factors ref 8 2; train fine ref 8 2
pair cnn 16 1; train auto cnn 16 1
train fewer big 16 1
# 1b. --deterministic against the default (chunked) at 16 x 1 and 4 x 4, side by side
for net in big ref cnn; do train det $net 16 1; train chunked $net 16 1; done
train det big 4 4; train chunked big 4 4
# 2. the other layouts that fill the node
for lay in "8 2" "4 4" "2 8"; do trio big $lay; done
train auto big 8 2; train auto big 4 4
pair ref 4 4
pair cnn 4 4
# 3. 8 x 1; weak scaling at 64 samples a rank; one rank (no node sum: one run each)
pair big 8 1
trio big 16 1 1024 weak
trio ref 16 1 1024 weak
train packed ref 16 1 1024 weak; train packed big 16 1 1024 weak
train auto big 16 1 1024 weak; train auto ref 16 1 1024 weak
train factors big 1 1 64 weak; train factors ref 1 1 64 weak; train factors cnn 1 1
# 4. PyTorch's single process (2 epochs: the second is the figure)
torch 16 big; torch 16 cnn; torch 16 ref; torch 4 big
# 5. while time is left: 16 x 1 again
trio big 16 1; trio ref 16 1; train auto big 16 1; train auto ref 16 1; train packed ref 16 1; pair cnn 16 1
trio big 16 1; trio ref 16 1; train auto big 16 1; train auto ref 16 1; train packed ref 16 1
log "done"
