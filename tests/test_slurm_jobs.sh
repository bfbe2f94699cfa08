#!/usr/bin/env bash
# The job scripts in jobs/ without a Slurm: each is run as slurmstepd runs it, in a fake
# job environment (SLURM_JOB_ID, SLURM_SUBMIT_DIR, SLURM_ARRAY_*, SLURM_RESTART_COUNT),
# its output appended to a file, with stubs on PATH: scontrol (records its arguments),
# srun (records its arguments, writes a metrics file), and mpirun, the real one on this host without the job
# environment (1 rank) -- or, with FAKE_MPIRUN=stop75, a stand-in that sends the job
# script USR1 and exits 75 at once. Checks:
#  - array elements name their files ARRAYJOBID_TASK (no shared checkpoint or metrics)
#    and a stopped element requeues its own job id, not the array;
#  - a fresh (restart 0) preemptible job that finds its checkpoint refuses it (exit 2,
#    one line, the file untouched); a restart resumes from it;
#  - a requeued (restart > 0) nntrain.sbatch or nntrain_multinode.sbatch resumes from its
#    --checkpoint when that is there (the first run's metrics records kept); without one,
#    over the first run's metrics records (--metrics by a prefix too), exit 2, one line,
#    nothing run; with neither, a fresh start;
#  - --checkpoint/--resume among the preemptible job's options (every spelling nntrain
#    takes) are refused with exit 2 and one line; --checkpoint-every is not;
#  - USR1 to the job script before the ranks have nntrain's handlers: passed on once
#    they have them: checkpoint, exit 75, requeue (TERM is not passed on: Slurm sends
#    it to the ranks too, and a second stop signal would end them without a checkpoint);
#  - a USR1 that interrupts the script's wait does not become its exit status (138);
#  - a job submitted from outside the repository: exit 2, one line;
#  - the requeue-able jobs append to their output; a requeued scaling element replaces
#    its CSV row, rewritten whole through CSV.tmp (a full disk leaves the old table whole;
#    a file that is not the job's table, a FIFO among them, is refused); a row that cannot
#    be written fails the element; an earlier run's metrics are removed, another file of
#    that name is not; the table swapped for a user's file or a FIFO as the element holds,
#    checks and reads it: exit 1, one line, the user's file and the table kept.
#  - scripts/slurm_local.sh start (root; stub dpkg-query and apt-get end it after its
#    check) takes an unmarked slurm.conf its earlier versions wrote as its own, and
#    refuses one edited since or another SLURM_DIR's: exit 2, one line saying what to do.
# Usage: test_slurm_jobs.sh NNTRAIN MAKE_TEST_DATA
set -u
nntrain=$1 make_data=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
real_mpirun=$(command -v mpirun) || { echo "FAIL no mpirun"; exit 1; }
work=$(mktemp -d /tmp/nntrain-jobs-test.XXXXXX)
job_pgid=""
cleanup() {
    [ -n "$job_pgid" ] && kill -KILL -- "-$job_pgid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/bin" "$work/data" "$work/run" "$work/elsewhere"
"$make_data" "$work/data" >/dev/null || { echo "FAIL cannot make test data"; exit 1; }

cat >"$work/bin/scontrol" <<EOF
#!/bin/sh
echo "\$*" >>"$work/scontrol.log"
EOF
cat >"$work/bin/srun" <<'EOF'
#!/bin/sh
# the scaling job's step: two epochs' metrics, exit ${FAKE_SRUN_RC:-0}; its arguments
# appended to $SRUN_LOG
echo "$*" >>"$SRUN_LOG"
while [ $# -gt 0 ]; do [ "$1" = --metrics ] && metrics=$2; shift; done
for e in 1 2; do
    echo "{\"epoch\": $e, \"epoch_seconds\": 1.0, \"samples_per_second\": 100.0, \"allreduce_seconds\": 0.1, \"test_accuracy\": 0.5}"
done >"$metrics"
exit "${FAKE_SRUN_RC:-0}"
EOF
cat >"$work/bin/mpirun" <<EOF
#!/bin/bash
if [ "\${FAKE_MPIRUN:-}" = stop75 ]; then
    # USR1 to the job script as mpirun ends with 75: the signal interrupts the wait
    trap '' USR1
    kill -USR1 \$PPID
    exit 75
fi
exec env \$(env | sed -n 's/^\(SLURM_[A-Z_]*\)=.*/-u \1/p') "$real_mpirun" -np 1 "\$@"
EOF
# NNTRAIN_BIN for the signal tests: sends ${SIGNAL_JOB} to the job script first (before
# nntrain, and so its handlers, has started), then runs nntrain
cat >"$work/bin/nntrain-signal-first" <<EOF
#!/bin/bash
for _ in \$(seq 100); do [ -s "$work/job.pid" ] && break; sleep 0.1; done
kill -"\$SIGNAL_JOB" "\$(cat "$work/job.pid")"
exec "$nntrain" "\$@"
EOF
chmod +x "$work/bin/"*
export PATH=$work/bin:$PATH
unset NNTRAIN_HOME
export NNTRAIN_BIN=$nntrain NNTRAIN_DATA=$work/data/good.h5 SRUN_LOG=$work/srun.log
tiny=(--layers 16,3 --batch-size 8)

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; for f in "$work/run/out" "$work/run/err"; do [ -s "$f" ] && sed 's/^/     /' "$f" | tail -6; done; }

# job SCRIPT [VAR=VALUE...] -- [ARGS...]: runs jobs/SCRIPT.sbatch in $work/run as job 7
# (in a process group of its own, within 120 s); its exit status in $rc
job() {
    local script=$1; shift
    local vars=(SLURM_JOB_ID=7 SLURM_SUBMIT_DIR="$repo" SLURM_NTASKS=1 SLURM_CPUS_PER_TASK=1)
    while [ $# -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
    shift
    rm -f "$work/job.pid"
    (cd "$work/run" && exec setsid env "${vars[@]}" bash "$repo/jobs/$script.sbatch" "$@" >>out 2>>err) &
    job_pgid=$!
    echo "$job_pgid" >"$work/job.pid"
    local end=$((SECONDS + 120))
    while kill -0 "$job_pgid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
    kill -KILL -- "-$job_pgid" 2>/dev/null # what is left of a job that did not end
    wait "$job_pgid"
    rc=$?
    job_pgid=""
}
fresh() { rm -rf "$work/run" "$work/scontrol.log" "$work/srun.log"; mkdir -p "$work/run"; }
epochs_in() { [ -f "$1" ] && wc -l <"$1" | tr -d ' ' || echo 0; }

# --- array elements: their own files; a stop requeues the element alone ---
fresh
job nntrain_preemptible SLURM_JOB_ID=12 SLURM_ARRAY_JOB_ID=11 SLURM_ARRAY_TASK_ID=1 -- "${tiny[@]}" --epochs 3
rc1=$rc
job nntrain_preemptible SLURM_JOB_ID=11 SLURM_ARRAY_JOB_ID=11 SLURM_ARRAY_TASK_ID=0 -- "${tiny[@]}" --epochs 2
if [ "$rc1" -eq 0 ] && [ "$rc" -eq 0 ] && [ -f "$work/run/checkpoints/nntrain-11_1.h5" ] &&
   [ -f "$work/run/checkpoints/nntrain-11_0.h5" ] && [ "$(epochs_in "$work/run/nntrain-11_1.jsonl")" -eq 3 ] &&
   [ "$(epochs_in "$work/run/nntrain-11_0.jsonl")" -eq 2 ]
then ok "preemptible array elements 11_1, 11_0: a checkpoint and metrics file each, both trained"
else fail "preemptible array elements 11_1, 11_0: a checkpoint and metrics file each, both trained (exit $rc1, $rc; $(cd "$work/run" && ls -R | tr '\n' ' '))"; fi

fresh
job nntrain SLURM_JOB_ID=14 SLURM_ARRAY_JOB_ID=13 SLURM_ARRAY_TASK_ID=1 -- "${tiny[@]}" --epochs 1
if [ "$rc" -eq 0 ] && [ -f "$work/run/nntrain-13_1.jsonl" ]
then ok "jobs/nntrain.sbatch as array element 13_1: metrics in nntrain-13_1.jsonl"
else fail "jobs/nntrain.sbatch as array element 13_1: metrics in nntrain-13_1.jsonl (exit $rc; $(ls "$work/run" | tr '\n' ' '))"; fi

# --- a fresh job does not resume a checkpoint it finds; a restart does ---
fresh
job nntrain_preemptible -- "${tiny[@]}" --epochs 2
mv "$work/run/checkpoints/nntrain-7.h5" "$work/ck.h5"
fresh
mkdir -p "$work/run/checkpoints" && cp "$work/ck.h5" "$work/run/checkpoints/nntrain-7.h5"
job nntrain_preemptible -- "${tiny[@]}" --epochs 4
if [ "$rc" -eq 2 ] && [ "$(wc -l <"$work/run/err")" -eq 1 ] && grep -q "nntrain-7.h5 is there already" "$work/run/err" &&
   cmp -s "$work/ck.h5" "$work/run/checkpoints/nntrain-7.h5" && [ ! -e "$work/run/nntrain-7.jsonl" ]
then ok "a fresh preemptible job (restart 0) that finds its checkpoint: exit 2, one line, the file untouched"
else fail "a fresh preemptible job (restart 0) that finds its checkpoint: exit 2, one line, the file untouched (exit $rc)"; fi
rm -f "$work/run/err"
job nntrain_preemptible SLURM_RESTART_COUNT=1 -- "${tiny[@]}" --epochs 4
if [ "$rc" -eq 0 ] && grep -q "^nntrain: resuming from checkpoints/nntrain-7.h5" "$work/run/out" &&
   [ "$(epochs_in "$work/run/nntrain-7.jsonl")" -eq 2 ]
then ok "restart 1 resumes from the checkpoint and trains epochs 3 and 4"
else fail "restart 1 resumes from the checkpoint and trains epochs 3 and 4 (exit $rc)"; fi

# --- a requeued nntrain.sbatch / nntrain_multinode.sbatch: resumed, or refused ---
# Until 2026-12-07 a requeue trained afresh: the checkpoint and the metrics file of the
# first run were overwritten (a complete 6-epoch run's file down to the 4 records of a
# restart killed mid-run).
fresh
job nntrain -- "${tiny[@]}" --epochs 2 --checkpoint ck.h5
head -2 "$work/run/nntrain-7.jsonl" >"$work/first.jsonl"
job nntrain SLURM_RESTART_COUNT=1 -- "${tiny[@]}" --epochs 4 --checkpoint ck.h5 # stopped after epoch 2 of 4
if [ "$rc" -eq 0 ] && grep -q "^nntrain: resuming from ck.h5" "$work/run/out" && [ "$(epochs_in "$work/run/nntrain-7.jsonl")" -eq 4 ] &&
   [ "$(head -2 "$work/run/nntrain-7.jsonl")" = "$(cat "$work/first.jsonl")" ]
then ok "jobs/nntrain.sbatch requeued (restart 1) with --checkpoint ck.h5 there: resumes, epochs 1-2's records kept, 3-4 appended"
else fail "jobs/nntrain.sbatch requeued (restart 1) with --checkpoint ck.h5 there: resumes, epochs 1-2's records kept (exit $rc, $(epochs_in "$work/run/nntrain-7.jsonl") records)"; fi
cp "$work/run/ck.h5" "$work/ck4.h5" && cp "$work/run/nntrain-7.jsonl" "$work/m4.jsonl"
job nntrain SLURM_RESTART_COUNT=2 -- "${tiny[@]}" --epochs 4 --checkpoint=ck.h5
if [ "$rc" -eq 0 ] && cmp -s "$work/ck4.h5" "$work/run/ck.h5" && cmp -s "$work/m4.jsonl" "$work/run/nntrain-7.jsonl"
then ok "jobs/nntrain.sbatch requeued after its run was complete: checkpoint and metrics unchanged"
else fail "jobs/nntrain.sbatch requeued after its run was complete: checkpoint and metrics unchanged (exit $rc)"; fi
rm -f "$work/run/ck.h5" "$work/run/err"
job nntrain SLURM_RESTART_COUNT=3 -- "${tiny[@]}" --epochs 4
if [ "$rc" -eq 2 ] && [ "$(wc -l <"$work/run/err")" -eq 1 ] && grep -q "no checkpoint to resume from.*not starting" "$work/run/err" &&
   cmp -s "$work/m4.jsonl" "$work/run/nntrain-7.jsonl"
then ok "jobs/nntrain.sbatch requeued with no checkpoint, the first run's metrics there: exit 2, one line, metrics kept"
else fail "jobs/nntrain.sbatch requeued with no checkpoint, the first run's metrics there: exit 2, one line, metrics kept (exit $rc)"; fi
cp "$work/m4.jsonl" "$work/run/mine.jsonl" && rm -f "$work/run/nntrain-7.jsonl" "$work/run/err"
job nntrain SLURM_RESTART_COUNT=1 -- "${tiny[@]}" --epochs 4 --checkpoint gone.h5 --met=mine.jsonl
if [ "$rc" -eq 2 ] && [ "$(wc -l <"$work/run/err")" -eq 1 ] && grep -q "gone.h5 is missing.*$work/run/mine.jsonl: not starting" "$work/run/err" &&
   cmp -s "$work/m4.jsonl" "$work/run/mine.jsonl"
then ok "jobs/nntrain.sbatch requeued, its --checkpoint missing, records in its --met=mine.jsonl: exit 2, one line, kept"
else fail "jobs/nntrain.sbatch requeued, its --checkpoint missing, records in its --met=mine.jsonl: exit 2, one line, kept (exit $rc)"; fi
fresh
job nntrain SLURM_RESTART_COUNT=1 -- "${tiny[@]}" --epochs 2 --checkpoint ck.h5
if [ "$rc" -eq 0 ] && [ "$(epochs_in "$work/run/nntrain-7.jsonl")" -eq 2 ] && grep -q "fresh start" "$work/run/out"
then ok "jobs/nntrain.sbatch requeued before its first run left a checkpoint or records: a fresh start"
else fail "jobs/nntrain.sbatch requeued before its first run left a checkpoint or records: a fresh start (exit $rc)"; fi
touch "$work/run/ck.h5" # srun is a stub: the file is only looked for
job nntrain_multinode SLURM_RESTART_COUNT=1 -- "${tiny[@]}" --epochs 2 --checkpoint ck.h5
if [ "$rc" -eq 0 ] && [[ "$(cat "$work/srun.log")" == *" --checkpoint ck.h5 --resume ck.h5" ]]
then ok "jobs/nntrain_multinode.sbatch requeued with its --checkpoint there: srun runs nntrain with --resume ck.h5"
else fail "jobs/nntrain_multinode.sbatch requeued with its --checkpoint there: --resume ck.h5 (exit $rc; srun: $(cat "$work/srun.log" 2>/dev/null))"; fi
rm -f "$work/run/ck.h5" "$work/srun.log" "$work/run/err"
job nntrain_multinode SLURM_RESTART_COUNT=2 -- "${tiny[@]}" --epochs 2 --checkpoint ck.h5
if [ "$rc" -eq 2 ] && [ ! -e "$work/srun.log" ] && [ "$(wc -l <"$work/run/err")" -eq 1 ]
then ok "jobs/nntrain_multinode.sbatch requeued, no checkpoint, the first run's metrics there: exit 2, one line, srun not run"
else fail "jobs/nntrain_multinode.sbatch requeued, no checkpoint, the first run's metrics there: exit 2, srun not run (exit $rc)"; fi

# --- the job's checkpoint is its own ---
for spelling in "--checkpoint mine.h5" "--checkpoint=mine.h5" "--resume mine.h5" "--resume=mine.h5" "--res mine.h5" "--r=mine.h5"; do
    fresh
    read -ra words <<<"$spelling"
    job nntrain_preemptible -- "${tiny[@]}" --epochs 2 "${words[@]}"
    if [ "$rc" -eq 2 ] && [ "$(wc -l <"$work/run/err")" -eq 1 ] && grep -q "this job names its own checkpoint" "$work/run/err" &&
       [ ! -e "$work/run/nntrain-7.jsonl" ] && [ ! -e "$work/run/mine.h5" ]
    then ok "preemptible job given $spelling: exit 2, one line, nothing run"
    else fail "preemptible job given $spelling: exit 2, one line, nothing run (exit $rc)"; fi
done
fresh
job nntrain_preemptible -- "${tiny[@]}" --epochs 2 --checkpoint-every 1
if [ "$rc" -eq 0 ] && [ -f "$work/run/checkpoints/nntrain-7.h5" ]
then ok "preemptible job given --checkpoint-every 1: runs"
else fail "preemptible job given --checkpoint-every 1: runs (exit $rc)"; fi

# --- a stop before the ranks have nntrain's handlers ---
for sig in USR1; do
    fresh
    SIGNAL_JOB=$sig NNTRAIN_BIN=$work/bin/nntrain-signal-first \
        job nntrain_preemptible SLURM_JOB_ID=16 SLURM_ARRAY_JOB_ID=15 SLURM_ARRAY_TASK_ID=1 -- "${tiny[@]}" --epochs 100000
    if [ "$rc" -eq 75 ] && grep -q "stopped by a signal at epoch" "$work/run/err" &&
       grep -q "signal seen by this script: $sig); requeueing" "$work/run/out" &&
       [ "$(cat "$work/scontrol.log" 2>/dev/null)" = "requeue 16" ] && [ -f "$work/run/checkpoints/nntrain-15_1.h5" ]
    then ok "$sig to the job script before nntrain's handlers: checkpoint, exit 75, 'scontrol requeue 16' (the element)"
    else fail "$sig to the job script before nntrain's handlers: checkpoint, exit 75, 'scontrol requeue 16' (exit $rc; scontrol: $(cat "$work/scontrol.log" 2>/dev/null))"; fi
done

# --- a USR1 that interrupts the wait is not the exit status ---
# (a race the old loop lost about half the time: six tries)
codes=""
for _ in 1 2 3 4 5 6; do
    fresh
    FAKE_MPIRUN=stop75 job nntrain_preemptible -- "${tiny[@]}"
    codes+="$rc:$(cat "$work/scontrol.log" 2>/dev/null) "
done
if [ "$codes" = "$(printf '75:requeue 7 %.0s' 1 2 3 4 5 6)" ]
then ok "USR1 as the script waits for mpirun, which exits 75: the job exits 75 and requeues (6 tries)"
else fail "USR1 as the script waits for mpirun, which exits 75: the job exits 75 and requeues (6 tries: $codes)"; fi

# --- submitted from outside the repository ---
for script in nntrain nntrain_multinode nntrain_preemptible nntrain_scaling; do
    fresh
    job "$script" SLURM_SUBMIT_DIR="$work/elsewhere" -- --epochs 1
    if [ "$rc" -eq 2 ] && [ "$(wc -l <"$work/run/err")" -eq 1 ] &&
       grep -q "submit from the repository root or set NNTRAIN_HOME" "$work/run/err"
    then ok "jobs/$script.sbatch submitted outside the repository: exit 2, one line"
    else fail "jobs/$script.sbatch submitted outside the repository: exit 2, one line (exit $rc)"; fi
done

# --- requeues: output appended, one CSV row per scaling element ---
for script in nntrain nntrain_multinode nntrain_preemptible; do
    if sed '/^[^#]/,$d' "$repo/jobs/$script.sbatch" | grep -q '^#SBATCH --open-mode=append$'
    then ok "jobs/$script.sbatch: --open-mode=append (a requeued run keeps the output of the first)"
    else fail "jobs/$script.sbatch: --open-mode=append (a requeued run keeps the output of the first)"; fi
done
fresh
job nntrain_scaling SLURM_JOB_ID=21 SLURM_ARRAY_JOB_ID=21 SLURM_ARRAY_TASK_ID=0 --
job nntrain_scaling SLURM_JOB_ID=22 SLURM_ARRAY_JOB_ID=21 SLURM_ARRAY_TASK_ID=1 SLURM_NTASKS=2 --
job nntrain_scaling SLURM_JOB_ID=21 SLURM_ARRAY_JOB_ID=21 SLURM_ARRAY_TASK_ID=0 SLURM_RESTART_COUNT=1 FAKE_SRUN_RC=3 --
if [ "$rc" -eq 1 ] && [ "$(cut -d, -f1,3,5,10 "$work/run/scaling-21.csv" | tr '\n' ' ')" = "array_task,ranks,epochs,exit_code 1,2,2,0 0,1,2,3 " ]
then ok "a requeued scaling element replaces its CSV row"
else fail "a requeued scaling element replaces its CSV row (exit $rc: $(tr '\n' ' ' <"$work/run/scaling-21.csv"))"; fi
# ... through CSV.tmp renamed into place: a requeued element that cannot write its table
# (here a file-size limit, as a full disk) leaves the old one whole (until 2026-12-07 it cut
# the file to nothing, then failed to write it back: every element's row lost)
fresh
real_python=$(command -v python3)
mkdir -p "$work/fsize"
printf '#!/bin/bash\nulimit -f 1\nexec %q "$@"\n' "$real_python" >"$work/fsize/python3" && chmod +x "$work/fsize/python3"
{ echo "array_task,nodes,ranks,threads_per_rank,epochs,samples_per_second,epoch_seconds,allreduce_share,test_accuracy,exit_code"
  for t in $(seq 0 60); do echo "$t,1,1,1,2,100,1.0000,0.1000,0.5,0"; done; } >"$work/run/scaling-31.csv"
cp "$work/run/scaling-31.csv" "$work/table.before"
job nntrain_scaling SLURM_JOB_ID=31 SLURM_ARRAY_JOB_ID=31 SLURM_ARRAY_TASK_ID=0 SLURM_RESTART_COUNT=1 \
    PATH="$work/fsize:$PATH" --
if [ "$rc" -eq 1 ] && cmp -s "$work/table.before" "$work/run/scaling-31.csv" && [ ! -e "$work/run/scaling-31.csv.tmp" ] &&
   grep -q "could not write the row of element 0" "$work/run/err"
then ok "a requeued scaling element that cannot write its table (a full disk) leaves the 61 rows whole"
else fail "a requeued scaling element that cannot write its table leaves the rows whole (exit $rc; $(wc -l <"$work/run/scaling-31.csv") lines, $(ls "$work/run" | tr '\n' ' '))"; fi
# a file at the table's name that is not the job's table is not rewritten
fresh
echo "my notes, not a table" >"$work/run/scaling-32.csv"
job nntrain_scaling SLURM_JOB_ID=32 SLURM_ARRAY_JOB_ID=32 SLURM_ARRAY_TASK_ID=0 --
if [ "$rc" -eq 1 ] && [ "$(cat "$work/run/scaling-32.csv")" = "my notes, not a table" ] &&
   grep -q "holds something other than this job's table; not replacing it" "$work/run/err"
then ok "a scaling element refuses a CSV that is not the job's table (the file kept)"
else fail "a scaling element refuses a CSV that is not the job's table (exit $rc: $(cat "$work/run/scaling-32.csv"))"; fi
# the element's metrics file of an earlier run is removed (a run that trains nothing is not
# reported with its epochs); another file at that name is not (until 2026-12-07: rm -f)
fresh
echo '{"epoch": 1, "train_loss": 0.5, "epoch_seconds": 1.0, "samples_per_second": 9.0, "allreduce_seconds": 0.1, "test_accuracy": 0.9}' \
    >"$work/run/nntrain-scaling-33_1.jsonl"
echo "my notes" >"$work/run/nntrain-scaling-34_1.jsonl"
job nntrain_scaling SLURM_JOB_ID=33 SLURM_ARRAY_JOB_ID=33 SLURM_ARRAY_TASK_ID=1 SLURM_RESTART_COUNT=1 --
rc33=$rc
job nntrain_scaling SLURM_JOB_ID=34 SLURM_ARRAY_JOB_ID=34 SLURM_ARRAY_TASK_ID=1 --
if [ "$rc33" -eq 1 ] && [ ! -e "$work/run/nntrain-scaling-33_1.jsonl" ] &&
   [ "$(cut -d, -f1,5,10 "$work/run/scaling-33.csv" | tail -1)" = "1,0,too-few-tasks" ] &&
   [ "$rc" -eq 1 ] && [ "$(cat "$work/run/nntrain-scaling-34_1.jsonl")" = "my notes" ] &&
   [ "$(cut -d, -f1,5,10 "$work/run/scaling-34.csv" | tail -1)" = "1,0,too-few-tasks" ]
then ok "a scaling element removes its earlier run's metrics, never another file at that name"
else fail "a scaling element removes its earlier run's metrics, never another file (exit $rc33, $rc; $(ls "$work/run" | tr '\n' ' '))"; fi
fresh
printf '\x89PNG\r\n\x1a\n\xff\xfe\x00binary' >"$work/run/scaling-35.csv"
cp "$work/run/scaling-35.csv" "$work/table.before"
job nntrain_scaling SLURM_JOB_ID=35 SLURM_ARRAY_JOB_ID=35 SLURM_ARRAY_TASK_ID=0 --
if [ "$rc" -eq 1 ] && cmp -s "$work/table.before" "$work/run/scaling-35.csv" && [ ! -e "$work/run/scaling-35.csv.tmp" ] &&
   [ "$(grep -c "^nntrain job: .*scaling-35.csv: holds something other than this job's table; not replacing it$" "$work/run/err")" -eq 1 ] &&
   ! grep -q Traceback "$work/run/err" && [ "$(grep -vc "could not write the row of element 0" "$work/run/err")" -eq 1 ]
then ok "a scaling element refuses a binary file at its CSV's name in one line (the file kept)"
else fail "a scaling element refuses a binary file at its CSV's name in one line (exit $rc; $(wc -l <"$work/run/err") lines of stderr)"; fi
# the table swapped as an element writes its row: renamed away and a user's file (one in
# the table's form, so that only its identity tells it apart) or a FIFO put at its name,
# by the element's own python3 (a sitecustomize wrapping scripts/nn_outputs.py): at
# "held", right after open_temporary holds the table, before it reads it (CHECK); at
# "checked", after it is held and checked, before its rows are read; at "aba" as at
# "checked", and the table renamed back before the new one is put in place (its rows read
# from the user's file would then replace it). Each: exit 1, one line, both files kept.
# A FIFO at the table's name from the start is refused in one line (until 2026-12-08 an
# element opened it for reading and waited there for ever, the table's lock held).
mkdir -p "$work/swap"
cat >"$work/swap/sitecustomize.py" <<'EOF'
import os, sys
if os.environ.get("SWAP_AT"):
    sys.path.insert(0, os.environ["SWAP_SCRIPTS"])
    import nn_outputs
    at, table, user = os.environ["SWAP_AT"], os.environ["SWAP_TABLE"], os.environ["SWAP_WITH"]

    def swap():
        os.rename(table, table + ".moved")
        os.mkfifo(table) if user == "fifo" else os.rename(user, table)

    def hold(path, flags=0, _hold=nn_outputs.hold):
        held = _hold(path, flags)
        if at == "held" and flags & os.O_NOFOLLOW and path.endswith(table):
            swap()
        return held

    def open_temporary(*args, _open=nn_outputs.open_temporary, **kwargs):
        made = _open(*args, **kwargs)
        if at in ("checked", "aba"):
            swap()
        return made

    def seal(self, _seal=nn_outputs.Temporary.seal):
        if at == "aba":
            os.rename(table, table + ".user")
            os.rename(table + ".moved", table)
        _seal(self)

    nn_outputs.hold, nn_outputs.open_temporary, nn_outputs.Temporary.seal = hold, open_temporary, seal
EOF
header="array_task,nodes,ranks,threads_per_rank,epochs,samples_per_second,epoch_seconds,allreduce_share,test_accuracy,exit_code"
printf '%s\n5,1,1,1,2,100,1.0000,0.1000,0.5,0\n' "$header" >"$work/table.before"
printf '%s\n9,mine,not,the,job,s,row,,,\n' "$header" >"$work/user.before"
for case in held:user checked:user checked:fifo aba:user; do
    when=${case%:*} what=${case#*:}
    fresh
    cp "$work/table.before" "$work/run/scaling-36.csv"
    [ "$what" = user ] && cp "$work/user.before" "$work/run/user.csv" && with=user.csv || with=fifo
    job nntrain_scaling SLURM_JOB_ID=36 SLURM_ARRAY_JOB_ID=36 SLURM_ARRAY_TASK_ID=0 PYTHONPATH="$work/swap" \
        SWAP_AT="$when" SWAP_SCRIPTS="$repo/scripts" SWAP_TABLE=scaling-36.csv SWAP_WITH="$with" --
    if [ "$what" = fifo ]; then [ -p "$work/run/scaling-36.csv" ]; else cmp -s "$work/user.before" "$work/run/scaling-36.csv"; fi
    kept=$?
    if [ "$rc" -eq 1 ] && [ "$kept" -eq 0 ] && cmp -s "$work/table.before" "$work/run/scaling-36.csv.moved" &&
       [ "$(grep -c "^nntrain job: $work/run/scaling-36.csv: is not the file this run checked (replaced or changed during the run); not replacing it$" "$work/run/err")" -eq 1 ] &&
       [ "$(grep -vc "could not write the row of element 0" "$work/run/err")" -eq 1 ] &&
       [ ! -e "$work/run/scaling-36.csv.tmp" ] && [ ! -e "$work/run/scaling-36.csv.lock" ]
    then ok "the table swapped for a user's ${what/user/file} at '$when': exit 1, one line, both files kept"
    else fail "the table swapped for a user's ${what/user/file} at '$when': exit 1, one line, both files kept (exit $rc; $(ls "$work/run" | tr '\n' ' '))"; fi
done
fresh
mkfifo "$work/run/scaling-37.csv"
job nntrain_scaling SLURM_JOB_ID=37 SLURM_ARRAY_JOB_ID=37 SLURM_ARRAY_TASK_ID=0 --
if [ "$rc" -eq 1 ] && [ -p "$work/run/scaling-37.csv" ] && [ ! -e "$work/run/scaling-37.csv.lock" ] &&
   [ "$(grep -c "^nntrain job: .*scaling-37.csv: holds something other than this job's table; not replacing it$" "$work/run/err")" -eq 1 ]
then ok "a scaling element refuses a FIFO at its CSV's name in one line, without waiting on it"
else fail "a scaling element refuses a FIFO at its CSV's name in one line, without waiting on it (exit $rc)"; fi
fresh
mkdir "$work/run/scaling-23.csv"
job nntrain_scaling SLURM_JOB_ID=23 SLURM_ARRAY_JOB_ID=23 SLURM_ARRAY_TASK_ID=0 --
if [ "$rc" -eq 1 ] && grep -q "could not write the row of element 0" "$work/run/err"
then ok "a scaling element whose CSV row cannot be written fails and says so"
else fail "a scaling element whose CSV row cannot be written fails and says so (exit $rc)"; fi

# --- scripts/slurm_local.sh start over a slurm.conf it finds (as root; no Slurm needed:
# dpkg-query and apt-get stubs end it right after the check, at its install step) ---
# A slurm.conf written before the script marked its own (until 2026-12-07) is its own:
# start goes on (to the stub apt-get). One edited since, or written for another SLURM_DIR,
# is refused: exit 2, one line saying what to do, nothing changed (it was refused whole
# from 2026-12-07, old ones too, with no word of what to do about it).
# old_conf DIR CONTROLLER TASK_PLUGIN NODE_LINES PARTITION_NODES: what the script wrote
# then (31d0cad to 6d41173, port 6817), a copy kept here
old_conf() {
    cat <<CONF
ClusterName=nntrain
SlurmctldHost=$2
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
AuthType=auth/munge
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=$3
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SchedulerParameters=batch_sched_delay=0
# a job that asks for more than the cluster has is refused by sbatch, not left pending
EnforcePartLimits=ALL
ReturnToService=2
# emulated nodes are pinned to one core each but declare the machine's cores
SlurmdParameters=config_overrides
StateSaveLocation=$1/state
SlurmdSpoolDir=$1/spool/%n
# per node: the nodes share this machine's /tmp, and PMIx's per-step directories collide
TmpFS=$1/tmp/%n
SlurmctldPidFile=$1/slurmctld.pid
SlurmdPidFile=$1/slurmd-%n.pid
SlurmctldLogFile=$1/log/slurmctld.log
SlurmdLogFile=$1/log/slurmd-%n.log
$4
PartitionName=main Nodes=$5 Default=YES MaxTime=INFINITE State=UP
CONF
}
if [ "$(id -u)" -eq 0 ]; then
    mkdir -p "$work/nopkg"
    printf '#!/bin/sh\nexit 1\n' >"$work/nopkg/dpkg-query"
    printf '#!/bin/sh\necho "apt-get $*" >>"%s/apt.log"\nexit 1\n' "$work" >"$work/nopkg/apt-get"
    chmod +x "$work/nopkg/"*
    sd=$work/slurm three=$'NodeName=nnemu-h1 NodeAddr=10.231.0.1 CPUs=4 State=UNKNOWN\nNodeName=nnemu-h2 NodeAddr=10.231.0.2 CPUs=4 State=UNKNOWN\nNodeName=nnemu-h3 NodeAddr=10.231.0.3 CPUs=4 State=UNKNOWN\n'
    # slurm_conf CASE EXPECTED: start over the slurm.conf of CASE; EXPECTED: ours or refused
    slurm_conf() {
        rm -rf "$sd" "$work/apt.log" && mkdir -p "$sd"
        case $1 in
            "one node") old_conf "$sd" "vm(127.0.0.1)" task/affinity "NodeName=vm NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN" vm ;;
            "one node, before 2026-12-04") old_conf "$sd" vm task/none "NodeName=vm CPUs=4 State=UNKNOWN" vm ;;
            "three emulated nodes") old_conf "$sd" "vm(10.231.0.254)" task/none "$three" "nnemu-h[1-3]" ;;
            "one node, edited") old_conf "$sd" "vm(127.0.0.1)" task/affinity "NodeName=vm NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN" vm |
                sed 's/MaxTime=INFINITE/MaxTime=60/' ;;
            "one node, another SLURM_DIR's") old_conf "$work/other" "vm(127.0.0.1)" task/affinity "NodeName=vm NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN" vm ;;
        esac >"$sd/slurm.conf"
        cp "$sd/slurm.conf" "$work/conf.before"
        SLURM_DIR=$sd PATH="$work/nopkg:$PATH" "$repo/scripts/slurm_local.sh" start >"$work/start.out" 2>"$work/start.err"
        rc=$?
        if [ "$2" = ours ]; then
            if [ "$rc" -eq 1 ] && grep -q "^apt-get .*update" "$work/apt.log" 2>/dev/null && ! grep -q "is not a slurm.conf" "$work/start.err" &&
               cmp -s "$work/conf.before" "$sd/slurm.conf"
            then ok "slurm_local.sh start over an unmarked slurm.conf it wrote ($1): taken as its own"
            else fail "slurm_local.sh start over an unmarked slurm.conf it wrote ($1): taken as its own (exit $rc: $(head -c 300 "$work/start.err"))"; fi
        else
            if [ "$rc" -eq 2 ] && [ ! -e "$work/apt.log" ] && [ "$(wc -l <"$work/start.err")" -eq 1 ] &&
               grep -qF "$sd/slurm.conf is not a slurm.conf this script wrote: not replacing it; if it is a throwaway cluster's you no longer need, remove it (rm $sd/slurm.conf), else set SLURM_DIR to a directory of its own" "$work/start.err" &&
               cmp -s "$work/conf.before" "$sd/slurm.conf" && [ "$(ls -A "$sd")" = slurm.conf ]
            then ok "slurm_local.sh start over a slurm.conf ($1): exit 2, one line saying what to do, nothing changed"
            else fail "slurm_local.sh start over a slurm.conf ($1): exit 2, one line saying what to do, nothing changed (exit $rc: $(head -c 300 "$work/start.err"))"; fi
        fi
    }
    slurm_conf "one node" ours
    slurm_conf "one node, before 2026-12-04" ours
    slurm_conf "three emulated nodes" ours
    slurm_conf "one node, edited" refused
    slurm_conf "one node, another SLURM_DIR's" refused
else
    echo "skip slurm_local.sh's slurm.conf checks (need root)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
