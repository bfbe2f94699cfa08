#!/usr/bin/env bash
# The scripts' usage errors: one line naming the problem, exit 2, nothing run or
# written: scripts/scaling_study.py's bad arguments, scripts/scaling.sh's (and an --out
# it must not replace, or in a directory it cannot write, and the nntrain options it must not
# pass on), and the Slurm job scripts run outside Slurm.
# Usage: test_script_usage.sh REPO WORKDIR
set -u
repo=$1 dir=$2/script_usage
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
failures=0
expect_usage() { # PATTERN COMMAND...
    local pattern=$1 rc lines; shift
    "$@" --out "$dir/study" >out 2>err; rc=$?
    lines=$(wc -l <err)
    if [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && grep -q -- "$pattern" err && [ ! -e "$dir/study" ]; then echo "ok   ${*:2}"
    else echo "FAIL ${*:2}: exit $rc, $lines line(s): $(head -2 err)"; failures=$((failures + 1)); fi
}
study=("python3" "$repo/scripts/scaling_study.py")
expect_usage "^scaling_study: argument --ranks: '0': each rank count must be in 1..1024" "${study[@]}" --ranks 0
expect_usage "^scaling_study: argument --ranks: 'abc': expected rank counts" "${study[@]}" --ranks abc
expect_usage "^scaling_study: argument --ranks: '2,,4'" "${study[@]}" --ranks 2,,4
expect_usage "^scaling_study: argument --suites: unknown suite(s) bogus" "${study[@]}" --suites strong,bogus
expect_usage "^scaling_study: argument --train-limit: 0: must be at least 1" "${study[@]}" --train-limit 0
expect_usage "^scaling_study: unrecognized arguments: --bogus" "${study[@]}" --bogus
expect_usage "^scaling_study: argument --networks: unknown network(s) lenet: expected some of reference,784-800-800-10,deep-mnist" "${study[@]}" --networks reference,lenet

# scripts/scaling.sh: refused before any run, in a directory of its own; no file changes
# and no OUT.tmp is left. Until 2026-12-07 --epochs 1 ended in a ZeroDivisionError
# traceback after the runs, and any --out (a user's notes, README.md) was overwritten.
mkdir scaling && cd scaling || exit 1
printf '# My notes\n\nnot a scaling table\n' >notes.md && cp notes.md notes.orig && ln -s missing.md dangling.md
marker='<!-- written by scripts/scaling.sh: a later run with --out naming this file replaces it -->'
echo "$marker" >ours.md && cp notes.md ours.md.tmp # a table of ours, but a user's file at its .tmp
as_user=() # a command that runs the script as another user (runuser -u nobody --), or none
expect_scaling() { # PATTERN ARGS...
    local pattern=$1 rc lines before; shift
    before=$(ls -l --time-style=+%s.%N; cat ./* 2>/dev/null)
    timeout 120 ${as_user[@]+"${as_user[@]}"} "$repo/scripts/scaling.sh" --np 1 --train-limit 1000 --layers 784,8,10 "$@" >../out 2>../err; rc=$?
    lines=$(wc -l <../err)
    if [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && grep -q -- "$pattern" ../err && [ "$before" = "$(ls -l --time-style=+%s.%N; cat ./* 2>/dev/null)" ]
    then echo "ok   scaling.sh $*: $(cat ../err)"
    else echo "FAIL scaling.sh $*: exit $rc, $lines line(s): $(head -2 ../err); files: $(ls)"; failures=$((failures + 1)); fi
}
expect_scaling "^scaling.sh: --epochs 1: needs at least 2 (the first epoch is warm-up" --epochs 1 --out table.md
expect_scaling "^scaling.sh: --epochs 1: needs at least 2" --epochs=1 --out table.md
expect_scaling "^scaling.sh: --epochs 'two': not a whole number" --ep two --out table.md
expect_scaling "^scaling.sh: --np '1 x': 'x' is not a rank count" --np "1 x" --out table.md
expect_scaling "^scaling.sh: --out $dir/scaling/notes.md: exists and is not a table written by scaling.sh; not replacing it" --out notes.md
expect_scaling "^scaling.sh: --out $dir/scaling/dangling.md: a symbolic link to a missing file" --out dangling.md
expect_scaling "^scaling.sh: --out /dev/null: not a regular file" --out /dev/null
expect_scaling "^scaling.sh: --out $dir/scaling/nodir/t.md: no such directory" --out nodir/t.md
expect_scaling "^scaling.sh: --out $dir/scaling/ours.md: $dir/scaling/ours.md.tmp exists and is not a table scaling.sh was writing" --out ours.md
# nntrain options that scaling.sh sets itself, or that would write or read a run's files, and
# options nntrain does not have: refused before any run. Until 2026-12-07 they were passed
# on: --metrics mine.jsonl was overwritten by each rank count's run, then a FileNotFoundError
# traceback, exit 1, no table; --help printed nntrain's help, then the same traceback.
echo '{"epoch": 1, "my": "own run"}' >mine.jsonl
expect_scaling "^scaling.sh: --metrics mine.jsonl: scaling.sh gives each run its own metrics file" --epochs 2 --metrics mine.jsonl --out table.md
expect_scaling "^scaling.sh: --me=mine.jsonl: scaling.sh gives each run its own metrics file" --me=mine.jsonl --out table.md
expect_scaling "^scaling.sh: --checkpoint ck.h5: each rank count's run would write its checkpoint over the last's" --checkpoint ck.h5 --out table.md
expect_scaling "^scaling.sh: --resume ck.h5: each rank count's run would start from it" --resume ck.h5 --out table.md
expect_scaling "^scaling.sh: --threads 2: scaling.sh runs one thread per rank" --threads 2 --out table.md
expect_scaling "^scaling.sh: --help: not with scaling.sh" --help --out table.md
expect_scaling "^scaling.sh: -h: not with scaling.sh" -h --out table.md
expect_scaling "^scaling.sh: --bogus: not an nntrain option" --bogus --out table.md
expect_scaling "^scaling.sh: --m: ambiguous" --m 3 --out table.md
expect_scaling "^scaling.sh: 'stray': unexpected argument" stray --out table.md
# ... checked against nntrain's options as scaling.sh lists them: the list is nntrain's own
# (src/options.c), each with or without a value as there
want=$(sed -n 's/^ *{"\([a-z-]*\)", \(no\|required\)_argument.*/\1 \2/p' "$repo/src/options.c" | sort)
got=$(bash -c 'eval "$(sed -n "/^nntrain_options=/,/^no_value=/p" "$1")"
    for o in $nntrain_options; do [[ $no_value == *" $o "* ]] && echo "$o no" || echo "$o required"; done' _ "$repo/scripts/scaling.sh" | sort)
if [ -n "$want" ] && [ "$want" = "$got" ]; then echo "ok   scaling.sh's list of nntrain's options is src/options.c's ($(echo "$want" | wc -l))"
else echo "FAIL scaling.sh's list of nntrain's options differs from src/options.c's: $(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | tr '\n' ' ')"; failures=$((failures + 1)); fi
# a directory this user cannot write (root writes anywhere: run as nobody): refused before
# the runs. Until 2026-12-07 the check passed, every run was made, and then exit 1.
mkdir readonly && chmod 755 readonly
if [ "$(id -u)" -eq 0 ] && runuser -u nobody -- test -x "$repo/scripts/scaling.sh" 2>/dev/null &&
   ! runuser -u nobody -- test -w readonly 2>/dev/null; then
    as_user=(runuser -u nobody --)
    expect_scaling "^scaling.sh: --out $dir/scaling/readonly/t.md: cannot write in $dir/scaling/readonly: Permission denied" \
        --out readonly/t.md
    as_user=()
else
    echo "skip scaling.sh --out in a read-only directory: needs root and a repository nobody can run"
fi
cd .. || exit 1

# The Slurm job scripts run outside Slurm: one line, exit 2, nothing started or written.
for job in nntrain nntrain_multinode nntrain_preemptible nntrain_scaling; do
    env -u SLURM_JOB_ID -u SLURM_SUBMIT_DIR -u SLURM_ARRAY_JOB_ID NNTRAIN_HOME="$repo" \
        bash "$repo/jobs/$job.sbatch" --epochs 1 >out 2>err; rc=$?
    if [ "$rc" -eq 2 ] && [ "$(wc -l <err)" -eq 1 ] && grep -q "^nntrain job: $job.sbatch is a Slurm batch script: submit it with sbatch" err &&
       [ -z "$(ls -A | grep -v '^out$\|^err$\|^scaling$')" ]; then echo "ok   bash jobs/$job.sbatch outside Slurm"
    else echo "FAIL bash jobs/$job.sbatch outside Slurm: exit $rc: $(head -2 err); files: $(ls)"; failures=$((failures + 1)); fi
done
[ "$failures" -eq 0 ]
