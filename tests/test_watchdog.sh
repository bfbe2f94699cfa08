#!/usr/bin/env bash
# No hang, ever: the watchdog ends a job that makes no progress, from MPI_Init to
# MPI_Finalize, and the job leaves nothing behind.
#  - SIGSTOP one rank of two: the other ends the job after --timeout with exit 1 and
#    a line naming the stopped rank (that a waiting rank sleeps rather than spins is
#    checked in test_reduce, where the wait is known to be in the gradient sum);
#  - SIGKILL one rank: mpirun ends the job;
#  - either way the last checkpoint is valid and resumes, and no checkpoint .tmp, no
#    session directory and no shared-memory segment of the job is left;
#  - rank 0 stopped while it writes a checkpoint: no .tmp left; one in a directory put
#    at the checkpoint's since is another run's, and kept;
#  - a FIFO as --data or --resume (a read that never returns, during start-up): exit 1
#    with a line saying the ranks were starting; also without mpirun; nneval too;
#  - an epoch's evaluation and checkpoint longer than --timeout are progress: the run
#    completes (real MNIST, 10,000 test and 10,000 validation samples on 784-4000-4000-10).
# Nothing here depends on how fast a step is: the hang guards (120 s) are far beyond
# the 5 s timeout, and the checks look at exit codes, messages and files only.
# Usage: test_watchdog.sh NNTRAIN NNEVAL MAKE_TEST_DATA MPIEXEC WORKDIR [MNIST]
set -u
nntrain=$1 nneval=$2 make_data=$3 mpiexec=$4 dir=$5/watchdog mnist=${6:-}
rm -rf "$dir" && mkdir -p "$dir" && "$make_data" "$dir" || { echo "FAIL cannot make test data"; exit 1; }
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -f "$dir/err" ] && grep '^nntrain' "$dir/err" | sed 's/^/     /' | head -5; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }
wait_for_file() { for _ in $(seq 600); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }

# A wide network, so that a step is long enough to be caught in the middle of.
job=(--data "$dir/good.h5" --layers 16,2000,2000,3 --batch-size 64 --epochs 100000 --checkpoint "$dir/ck.h5")

# launch ARGS...: the job under setsid in the background ($pid), with a hang guard
launch() {
    setsid "$mpiexec" -n 2 "$nntrain" "$@" >"$dir/out" 2>"$dir/err" &
    pid=$!
    ( trap 'kill "$nap"; exit 0' TERM; sleep 120 & nap=$!; wait "$nap"; kill -KILL -- -"$pid" ) 2>/dev/null &
    guard=$!
}
ranks() { pgrep -P "$pid" nntrain; }
land() { # wait for the end: $rc
    wait "$pid"
    rc=$?
    kill "$guard" 2>/dev/null; wait "$guard" 2>/dev/null
    kill -KILL -- -"$pid" 2>/dev/null # anything mpirun left behind
}
# What the job's ranks would leave: OpenMPI's session directory and the vader
# segments (named after the job id in hex), read from a rank's environment.
note_leftovers() {
    local env r id
    : >"$dir/leftovers"
    for _ in $(seq 600); do r=$(ranks | head -1); [ -n "$r" ] && break; sleep 0.1; done
    env=$(tr '\0' '\n' <"/proc/$r/environ" 2>/dev/null) || return 0
    sed -n 's/^OMPI_MCA_orte_jobfam_session_dir=//p' <<<"$env" >>"$dir/leftovers"
    id=$(sed -n 's/^OMPI_MCA_ess_base_jobid=//p' <<<"$env")
    [ -n "$id" ] && printf '/dev/shm/vader_segment.*.%x.*\n' "$id" >>"$dir/leftovers"
    echo "$dir/ck.h5.tmp" >>"$dir/leftovers"
}
nothing_left() { # within 30 s (the watchdog's reaper may still be at work)
    local p f left
    for _ in $(seq 300); do
        left=
        while read -r p; do for f in $p; do [ -e "$f" ] && left=$f; done; done <"$dir/leftovers"
        [ -z "$left" ] && return 0
        sleep 0.1
    done
    echo "     left: $left"
    return 1
}

# run_and_break HOW: start the job, wait for its first checkpoint, hurt rank 1, wait for the end
run_and_break() {
    rm -f "$dir/ck.h5"
    launch "${job[@]}" --timeout 5
    wait_for_file "$dir/ck.h5"
    note_leftovers
    local r=($(ranks))
    if [ "${#r[@]}" -eq 2 ]; then kill "-$1" "${r[1]}"; else kill -KILL -- -"$pid"; fi
    land
    # mpirun may return while a rank it is killing (each in a process group of its own)
    # still exits, holding the checkpoint's lock for a moment: let it go
    local p alive
    for _ in $(seq 300); do
        alive=0; for p in "${r[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break; sleep 0.1
    done
}

resumes() { # the checkpoint is valid and training continues from it, for two more epochs than
    # it holds (a step is an epoch here: a fast machine may be several epochs in)
    local done
    done=$(h5dump -a /progress/epochs_completed "$dir/ck.h5" 2>/dev/null | sed -n 's/.*(0): \([0-9]*\).*/\1/p')
    "$nneval" --data "$dir/good.h5" --checkpoint "$dir/ck.h5" >/dev/null 2>&1 && [ -n "$done" ] &&
        timeout 120 "$mpiexec" -n 2 "$nntrain" "${job[@]}" --resume "$dir/ck.h5" --epochs $((done + 2)) >/dev/null 2>&1
}

run_and_break STOP
check "SIGSTOP of rank 1: the job ends with exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "SIGSTOP of rank 1: rank 0 says it made no progress and names rank 1" \
    grep -qE '^nntrain: rank 0: no progress for [0-9]+ s \(--timeout\) at step [0-9]+, .*; rank 1 is at step .*(frozen|computing)' "$dir/err"
check "SIGSTOP of rank 1: no .tmp, session directory or shared-memory segment left" nothing_left
check "SIGSTOP of rank 1: the last checkpoint is valid and resumes" resumes

run_and_break KILL
check "SIGKILL of rank 1: the job ends with an error (exit $rc)" [ "$rc" -ne 0 ]
check "SIGKILL of rank 1: the last checkpoint is valid and resumes" resumes

# rank 0 stopped in the middle of writing a checkpoint (one every step): rank 1 gives up
rm -f "$dir/ck.h5"
launch "${job[@]}" --checkpoint-every 1 --timeout 5
note_leftovers
wait_for_file "$dir/ck.h5.tmp"
kill -STOP "$(ranks | head -1)" # rank 0: started first, the lower PID
land
check "rank 0 stopped while writing a checkpoint: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "rank 0 stopped while writing a checkpoint: no .tmp or anything else left" nothing_left

# The checkpoint's directory moved away and made anew as rank 1 stops, and another
# run's checkpoint being written there at the temporary's name: the watchdog removes a
# temporary only in the directory the run started in (it removed the other run's file)
rm -rf "$dir/moved" "$dir/moved.old" && mkdir "$dir/moved"
launch "${job[@]:0:${#job[@]}-1}" "$dir/moved/ck.h5" --timeout 5
wait_for_file "$dir/moved/ck.h5"
r=($(ranks))
[ "${#r[@]}" -eq 2 ] && kill -STOP "${r[1]}"
mv "$dir/moved" "$dir/moved.old" && mkdir "$dir/moved" && cp "$dir/good.h5" "$dir/moved/ck.h5.tmp"
land
check "the directory made anew as rank 1 stops: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "the directory made anew as rank 1 stops: the other run's ck.h5.tmp there is kept" \
    cmp -s "$dir/good.h5" "$dir/moved/ck.h5.tmp"
rm -rf "$dir/moved" "$dir/moved.old"

# a read that never returns, during start-up
rm -f "$dir/fifo" && mkfifo "$dir/fifo"
for what in --data --resume; do
    if [ "$what" = --data ]; then launch --data "$dir/fifo" --timeout 5; else launch "${job[@]}" --resume "$dir/fifo" --timeout 5; fi
    note_leftovers
    land
    check "$what FIFO: exit 1 (got $rc)" [ "$rc" -eq 1 ]
    check "$what FIFO: a line says the ranks were starting" \
        grep -qE '^nntrain: rank [01]: no progress for [0-9]+ s \(--timeout\) at step 0, starting' "$dir/err"
    check "$what FIFO: nothing left" nothing_left
done
# the same without mpirun (a singleton), 4 times: its board's memory came unzeroed,
# and about half such runs hung for good (the board said the job was being ended)
singleton_ends=0
for _ in 1 2 3 4; do
    timeout -s KILL 60 "$nntrain" "${job[@]}" --resume "$dir/fifo" --timeout 5 >"$dir/out" 2>"$dir/err"
    [ $? -eq 1 ] && grep -q '^nntrain: rank 0: no progress for [0-9]* s (--timeout) at step 0, starting' "$dir/err" &&
        singleton_ends=$((singleton_ends + 1))
done
check "--resume FIFO without mpirun: exit 1 and the line, 4 of 4 times (got $singleton_ends)" [ "$singleton_ends" -eq 4 ]
# nneval has the same watchdog (it had none: a FIFO or a stopped rank held it for good,
# and one SIGTERM only asked it to stop), with and without mpirun
timeout -s KILL 60 "$mpiexec" -n 2 "$nneval" --checkpoint "$dir/fifo" --timeout 5 >"$dir/out" 2>"$dir/err"; rc=$?
check "nneval --checkpoint FIFO: exit 1 (got $rc) and a line saying the ranks were starting" \
    sh -c "[ $rc -eq 1 ] && grep -qE '^nneval: rank [01]: no progress for [0-9]+ s \(--timeout\) at step 0, starting' '$dir/err'"
timeout -s KILL 60 "$nntrain" --data "$dir/good.h5" --layers 16,8,3 --batch-size 8 --epochs 1 --checkpoint "$dir/eval.h5" >"$dir/out" 2>&1
timeout -s KILL 60 "$nneval" --checkpoint "$dir/eval.h5" --data "$dir/fifo" --timeout 5 >"$dir/out" 2>"$dir/err"; rc=$?
check "nneval --data FIFO without mpirun: exit 1 (got $rc) and the line" \
    sh -c "[ $rc -eq 1 ] && grep -q '^nneval: rank 0: no progress for [0-9]* s (--timeout)' '$dir/err'"

# An epoch end longer than --timeout: 2 x 10,000 samples scored on a wide network, and
# a 154 MB checkpoint. (On a machine fast enough to do it in under 5 s the case checks
# less, and says so.)
if [ -f "$mnist" ]; then
    launch --data "$mnist" --train-limit 11000 --validation 10000 --layers 784,4000,4000,10 --epochs 1 --threads 1 \
        --checkpoint "$dir/big.h5" --metrics "$dir/big.jsonl" --timeout 5
    land
    check "evaluation and checkpoint longer than --timeout: the run completes (exit $rc)" \
        grep -q '^done: 1 epoch,' "$dir/out"
    python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).readline()); print("     (scoring the test set took %.1f s, the validation set about as long, the checkpoint %.1f s)" % (r["eval_seconds"], r["checkpoint_seconds"]))' \
        "$dir/big.jsonl" 2>/dev/null
    check "evaluation and checkpoint longer than --timeout: no .tmp" [ ! -e "$dir/big.h5.tmp" ]
else
    echo "skip evaluation longer than --timeout: no MNIST at '$mnist'"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
