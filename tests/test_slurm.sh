#!/usr/bin/env bash
# The job scripts in jobs/ against a real, throwaway Slurm (scripts/slurm_local.sh):
#  one node (this host):
#  - scripts/slurm_local.sh start over a slurm.conf it did not write: exit 2, one line,
#    the file kept; a start failing half-way (in start_slurmd) stops what it started;
#    its own slurm.conf is marked so (first line) and replaced on the next start;
#  - jobs/nntrain.sbatch trains and completes; a request for more CPUs than the cluster
#    has is refused by sbatch; a job without its binary fails and says why;
#  - jobs/nntrain_preemptible.sbatch, signalled as at its time limit, checkpoints, exits
#    75, requeues itself, and the restart resumes from the checkpoint and finishes;
#  - jobs/nntrain_preemptible.sbatch as a 2-element array: both elements train, each
#    with its own checkpoint and metrics file (ARRAYJOBID_TASK);
#  - jobs/nntrain_scaling.sbatch as a 2-element array writes one CSV row per element;
#  two emulated nodes (one slurmd inside each network namespace):
#  - jobs/nntrain_multinode.sbatch runs 2 nodes x 2 ranks through srun --mpi=pmix, and its
#    header names 2 nodes; a bad label on the second node fails the job with one line;
#  - the scaling array over 1, 2, 4 ranks across the two nodes.
# Every daemon is stopped by PID at the end, also on failure; afterwards no slurmctld,
# slurmd, slurmstepd, munged (when this test started it) or namespace is left.
# Skipped (77) without Slurm installed -- unless NN_REQUIRE_SLURM=1 (scripts/test.sh
# installs it) -- or without leave to make namespaces (the two-node part only).
# Usage: test_slurm.sh NNTRAIN MAKE_TEST_DATA MNIST
set -u
nntrain=$1 make_data=$2 mnist=$3
repo=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "SKIP: slurm-wlm or munge is not installed (scripts/setup.sh --test installs them)"
    [ "${NN_REQUIRE_SLURM:-0}" = 1 ] && exit 1
    exit 77
fi
[ -f "$mnist" ] || { echo "FAIL $mnist missing: run scripts/fetch_mnist.sh first"; exit 1; }
# Slurm's unix sockets live in its spool directory: keep the path short
work=$(mktemp -d /tmp/nntrain-slurm-test.XXXXXX)
export SLURM_DIR=$work/slurm SLURM_CONF=$work/slurm/slurm.conf SLURM_PORT=${NN_TEST_SLURM_PORT:-6917}
export NNTRAIN_HOME=$repo NNTRAIN_BIN=$nntrain NNTRAIN_DATA=$mnist
daemons() { for name in slurmctld slurmd slurmstepd munged; do pgrep -x "$name"; done; } # pgrep -x: one name each
daemons_before=" $(daemons | tr '\n' ' ')"
cleanup() {
    "$repo/scripts/slurm_local.sh" stop >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
"$make_data" "$work" >/dev/null || { echo "FAIL cannot make test data"; exit 1; }
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && [ -f "$2" ] && sed 's/^/     /' "$2" | tail -8; }
metric() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])[sys.argv[2]])' "$@"; }
job_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
# wait_done ID SECONDS: until the job (every element of an array) has left the queue
wait_done() {
    local end=$((SECONDS + $2))
    while [ -n "$(squeue -h -j "$1" -o %i 2>/dev/null)" ]; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.2
    done
}
submit() { sbatch --parsable --chdir="$work/run" "$@"; }
mkdir -p "$work/run"
small=(--train-limit 6000 --epochs 2)

ours() { for pid in $(pgrep -x "$1"); do grep -qF "$SLURM_CONF" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"; done; }

# A slurm.conf there that the script did not write (SLURM_DIR=/etc/slurm): start stops at
# once, exit 2, one line, the directory and the file unchanged, no daemon started. Until
# 2026-12-07 it was overwritten (a plain >) and the throwaway cluster started over it.
mkdir -p "$SLURM_DIR" && printf 'ClusterName=real\nSlurmctldHost=head\n' >"$SLURM_CONF"
before=$(ls -A "$SLURM_DIR"; cat "$SLURM_CONF")
"$repo/scripts/slurm_local.sh" start >"$work/start.log" 2>&1
rc=$?
left=$(ours slurmctld; ours slurmd)
if [ "$rc" -eq 2 ] && [ "$(wc -l <"$work/start.log")" -eq 1 ] && grep -q "is not a slurm.conf this script wrote" "$work/start.log" &&
   [ "$before" = "$(ls -A "$SLURM_DIR"; cat "$SLURM_CONF")" ] && [ -z "$left" ]
then ok "scripts/slurm_local.sh start over a slurm.conf it did not write: exit 2, one line, nothing changed or started"
else fail "scripts/slurm_local.sh start over a slurm.conf it did not write: exit $rc (left: $left; $(ls -A "$SLURM_DIR" | tr '\n' ' '))" "$work/start.log"; fi
"$repo/scripts/slurm_local.sh" stop >/dev/null 2>&1
rm -rf "$SLURM_DIR"

# A start that fails half-way (here in start_slurmd: the node's spool directory is a
# file) stops what it started: no slurmctld of this cluster is left running.
mkdir -p "$SLURM_DIR/spool" && touch "$SLURM_DIR/spool/$(hostname)"
"$repo/scripts/slurm_local.sh" start >"$work/start.log" 2>&1
rc=$?
left=$(ours slurmctld; ours slurmd)
if [ "$rc" -ne 0 ] && [ -z "$left" ] && ! ls "$SLURM_DIR"/*.bg >/dev/null 2>&1
then ok "scripts/slurm_local.sh start failing in start_slurmd stops the controller it started"
else fail "scripts/slurm_local.sh start failing in start_slurmd stops the controller it started (exit $rc, left: $left)" "$work/start.log"; fi
"$repo/scripts/slurm_local.sh" stop >/dev/null 2>&1
rm -f "$SLURM_DIR/spool/$(hostname)"

start=$SECONDS
if ! "$repo/scripts/slurm_local.sh" start >"$work/start.log" 2>&1; then
    fail "a one-node Slurm starts" "$work/start.log"
    echo "$passed passed, $failed failed"; exit 1
fi
ok "a one-node Slurm starts ($((SECONDS - start)) s)"
# its slurm.conf (the half-way start's before it, replaced) is marked as its own, and
# no temporary of it is left
if head -n 1 "$SLURM_CONF" | grep -q "^# written by scripts/slurm_local.sh" && [ -z "$(ls -A "$SLURM_DIR" | grep '^\.slurm\.conf')" ]
then ok "scripts/slurm_local.sh: its slurm.conf says it wrote it (first line), no temporary left"
else fail "scripts/slurm_local.sh: its slurm.conf says it wrote it (first line), no temporary left ($(head -n 1 "$SLURM_CONF"))"; fi

# --- the single-node job ---
t=$SECONDS
id=$(submit "$repo/jobs/nntrain.sbatch" "${small[@]}")
wait_done "$id" 120
out=$work/run/nntrain-$id.out
if [ "$(job_state "$id")" = COMPLETED ] && grep -q "2 ranks x 1 thread;" "$out" && grep -q "^done: 2 epochs" "$out" &&
   [ "$(wc -l <"$work/run/nntrain-$id.jsonl")" -eq 2 ]
then ok "jobs/nntrain.sbatch: 2 ranks train 2 epochs and the job completes ($((SECONDS - t)) s)"
else fail "jobs/nntrain.sbatch: 2 ranks train 2 epochs and the job completes (state $(job_state "$id"))" "$out"; fi

cpus=$(nproc)
if ! sbatch --chdir="$work/run" --ntasks=$((cpus + 1)) "$repo/jobs/nntrain.sbatch" >"$work/sb" 2>&1 &&
   grep -q "More processors requested than permitted" "$work/sb"
then ok "jobs/nntrain.sbatch with $((cpus + 1)) tasks on $cpus CPUs: sbatch refuses it"
else fail "jobs/nntrain.sbatch with $((cpus + 1)) tasks on $cpus CPUs: sbatch refuses it" "$work/sb"; fi

id=$(NNTRAIN_BIN=$work/missing/nntrain submit "$repo/jobs/nntrain.sbatch")
wait_done "$id" 60
if [ "$(job_state "$id")" = FAILED ] && grep -q "no nntrain binary at $work/missing/nntrain" "$work/run/nntrain-$id.out"
then ok "a job without its binary fails and its output says why"
else fail "a job without its binary fails and its output says why (state $(job_state "$id"))" "$work/run/nntrain-$id.out"; fi

# --- preemption: signal as at the time limit, requeue, resume, finish ---
t=$SECONDS
id=$(submit "$repo/jobs/nntrain_preemptible.sbatch" --epochs 40)
metrics=$work/run/nntrain-$id.jsonl
end=$((SECONDS + 120))
while [ ! -s "$metrics" ] && [ $SECONDS -lt $end ]; do sleep 0.1; done # an epoch done: running
scancel --signal=USR1 --batch "$id"
end=$((SECONDS + 60))
until scontrol show job "$id" | grep -q "JobState=PENDING.*" && scontrol show job "$id" | grep -q "Restarts=1"; do
    [ $SECONDS -lt $end ] || break
    sleep 0.2
done
requeued_after=$((SECONDS - t))
# Skip the requeue's BeginTime delay -- but not within the second of the requeue:
# slurmd refuses a relaunch whose credential is as old as the revocation ("Killing
# non-startable batch job: Job credential revoked"), a race the delay exists to avoid.
sleep 2
scontrol update JobId="$id" StartTime=now
wait_done "$id" 300
out=$work/run/nntrain-$id.out
epochs=$(python3 -c 'import json,sys; print(",".join(str(json.loads(l)["epoch"]) for l in open(sys.argv[1])))' "$metrics" 2>/dev/null)
if [ "$(job_state "$id")" = COMPLETED ] && scontrol show job "$id" | grep -q "Restarts=1" &&
   grep -q "stopped by a signal at epoch" "$out" && grep -q "requeueing" "$out" &&
   grep -q "^nntrain: resuming from checkpoints/nntrain-$id.h5" "$out" && grep -q "^done: 40 epochs" "$out" &&
   [ "$epochs" = "$(seq -s, 1 40)" ]
then ok "jobs/nntrain_preemptible.sbatch: USR1 -> checkpoint, exit 75, requeue ($requeued_after s) -> resume -> 40 epochs ($((SECONDS - t)) s)"
else fail "jobs/nntrain_preemptible.sbatch: signalled, requeued, resumed, finished (state $(job_state "$id"), epochs $epochs)" "$out"; fi

# --- a preemptible array: each element its own checkpoint and metrics ---
t=$SECONDS
id=$(submit --array=0-1 --ntasks=1 "$repo/jobs/nntrain_preemptible.sbatch" "${small[@]}" --layers 784,16,10)
wait_done "$id" 180
a0=$(wc -l <"$work/run/nntrain-${id}_0.jsonl" 2>/dev/null) a1=$(wc -l <"$work/run/nntrain-${id}_1.jsonl" 2>/dev/null)
if [ "$(job_state "${id}_0")" = COMPLETED ] && [ "$(job_state "${id}_1")" = COMPLETED ] &&
   [ "${a0:-0}" -eq 2 ] && [ "${a1:-0}" -eq 2 ] &&
   [ -f "$work/run/checkpoints/nntrain-${id}_0.h5" ] && [ -f "$work/run/checkpoints/nntrain-${id}_1.h5" ]
then ok "jobs/nntrain_preemptible.sbatch as a 2-element array: both train, each its own checkpoint and metrics ($((SECONDS - t)) s)"
else fail "jobs/nntrain_preemptible.sbatch as a 2-element array: both train, each its own checkpoint and metrics (states $(job_state "${id}_0") $(job_state "${id}_1"); $(ls "$work/run" "$work/run/checkpoints" | tr '\n' ' '))" "$work/run/nntrain-$((id + 1)).out"; fi

# --- the scaling array on one node ---
t=$SECONDS
id=$(submit "$repo/jobs/nntrain_scaling.sbatch" "${small[@]}")
wait_done "$id" 180
csv=$work/run/scaling-$id.csv
if [ "$(cut -d, -f1,3,5,10 "$csv" 2>/dev/null | sort | tr '\n' ' ')" = "0,1,2,0 1,2,2,0 array_task,ranks,epochs,exit_code " ]
then ok "jobs/nntrain_scaling.sbatch: a 2-element array writes one CSV row per element ($((SECONDS - t)) s)"
else fail "jobs/nntrain_scaling.sbatch: a 2-element array writes one CSV row per element" "$csv"; fi
"$repo/scripts/slurm_local.sh" stop >/dev/null 2>&1

# --- two emulated nodes, one slurmd in each ---
if ! ip netns add nnemu-probe 2>/dev/null; then
    echo "SKIP the two-node part: network namespaces are not allowed here"
else
    ip netns del nnemu-probe
    start=$SECONDS
    if ! "$repo/scripts/slurm_local.sh" start 2 >"$work/start.log" 2>&1; then
        fail "a two-node Slurm in emulated nodes starts" "$work/start.log"
    else
        ok "a two-node Slurm in emulated nodes starts ($((SECONDS - start)) s)"
        t=$SECONDS
        id=$(submit "$repo/jobs/nntrain_multinode.sbatch" "${small[@]}")
        wait_done "$id" 180
        out=$work/run/nntrain-$id.out
        acc=$(metric "$work/run/nntrain-$id.jsonl" test_accuracy 2>/dev/null || echo 0)
        if [ "$(job_state "$id")" = COMPLETED ] && grep -q "nnemu-h\[1-2\]" "$out" &&
           grep -q "4 ranks x 1 thread; .*(shared memory, 2 nodes)" "$out" &&
           awk -v a="$acc" 'BEGIN { exit !(a > 0.8) }'
        then ok "jobs/nntrain_multinode.sbatch: 2 nodes x 2 ranks, the header says 2 nodes, accuracy $acc ($((SECONDS - t)) s)"
        else fail "jobs/nntrain_multinode.sbatch: 2 nodes x 2 ranks (state $(job_state "$id"))" "$out"; fi

        id=$(NNTRAIN_DATA=$work/badlabel.h5 submit "$repo/jobs/nntrain_multinode.sbatch" --layers 16,3)
        wait_done "$id" 120
        out=$work/run/nntrain-$id.out
        if [ "$(job_state "$id")" = FAILED ] && [ "$(grep -c '^nntrain: ' "$out")" -eq 1 ] &&
           grep -q "labels\[63\] = 7 is outside 0..2" "$out"
        then ok "jobs/nntrain_multinode.sbatch: a bad label on the second node fails the job, one line"
        else fail "jobs/nntrain_multinode.sbatch: a bad label on the second node fails the job, one line (state $(job_state "$id"))" "$out"; fi

        t=$SECONDS
        id=$(submit --array=0-2%1 --nodes=2 "$repo/jobs/nntrain_scaling.sbatch" "${small[@]}")
        wait_done "$id" 300
        csv=$work/run/scaling-$id.csv
        if [ "$(cut -d, -f1-3,10 "$csv" 2>/dev/null | sort | tr '\n' ' ')" = "0,2,1,0 1,2,2,0 2,2,4,0 array_task,nodes,ranks,exit_code " ]
        then ok "jobs/nntrain_scaling.sbatch over 2 nodes: rows for 1, 2 and 4 ranks ($((SECONDS - t)) s)"
        else fail "jobs/nntrain_scaling.sbatch over 2 nodes: rows for 1, 2 and 4 ranks" "$csv"; fi
    fi
    "$repo/scripts/slurm_local.sh" stop >/dev/null 2>&1
fi

# --- nothing left behind ---
left=""
for pid in $(daemons); do # ones this test started
    [[ "$daemons_before " == *" $pid "* ]] || left+="$(cat "/proc/$pid/comm" 2>/dev/null)[$pid] "
done
left+=$(ip netns list 2>/dev/null | grep -o '^nnemu-[a-z0-9]*' | tr '\n' ' ')
if [ -z "$left" ]; then ok "stop leaves no Slurm daemon, munged or namespace behind"
else fail "stop leaves no Slurm daemon, munged or namespace behind: $left"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
