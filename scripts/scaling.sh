#!/usr/bin/env bash
# Strong scaling: the same training job (global batch fixed) at several rank counts,
# one thread per rank; prints and writes a table of steady-state samples/s, speedup,
# parallel efficiency and the shares of the gradient sum and batch assembly.
#   scripts/scaling.sh [--np "1 2 4 8 16"] [--out bench/scaling.md] [nntrain options]
# e.g. scripts/scaling.sh --np "1 2 4 8 16" --layers 784,800,800,10 --activation relu --lr 0.05 --batch-size 128
# Needs build/nntrain and data/mnist.h5 (scripts/build.sh, scripts/fetch_mnist.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
nps="1 2 4 8 16" out=bench/scaling.md
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --np) nps=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
[ -x build/nntrain ] || { echo "scaling.sh: build/nntrain missing: run scripts/build.sh" >&2; exit 1; }
. scripts/mpi_env.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cores=$(nproc)
for np in $nps; do
    echo "scaling.sh: -np $np" >&2
    bind=core
    [ "$np" -le "$cores" ] || bind=none # oversubscribed: cores cannot be given out one per rank
    OMP_NUM_THREADS=1 mpirun -np "$np" --bind-to "$bind" build/nntrain --epochs 4 --threads 1 \
        --metrics "$tmp/np$np.jsonl" "${args[@]}" >"$tmp/np$np.log" 2>&1 ||
        { echo "scaling.sh: -np $np failed:" >&2; tail -5 "$tmp/np$np.log" >&2; exit 1; }
done
python3 - "$tmp" "$out" "$cores" "$nps" "${args[*]}" <<'PY'
import json, sys, datetime, subprocess
tmp, out, cores, nps, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(), sys.argv[5]
rows, base = [], None
for np in nps:
    recs = [json.loads(l) for l in open(f"{tmp}/np{np}.jsonl")][1:]  # steady state: skip epoch 1
    secs = sum(r["epoch_seconds"] for r in recs)
    sps = sum(r["samples_per_second"] * r["epoch_seconds"] for r in recs) / secs
    ar = sum(r["allreduce_seconds"] for r in recs) / secs
    da = sum(r["data_seconds"] for r in recs) / secs
    base = base or sps  # the first rank count is the reference
    n = int(np)
    rows.append(f"| {n} | {sps:,.0f} | {sps / base:.2f} | {sps / base / n * int(nps[0]):.0%} | {ar:.1%} | {da:.1%} | {recs[-1]['test_accuracy']:.2%} |")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
text = "\n".join([
    "# Strong scaling", "",
    f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit `{commit}`, {cores} cores, one thread per rank; "
    f"command: `scripts/scaling.sh --np \"{' '.join(nps)}\" {args}` (epochs 2-4 averaged).", "",
    "| ranks | samples/s | speedup | efficiency | gradient sum | data | test accuracy |",
    "|---:|---:|---:|---:|---:|---:|---:|", *rows, ""])
open(out, "w").write(text)
print(text)
PY
