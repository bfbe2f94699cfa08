#!/usr/bin/env bash
# Stop signals: 75 means "stopped, resumable" everywhere.
#  - SIGUSR1 to mpirun as soon as nntrain's handlers are in (before MPI_Init has
#    returned, usually; before any checkpoint): exit 75 with a checkpoint, which
#    resumes to the end (exit 0);
#  - SIGTERM, SIGINT or SIGHUP to the ranks mid-epoch (what srun and Slurm's time
#    limit deliver): exit 75 with a checkpoint that resumes;
#  - a singleton started with SIGHUP ignored (nohup) keeps it ignored;
#  - SIGTERM to mpirun itself: mpirun's own exit code is 1 whatever the ranks do
#    (OpenMPI's rule, see README), but with odls_base_sigkill_timeout raised the ranks
#    still write their checkpoint, which resumes.
# No timing assertions: the hang guards are far beyond what any case needs.
# Usage: test_stop.sh NNTRAIN NNEVAL MAKE_TEST_DATA MPIEXEC WORKDIR
set -u
nntrain=$1 nneval=$2 make_data=$3 mpiexec=$4 dir=$5/stop
rm -rf "$dir" && mkdir -p "$dir" && "$make_data" "$dir" >/dev/null || { echo "FAIL cannot make test data"; exit 1; }
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; grep '^nntrain' "$dir/err" 2>/dev/null | sed 's/^/     /' | head -3; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }

job=(--data "$dir/good.h5" --layers 16,2000,2000,3 --batch-size 8 --epochs 100000 --checkpoint "$dir/ck.h5")
launch() {
    rm -f "$dir/ck.h5"
    setsid "$mpiexec" -n 2 "$nntrain" "$@" >"$dir/out" 2>"$dir/err" &
    pid=$!
    ( trap 'kill "$nap"; exit 0' TERM; sleep 120 & nap=$!; wait "$nap"; kill -KILL -- -"$pid" ) 2>/dev/null &
    guard=$!
}
land() {
    local r=($(ranks)) p alive
    wait "$pid"
    rc=$?
    kill "$guard" 2>/dev/null; wait "$guard" 2>/dev/null
    kill -KILL -- -"$pid" 2>/dev/null
    # mpirun may return while a rank (in a process group of its own) still exits,
    # holding the checkpoint's lock for a moment: let it go before resuming
    for _ in $(seq 300); do
        alive=0; for p in "${r[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break; sleep 0.1
    done
}
ranks() { pgrep -P "$pid" nntrain; }
catches_usr1() { grep -q '^SigCgt:' "/proc/$1/status" 2>/dev/null &&
    (( 0x$(sed -n 's/^SigCgt:\s*//p' "/proc/$1/status") & (1 << 9) )); }
handlers_in() { # every rank of two catches SIGUSR1 (nntrain's first act)
    local r n
    for _ in $(seq 3000); do
        n=0
        for r in $(ranks); do catches_usr1 "$r" && n=$((n + 1)); done
        [ "$n" -eq 2 ] && return 0
        sleep 0.01
    done
    return 1
}
resumes() { # the checkpoint is valid, and a resume runs to the end (two epochs more: a fast
    # machine may have trained many before the signal)
    local done
    done=$(h5dump -a /progress/epochs_completed "$dir/ck.h5" 2>/dev/null | sed -n 's/.*(0): \([0-9]*\).*/\1/p')
    "$nneval" --data "$dir/good.h5" --checkpoint "$dir/ck.h5" >/dev/null 2>&1 && [ -n "$done" ] &&
        timeout 120 "$mpiexec" -n 2 "$nntrain" "${job[@]}" --resume "$dir/ck.h5" --epochs $((done + 2)) >/dev/null 2>&1
}

launch "${job[@]}"
if handlers_in; then
    early=no; [ -e "$dir/ck.h5" ] || early=yes
    kill -USR1 "$pid"
    land
    check "SIGUSR1 to mpirun at start-up (before any checkpoint: $early): exit 75 (got $rc)" [ "$rc" -eq 75 ]
    check "SIGUSR1 to mpirun at start-up: stopped with a checkpoint" grep -q 'stopped by a signal at epoch 1, step [0-9]*; checkpoint written' "$dir/err"
    check "SIGUSR1 to mpirun at start-up: the checkpoint resumes to the end" resumes
else
    land; fail "the ranks never caught SIGUSR1"
fi

for sig in TERM INT HUP; do
    launch "${job[@]}"
    for _ in $(seq 600); do [ -e "$dir/ck.h5" ] && break; sleep 0.1; done
    r=($(ranks))
    kill "-$sig" "${r[@]}"
    land
    check "SIG$sig to the ranks mid-run: exit 75 (got $rc)" [ "$rc" -eq 75 ]
    check "SIG$sig to the ranks mid-run: the checkpoint resumes" resumes
done

# nohup's promise: a stop signal ignored when nntrain started stays ignored (SIGHUP
# under nohup); the run goes on to its end, and SIGUSR1 still stops it
rm -f "$dir/ck.h5"
env --ignore-signal=HUP "$nntrain" "${job[@]}" >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 600); do [ -e "$dir/ck.h5" ] && break; sleep 0.1; done
ignored=$(sed -n 's/^SigIgn:\s*//p' "/proc/$pid/status" 2>/dev/null)
kill -HUP "$pid"
sleep 1
alive=no; kill -0 "$pid" 2>/dev/null && alive=yes
kill -USR1 "$pid" 2>/dev/null
wait "$pid"
rc=$?
name="a singleton started with SIGHUP ignored (nohup): it stays ignored (SigIgn $ignored), SIGHUP leaves it running ($alive), SIGUSR1 stops it: exit 75 (got $rc)"
if [ -n "$ignored" ] && (( 0x$ignored & 1 )) && [ "$alive" = yes ] && [ "$rc" -eq 75 ]; then ok "$name"; else fail "$name"; fi

export OMPI_MCA_odls_base_sigkill_timeout=10 # mpirun kills the ranks this long after its SIGTERM
launch "${job[@]}"
for _ in $(seq 600); do [ -e "$dir/ck.h5" ] && break; sleep 0.1; done
kill -TERM "$pid"
land
check "SIGTERM to mpirun: mpirun's own exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "SIGTERM to mpirun: the ranks' checkpoint resumes" resumes

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
