#!/usr/bin/env bash
# Checkpoint format 1 stays readable and unchanged. tests/fixtures/checkpoint-v1.h5 was
# written by nntrain before the structure redesign (commit f396c2f): the reference
# network, -np 2, --train-limit 3000 --epochs 2, stopped after epoch 1
# (NNTRAIN_STOP_AT_STEP=30), from the repository root with the default data path.
# This build must
#  - score it (nneval) at the accuracy it had when written;
#  - resume it and reach, in epoch 2, the losses and accuracy the old build reached;
#  - write, for the same run, a checkpoint with the same content (h5diff).
# Usage: test_checkpoint_compat.sh NNTRAIN NNEVAL MPIEXEC REPO WORKDIR
set -u
nntrain=$1 nneval=$2 mpiexec=$3 repo=$4 dir=$5/compat
here=$(cd "$(dirname "$0")" && pwd)
fixture=$here/fixtures/checkpoint-v1.h5 expected=$here/fixtures/checkpoint-v1.expected.json
rm -rf "$dir" && mkdir -p "$dir"
cd "$repo" || exit 1
[ -f data/mnist.h5 ] || { echo "FAIL data/mnist.h5 missing: run scripts/fetch_mnist.sh first"; exit 1; }
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -f "$dir/err" ] && sed 's/^/     /' "$dir/err" | head -5; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }

cp "$fixture" "$dir/v1.h5" # never written to: a failed run must not damage the fixture
timeout 300 "$mpiexec" -n 2 "$nneval" --checkpoint "$dir/v1.h5" --metrics "$dir/eval.json" >"$dir/out" 2>"$dir/err"
check "nneval reads the format-1 fixture (exit $?)" [ -s "$dir/eval.json" ]
timeout 300 "$mpiexec" -n 2 "$nntrain" --resume "$dir/v1.h5" --metrics "$dir/resumed.jsonl" >"$dir/out" 2>"$dir/err"
check "nntrain resumes the fixture (exit $?)" [ -s "$dir/resumed.jsonl" ]
check "fixture: same accuracy as when written; resumed epoch 2 identical to the old build's" \
    python3 "$here/check_metrics.py" fixture "$expected" "$dir/eval.json" "$dir/resumed.jsonl"

# (the fixture's settings were the defaults then: lr 0.3, no weight decay)
NNTRAIN_STOP_AT_STEP=30 timeout 300 "$mpiexec" -n 2 "$nntrain" --train-limit 3000 --epochs 2 --lr 0.3 --weight-decay 0 \
    --checkpoint "$dir/new.h5" >"$dir/out" 2>"$dir/err"
rc=$?
check "the same run stops after epoch 1 (exit $rc, expected 75)" [ "$rc" -eq 75 ]
# format 1 has since gained two optional groups: the last test accuracy and the attribute
# checksum; and since 2026-12-07 /options' data names the dataset by its absolute path
check "its checkpoint has the fixture's content (h5diff, apart from /results, /integrity and /options)" \
    h5diff --exclude-path /results --exclude-path /integrity --exclude-path /options "$fixture" "$dir/new.h5"
check "its /options are the fixture's, but data: the absolute path of the fixture's data/mnist.h5" \
    /usr/bin/python3 - "$fixture" "$dir/new.h5" "$(realpath data/mnist.h5)" <<'PY'
import sys, h5py
old, new = (h5py.File(path, "r")["/options"].attrs for path in sys.argv[1:3])
text = lambda v: v.decode() if isinstance(v, bytes) else v
same = set(old) == set(new) and all(text(old[k]) == text(new[k]) for k in old if k != "data")
sys.exit(0 if same and text(old["data"]) == "data/mnist.h5" and text(new["data"]) == sys.argv[3] else 1)
PY

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
