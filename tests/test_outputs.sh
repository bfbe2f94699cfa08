#!/usr/bin/env bash
# No user file is ever destroyed (issue 19, data loss): every refused output leaves
# every file as it was (checked by SHA-256), two live runs never share an output
# (the lock), and the metrics file stays valid JSON Lines through a full disk and a
# resume. Usage: test_outputs.sh NNTRAIN NNEVAL NNPREP MAKE_TEST_DATA MPIEXEC WORKDIR
set -u
nntrain=$1 nneval=$2 nnprep=$3 make_data=$4 mpiexec=$5 dir=$6/outputs
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$dir" && mkdir -p "$dir/idx" && cd "$dir" || exit 1
"$make_data" "$dir" >/dev/null && python3 "$here/make_idx.py" "$dir/idx" || { echo "FAIL cannot make test data"; exit 1; }
failures=0
# OpenMPI's shared-memory segments (vader_segment.*, osc_sm.*) go to a directory of the
# test's own, not /dev/shm, where other jobs' live ones come and go: one still there at
# the end was left by a job of this test (a failure), and the exit removes them.
shm="$dir/shm" && mkdir -p "$shm" || exit 1
export OMPI_MCA_btl_vader_backing_directory="$shm" OMPI_MCA_osc_sm_backing_directory="$shm"
# a job started with setsid; mpirun puts each rank in a process group of its own, so
# stopping it means its whole session (also when this script fails). stop_holder
# SIGKILLs the ranks, not mpirun: mpirun sees them die, ends the job and removes its
# segments (a SIGKILLed mpirun left a pair in /dev/shm that nobody removed); what is
# still there after 30 s is SIGKILLed too.
holder=
in_session() { [ -n "$holder" ] && ps -e -o pid=,sid= | awk -v s="$holder" '$2 == s {print $1}'; }
stop_holder() {
    [ -n "$holder" ] || return 0
    pgrep -s "$holder" -x nntrain | xargs -r kill -KILL 2>/dev/null
    for _ in $(seq 300); do [ -z "$(in_session)" ] && break; sleep 0.1; done
    in_session | xargs -r kill -KILL 2>/dev/null
    wait "$holder" 2>/dev/null
    holder=
}
trap 'stop_holder; rm -rf "$shm"' EXIT
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
# hold_lock FILE.lock: a process of the test's own holds the fcntl lock there, as a
# live run would, naming itself as nntrain does ("PID N on host test"); release_lock
# stops it by its PID and removes the file.
hold_lock() {
    python3 "$here/hold_lock.py" "$1" &
    locker=$!
    for _ in $(seq 300); do [ -e "$1.held" ] && break; sleep 0.1; done
}
release_lock() { kill "$locker"; wait "$locker" 2>/dev/null; rm -f "$1" "$1.held"; }
small=(--layers 16,8,3 --batch-size 8 --train-limit 48)
run() { timeout 120 "$mpiexec" -n 2 "$nntrain" --data good.h5 "${small[@]}" "$@" >out 2>err; }
watched=(good.h5 ck.h5 m.jsonl) # the files no refused run may change
digest() { sha256sum "${watched[@]}" 2>/dev/null; }

run --epochs 2 --checkpoint ck.h5 --metrics m.jsonl || fail "a good run: $(cat err)"
cp ck.h5 ck_copy.h5
# paths holding a newline are printed with it written out, each line still one line
# (a script reading the header or the checkpoints line saw two)
nl=$'n\nl.h5' ck_nl=$'c\nk.h5'
cp good.h5 "$nl"
timeout 120 "$mpiexec" -n 2 "$nntrain" --data "$nl" "${small[@]}" --epochs 1 --checkpoint "$ck_nl" >out 2>err &&
    grep -qF 'nntrain: n\nl.h5, ' out && grep -qF 'checkpoints: 1 written to c\nk.h5, ' out &&
    ! grep -qx 'l.h5.*' out && ! grep -qx 'k.h5.*' out || fail "paths with a newline in nntrain's lines: $(cat out err)"
"$nnprep" --out "$nl" idx >out 2>err && grep -qF 'nnprep: wrote n\nl.h5: ' out && [ "$(wc -l <out)" -eq 1 ] ||
    fail "a path with a newline in nnprep's line: $(cat out err)"
rm -f "$nl" "$ck_nl"
before=$(digest)

# expect CODE MESSAGE ARGS...: nntrain refuses with one line, and no file changed
expect() {
    local code=$1 message=$2; shift 2
    run "$@"
    local rc=$? lines
    lines=$(grep -c '^nntrain: ' err)
    [ "$rc" -eq "$code" ] && grep -qF -- "nntrain: $message" err && [ "$lines" -eq 1 ] ||
        fail "nntrain $*: expected exit $code and one line '$message'; got $rc: $(grep '^nntrain: ' err | head -2)"
    [ "$(digest)" = "$before" ] || fail "nntrain $*: a file changed"
}

# an output that is the file the run's own standard output or error goes to (without
# mpirun, which gives the ranks a pipe): its lines and the records overwrote each other
# mid-line (exit 0), or the checkpoint replaced the log
: >own.jsonl && echo "earlier lines" >own.log
timeout 60 "$nntrain" --data good.h5 "${small[@]}" --epochs 1 --metrics own.jsonl >>own.jsonl 2>err; rc=$?
[ "$rc" -eq 2 ] && grep -qF "nntrain: --metrics own.jsonl: is the file this run's standard output goes to" err &&
    [ ! -s own.jsonl ] || fail "--metrics as the run's own stdout: exit $rc: $(cat err)"
timeout 60 "$nntrain" --data good.h5 "${small[@]}" --epochs 1 --checkpoint own.log >out 2>>own.log; rc=$?
[ "$rc" -eq 2 ] && [ "$(head -1 own.log)" = "earlier lines" ] &&
    grep -qF "nntrain: --checkpoint own.log: is the file this run's standard error goes to" own.log ||
    fail "--checkpoint as the run's own stderr: exit $rc: $(cat own.log)"
# two outputs not made yet, one file through a bind mount of their directory (root):
# refused at start, not after the training with the checkpoint lost
if [ "$(id -u)" -eq 0 ] && mkdir -p bx alias && mount --bind bx alias 2>/dev/null; then
    run --epochs 1 --checkpoint bx/new.h5 --metrics alias/new.h5; rc=$?
    umount alias
    [ "$rc" -eq 2 ] && grep -q "^nntrain: --metrics alias/new.h5: is the same file as --checkpoint bx/new.h5" err &&
        [ -z "$(ls bx)" ] || fail "two outputs, one file through a bind mount: exit $rc: $(cat err)"
else
    echo "skip: the bind-mount check needs root and mount --bind"
fi
rmdir bx alias 2>/dev/null

ln -sf good.h5 link.h5
mkfifo fifo
expect 2 "--checkpoint good.h5: is the same file as --data good.h5" --checkpoint good.h5 --epochs 1
expect 2 "--checkpoint $(realpath good.h5): is the same file as --data good.h5" --checkpoint link.h5 --epochs 1 # followed
expect 2 "--checkpoint idx/../good.h5: is the same file as --data" --checkpoint idx/../good.h5 --epochs 1
expect 2 "--metrics good.h5: is the same file as --data good.h5" --metrics good.h5 --epochs 1
expect 2 "--metrics ck.h5: is the same file as --resume ck.h5" --resume ck.h5 --metrics ck.h5 --epochs 3
expect 2 "--metrics m.jsonl: is the same file as --checkpoint m.jsonl" --checkpoint m.jsonl --metrics m.jsonl --epochs 1
expect 2 "--metrics ck.h5.tmp: is the temporary file of --checkpoint ck.h5" --checkpoint ck.h5 --metrics ck.h5.tmp --epochs 1
expect 2 "--checkpoint fifo: is a FIFO" --checkpoint fifo --epochs 1
# two missing files of one name in two missing directories are not the same file
expect 2 "--checkpoint other/x.h5: cannot create other/x.h5.tmp: No such file or directory" \
    --data nodir/x.h5 --checkpoint other/x.h5 --epochs 1
expect 2 "--metrics fifo: is a FIFO" --metrics fifo --epochs 1
expect 2 "--checkpoint /dev/null: is a device" --checkpoint /dev/null --epochs 1
expect 2 "--metrics /dev/null: is a device" --metrics /dev/null --epochs 1
expect 2 "--checkpoint idx: is a directory" --checkpoint idx --epochs 1
expect 2 "--checkpoint nodir/: names a directory" --checkpoint nodir/ --epochs 1
# a file's path with a '/' after it: the file is named (it said "names a directory")
expect 2 "--metrics good.h5/: ends in '/', but good.h5 is a file, not a directory" --metrics good.h5/ --epochs 1
expect 2 "--checkpoint nodir/ck.h5: cannot create nodir/ck.h5.tmp" --checkpoint nodir/ck.h5 --epochs 1
long=$(printf 'x%.0s' $(seq 252))
expect 2 "--checkpoint $long: cannot create" --checkpoint "$long" --epochs 1
echo "notes" >notes.txt
watched+=(notes.txt)
before=$(digest)
expect 2 "--checkpoint notes.txt: exists and is not an nntrain checkpoint" --checkpoint notes.txt --epochs 1
expect 2 "--metrics notes.txt: holds something other than nntrain's metrics" --metrics notes.txt --epochs 1
[ -p fifo ] && [ -c /dev/null ] || fail "the FIFO or /dev/null was replaced"
[ "$(ls ./*.tmp ./*.lock 2>/dev/null)" = "" ] || fail "left behind: $(ls ./*.tmp ./*.lock)"

# What lies at an output's lock and temporary names is a user's unless it is
# nntrain's: never followed, written or removed.
echo precious >a.h5.lock
ln -s notes.txt b.jsonl.lock
echo mine >c.h5.tmp
ln notes.txt d.h5.lock # a second name of a user's file
watched+=(a.h5.lock c.h5.tmp)
before=$(digest)
expect 2 "--checkpoint a.h5: a.h5.lock exists and is not an nntrain lock file" --checkpoint a.h5 --epochs 1
expect 2 "--metrics b.jsonl: its lock file b.jsonl.lock is a symbolic link" --metrics b.jsonl --epochs 1
expect 2 "--checkpoint c.h5: c.h5.tmp exists and is not a file this tool was writing" --checkpoint c.h5 --epochs 1
expect 2 "--checkpoint d.h5: d.h5.lock exists and is not an nntrain lock file" --checkpoint d.h5 --epochs 1
[ -L b.jsonl.lock ] && [ "$(stat -c %h notes.txt)" -eq 2 ] || fail "a link at a lock name was removed"
[ ! -e a.h5 ] && [ ! -e b.jsonl ] && [ ! -e c.h5 ] && [ ! -e d.h5 ] || fail "a refused run wrote its output"
rm -f a.h5.lock b.jsonl.lock c.h5.tmp d.h5.lock
# a killed run's leftovers are nntrain's: a lock naming its holder (or empty), and a
# checkpoint cut part-way: the next run takes them
printf 'PID 12345 on host gone\n' >e.h5.lock
head -c 3000 ck.h5 >e.h5.tmp
: >f.h5.lock
run --epochs 1 --checkpoint e.h5 && run --epochs 1 --checkpoint f.h5 || fail "a killed run's leftovers: $(cat err)"
[ "$(ls ./*.tmp ./*.lock 2>/dev/null)" = "" ] || fail "leftovers kept: $(ls ./*.tmp ./*.lock)"

# A resume refused once the data is read (another dataset of the same shape) leaves
# the metrics it would have cut back as they were.
NNTRAIN_STOP_AT_STEP=11 timeout 120 "$mpiexec" -n 2 -x NNTRAIN_STOP_AT_STEP "$nntrain" --data good.h5 --layers 16,8,3 \
    --batch-size 8 --epochs 3 --checkpoint mid.h5 --metrics mid.jsonl >out 2>err
[ $? -eq 75 ] && [ "$(wc -l <mid.jsonl)" -eq 1 ] || fail "a run stopped part-way through epoch 2: $(cat err)"
later=$(sed 's/^{"epoch": 1,/{"epoch": 2,/' mid.jsonl) && echo "$later" >>mid.jsonl # a record a resume cuts
kept=$(sha256sum mid.jsonl)
timeout 120 "$mpiexec" -n 2 "$nntrain" --resume mid.h5 --data fewer.h5 --metrics mid.jsonl >out 2>err; rc=$?
[ "$rc" -eq 2 ] && grep -qF "nntrain: mid.h5: the shuffling state does not match this data" err ||
    fail "a resume on another dataset: exit $rc: $(cat err)"
[ "$(sha256sum mid.jsonl)" = "$kept" ] || fail "a refused resume changed its metrics file"

# The usual preemptible job writes over the checkpoint it resumed from: allowed.
run --resume ck.h5 --checkpoint ck.h5 --metrics m.jsonl --epochs 3 || fail "resume over the same checkpoint: $(cat err)"

# Round three (session 31): what a review found still reachable.
watched=(good.h5 ck.h5 m.jsonl notes.txt)
before=$(digest)
# An output at another output's lock file: the lock overwrote it and removed it at the
# end (a checkpoint named m2.jsonl.lock was gone after an exit 0).
expect 2 "--metrics m2.jsonl: its lock file m2.jsonl.lock is --checkpoint m2.jsonl.lock" \
    --checkpoint m2.jsonl.lock --metrics m2.jsonl --epochs 1
[ ! -e m2.jsonl.lock ] && [ ! -e m2.jsonl ] || fail "a refused run left m2.jsonl or its lock"
# another tool's JSON Lines log that also begins '{"epoch": ' is not nntrain's metrics
python3 -c 'import json; [print(json.dumps({"epoch": e, "loss": 1 / e, "notes": "baseline"})) for e in (1, 2, 3)]' >torch.jsonl
# nor is one such line without its newline (json.dump), nor a lone '{': only a line
# that reaches past the training loss's key, or follows a record of ours, is a record
# of ours cut short (it was taken for one, and the file emptied)
printf '{"epoch": 3, "loss": 0.25, "notes": "my results"}' >results.json
printf '{' >brace.jsonl
printf '{"epoch": 1, "train_loss": 0.41' >cut.jsonl
# a metrics file is written in place: one with a second name (a backup's hard link) is refused
cp m.jsonl m3.jsonl && ln m3.jsonl m3_backup.jsonl
# a whole HDF5 file of another kind at a temporary name was put there, not left by a
# write cut short: the user's (a whole checkpoint there is a write killed between its
# sync and its rename: taken)
cp good.h5 g.h5.tmp && cp ck.h5 w.h5.tmp
watched+=(torch.jsonl m3.jsonl g.h5.tmp results.json brace.jsonl)
before=$(digest)
expect 2 "--checkpoint g.h5: g.h5.tmp exists and is not a file this tool was writing" --checkpoint g.h5 --epochs 1
run --epochs 1 --checkpoint w.h5 && [ ! -e w.h5.tmp ] || fail "a whole checkpoint left at w.h5.tmp: $(cat err)"
expect 2 "--metrics torch.jsonl: holds something other than nntrain's metrics" --metrics torch.jsonl --epochs 1
expect 2 "--metrics results.json: holds something other than nntrain's metrics" --metrics results.json --epochs 1
expect 2 "--metrics brace.jsonl: holds something other than nntrain's metrics" --metrics brace.jsonl --epochs 1
run --epochs 1 --metrics cut.jsonl && [ "$(wc -l <cut.jsonl)" -eq 1 ] && grep -q '^{"epoch": 1, ' cut.jsonl ||
    fail "a metrics file holding one record cut short: $(cat err)"
expect 2 "--metrics m3.jsonl: has 2 hard links" --metrics m3.jsonl --epochs 1
# a run that never held the checkpoint's lock (stuck reading a FIFO, ended by its
# watchdog) leaves the checkpoint the lock's holder is writing alone
hold_lock busy.h5.lock
head -c 3000 ck.h5 >busy.h5.tmp
timeout 120 "$mpiexec" -n 2 "$nntrain" --data good.h5 "${small[@]}" --resume fifo --checkpoint busy.h5 --timeout 5 \
    >out 2>err; rc=$?
[ "$rc" -eq 1 ] && [ "$(head -c 3000 ck.h5 | sha256sum)" = "$(sha256sum <busy.h5.tmp)" ] ||
    fail "a run stuck before the lock: exit $rc, busy.h5.tmp $(ls busy.h5.tmp 2>&1): $(cat err)"
release_lock busy.h5.lock
rm -f busy.h5.tmp
# a replaced checkpoint keeps its permissions (the new file was 644 under umask 022)
run --epochs 1 --checkpoint private.h5 && chmod 600 private.h5 &&
    run --resume private.h5 --checkpoint private.h5 --epochs 2 && [ "$(stat -c %a private.h5)" = 600 ] ||
    fail "a private checkpoint replaced: mode $(stat -c %a private.h5), $(cat err)"
# ... and its POSIX ACL: with one, the mode's group bits are the ACL's mask, and the
# mode alone opened the file to its group
if command -v setfacl >/dev/null && cp ck.h5 acl.h5 && setfacl -m u:nobody:rw,g::-,o::- acl.h5 2>/dev/null; then
    # the old file is held open, so its inode number cannot be reused: ext4 gives a
    # freed number to the next file, and after an even number of replacements the
    # checkpoint could carry the number it started with
    acl_before=$(getfacl -c acl.h5) inode=$(stat -c %i acl.h5)
    exec 3<acl.h5
    run --resume acl.h5 --checkpoint acl.h5 --epochs 6; rc=$?
    [ "$rc" -eq 0 ] && [ "$(stat -c %i acl.h5)" != "$inode" ] && [ "$(getfacl -c acl.h5)" = "$acl_before" ] ||
        fail "a checkpoint's ACL: exit $rc, inode $inode -> $(stat -c %i acl.h5), ACL $(getfacl -c acl.h5 | tr '\n' ' ') after, $(echo "$acl_before" | tr '\n' ' ') before: $(cat err)"
    exec 3<&-
else
    echo "skip: the ACL check needs setfacl (package acl) and a filesystem with ACLs"
fi
# a file its owner made read-only is not replaced (root may write anything: checked as nobody)
ro=$(mktemp -d) && chmod 777 "$ro" && cp good.h5 "$ro/" && chmod 644 "$ro/good.h5"
if [ "$(id -u)" -eq 0 ] && runuser -u nobody -- test -x "$nntrain" 2>/dev/null; then
    as_nobody() { (cd "$ro" && runuser -u nobody -- env HOME="$ro" "$nntrain" --data good.h5 "${small[@]}" "$@" >"$dir/out" 2>"$dir/err"); }
    as_nobody --epochs 1 --checkpoint ro.h5 && chmod 444 "$ro/ro.h5" && kept=$(sha256sum <"$ro/ro.h5")
    as_nobody --epochs 1 --checkpoint ro.h5; rc=$?
    [ "$rc" -eq 2 ] && grep -qF "nntrain: --checkpoint ro.h5: cannot write: Permission denied; not replacing it" err &&
        [ "$(sha256sum <"$ro/ro.h5")" = "$kept" ] || fail "a read-only checkpoint: exit $rc: $(cat err)"
    # a file we may write but not read holds we know not what: it is the user's (it was
    # emptied as metrics, and replaced by nneval's result)
    echo "notes of the user" >"$ro/wo.txt" && chown nobody "$ro/wo.txt" && chmod 200 "$ro/wo.txt"
    as_nobody --epochs 1 --metrics wo.txt; rc=$?
    [ "$rc" -eq 2 ] && grep -qF "nntrain: --metrics wo.txt: cannot open it to read and write: Permission denied" err &&
        [ "$(cat "$ro/wo.txt")" = "notes of the user" ] || fail "a write-only metrics file: exit $rc: $(cat err)"
    # another user's checkpoint in a sticky directory (as /tmp): only its owner may
    # rename over it, so it is refused at start (it failed at the first save, exit 1)
    sticky=$(mktemp -d) && chmod 1777 "$sticky" && cp ck.h5 "$sticky/theirs.h5" && chmod 666 "$sticky/theirs.h5" &&
        cp good.h5 "$sticky/" && chmod 644 "$sticky/good.h5"
    (cd "$sticky" && runuser -u nobody -- "$nntrain" --data good.h5 "${small[@]}" --resume theirs.h5 \
        --checkpoint theirs.h5 --epochs 4 >"$dir/out" 2>"$dir/err"); rc=$?
    [ "$rc" -eq 2 ] && grep -qF "nntrain: --checkpoint theirs.h5: belongs to another user, in a directory with the sticky bit" err &&
        cmp -s ck.h5 "$sticky/theirs.h5" || fail "another user's checkpoint in a sticky directory: exit $rc: $(cat err)"
    rm -rf "$sticky"
    cp ck.h5 "$ro/ck.h5" && chmod 644 "$ro/ck.h5"
    (cd "$ro" && runuser -u nobody -- "$nneval" --checkpoint ck.h5 --data good.h5 --metrics wo.txt >"$dir/out" 2>"$dir/err")
    rc=$?
    [ "$rc" -eq 2 ] && grep -qF "nneval: --metrics wo.txt: cannot read it to tell whether it holds an nneval result" err &&
        [ "$(cat "$ro/wo.txt")" = "notes of the user" ] || fail "nneval on a write-only result file: exit $rc: $(cat err)"
else
    echo "skip: the read-only check needs root and a build nobody can run"
fi
rm -rf "$ro"
# a closed pipe on the output (nntrain | head) stops the run as a signal does: exit 75
# with a checkpoint, and a metrics record for every epoch it counts (it died with
# SIGPIPE between the two, and the resume then warned of a missing record)
set -o pipefail
timeout 120 "$nntrain" --data good.h5 "${small[@]}" --epochs 100000 --checkpoint piped.h5 --metrics piped.jsonl 2>err |
    head -2 >/dev/null; rc=$?
set +o pipefail
records=$(wc -l <piped.jsonl)
grep -q "^nntrain: stopped by a signal" err && stopped=yes || stopped=no
run --resume piped.h5 --checkpoint piped.h5 --metrics piped.jsonl --epochs $((records + 2))
[ "$rc" -eq 75 ] && [ "$stopped" = yes ] && ! grep -q "warning" out &&
    python3 -c "import json, sys; e = [json.loads(l)['epoch'] for l in open(sys.argv[1])]; assert e == list(range(1, $records + 3)), e" \
        piped.jsonl || fail "nntrain | head: exit $rc, $records records, then $(grep -h warning out err)"

# nneval reads its checkpoint and dataset before it writes, and never writes over them.
for target in ck.h5 good.h5 link.h5 fifo notes.txt; do
    before=$(digest)
    timeout 120 "$mpiexec" -n 2 "$nneval" --checkpoint ck.h5 --data good.h5 --metrics "$target" >out 2>err
    rc=$?
    [ "$rc" -eq 2 ] && [ "$(grep -c '^nneval: --metrics' err)" -eq 1 ] || fail "nneval --metrics $target: exit $rc: $(cat err)"
    [ "$(digest)" = "$before" ] || fail "nneval --metrics $target: a file changed"
done
timeout 120 "$mpiexec" -n 2 "$nneval" --checkpoint ck.h5 --data good.h5 --metrics eval.json >out 2>err &&
    python3 -c "import json,sys; json.load(open(sys.argv[1]))" eval.json || fail "nneval --metrics eval.json: $(cat err)"
# a failed evaluation leaves the earlier result as it was (the result is renamed into place)
result=$(sha256sum eval.json)
timeout 120 "$mpiexec" -n 2 "$nneval" --checkpoint ck.h5 --data text.h5 --metrics eval.json >out 2>err; rc=$?
[ "$rc" -eq 2 ] && [ "$(sha256sum eval.json)" = "$result" ] || fail "a failed nneval changed its --metrics file (exit $rc)"
[ "$(ls eval.json.* 2>/dev/null)" = "" ] || fail "nneval left behind: $(ls eval.json.*)"
# nneval's result too is locked for the run, and a killed one's eval.json.tmp (it begins as
# every result does) is removed; a user's file there is refused and kept
evaluate() { timeout 120 "$mpiexec" -n 2 "$nneval" --checkpoint ck.h5 --data good.h5 --metrics eval.json >out 2>err; }
printf '{"checkpoint": "ck.h5", "da' >eval.json.tmp
evaluate && [ ! -e eval.json.tmp ] && [ ! -e eval.json.lock ] || fail "nneval after a killed one: $(cat err); $(ls eval.json.*)"
result=$(sha256sum eval.json)
echo "my notes" >eval.json.tmp
evaluate; rc=$?
[ "$rc" -eq 2 ] && grep -qF "nneval: --metrics eval.json: eval.json.tmp exists and is not a file this tool was writing" err &&
    [ "$(cat eval.json.tmp)" = "my notes" ] && [ "$(sha256sum eval.json)" = "$result" ] ||
    fail "nneval over a user's eval.json.tmp: exit $rc: $(cat err)"
rm -f eval.json.tmp
hold_lock eval.json.lock
evaluate; rc=$?
[ "$rc" -eq 2 ] && grep -q "^nneval: --metrics eval.json: in use by another run (PID [0-9]* on host test; " err &&
    [ "$(sha256sum eval.json)" = "$result" ] || fail "nneval on a held --metrics: exit $rc: $(cat err)"
release_lock eval.json.lock

# a replaced result keeps its permissions
chmod 640 eval.json && evaluate && [ "$(stat -c %a eval.json)" = 640 ] || fail "nneval's result: mode $(stat -c %a eval.json)"
result=$(sha256sum eval.json)
# several results gathered in one file are the user's, not one result to replace
cat eval.json eval.json >gathered.json && kept=$(sha256sum gathered.json)
timeout 120 "$mpiexec" -n 2 "$nneval" --checkpoint ck.h5 --data good.h5 --metrics gathered.json >out 2>err; rc=$?
[ "$rc" -eq 2 ] && grep -qF "nneval: --metrics gathered.json: holds something other than one nneval result" err &&
    [ "$(sha256sum gathered.json)" = "$kept" ] || fail "nneval over gathered results: exit $rc: $(cat err)"

# What --metrics named when checked is what may be replaced: a file put there during
# the evaluation is kept, exit 1 (until 2026-12-07 it was replaced, exit 0). Rank 0 is
# frozen once it holds the place (an O_PATH descriptor on the directory, beside the
# lock's: nn/output_place.h) and before the result is written; tried again where the
# evaluation ended first.
# put_when_placed SESSION FILE: freezes rank 0 of the job (by turns, until it holds two
# O_PATH descriptors on this directory, the lock's and the place's, and has not begun
# its result), writes "my notes" to FILE, lets it go on; prints caught or missed
put_when_placed() {
    python3 - "$1" "$2" <<'PY'
import os, signal, sys, time
session, target = int(sys.argv[1]), sys.argv[2]
here = os.getcwd()
def rank0():
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getsid(int(pid)) == session and b"OMPI_COMM_WORLD_RANK=0" in open(f"/proc/{pid}/environ", "rb").read().split(b"\0"):
                return int(pid)
        except OSError:
            pass
def places(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            flags = [l for l in open(f"/proc/{pid}/fdinfo/{fd}") if l.startswith("flags:")][0].split()[1]
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == here and int(flags, 8) & 0o10000000 != 0
        except (OSError, IndexError):
            pass
    return n
end, pid = time.time() + 60, None
while time.time() < end:
    pid = pid or rank0()  # looked for once found: scanning /proc each turn let a loaded machine miss the window
    if pid:
        try:
            os.kill(pid, signal.SIGSTOP)
            ready = places(pid) >= 2 and not os.path.exists(target) and not os.path.exists(target + ".tmp")
            if ready:
                open(target, "w").write("my notes\n")
            os.kill(pid, signal.SIGCONT)
            if ready:
                print("caught")
                sys.exit()
        except OSError:
            pass
    try:
        os.kill(session, 0)
    except OSError:
        break
    time.sleep(0.0005)
print("missed")
PY
}
caught=0
for attempt in $(seq 30); do
    rm -f fresh.json fresh.json.lock
    setsid timeout 120 "$mpiexec" -n 2 "$nneval" --checkpoint ck.h5 --data good.h5 --metrics fresh.json >out 2>err &
    holder=$!
    [ "$(put_when_placed "$holder" fresh.json)" = caught ] && caught=1
    wait "$holder"; rc=$?
    [ "$caught" -eq 1 ] && break
done
[ "$caught" -eq 1 ] && [ "$rc" -eq 1 ] && grep -q "^nneval: --metrics fresh.json: a file was put there during the run; not replacing it" err &&
    [ "$(cat fresh.json)" = "my notes" ] && [ ! -e fresh.json.tmp ] && [ ! -e fresh.json.lock ] ||
    fail "a file put at nneval's --metrics mid-run (caught: $caught): exit $rc: $(cat err)"
rm -f fresh.json

# a stopped evaluation (the test hook stands in for the signal) leaves it as well: exit 75
NNTRAIN_STOP_AT_STEP=0 timeout 120 "$mpiexec" -n 2 -x NNTRAIN_STOP_AT_STEP "$nneval" --checkpoint ck.h5 --data good.h5 \
    --metrics eval.json >out 2>err; rc=$?
[ "$rc" -eq 75 ] && [ "$(sha256sum eval.json)" = "$result" ] && [ ! -s out ] ||
    fail "a stopped nneval: exit $rc, output '$(head -c 80 out)', $(cat err)"

# Outputs given as symbolic links to files: every tool writes through the link, which
# stays a link (a file renamed into place replaces the target, not the link).
mkdir -p runs && cp ck_copy.h5 runs/ck.h5 && cp eval.json runs/eval.json
ln -s runs/ck.h5 latest.h5 && ln -s runs/m.jsonl latest.jsonl && ln -s runs/eval.json latest.json && : >runs/m.jsonl
run --epochs 3 --resume latest.h5 --checkpoint latest.h5 --metrics latest.jsonl || fail "through links: $(cat err)"
[ -L latest.h5 ] && [ -L latest.jsonl ] && ! cmp -s ck_copy.h5 runs/ck.h5 && [ "$(wc -l <runs/m.jsonl)" -eq 1 ] &&
    [ ! -e runs/ck.h5.lock ] && [ ! -e latest.h5.tmp ] || fail "nntrain through links: $(ls -l latest.* runs)"
timeout 120 "$mpiexec" -n 2 "$nneval" --checkpoint latest.h5 --data good.h5 --split train --metrics latest.json >out 2>err &&
    [ -L latest.json ] && grep -q '"split": "train"' runs/eval.json || fail "nneval through a link: $(cat err)"
ln -s runs/prep.h5 prep_link.h5 && cp good.h5 runs/prep.h5 # an nntrain dataset there: replaceable
"$nnprep" --out prep_link.h5 idx >out 2>err && [ -L prep_link.h5 ] && ! cmp -s good.h5 runs/prep.h5 ||
    fail "nnprep through a link: $(cat err)"

# nnprep: its output obeys the same rule.
"$nnprep" --out fifo idx >out 2>err; rc=$?
[ "$rc" -eq 2 ] && grep -qF "nnprep: --out fifo: is a FIFO" err && [ -p fifo ] || fail "nnprep --out fifo: exit $rc: $(cat err)"
echo mine >prep.h5.tmp # a user's file at the temporary name: kept, and nothing written
"$nnprep" --out prep.h5 idx >out 2>err; rc=$?
[ "$rc" -eq 2 ] && grep -qF "nnprep: --out prep.h5: prep.h5.tmp exists and is not a file this tool was writing" err &&
    [ "$(cat prep.h5.tmp)" = mine ] && [ ! -e prep.h5 ] || fail "nnprep over a user's prep.h5.tmp: exit $rc: $(cat err)"
head -c 100 good.h5 >prep.h5.tmp # a killed nnprep's leftover: taken
"$nnprep" --out prep.h5 idx >out 2>err && [ ! -e prep.h5.tmp ] || fail "nnprep after a killed one: $(cat err)"
# A second nnprep on the same --out is refused while the first holds its lock (without
# it, the second took the first's temporary file for a leftover, removed it mid-write,
# and the first renamed the second's half-written file into place). A process of the
# test's own holds the lock here, as an nnprep would, so no timing decides it.
hold_lock prep.h5.lock
before=$(sha256sum prep.h5)
"$nnprep" --out prep.h5 idx >out 2>err; rc=$?
[ "$rc" -eq 2 ] && grep -q "^nnprep: --out prep.h5: in use by another run (PID [0-9]* on host test; " err &&
    [ "$(sha256sum prep.h5)" = "$before" ] && [ ! -e prep.h5.tmp ] || fail "nnprep on a held --out: exit $rc: $(cat err)"
# --wait: refused all the same once the time is up, ...
"$nnprep" --wait 0.5 --out prep.h5 idx >out 2>err; rc=$?
[ "$rc" -eq 2 ] && grep -q "^nnprep: --out prep.h5: in use by another run (PID [0-9]* on host test; " err &&
    [ "$(sha256sum prep.h5)" = "$before" ] || fail "nnprep --wait 0.5 on a held --out: exit $rc: $(cat err)"
# ... and it writes once the holder is gone (killed here: its lock dies with it)
inode=$(stat -c %i prep.h5) # one replacement: the new file is made while the old still holds its number
( sleep 1; kill "$locker" ) &
"$nnprep" --wait 60 --out prep.h5 idx >out 2>err; rc=$?
wait "$locker" 2>/dev/null
[ "$rc" -eq 0 ] && [ ! -e prep.h5.lock ] && [ "$(stat -c %i prep.h5)" != "$inode" ] ||
    fail "nnprep --wait 60 while the holder ends: exit $rc: $(cat err)"
rm -f prep.h5.lock.held
"$nnprep" --wait -1 --out prep.h5 idx >out 2>err; rc=$?
[ "$rc" -eq 2 ] && [ "$(cat err)" = "nnprep: --wait -1: must be in [0, 86400]" ] || fail "nnprep --wait -1: exit $rc: $(cat err)"
hold_lock prep.h5.lock
release_lock prep.h5.lock
"$nnprep" --out prep.h5 idx >out 2>err && [ ! -e prep.h5.lock ] || fail "nnprep once the lock is free: $(cat err)"
cp ck.h5 p2.h5.tmp # a checkpoint is no dataset's killed write
"$nnprep" --out p2.h5 idx >out 2>err; rc=$?
[ "$rc" -eq 2 ] && grep -qF "nnprep: --out p2.h5: p2.h5.tmp exists and is not a file this tool was writing" err &&
    cmp -s ck.h5 p2.h5.tmp && [ ! -e p2.h5 ] || fail "nnprep over a checkpoint at p2.h5.tmp: exit $rc: $(cat err)"
chmod 600 prep.h5 && "$nnprep" --out prep.h5 idx >out 2>err && [ "$(stat -c %a prep.h5)" = 600 ] ||
    fail "nnprep over a private dataset: mode $(stat -c %a prep.h5): $(cat err)"
# a user's file, or a link, where nnprep's lock file would go: left as it is, nothing written
echo "my notes" >notes.h5.lock && ln -s notes.h5.lock linked.h5.lock
for out in notes.h5 linked.h5; do
    "$nnprep" --out $out idx >out 2>err; rc=$?
    [ "$rc" -eq 2 ] && grep -q "^nnprep: --out $out: .*$out.lock .*; not touching it" err && [ ! -e $out ] &&
        [ "$(cat notes.h5.lock)" = "my notes" ] || fail "nnprep beside a user's $out.lock: exit $rc: $(cat err)"
done

# Two live runs, one checkpoint: the second is refused at once, naming the first.
# The first is held in a long run of steps (many epochs), then its ranks are SIGKILLed.
setsid "$mpiexec" -n 2 "$nntrain" --data good.h5 "${small[@]}" --epochs 100000 --checkpoint held.h5 \
    --metrics held.jsonl >held.out 2>&1 &
holder=$!
for _ in $(seq 600); do [ -s held.h5.lock ] && break; sleep 0.1; done
if [ -s held.h5.lock ]; then
    run --epochs 1 --checkpoint held.h5; rc=$?
    [ "$rc" -eq 2 ] && grep -q "^nntrain: --checkpoint held.h5: in use by another run (PID [0-9]* on host " err ||
        fail "second run on a held checkpoint: exit $rc: $(cat err)"
    run --epochs 1 --checkpoint other.h5 --metrics held.jsonl; rc=$?
    [ "$rc" -eq 2 ] && grep -qF "nntrain: --metrics held.jsonl: in use by another run" err ||
        fail "second run on held metrics: exit $rc: $(cat err)"
else
    fail "the first run never took its lock: $(cat held.out)"
fi
stop_holder
# a killed holder's lock dies with it: the next run takes the file
run --epochs 1 --checkpoint held.h5 --metrics held.jsonl || fail "after the holder was killed: $(cat err)"
[ ! -e held.h5.lock ] || fail "the lock file outlived its run"

# What the saves may replace is the checkpoint checked at start or written last,
# unchanged, in the directory of the start; anything else put there during the run is
# someone else's: exit 1 at the next save, the file kept. Until 2026-12-07 a file moved
# there was replaced if it was a checkpoint, a file written into in place was
# replaced whatever it was, and a directory moved away and made anew at its name (where
# a second run then took the lock) had the first run's saves replace the second's.
# under_paused_saver DIR COMMAND...: a run checkpointing to DIR/ck.h5; once it has
# saved, its rank 0 (which saves) is stopped where no save is under way (a save checks
# the path and renames within the life of its .tmp), COMMAND changes things, and the
# run goes on to its next save; $rc its exit
under_paused_saver() {
    local where=$1; shift
    mkdir -p "$where"
    setsid timeout 120 "$mpiexec" -n 2 "$nntrain" --data "$PWD/good.h5" "${small[@]}" --epochs 100000 \
        --checkpoint "$where/ck.h5" >"$where.out" 2>&1 &
    holder=$!
    for _ in $(seq 600); do [ -s "$where/ck.h5" ] && break; sleep 0.1; done
    local rank0= p
    for p in $(in_session); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=0 && rank0=$p
    done
    [ -n "$rank0" ] || fail "$where: rank 0 not found among $(in_session | tr '\n' ' ')"
    for _ in $(seq 100); do
        kill -STOP "$rank0" && [ ! -e "$where/ck.h5.tmp" ] && break
        kill -CONT "$rank0"; sleep 0.01
    done
    "$@"
    kill -CONT "$rank0"
    wait "$holder"; rc=$?
    for _ in $(seq 300); do [ -z "$(in_session)" ] && break; sleep 0.1; done
}
under_paused_saver swapped sh -c 'cp notes.txt swapped/new && mv swapped/new swapped/ck.h5'
[ "$rc" -eq 1 ] && grep -q "^nntrain: swapped/ck.h5: is not the checkpoint this run checked or wrote" swapped.out &&
    cmp -s notes.txt swapped/ck.h5 && [ ! -e swapped/ck.h5.tmp ] || fail "a file moved over the checkpoint mid-run: exit $rc: $(tail -2 swapped.out)"
under_paused_saver moved_ck sh -c 'cp ck.h5 moved_ck/new && mv moved_ck/new moved_ck/ck.h5'
[ "$rc" -eq 1 ] && cmp -s ck.h5 moved_ck/ck.h5 || fail "a checkpoint moved over the checkpoint mid-run: exit $rc: $(tail -2 moved_ck.out)"
under_paused_saver inplace cp notes.txt inplace/ck.h5 # the same inode, written into
[ "$rc" -eq 1 ] && grep -q "^nntrain: inplace/ck.h5: is not the checkpoint this run checked or wrote" inplace.out &&
    cmp -s notes.txt inplace/ck.h5 || fail "a file written into the checkpoint mid-run: exit $rc: $(tail -2 inplace.out)"
# ... and to the same size (a checkpoint of the same network copied over it): its bytes
# tell it (the size alone let it pass until 2026-12-08)
under_paused_saver samesize python3 -c 'f = open("samesize/ck.h5", "r+b"); d = bytearray(f.read()); d[len(d) // 2] ^= 0xff
f.seek(0); f.write(d); f.close(); open("samesize.mine", "wb").write(d)'
[ "$rc" -eq 1 ] && grep -q "^nntrain: samesize/ck.h5: is not the checkpoint this run checked or wrote" samesize.out &&
    cmp -s samesize.mine samesize/ck.h5 || fail "the checkpoint written into to the same size mid-run: exit $rc: $(tail -2 samesize.out)"
under_paused_saver renamed sh -c 'mv renamed renamed.old && mkdir renamed && cp notes.txt renamed/ck.h5'
[ "$rc" -eq 1 ] && grep -q "^nntrain: renamed/ck.h5: its directory is not the one this run started in" renamed.out &&
    cmp -s notes.txt renamed/ck.h5 && [ ! -e renamed/ck.h5.tmp ] && [ "$(ls renamed.old)" = ck.h5 ] ||
    fail "the checkpoint's directory moved mid-run: exit $rc: $(tail -2 renamed.out); left in renamed.old: $(ls renamed.old)"
# The checkpoint removed and a file of the same size made at its name: ext4 gives the
# new file the freed inode number, so the number and size alone took it for the run's
# (the run holds what it trusts open, so a number cannot be given again during the run)
under_paused_saver reused sh -c 'size=$(stat -c %s reused/ck.h5) && rm reused/ck.h5 &&
    head -c "$size" /dev/zero | tr "\0" u >reused/ck.h5 && cp reused/ck.h5 reused.mine'
[ "$rc" -eq 1 ] && grep -q "^nntrain: reused/ck.h5: is not the checkpoint this run checked or wrote" reused.out &&
    cmp -s reused.mine reused/ck.h5 || fail "the checkpoint removed and a file of its size made there: exit $rc: $(tail -2 reused.out)"
# ... or a symbolic link that leads nowhere: it read as nothing there, and was replaced
under_paused_saver dangling sh -c 'rm dangling/ck.h5 && ln -s /nowhere/precious dangling/ck.h5'
[ "$rc" -eq 1 ] && grep -q "^nntrain: dangling/ck.h5: is not the checkpoint this run checked or wrote" dangling.out &&
    [ "$(readlink dangling/ck.h5)" = /nowhere/precious ] || fail "a dangling link put at the checkpoint mid-run: exit $rc: $(tail -2 dangling.out)"
# ... and the same for its directory, removed and made again
under_paused_saver remade sh -c 'rm -rf remade && mkdir remade && cp notes.txt remade/notes.txt'
[ "$rc" -eq 1 ] && grep -q "^nntrain: remade/ck.h5: its directory is not the one this run started in" remade.out &&
    [ ! -e remade/ck.h5 ] || fail "the checkpoint's directory removed and made again: exit $rc: $(tail -2 remade.out)"
rm -rf swapped moved_ck inplace samesize samesize.mine renamed renamed.old reused reused.mine remade dangling

# A file put at the checkpoint's temporary name during the run is someone else's: the
# next save does not write over it (it truncated it, and renamed it over the checkpoint).
# `ln` makes the name only where it is free, so never over a save's own.
setsid timeout 120 "$mpiexec" -n 2 "$nntrain" --data good.h5 "${small[@]}" --epochs 100000 --checkpoint taken.h5 \
    >taken.out 2>&1 &
holder=$!
for _ in $(seq 600); do [ -s taken.h5 ] && break; sleep 0.1; done
cp notes.txt user.txt
for _ in $(seq 1000); do ln user.txt taken.h5.tmp 2>/dev/null && break; done
wait "$holder"; rc=$?
[ "$rc" -eq 1 ] && grep -q "^nntrain: taken.h5.tmp: a file was put there during the run: not writing over it" taken.out &&
    cmp -s notes.txt taken.h5.tmp && "$nneval" --checkpoint taken.h5 --data good.h5 >/dev/null 2>&1 ||
    fail "a file put at the checkpoint's .tmp mid-run: exit $rc: $(tail -2 taken.out)"
rm -f taken.h5.tmp user.txt
for _ in $(seq 300); do [ -z "$(in_session)" ] && break; sleep 0.1; done

# A file mounted over an output (a container's single-file bind mount) cannot be
# replaced by a rename: refused at start, not after the first epoch's work (EBUSY)
if unshare -m true 2>/dev/null; then
    : >mounted.h5
    kept=$(sha256sum <ck_copy.h5)
    unshare -m sh -c 'mount --bind "$0" mounted.h5 && exec "$@"' ck_copy.h5 \
        "$mpiexec" -n 2 "$nntrain" --data good.h5 "${small[@]}" --epochs 1 --checkpoint mounted.h5 >out 2>err; rc=$?
    [ "$rc" -eq 2 ] && grep -qF "nntrain: --checkpoint mounted.h5: is a mount point (a file mounted there)" err &&
        [ "$(sha256sum <ck_copy.h5)" = "$kept" ] || fail "a checkpoint mounted over: exit $rc: $(grep nntrain err)"
    unshare -m sh -c 'mount --bind "$0" mounted.h5 && exec "$@"' good.h5 "$nnprep" --out mounted.h5 idx >out 2>err; rc=$?
    [ "$rc" -eq 2 ] && grep -qF "nnprep: --out mounted.h5: is a mount point" err ||
        fail "a dataset mounted over: exit $rc: $(cat err)"
    rm -f mounted.h5
else
    echo "skip: the mount-point check needs unshare -m (root)"
fi

# Another program holding the checkpoint open for writing (HDFView, h5py's "r+"): the
# saves go on (HDF5 cannot open such a file, so a save must not reopen the file it wrote)
if /usr/bin/python3 -c "import h5py" 2>/dev/null; then
    setsid timeout 120 "$mpiexec" -n 2 "$nntrain" --data good.h5 "${small[@]}" --epochs 1500 --checkpoint open.h5 \
        >open.out 2>&1 &
    holder=$!
    for _ in $(seq 600); do [ -s open.h5 ] && break; sleep 0.1; done
    /usr/bin/python3 - open.h5 <<'PY' &
import sys, time, h5py
f = h5py.File(sys.argv[1], "r+")
open(sys.argv[1] + ".opened", "w").close()
time.sleep(3)
PY
    opener=$!
    wait "$holder"; rc=$?
    wait "$opener"; opened=$?
    [ "$rc" -eq 0 ] && [ "$opened" -eq 0 ] && [ -e open.h5.opened ] ||
        fail "a checkpoint held open for writing by h5py: exit $rc (h5py $opened): $(tail -2 open.out)"
    for _ in $(seq 300); do [ -z "$(in_session)" ] && break; sleep 0.1; done
else
    echo "skip: the held-open check needs /usr/bin/python3 with h5py"
fi

# Metrics through a full disk: a tmpfs of two pages (one for the lock file) in a private mount namespace
# holds about ten records; the write that does not fit is undone whole, the run
# fails (exit 1), and a resume from the last checkpoint leaves valid JSON Lines.
if unshare -m true 2>/dev/null; then
    mkdir -p full
    unshare -m bash -c "mount -t tmpfs -o size=8k tmpfs full && cd full &&
        timeout 300 $mpiexec -n 2 $nntrain --data ../good.h5 ${small[*]} --epochs 40 --checkpoint ../full_ck.h5 \
            --metrics m.jsonl >../full.out 2>&1; echo \$? >../full.rc; cp m.jsonl ../full.jsonl"
    rc=$(cat full.rc)
    [ "$rc" -eq 1 ] && grep -q "^nntrain: m.jsonl: cannot write metrics: No space left on device" full.out ||
        fail "full disk: exit $rc: $(tail -2 full.out)"
    [ "$(tail -c 1 full.jsonl | od -An -c | tr -d ' ')" = '\n' ] || fail "full disk: the metrics end mid-line"
    printf '{"epoch": 99, "train_lo' >>full.jsonl # and a cut-off line, as an older build left
    run --resume full_ck.h5 --checkpoint full_ck.h5 --metrics full.jsonl --epochs 40 ||
        fail "resume after the full disk: $(cat err)"
    python3 - full.jsonl <<'EOF' || fail "metrics after the resume are not one record per epoch"
import json, sys
epochs = [json.loads(line)["epoch"] for line in open(sys.argv[1])]
missing = sorted(set(range(1, 41)) - set(epochs))
assert len(epochs) == len(set(epochs)), f"repeated epochs: {epochs}"
assert epochs == sorted(epochs) and epochs[-1] == 40, epochs
assert len(missing) <= 1, f"missing epochs {missing}"  # the one whose write failed after its checkpoint
EOF
    grep -q "warning: full.jsonl has no records of epochs" out || fail "the resume did not say which record is missing"
    # nnprep on a disk too small for its dataset: one line, exit 1, nothing left there
    # (HDF5 1.10 wrote straight to the file, and looped at exit when its close failed)
    mkdir -p fullprep
    unshare -m bash -c "mount -t tmpfs -o size=8k tmpfs fullprep && $nnprep --out fullprep/d.h5 idx >fullprep.out \
        2>fullprep.err; echo \$? >fullprep.rc; ls -A fullprep >fullprep.left"
    rc=$(cat fullprep.rc)
    [ "$rc" -eq 1 ] && [ "$(wc -l <fullprep.err)" -eq 1 ] &&
        grep -q "^nnprep: .*fullprep/d.h5.tmp: cannot write: No space left on device$" fullprep.err &&
        [ ! -s fullprep.left ] || fail "nnprep on a full disk: exit $rc: $(head -c 300 fullprep.err); left: $(cat fullprep.left)"
else
    echo "skip: the full-disk check needs unshare -m (root)"
fi

left=$(ls -A "$shm")
[ -z "$left" ] || fail "OpenMPI shared-memory segments left by this test's jobs: $(echo $left)"
[ "$failures" -eq 0 ] && echo "all output checks passed"
[ "$failures" -eq 0 ]
