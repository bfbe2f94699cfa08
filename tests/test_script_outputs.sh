#!/usr/bin/env bash
# What the helper scripts write, and what they leave alone (the outputs rule of
# docs/reliability.md, which the C tools follow):
# - scripts/scaling.sh --out: a relative path is the caller's, not the repository's (and so is
#   a relative --data passed on to nntrain); one run per --out (the C tools' lock, held for the
#   whole run; a stop signal ends it, no table written, no lock left); an earlier table is
#   replaced keeping its mode and POSIX ACL, through a symbolic link (the link stays); a
#   path's control characters are written out in its one-line error; its start-up check
#   never touches OUT.tmp (another run's), and leaves no probe file;
# - scripts/fetch_mnist.sh --out: a damaged, foreign or small dataset there is never
#   "up to date": rebuilt from the cache (an nntrain dataset) or refused (exit 2);
# - scripts/plot_metrics.py: a metrics path containing '=' is that path, not LABEL=PATH.
# Needs data/mnist.h5 (skips, 77, without it); the fetch_mnist.sh part needs the IDX cache
# data/mnist/ (skipped without it: the script would go to the network).
# Usage: test_script_outputs.sh NNTRAIN NNPREP REPO WORKDIR
set -u
nntrain=$1 nnprep=$2 repo=$3 dir=$4/script_outputs
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
[ -f "$repo/data/mnist.h5" ] || { echo "SKIP: $repo/data/mnist.h5 missing (scripts/fetch_mnist.sh)"; exit 77; }
fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

# ---- scripts/scaling.sh --out ----
scaling() { # ARGS...: a small run at one rank, in the current directory
    NNTRAIN_BIN=$nntrain timeout 300 "$repo/scripts/scaling.sh" --np 1 --train-limit 2000 --layers 784,8,10 "$@" \
        >scaling.out 2>&1
}
name=scaling-test-$$.md # a name no one has in the repository
mkdir caller && cd caller || exit 1
if scaling --epochs 2 --out "$name" && [ -f "$name" ] && [ ! -e "$repo/$name" ] && grep -q '^| 1 |' "$name" &&
   [ "$(ls)" = "$(printf '%s\n' "$name" scaling.out)" ]
then ok "scaling.sh --out $name (relative) writes the caller's $name (no $name.lock or .tmp left)"
else fail "scaling.sh --out $name: exit $?; caller's: $(ls); repository's: $(ls "$repo/$name" 2>&1)"; fi
rm -f "$repo/$name"
# an earlier table is replaced, its mode kept (a chmod 600 table stays private)
chmod 600 "$name"
if scaling --epochs 3 --out "$name" && grep -q -- '--epochs 3 ' "$name" && [ "$(stat -c %a "$name")" = 600 ] &&
   [ ! -e "$name.tmp" ]
then ok "scaling.sh replaces its earlier table, mode 600 kept"
else fail "scaling.sh over its earlier 600 table: exit $?, mode $(stat -c %a "$name"): $(sed -n 4p "$name")"; fi
# One run per --out, as the C tools keep it: while another process holds $name.lock as nntrain
# would (an fcntl lock naming its holder), scaling.sh is refused before any run, exit 2, the
# table kept. Until 2026-12-07 there was no lock: two scaling.sh on one --out each made the
# runs, and the second's start could take the first's OUT.tmp (empty as it is made) for a
# killed run's and remove it, the first then putting the second's unfinished table in place.
sum=$(sha256sum <"$name")
python3 "$repo/tests/hold_lock.py" "$name.lock" &
locker=$!
for _ in $(seq 300); do [ -e "$name.lock.held" ] && break; sleep 0.1; done
scaling --epochs 2 --out "$name"; rc=$?
kill "$locker"; wait "$locker" 2>/dev/null
if [ "$rc" -eq 2 ] && [ "$(cat scaling.out)" = "scaling.sh: --out $PWD/$name: in use by another run (PID $locker on host test; lock file $PWD/$name.lock); give this run another file" ] &&
   [ "$sum" = "$(sha256sum <"$name")" ] && [ "$(cat "$name.lock")" = "PID $locker on host test" ] && [ ! -e "$name.tmp" ]
then ok "scaling.sh --out $name while another process holds $name.lock: exit 2 before any run, $(cat scaling.out)"
else fail "scaling.sh --out $name beside a held lock: exit $rc: $(cat scaling.out); $(ls | tr '\n' ' ')"; fi
rm -f "$name.lock" "$name.lock.held"
# ... and scaling.sh holds it for its whole run: an nntrain given the table as its --metrics
# while scaling.sh runs is refused (exit 2), naming scaling.sh's PID; the table then written.
# scaling.sh is stopped (SIGSTOP) once its lock file names it, and nntrain run then.
NNTRAIN_BIN=$nntrain "$repo/scripts/scaling.sh" --np 1 --train-limit 2000 --layers 784,8,10 --epochs 2 \
    --out "$name" >scaling.out 2>&1 &
scaler=$! # (the script execs its Python part: one PID)
for _ in $(seq 1500); do [ "$(cat "$name.lock" 2>/dev/null)" = "PID $scaler on host $(hostname)" ] && break; sleep 0.02; done # up to 30 s
kill -STOP "$scaler"
timeout 60 "$nntrain" --data "$repo/data/mnist.h5" --train-limit 200 --epochs 1 --layers 784,8,10 --metrics "$name" >nntrain.out 2>&1; rc=$?
kill -CONT "$scaler"; wait "$scaler"; rc_s=$?
if [ "$rc" -eq 2 ] && grep -qF -- "--metrics $name: in use by another run (PID $scaler on host $(hostname); lock file $name.lock)" nntrain.out &&
   [ "$rc_s" -eq 0 ] && grep -q '^| 1 |' "$name" && [ ! -e "$name.lock" ]
then ok "nntrain --metrics $name while scaling.sh writes it: exit 2, $(grep -F 'in use' nntrain.out); the table then written"
else fail "nntrain beside scaling.sh's lock: nntrain exit $rc ($(cat nntrain.out)), scaling.sh exit $rc_s ($(tail -3 scaling.out))"; fi
rm -f nntrain.out
# A stop signal while it runs (sent once its lock is taken, scaling.sh stopped meanwhile so
# that the signal comes before the table): exit 128 + signal, one line saying no table was
# written, the table, and nothing else, left (no lock file)
sum=$(sha256sum <"$name")
NNTRAIN_BIN=$nntrain "$repo/scripts/scaling.sh" --np 1 --train-limit 2000 --layers 784,8,10 --epochs 2 \
    --out "$name" >scaling.out 2>&1 &
scaler=$!
for _ in $(seq 1500); do [ "$(cat "$name.lock" 2>/dev/null)" = "PID $scaler on host $(hostname)" ] && break; sleep 0.02; done # up to 30 s
kill -STOP "$scaler"; kill -TERM "$scaler"; kill -CONT "$scaler"; wait "$scaler"; rc=$?
if [ "$rc" -eq 143 ] && [ "$(grep -v '^scaling.sh: -np 1$' scaling.out)" = "scaling.sh: stopped by SIGTERM; no table written" ] &&
   [ "$sum" = "$(sha256sum <"$name")" ] && [ "$(ls)" = "$(printf '%s\n' "$name" scaling.out)" ]
then ok "SIGTERM to scaling.sh mid-run: exit 143, $(tail -1 scaling.out); nothing left"
else fail "SIGTERM to scaling.sh mid-run: exit $rc: $(cat scaling.out); $(ls | tr '\n' ' ')"; fi
# A stop signal during the clean-up at the end (sent by scaling.sh to itself as it removes its
# runs' directory, the table written, the lock not yet let go; a sitecustomize wraps
# shutil.rmtree): handled once the clean-up is done, exit 143, one line saying the table was
# written, no lock file left. Until 2026-12-07 it printed a traceback after the table (exit 1)
# and left $name.lock.
mkdir -p "$dir/site" && cat >"$dir/site/sitecustomize.py" <<'PY'
import os, shutil, signal
real_rmtree = shutil.rmtree
def rmtree_then_signal(*args, **kwargs):  # the runs' directory removed: the signal comes mid-clean-up
    real_rmtree(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
shutil.rmtree = rmtree_then_signal
PY
PYTHONPATH=$dir/site scaling --epochs 2 --out "$name"; rc=$?
if [ "$rc" -eq 143 ] && [ "$(tail -1 scaling.out)" = "scaling.sh: stopped by SIGTERM; wrote $PWD/$name" ] &&
   ! grep -q Traceback scaling.out && grep -q '^| 1 |' "$name" && [ "$(ls)" = "$(printf '%s\n' "$name" scaling.out)" ]
then ok "SIGTERM to scaling.sh during its clean-up: exit 143, $(tail -1 scaling.out); no lock left"
else fail "SIGTERM to scaling.sh during its clean-up: exit $rc: $(tail -4 scaling.out); $(ls | tr '\n' ' ')"; fi
rm -rf "$dir/site"
# scaling.sh's own options take the = form, as nntrain's do: --out=F is --out F, --np=N is
# --np N (until 2026-12-07 each was "not an nntrain option"); shown by their refusals, before
# any run
"$repo/scripts/scaling.sh" --np=1 --out=no-such-dir/t.md >scaling.out 2>&1; rc=$?
"$repo/scripts/scaling.sh" --np=0 --out=t.md >>scaling.out 2>&1; rc2=$?
if [ "$rc" -eq 2 ] && [ "$rc2" -eq 2 ] && [ "$(cat scaling.out)" = "scaling.sh: --out $PWD/no-such-dir/t.md: no such directory $PWD/no-such-dir
scaling.sh: --np '0': '0' is not a rank count" ] && [ ! -e t.md ]
then ok "scaling.sh --out=F and --np=N are its own options: exit 2, $(tr '\n' ' ' <scaling.out)"
else fail "scaling.sh --out=F, --np=N: exit $rc, $rc2: $(cat scaling.out)"; fi
# A relative --data passed on to nntrain is the caller's, as --out is: until 2026-12-07 it was
# taken from the repository, where the runs start ("-np 1 failed", exit 1). The table shows
# the options as given.
mkdir data-here && ln -s "$repo/data/mnist.h5" data-here/m.h5 || exit 1
if scaling --epochs 2 --data data-here/m.h5 --out data.md && grep -q '^| 1 |' data.md &&
   grep -qF -- '--epochs 2 --train-limit 2000 --layers 784,8,10 --data data-here/m.h5`' data.md
then ok "scaling.sh --data data-here/m.h5 (relative) reads the caller's data-here/m.h5"
else fail "scaling.sh --data data-here/m.h5: exit $?: $(tail -3 scaling.out)"; fi
rm -rf data-here data.md
# through a symbolic link: the target replaced, the link kept
mkdir tables && mv "$name" tables/real.md && ln -s tables/real.md link.md
if scaling --epochs 2 --out link.md && [ -L link.md ] && grep -q -- '--epochs 2 ' tables/real.md &&
   [ "$(stat -c %a tables/real.md)" = 600 ] && [ ! -e link.md.tmp ] && [ ! -e tables/real.md.tmp ]
then ok "scaling.sh --out link.md writes through the link to tables/real.md"
else fail "scaling.sh --out link.md: exit $?: $(ls -l link.md tables)"; fi
# ... and its POSIX ACL (as nn_output_keep_mode does for the C tools): until 2026-12-07 only
# the permission bits were kept, so the ACL's user lost the table and, the mode's group
# bits being the ACL's mask, the owning group got its rw
if command -v setfacl >/dev/null && setfacl -m u:nobody:rw,g::-,o::- tables/real.md 2>/dev/null; then
    # the old table held open, so that ext4 cannot give its freed inode number to the new one
    acl_before=$(getfacl -c tables/real.md) inode=$(stat -c %i tables/real.md)
    exec 3<tables/real.md
    scaling --epochs 3 --out tables/real.md; rc=$?
    if [ "$rc" -eq 0 ] && grep -q -- '--epochs 3 ' tables/real.md && [ "$(stat -c %i tables/real.md)" != "$inode" ] &&
       [ "$(getfacl -c tables/real.md)" = "$acl_before" ]
    then ok "scaling.sh replaces a table with an ACL (u:nobody:rw, g::-): the new table has the same ACL"
    else fail "scaling.sh over a table with an ACL: exit $rc, inode $inode -> $(stat -c %i tables/real.md), ACL $(getfacl -c tables/real.md | tr '\n' ' ') after, $(echo "$acl_before" | tr '\n' ' ') before: $(tail -3 scaling.out)"; fi
    exec 3<&-
else
    echo "skip scaling.sh's ACL case: it needs setfacl (package acl) and a filesystem with ACLs"
fi
# a path's control characters are written out in the one-line error (\n, \t), as the C tools
# do (until 2026-12-07 it was printed raw, and the line broke in two)
scaling --epochs 2 --out "no"$'\n'"dir"$'\t'"/t.md"; rc=$?
if [ "$rc" -eq 2 ] && [ "$(wc -l <scaling.out)" -eq 1 ] && grep -qF 'no\ndir\t/t.md: no such directory' scaling.out
then ok "scaling.sh --out 'no<newline>dir<tab>/t.md': exit 2, $(cat scaling.out)"
else fail "scaling.sh --out with a newline and a tab: exit $rc, $(wc -l <scaling.out) lines: $(cat scaling.out)"; fi
# The start-up check that --out's directory can be written never touches OUT.tmp: another run
# may be writing its table there (empty at first, then begun with the marker: what a killed
# run leaves, and the check took it for one). Until 2026-12-07 the check made and removed
# OUT.tmp itself, removing that run's table. A missing nntrain stops the script just after
# the check (exit 1).
marker='<!-- written by scripts/scaling.sh: a later run with --out naming this file replaces it -->'
mkdir busy && echo "$marker" >busy/t.md.tmp && inode=$(stat -c %i busy/t.md.tmp)
NNTRAIN_BIN=$dir/no-nntrain timeout 60 "$repo/scripts/scaling.sh" --np 1 --out busy/t.md >scaling.out 2>&1; rc=$?
if [ "$rc" -eq 1 ] && grep -q "no-nntrain missing" scaling.out && [ "$(stat -c %i busy/t.md.tmp 2>&1)" = "$inode" ] &&
   [ "$(cat busy/t.md.tmp)" = "$marker" ] && [ "$(ls -A busy)" = t.md.tmp ]
then ok "scaling.sh's start-up check leaves another run's busy/t.md.tmp alone (exit $rc: nntrain missing)"
else fail "scaling.sh's start-up check with another run's busy/t.md.tmp: exit $rc, inode $inode -> $(stat -c %i busy/t.md.tmp 2>&1), busy/: $(ls -A busy | tr '\n' ' '): $(cat scaling.out)"; fi
# ... and its probe file is made and removed with no stop signal between: SIGINT (Python's
# KeyboardInterrupt) or SIGTERM (its default action: the end) sent right after it is made
for sig in INT TERM; do
    rm -rf probe && mkdir probe
    python3 - "$repo/scripts" "$sig" >probe.out 2>&1 <<'PY'
import os, signal, sys
sys.path.insert(0, sys.argv[1])
import nn_outputs
real_open, sig = os.open, getattr(signal, "SIG" + sys.argv[2])
def open_then_signal(path, flags, *args, **kwargs):  # the probe made: the signal comes
    fd = real_open(path, flags, *args, **kwargs)
    if flags & os.O_CREAT:
        print(f"made {os.path.basename(path)}", flush=True)
        os.kill(os.getpid(), sig)
    return fd
os.open = open_then_signal
try:
    nn_outputs.check_writable("probe/t.md")
except KeyboardInterrupt:
    sys.exit(3)
PY
    rc=$? want=3 # KeyboardInterrupt
    [ "$sig" = TERM ] && want=143
    if [ "$rc" -eq "$want" ] &&
       grep -q '^made \.t\.md\.check-[0-9]*-[0-9a-f]*$' probe.out && [ -z "$(ls -A probe)" ]
    then ok "SIG$sig just after the probe $(sed 's/^made //' probe.out) is made: exit $rc, nothing left"
    else fail "SIG$sig just after the probe is made: exit $rc (expected $want): $(cat probe.out); probe/: $(ls -A probe)"; fi
done
cd "$dir" || exit 1

# ---- scripts/fetch_mnist.sh --out ----
# Until 2026-12-07 any file at --out newer than the IDX cache was "up to date" (exit 0)
# and kept: a text file, a truncated dataset, a small one. Each is made newer here.
if [ -f "$repo/data/mnist/train-images-idx3-ubyte" ] && [ -f "$repo/data/mnist/t10k-labels-idx1-ubyte" ]; then
    fetch() { NNPREP=$nnprep timeout 120 "$repo/scripts/fetch_mnist.sh" --out "$@" >fetch.out 2>fetch.err; }
    # refused: not an nntrain dataset (nnprep's one line), the file unchanged
    printf 'my notes\n' >foreign.h5
    head -c 3000000 "$repo/data/mnist.h5" >truncated.h5
    for f in foreign.h5 truncated.h5; do
        touch -d '+1 day' "$f" && sum=$(sha256sum <"$f")
        fetch "$f"; rc=$?
        if [ "$rc" -eq 2 ] && [ "$(wc -l <fetch.err)" -eq 1 ] && grep -q "not an nntrain dataset; not replacing it" fetch.err &&
           [ "$sum" = "$(sha256sum <"$f")" ]
        then ok "fetch_mnist.sh --out $f (newer than the cache): exit 2, $(cat fetch.err)"
        else fail "fetch_mnist.sh --out $f (newer than the cache): exit $rc: $(cat fetch.out fetch.err)"; fi
    done
    # a small nntrain dataset (12 samples) is rebuilt from the cache: 60,000 and 10,000
    mkdir idx && python3 "$repo/tests/make_idx.py" idx && "$nnprep" --out small.h5 idx >/dev/null && touch -d '+1 day' small.h5
    if fetch small.h5 && grep -q "wrote $dir/small.h5: 60000 training and 10000 test images of 28x28" fetch.out fetch.err &&
       [ "$(stat -c %s small.h5)" -gt 50000000 ]
    then ok "fetch_mnist.sh --out small.h5 (12 samples, newer than the cache): rebuilt with 60000 and 10000"
    else fail "fetch_mnist.sh --out small.h5: exit $?: $(cat fetch.out fetch.err)"; fi
else
    echo "skip fetch_mnist.sh: no IDX cache in $repo/data/mnist (the script would download it)"
fi

# ---- scripts/plot_metrics.py: FILE or LABEL=FILE ----
# Until 2026-12-07 runs/lr=0.1.jsonl was split at its last '=' into the label runs/lr and
# the file 0.1.jsonl, and plotted that other run without a word. Checked on the parsing
# itself (load), which needs no matplotlib.
mkdir runs && echo '{"epoch": 1, "train_loss": 0.5}' >runs/lr=0.1.jsonl && echo '{"epoch": 1, "train_loss": 9}' >0.1.jsonl
if python3 - "$repo/scripts/plot_metrics.py" >plot.out 2>&1 <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("plot_metrics", sys.argv[1])
plot = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot)
right = [{"epoch": 1, "train_loss": 0.5}]
for arg, want in (("runs/lr=0.1.jsonl", ("lr=0.1", right)), ("fast=runs/lr=0.1.jsonl", ("fast", right)),
                  ("0.1.jsonl", ("0.1", [{"epoch": 1, "train_loss": 9}]))):
    got = plot.load(arg)
    print(f"{arg} -> label {got[0]!r}, train_loss {got[1][0]['train_loss']}")
    assert got == want, f"{arg}: expected {want}"
try:  # a LABEL=FILE whose FILE is missing: an error naming it, not another file
    plot.load("runs/lr=0.2.jsonl")
    sys.exit("runs/lr=0.2.jsonl loaded something")
except SystemExit as e:
    assert "0.2.jsonl" in str(e.code) and "No such file" in str(e.code), e.code
    print(f"runs/lr=0.2.jsonl -> {e.code}")
PY
then ok "plot_metrics.py: $(paste -sd';' plot.out)"
else fail "plot_metrics.py LABEL=FILE: $(cat plot.out)"; fi

[ $fails -eq 0 ] && echo "test_script_outputs: all passed" || echo "test_script_outputs: $fails failed"
[ $fails -eq 0 ]
