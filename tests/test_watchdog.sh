#!/usr/bin/env bash
# No hang, ever: a rank that stops making progress ends the job.
#  - SIGSTOP one rank of two: the other ends the job after --timeout with exit 1 and
#    a line naming the stopped rank (that a waiting rank sleeps rather than spins is
#    checked in test_reduce, where the wait is known to be in the gradient sum);
#  - SIGKILL one rank: mpirun ends the job;
#  - either way the last checkpoint is valid and resumes.
# Nothing here depends on how fast a step is: the hang guard (60 s) is far beyond the
# 3 s timeout, and the checks look at exit codes and messages only.
# Usage: test_watchdog.sh NNTRAIN NNEVAL MAKE_TEST_DATA MPIEXEC WORKDIR
set -u
nntrain=$1 nneval=$2 make_data=$3 mpiexec=$4 dir=$5/watchdog
rm -rf "$dir" && mkdir -p "$dir" && "$make_data" "$dir" || { echo "FAIL cannot make test data"; exit 1; }
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -f "$dir/err" ] && grep '^nntrain' "$dir/err" | sed 's/^/     /' | head -5; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }
wait_for_file() { for _ in $(seq 600); do [ -f "$1" ] && return 0; sleep 0.1; done; return 1; }

# A wide network, so that a step is long enough to be caught in the middle of.
job=(--data "$dir/good.h5" --layers 16,2000,2000,3 --batch-size 64 --epochs 100000 --checkpoint "$dir/ck.h5")

# run_and_break HOW: start the job, wait for its first checkpoint, hurt rank 1, wait for the end
run_and_break() {
    rm -f "$dir/ck.h5"
    setsid "$mpiexec" -n 2 "$nntrain" "${job[@]}" --timeout 3 >"$dir/out" 2>"$dir/err" &
    pid=$!
    wait_for_file "$dir/ck.h5"
    local ranks=($(pgrep -P "$pid" nntrain))
    ( trap 'kill "$nap"; exit 0' TERM; sleep 60 & nap=$!; wait "$nap"; kill -KILL -- -"$pid" ) 2>/dev/null & local guard=$!
    if [ "${#ranks[@]}" -eq 2 ]; then kill "-$1" "${ranks[1]}"; else kill -KILL -- -"$pid"; fi
    wait "$pid"
    rc=$?
    kill "$guard" 2>/dev/null; wait "$guard" 2>/dev/null
    kill -KILL -- -"$pid" 2>/dev/null # anything mpirun left behind
}

resumes() { # the checkpoint is valid and training continues from it
    "$nneval" --data "$dir/good.h5" --checkpoint "$dir/ck.h5" >/dev/null 2>&1 &&
        timeout 120 "$mpiexec" -n 2 "$nntrain" "${job[@]}" --resume "$dir/ck.h5" --epochs 3 >/dev/null 2>&1
}

run_and_break STOP
check "SIGSTOP of rank 1: the job ends with exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "SIGSTOP of rank 1: rank 0 says it made no progress and names rank 1" \
    grep -qE '^nntrain: rank 0: no progress for [0-9]+ s \(--timeout\) at step [0-9]+, .*; rank 1 is at step .*(frozen|computing)' "$dir/err"
check "SIGSTOP of rank 1: the last checkpoint is valid and resumes" resumes

run_and_break KILL
check "SIGKILL of rank 1: the job ends with an error (exit $rc)" [ "$rc" -ne 0 ]
check "SIGKILL of rank 1: the last checkpoint is valid and resumes" resumes

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
