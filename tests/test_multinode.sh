#!/usr/bin/env bash
# nntrain across emulated nodes (scripts/emulated_nodes.sh: network namespaces, TCP
# between them):
#  - 2 nodes x 2 ranks and 4 nodes x 1 rank, every --allreduce mode: the header names
#    the nodes, the three modes give identical losses, and the accuracy is that of the
#    same rank count on one host (within 1%: the sum's order differs across layouts);
#  - --deterministic in both layouts, and on 2 nodes of 2 + 1 ranks: the checkpoint of
#    1 rank on one host, bit for bit;
#  - a bad label in the shard of a rank on the second node stops every rank, one line;
#  - a dataset staged to each node's own disk at the same path trains (nothing left
#    beside it), and a copy that differs is exit 2;
#  - a node whose link goes down for good: the watchdog ends the job (exit 1) with a
#    line saying the node waits for another one, instead of a hang.
# Skipped (exit 77) where network namespaces are not allowed. Removes every namespace
# it made, also on failure.
# Usage: test_multinode.sh NNTRAIN MAKE_TEST_DATA MPIEXEC MNIST WORKDIR
set -u
nntrain=$1 make_data=$2 mpiexec=$3 mnist=$4 dir=$5/multinode
repo=$(cd "$(dirname "$0")/.." && pwd)
emu=$repo/scripts/emulated_nodes.sh
rm -rf "$dir" && mkdir -p "$dir" && "$make_data" "$dir" || { echo "FAIL cannot make test data"; exit 1; }
[ -f "$mnist" ] || { echo "FAIL $mnist missing: run scripts/fetch_mnist.sh first"; exit 1; }
if ! ip netns add nnemu-probe 2>/dev/null; then echo "SKIP: network namespaces are not allowed here"; exit 77; fi
ip netns del nnemu-probe
staged=/etc/nntrain-staged-$$ # a node-local directory: node 2 sees /etc/netns/nnemu-h2/${staged#/etc/} there
trap '"$emu" down; rm -rf "$staged"' EXIT
source "$repo/scripts/mpi_env.sh"
export OMP_NUM_THREADS=1
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; grep '^nntrain' "$dir/err" 2>/dev/null | sed 's/^/     /' | head -3; }
metric() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])[sys.argv[2]])' "$@"; }
job=(--data "$mnist" --train-limit 6000 --epochs 2)

# the same rank count on one host, for the accuracy
timeout 300 "$mpiexec" -n 4 "$nntrain" "${job[@]}" --metrics "$dir/host.jsonl" >/dev/null 2>&1
host_acc=$(metric "$dir/host.jsonl" test_accuracy 2>/dev/null || echo 0)

# --deterministic: one rank on one host is the model every layout must reproduce, bit for bit
det=(--data "$dir/good.h5" --layers 16,12,8,3 --batch-size 16 --epochs 3 --lr 0.3 --deterministic --thread-tuning off)
timeout 300 "$mpiexec" -n 1 "$nntrain" "${det[@]}" --checkpoint "$dir/det-host1.h5" >/dev/null 2>&1 ||
    fail "--deterministic on 1 rank: exit $?"

for layout in "2 ppr:2:node" "4 ppr:1:node"; do
    read -r nodes map <<<"$layout"
    "$emu" down 2>/dev/null # ours: what the last layout left (up refuses nodes in use)
    "$emu" up "$nodes" >/dev/null || { fail "$nodes nodes: cannot build them"; continue; }
    for mode in shm mpi overlap; do
        timeout 300 "$emu" mpirun -np 4 --map-by "$map" "$nntrain" "${job[@]}" --allreduce "$mode" \
            --metrics "$dir/$nodes-$mode.jsonl" >"$dir/out" 2>"$dir/err"
        rc=$?
        name="$nodes nodes x $((4 / nodes)) ranks, --allreduce $mode: exit 0, the header says $nodes nodes"
        if [ "$rc" -eq 0 ] && grep -q "allreduce $mode (.*$nodes nodes)" "$dir/out"; then ok "$name"; else fail "$name (exit $rc)"; fi
    done
    if cmp -s <(cut -d, -f1-4 "$dir/$nodes-shm.jsonl") <(cut -d, -f1-4 "$dir/$nodes-mpi.jsonl") &&
       cmp -s <(cut -d, -f1-4 "$dir/$nodes-shm.jsonl") <(cut -d, -f1-4 "$dir/$nodes-overlap.jsonl")
    then ok "$nodes nodes: shm, mpi and overlap give identical losses"
    else fail "$nodes nodes: shm, mpi and overlap give identical losses"; fi
    timeout 300 "$emu" mpirun -np 4 --map-by "$map" "$nntrain" "${det[@]}" --checkpoint "$dir/det-$nodes.h5" \
        >"$dir/out" 2>"$dir/err"
    rc=$?
    name="$nodes nodes x $((4 / nodes)) ranks, --deterministic: the checkpoint of 1 rank on one host, bit for bit"
    if [ "$rc" -eq 0 ] && h5diff "$dir/det-host1.h5" "$dir/det-$nodes.h5" /model /model >/dev/null 2>&1 &&
       h5diff "$dir/det-host1.h5" "$dir/det-$nodes.h5" /optimizer /optimizer >/dev/null 2>&1 &&
       h5diff "$dir/det-host1.h5" "$dir/det-$nodes.h5" /progress /progress >/dev/null 2>&1
    then ok "$name"; else fail "$name (exit $rc)"; fi
    acc=$(metric "$dir/$nodes-shm.jsonl" test_accuracy 2>/dev/null || echo -1)
    if awk -v a="$acc" -v h="$host_acc" 'BEGIN { exit !(h > 0.8 && a - h < 0.01 && h - a < 0.01) }'
    then ok "$nodes nodes: accuracy $acc, one host $host_acc"; else fail "$nodes nodes: accuracy $acc, one host $host_acc"; fi
done

"$emu" down 2>/dev/null
"$emu" up 2 >/dev/null
# nodes of unequal size (2 + 1 ranks): every rank takes part in the same collectives
timeout 300 "$emu" mpirun -np 3 --map-by ppr:2:node "$nntrain" "${det[@]}" --checkpoint "$dir/det-2+1.h5" \
    >"$dir/out" 2>"$dir/err"
rc=$?
name="2 + 1 ranks on 2 nodes, --deterministic: the checkpoint of 1 rank on one host, bit for bit"
if [ "$rc" -eq 0 ] && grep -q "one product over the global batch (.*2 nodes" "$dir/out" &&
   h5diff "$dir/det-host1.h5" "$dir/det-2+1.h5" /model /model >/dev/null 2>&1 &&
   h5diff "$dir/det-host1.h5" "$dir/det-2+1.h5" /optimizer /optimizer >/dev/null 2>&1
then ok "$name"; else fail "$name (exit $rc; $(head -1 "$dir/out"))"; fi
timeout 120 "$emu" mpirun -np 2 --map-by node "$nntrain" --data "$dir/badlabel.h5" --layers 16,3 \
    >"$dir/out" 2>"$dir/err"
rc=$?
if [ "$rc" -eq 2 ] && [ "$(grep -c '^nntrain: ' "$dir/err")" -eq 1 ] && grep -q "labels\[63\] = 7 is outside 0..2" "$dir/err"
then ok "a bad label on the second node: every rank stops, exit 2, one line"
else fail "a bad label on the second node: expected exit 2 and one line (exit $rc)"; fi

# a dataset staged to each node's own disk at the same path (ip netns exec shows node 2
# /etc/netns/nnemu-h2/X as /etc/X): identical copies train, and nothing is left beside
# them (OpenMPI's MPI-IO made FILE-JOBID-PID.lock there, which node 2 could not see: the
# start hung until --timeout, exit 1, the lock file left); a copy that differs: exit 2
mkdir -p "$staged" "/etc/netns/nnemu-h2/${staged#/etc/}"
cp "$dir/good.h5" "$staged/d.h5" && cp "$dir/good.h5" "/etc/netns/nnemu-h2/${staged#/etc/}/d.h5"
timeout 120 "$emu" mpirun -np 2 --map-by node "$nntrain" --data "$staged/d.h5" --layers 16,8,3 --batch-size 16 \
    --epochs 2 --timeout 20 >"$dir/out" 2>"$dir/err"
rc=$?
if [ "$rc" -eq 0 ] && [ "$(ls "$staged")" = d.h5 ]
then ok "a dataset staged to each node's disk: trains, nothing left beside it"
else fail "a dataset staged to each node's disk: exit $rc, beside it: $(ls "$staged" | tr '\n' ' ')"; fi
cp "$dir/fewer.h5" "/etc/netns/nnemu-h2/${staged#/etc/}/d.h5"
timeout 120 "$emu" mpirun -np 2 --map-by node "$nntrain" --data "$staged/d.h5" --layers 16,8,3 --batch-size 16 \
    --epochs 2 --timeout 20 >"$dir/out" 2>"$dir/err"
rc=$?
if [ "$rc" -eq 2 ] && grep -q "^nntrain: $staged/d.h5 differs between ranks: rank 1's is not rank 0's" "$dir/err" &&
   [ "$(ls "$staged")" = d.h5 ]
then ok "a staged copy that differs on node 2: exit 2, one line"
else fail "a staged copy that differs on node 2: exit $rc"; fi
rm -rf "$staged" "/etc/netns/nnemu-h2/${staged#/etc/}"

# a lost link: start, wait for the first checkpoint, cut node 2 for good
rm -f "$dir/ck.h5"
"$emu" mpirun -np 2 --map-by node "$nntrain" --data "$dir/good.h5" --layers 16,2000,2000,3 --batch-size 64 \
    --epochs 100000 --checkpoint "$dir/ck.h5" --timeout 5 >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 600); do [ -f "$dir/ck.h5" ] && break; sleep 0.1; done
"$emu" cut 2
start=$(date +%s)
( trap 'kill "$nap"; exit 0' TERM; sleep 90 & nap=$!; wait "$nap"; kill -KILL "$pid" ) 2>/dev/null & guard=$! # a hang guard, far beyond the 5 + 30 s allowed
wait "$pid"
rc=$? took=$(( $(date +%s) - start ))
kill "$guard" 2>/dev/null; wait "$guard" 2>/dev/null
# (test_multinode_watchdog covers this and more: exit 1, nothing left behind.)
if [ "$rc" -ne 0 ] && [ "$took" -le 35 ] &&
   grep -qE "^nntrain: rank [01]: no progress for .*(the sum between nodes has not completed|waits likewise, for another node)" "$dir/err"
then ok "node 2's link cut: the watchdog ends the job in ${took}s (exit $rc), waiting for another node"
else fail "node 2's link cut: expected the watchdog's line and the end within 35 s (exit $rc after ${took}s)"; fi
epoch=$(h5dump -a /progress/epochs_completed "$dir/ck.h5" 2>/dev/null | sed -n 's/.*(0): \([0-9]*\).*/\1/p')
"$emu" down
if timeout 120 "$mpiexec" -n 2 "$nntrain" --resume "$dir/ck.h5" --epochs $((${epoch:-0} + 1)) >/dev/null 2>"$dir/err"
then ok "node 2's link cut: the last checkpoint resumes (epoch ${epoch:-?} + 1)"
else fail "node 2's link cut: the last checkpoint resumes"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
