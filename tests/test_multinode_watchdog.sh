#!/usr/bin/env bash
# The watchdog across emulated nodes (scripts/emulated_nodes.sh), 2 nodes x 2 ranks,
# --timeout 5. Each case ends with exit 1 (one code for "ended by the watchdog",
# whichever node gives up first), within the timeout plus a generous margin, and
# leaves nothing of the job: no process in the nodes, no session directory of
# OpenMPI's, no shared-memory segment.
#  - node 2's link cut while its ranks start (MPI_Init): the line says "starting";
#  - node 2's link cut during training: the line says what node 1 saw (in the sum:
#    "the sum between nodes has not completed in N s");
#  - a rank stopped (SIGSTOP) on node 2, then on node 1: the line names it;
#  - 3 nodes of one rank, node 3's link cut in training: the job ends (exit 139:
#    mpirun's crash when forced), not a hang;
#  - node 2's link cut once the run is done: the `done:` line and the checkpoint stand,
#    and the launchers, which would wait for the lost node for minutes, are ended.
# Skipped (exit 77) where network namespaces are not allowed. NN_EMULATED_NODES and
# NN_EMULATED_PREFIX name another copy of the script and its prefix (a private
# cluster while someone else uses the default one).
# Usage: test_multinode_watchdog.sh NNTRAIN NNEVAL MAKE_TEST_DATA WORKDIR
set -u
nntrain=$(realpath "$1") nneval=$2 make_data=$3 dir=$(realpath "$4")/multinode_watchdog
repo=$(cd "$(dirname "$0")/.." && pwd)
emu=${NN_EMULATED_NODES:-$repo/scripts/emulated_nodes.sh} prefix=${NN_EMULATED_PREFIX:-nnemu}
rm -rf "$dir" && mkdir -p "$dir" && "$make_data" "$dir" >/dev/null || { echo "FAIL cannot make test data"; exit 1; }
if ! ip netns add "$prefix-probe" 2>/dev/null; then echo "SKIP: network namespaces are not allowed here"; exit 77; fi
ip netns del "$prefix-probe"
trap '"$emu" down' EXIT
export OMP_NUM_THREADS=1
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; head -c 2000 "$dir/err" 2>/dev/null | head -8 | sed 's/^/     /'; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }

ranks_on() { ip netns pids "$prefix-h$1" 2>/dev/null | xargs -r ps -o pid=,comm= -p | awk '$2 == "nntrain" { print $1 }'; }
wait_ranks() { # node $1 runs its 2 ranks (false if the job ended first)
    for _ in $(seq 6000); do
        [ "$(ranks_on "$1" | wc -l)" -ge 2 ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
    done
    return 1
}

# What the job's ranks would leave: their session directories and vader segments
# (named after the job id in hex), read from the ranks' environments.
note_leftovers() {
    local pid env id
    : >"$dir/leftovers"
    for pid in $(ranks_on 1) $(ranks_on 2); do
        env=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null) || continue
        sed -n 's/^OMPI_MCA_orte_jobfam_session_dir=//p' <<<"$env" >>"$dir/leftovers"
        id=$(sed -n 's/^OMPI_MCA_ess_base_jobid=//p' <<<"$env")
        [ -n "$id" ] && printf '/dev/shm/vader_segment.*.%x.*\n' "$id" >>"$dir/leftovers"
    done
    sort -u -o "$dir/leftovers" "$dir/leftovers"
}
nothing_left() { # within 30 s: no process in the nodes, no noted path
    local _ p left
    for _ in $(seq 300); do
        left=$( { ranks_on 1; ranks_on 2; ip netns pids "$prefix-h1"; ip netns pids "$prefix-h2"; } 2>/dev/null | head -1)
        while read -r p; do for f in $p; do [ -e "$f" ] && left=$f; done; done <"$dir/leftovers"
        [ -z "$left" ] && return 0
        sleep 0.1
    done
    echo "     left: $left"
    return 1
}

# start ARGS...: the job on fresh nodes, 2 ranks each, in the background ($pid)
start() {
    "$emu" down; "$emu" up 2 >/dev/null || { echo "FAIL cannot start emulated nodes"; exit 1; }
    rm -f "$dir/ck.h5"
    "$emu" mpirun -np 4 --map-by ppr:2:node "$nntrain" --data "$dir/good.h5" --timeout 5 "$@" >"$dir/out" 2>"$dir/err" &
    pid=$!
}
# start_ranks ARGS...: start, then wait until node 2 runs its ranks; once more when
# OpenMPI could not start its daemons (a hiccup of the emulated cluster, seen once in
# CI: "ORTE was unable to reliably start one or more daemons"; not what is tested)
start_ranks() {
    start "$@"
    wait_ranks 2 && return 0
    grep -q 'unable to reliably start one or more daemons' "$dir/err" || return 1
    echo "     (OpenMPI could not start its daemons: once more)"
    wait "$pid"
    start "$@"
    wait_ranks 2
}
# finish: wait for the end (a hang guard far beyond 5 s + the margin), $rc and $took
finish() {
    local t0=$SECONDS
    ( trap 'kill "$nap"; exit 0' TERM; sleep 120 & nap=$!; wait "$nap"; kill -KILL "$pid" ) 2>/dev/null & local guard=$!
    wait "$pid"
    rc=$? took=$((SECONDS - t0))
    kill "$guard" 2>/dev/null; wait "$guard" 2>/dev/null
}
ended() { [ "$rc" -eq 1 ] && [ "$took" -le 90 ]; } # by the watchdog, not the 120 s guard
training() { # the header is out (every rank has started) and a second of training has passed
    for _ in $(seq 6000); do
        grep -q '^nntrain: .*network' "$dir/out" 2>/dev/null && sleep 1 && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.02
    done
    return 1
}
line() { grep -qE "$1" "$dir/err"; }
no_line() { ! grep -qE "$1" "$dir/err"; }
long=(--layers 16,2000,2000,3 --batch-size 4 --epochs 100000)

start_ranks --layers 16,8,3 --batch-size 8 --epochs 2 && note_leftovers
"$emu" cut 2
finish
check "link cut in MPI_Init: exit 1 after ${took}s (got $rc)" ended
# (OpenMPI may see the lost node itself while it wires the ranks up, and say so)
# The cut lands while the ranks start unless start-up outruns the polling above (seen
# once, in CI on a machine with a CPU hog): then node 1 waits in step 0's sum.
if line '^nntrain: rank [0-3]: no progress .* at step 0, waiting in the gradient sum'; then moment="step 0's sum"
else moment="start-up"; fi
check "link cut in MPI_Init ($moment): a line says the rank was starting, or in step 0's sum between nodes, or OpenMPI that a node is lost" line \
    '^nntrain: rank [0-3]: no progress for [0-9]+ s \(--timeout\) at step 0, (starting|waiting in the gradient sum; every rank of this node waits likewise: the sum between nodes)|unable to complete a TCP connection|lost communication'
check "link cut in MPI_Init: nothing left" nothing_left

start "${long[@]}"
training && note_leftovers
"$emu" cut 2
finish
check "link cut in training: exit 1 after ${took}s (got $rc)" ended
check "link cut in training: the line says what node 1 saw" line \
    '^nntrain: rank [01]: no progress .*(waiting in the gradient sum; every rank of this node waits likewise: the sum between nodes has not completed in [0-9]+ s|evaluating or checkpointing; every rank of this node waits likewise, for another node)'
check "link cut in training: one line, and no rank missing is claimed" no_line 'rank missing|frozen'
check "link cut in training: nothing left" nothing_left

for node in 2 1; do
    start "${long[@]}"
    training && note_leftovers
    victim=$(ranks_on "$node" | head -1)
    kill -STOP "$victim"
    finish
    kill -CONT "$victim" 2>/dev/null
    check "a rank stopped on node $node: exit 1 after ${took}s (got $rc)" ended
    check "a rank stopped on node $node: the line names it" line '^nntrain: rank [0-3]: no progress .*; rank [0-3] is at step .*frozen'
    check "a rank stopped on node $node: nothing left" nothing_left
done

# Three nodes, one rank each, node 3's link cut in training: node 2's rank ends the job
# the ordinary way while rank 0 waits to be sure, and mpirun (which kills rank 0 then)
# waits for node 3's daemon for good. Until 2026-12-08 rank 0 forked its reaper only
# after that wait, so no one ended mpirun: the job hung.
"$emu" down; "$emu" up 3 >/dev/null || { echo "FAIL cannot start 3 emulated nodes"; exit 1; }
"$emu" mpirun -np 3 --map-by ppr:1:node "$nntrain" --data "$dir/good.h5" --timeout 5 "${long[@]}" >"$dir/out" 2>"$dir/err" &
pid=$!
training
"$emu" cut 3
finish
# (mpirun, forced while its own abort waits for node 3, crashes in OpenMPI's
# PMIx_Finalize: exit 139 rather than 1; what matters is that the job ends)
ended_any() { [ "$rc" -ne 0 ] && [ "$rc" -ne 137 ] && [ "$took" -le 90 ]; } # 137: the hang guard's SIGKILL
check "3 nodes, node 3's link cut in training: the job ends, exit $rc after ${took}s" ended_any
"$emu" down

start_ranks --layers 16,8,3 --batch-size 8 --epochs 2 --checkpoint "$dir/ck.h5" && note_leftovers
for _ in $(seq 30000); do grep -q '^done:' "$dir/out" && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done
"$emu" cut 2
finish
if grep -q '^done:' "$dir/out" && "$nneval" --data "$dir/good.h5" --checkpoint "$dir/ck.h5" >/dev/null 2>&1 &&
   { [ "$rc" -eq 0 ] || ended; }
then ok "link cut after the last epoch: done, checkpoint valid, exit $rc after ${took}s"
else fail "link cut after the last epoch: expected done, a valid checkpoint and exit 0 or 1 within 90 s (exit $rc after ${took}s)"; fi
check "link cut after the last epoch: nothing left" nothing_left

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
