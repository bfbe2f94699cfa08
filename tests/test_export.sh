#!/usr/bin/env bash
# The trained network outside nntrain (scripts/export_model.py, scripts/model_numpy.py):
# a model trained on real MNIST (6000 samples, 2 epochs, 2 ranks) exported to ONNX and .npz;
# on the 10,000 test images both give the class of a float64 reference computed from the
# checkpoint for every sample, probabilities within 1e-5 of it, and the reference's confusion
# matrix, accuracy and loss are nneval's (tests/check_export.py). The same for each activation
# with softmax and mse on a tiny two-hidden-layer model, for convolutional networks (format 2:
# two convolutions, padded and not, an odd size pooled; a pool first; pools alone), and for the
# format-1 fixture. Then the
# refusals: bad checkpoints and bad outputs give exit 2 and one line, and change no file;
# outputs changed during the export (made, replaced, written into, their directory moved)
# are kept: exit 1, one line; one export per output (the C tools' lock: a second export, or an
# nntrain, on an output being exported is refused, exit 2, and the first's file is written
# whole); as root, two bind-mounted names of one directory and a full disk.
# Skips (77) only when /usr/bin/python3 lacks numpy, h5py or onnx (Debian: python3-numpy
# python3-h5py python3-onnx; scripts/setup.sh --test installs them).
# Usage: test_export.sh NNTRAIN NNEVAL MPIEXEC SOURCE_DIR DATA WORKDIR
set -u
nntrain=$1 nneval=$2 mpiexec=$3 src=$4 data=$5 dir=$6/export
py=${NN_EXPORT_PYTHON:-/usr/bin/python3}
export=$src/scripts/export_model.py check=$src/tests/check_export.py
if ! "$py" -c 'import numpy, h5py, onnx' 2>/dev/null; then
    echo "SKIP: $py cannot import numpy, h5py and onnx (apt-get install python3-numpy python3-h5py python3-onnx)"
    # scripts/test.sh installs them and sets NN_REQUIRE_EXPORT=1: there, a skip is a failure
    [ "${NN_REQUIRE_EXPORT:-0}" = 1 ] && exit 1
    exit 77
fi
if [ ! -f "$data" ]; then
    echo "FAIL: $data is missing: run scripts/fetch_mnist.sh first (scripts/test.sh does)"
    exit 1
fi
rm -rf "$dir" && mkdir -p "$dir" || exit 1
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; sed 's/^/     /' "$dir/log" | tail -15; }

# train NAME ARGS...: a checkpoint NAME.h5 on MNIST (2 ranks), exported to NAME.onnx and NAME.npz,
# scored by nneval (NAME.json), compared by check_export.py
train_and_compare() {
    local name=$1; shift
    if timeout 300 "$mpiexec" -n 2 "$nntrain" --data "$data" --checkpoint "$dir/$name.h5" "$@" >"$dir/log" 2>&1 &&
       "$py" "$export" "$dir/$name.h5" --onnx "$dir/$name.onnx" --npz "$dir/$name.npz" >>"$dir/log" 2>&1 &&
       timeout 120 "$mpiexec" -n 2 "$nneval" --checkpoint "$dir/$name.h5" --data "$data" --metrics "$dir/$name.json" \
           >>"$dir/log" 2>&1 &&
       "$py" "$check" compare "$dir/$name.h5" "$dir/$name.onnx" "$dir/$name.npz" "$data" "$dir/$name.json" \
           >"$dir/$name.check" 2>&1
    then ok "$name ($*): $(tr '\n' ' ' <"$dir/$name.check")"
    else cat "$dir/$name.check" >>"$dir/log" 2>/dev/null; fail "$name ($*)"; fi
}

train_and_compare mnist --train-limit 6000 --epochs 2 --layers 784,64,10
for act in sigmoid relu tanh; do
    train_and_compare "tiny-$act-softmax" --train-limit 2000 --epochs 1 --layers 784,16,12,10 --activation "$act"
    # mse learns slowly: settings under which every activation gets past constant outputs
    train_and_compare "tiny-$act-mse" --train-limit 2000 --epochs 2 --layers 784,16,12,10 --activation "$act" \
        --loss mse --batch-size 20 --lr 1 --momentum 0.5
done
# Convolutional networks (checkpoint format 2): the ONNX graph takes [N, C, H, W]
train_and_compare cnn --train-limit 3000 --epochs 2 --layers conv5x5x8p2,pool2,conv4x4x6,pool2,32,10 \
    --activation relu --lr 0.1
train_and_compare cnn-pool-first-tanh --train-limit 2000 --epochs 1 --layers pool2,conv3x3x4p1,pool2,16,10 \
    --activation tanh --lr 0.1
train_and_compare pools-sigmoid-mse --train-limit 2000 --epochs 2 --layers pool2,pool2,24,10 --loss mse \
    --batch-size 20 --lr 1 --momentum 0.5

# The format-1 fixture (written before the structure redesign) exports as well.
if "$py" "$export" "$src/tests/fixtures/checkpoint-v1.h5" --onnx "$dir/v1.onnx" --npz "$dir/v1.npz" >"$dir/log" 2>&1 &&
   timeout 120 "$mpiexec" -n 2 "$nneval" --checkpoint "$src/tests/fixtures/checkpoint-v1.h5" --data "$data" \
       --metrics "$dir/v1.json" >>"$dir/log" 2>&1 &&
   "$py" "$check" compare "$src/tests/fixtures/checkpoint-v1.h5" "$dir/v1.onnx" "$dir/v1.npz" "$data" "$dir/v1.json" \
       >"$dir/v1.check" 2>&1
then ok "fixture checkpoint-v1.h5: $(tr '\n' ' ' <"$dir/v1.check")"
else cat "$dir/v1.check" >>"$dir/log" 2>/dev/null; fail "fixture checkpoint-v1.h5"; fi

# The checks can fail: another network of the same shape (tanh for relu) does not pass for this one.
if "$py" "$check" compare "$dir/tiny-relu-softmax.h5" "$dir/tiny-tanh-softmax.onnx" "$dir/tiny-tanh-softmax.npz" \
       "$data" "$dir/tiny-relu-softmax.json" >"$dir/log" 2>&1
then fail "check_export.py passed another network"
else ok "check_export.py fails another network: $(grep -c FAIL "$dir/log") failed checks"; fi

# ---- refusals ----
ck=$dir/tiny-relu-softmax.h5
# expect CODE MESSAGE ARGS...: export_model.py ARGS exits CODE; MESSAGE (when not empty) is its
# one line on stderr
expect() {
    local code=$1 msg=$2; shift 2
    "$py" "$export" "$@" >"$dir/out" 2>"$dir/log"
    local rc=$? lines
    lines=$(wc -l <"$dir/log")
    if [ "$rc" -eq "$code" ] && { [ -z "$msg" ] || { [ "$lines" -eq 1 ] && grep -qF -- "$msg" "$dir/log"; }; }
    then ok "export_model.py $* -> $code${msg:+: $(cat "$dir/log")}"
    else fail "export_model.py $* -> expected exit $code and one line with '$msg' (got $rc, $lines lines)"; fi
}
sums() { sha256sum "$dir"/*.h5 "$dir"/*.onnx "$dir"/*.npz "$dir"/keep.* 2>/dev/null; }

printf 'not a checkpoint\n' >"$dir/keep.txt"
cp "$dir/mnist.onnx" "$dir/keep.onnx"
head -c 20000 "$ck" >"$dir/truncated.h5"
for what in activation loss version weight widths nan; do
    cp "$ck" "$dir/bad-$what.h5" && "$py" "$check" tamper "$dir/bad-$what.h5" "$what" || fail "tamper $what"
done
cp "$dir/cnn.h5" "$dir/bad-convs.h5" && "$py" "$check" tamper "$dir/bad-convs.h5" convs || fail "tamper convs"
ln -s "$ck" "$dir/link.h5" && ln "$ck" "$dir/hard.h5" && ln "$dir/mnist.onnx" "$dir/hard.onnx" && mkfifo "$dir/fifo" && mkdir "$dir/subdir" || exit 1
before=$(sums)
expect 2 "no such file" "$dir/missing.h5" --npz "$dir/x.npz"
expect 2 "not an HDF5 file" "$dir/keep.txt" --npz "$dir/x.npz"
expect 2 "not an HDF5 file" "$dir/truncated.h5" --npz "$dir/x.npz"
expect 2 "not a valid checkpoint: no attribute format_version" "$data" --npz "$dir/x.npz"
expect 2 "unknown activation 'swish'" "$dir/bad-activation.h5" --onnx "$dir/x.onnx"
expect 2 "unknown loss 'hinge'" "$dir/bad-loss.h5" --onnx "$dir/x.onnx"
expect 2 "checkpoint format version 3, this exporter reads versions 1 and 2" "$dir/bad-version.h5" --onnx "$dir/x.onnx"
expect 2 "the convolutions flatten to 96 values, /model/widths begins with 150" "$dir/bad-convs.h5" --onnx "$dir/x.onnx"
expect 2 "parameter checksum mismatch" "$dir/bad-weight.h5" --onnx "$dir/x.onnx"
expect 2 "misshapen" "$dir/bad-widths.h5" --onnx "$dir/x.onnx"
expect 2 "not finite" "$dir/bad-nan.h5" --npz "$dir/x.npz"
expect 2 "cannot read checkpoint: not a regular file" "$dir" --npz "$dir/x.npz"
expect 2 "nothing to do" "$ck"
expect 2 "unrecognized arguments: --bogus" "$ck" --npz "$dir/x.npz" --bogus
# outputs: never the checkpoint (by name, ../, symlink, hard link), the other output, a
# non-regular file, a file that is not an earlier export, or in a missing directory
expect 2 "is the checkpoint being exported" "$ck" --onnx "$ck"
expect 2 "is the checkpoint being exported" "$ck" --npz "$dir/subdir/../$(basename "$ck")"
expect 2 "is the checkpoint being exported" "$ck" --npz "$dir/link.h5"
expect 2 "is the checkpoint being exported" "$dir/link.h5" --onnx "$dir/hard.h5"
expect 2 "the same file as --onnx" "$ck" --onnx "$dir/y.out" --npz "$dir/y.out"
expect 2 "the same file as --onnx" "$ck" --onnx "$dir/mnist.onnx" --npz "$dir/hard.onnx"
expect 2 "--onnx $dir/m.tmp: is the temporary file of --npz's output" "$ck" --npz "$dir/m" --onnx "$dir/m.tmp"
expect 2 "--npz $dir/m.lock: is the lock file of --onnx's output" "$ck" --onnx "$dir/m" --npz "$dir/m.lock"
expect 2 "not a regular file" "$ck" --npz /dev/null
expect 2 "not a regular file" "$ck" --onnx "$dir/fifo"
expect 2 "not a regular file" "$ck" --onnx "$dir/subdir"
expect 2 "holds something other than an earlier npz export" "$ck" --npz "$dir/keep.txt"
expect 2 "holds something other than an earlier npz export" "$ck" --npz "$dir/keep.onnx"
expect 2 "holds something other than an earlier onnx export" "$ck" --onnx "$data"
expect 2 "no such directory" "$ck" --onnx "$dir/nodir/x.onnx"
expect 2 "holds something other than an earlier onnx export" "$ck" --npz "$dir/y.npz" --onnx "$dir/keep.txt"
if [ "$before" = "$(sums)" ] && [ ! -e "$dir/x.npz" ] && [ ! -e "$dir/x.onnx" ] && [ ! -e "$dir/y.out" ] &&
   [ ! -e "$dir/y.npz" ] && [ -z "$(find "$dir" -name '*.tmp')" ]
then ok "the refusals changed no file and left nothing behind"
else fail "the refusals changed or left files: $(find "$dir" -newer "$dir/keep.onnx" -type f | tr '\n' ' ')"; fi

# an earlier export is replaced; a name without .npz is written as given
expect 0 "" "$ck" --onnx "$dir/mnist.onnx" --npz "$dir/mnist.npz"
expect 0 "" "$ck" --npz "$dir/plain"
if [ -f "$dir/plain" ] && [ ! -e "$dir/plain.npz" ] &&
   "$py" "$check" compare "$ck" "$dir/mnist.onnx" "$dir/plain" "$data" >"$dir/log" 2>&1
then ok "re-export over an earlier export; --npz plain writes plain"
else fail "re-export over an earlier export; --npz plain writes plain"; fi

# ---- what a (re-)export does to the files it writes ----
# A replaced export keeps its mode (until 2026-12-07 it became 0644 & ~umask: a chmod 600
# model was widened); a new one gets 0666 & ~umask.
chmod 600 "$dir/mnist.npz" && chmod 640 "$dir/mnist.onnx" && rm -f "$dir/new.npz"
if (umask 027 && "$py" "$export" "$ck" --npz "$dir/mnist.npz" --onnx "$dir/mnist.onnx" >"$dir/log" 2>&1 &&
    "$py" "$export" "$ck" --npz "$dir/new.npz" >>"$dir/log" 2>&1) &&
   [ "$(stat -c %a "$dir/mnist.npz") $(stat -c %a "$dir/mnist.onnx") $(stat -c %a "$dir/new.npz")" = "600 640 640" ]
then ok "re-export keeps modes 600 and 640; a new file under umask 027 is 640"
else fail "modes after re-export: $(stat -c '%n %a' "$dir/mnist.npz" "$dir/mnist.onnx" "$dir/new.npz" | tr '\n' ' ')"; fi
# ... and its owner and group, and its POSIX ACL, as nn_output_keep_mode does for the C tools.
# Until 2026-12-07 only the permission bits were kept: root's re-export took the user's model
# for root, the ACL's user lost it and, the mode's group bits being the ACL's mask, the owning
# group got its rw; and an ACL inherited from the directory's default stayed on a file that had none.
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
    cp "$dir/mnist.npz" "$dir/owned.npz" && chown nobody:"$(id -g nobody)" "$dir/owned.npz"
    if "$py" "$export" "$ck" --npz "$dir/owned.npz" >"$dir/log" 2>&1 &&
       [ "$(stat -c '%u:%g %a' "$dir/owned.npz")" = "$(id -u nobody):$(id -g nobody) 600" ]
    then ok "root's re-export of nobody's model keeps its owner and group: $(stat -c '%U:%G %a' "$dir/owned.npz")"
    else fail "owner after re-export: $(stat -c '%U:%G %a' "$dir/owned.npz")"; fi
else
    echo "skip: the owner check needs root and a user nobody"
fi
if command -v setfacl >/dev/null && cp "$dir/mnist.onnx" "$dir/acl.onnx" &&
   setfacl -m u:nobody:rw,g::-,o::- "$dir/acl.onnx" 2>/dev/null; then
    # the old file held open, so that ext4 cannot give its freed inode number to the new one
    acl_before=$(getfacl -c "$dir/acl.onnx") inode=$(stat -c %i "$dir/acl.onnx")
    exec 3<"$dir/acl.onnx"
    if "$py" "$export" "$ck" --onnx "$dir/acl.onnx" >"$dir/log" 2>&1 && [ "$(stat -c %i "$dir/acl.onnx")" != "$inode" ] &&
       [ "$(getfacl -c "$dir/acl.onnx")" = "$acl_before" ]
    then ok "re-export over a model with an ACL (u:nobody:rw, g::-): the new model has the same ACL"
    else fail "ACL after re-export: inode $inode -> $(stat -c %i "$dir/acl.onnx"), $(getfacl -c "$dir/acl.onnx" | tr '\n' ' ') after, $(echo "$acl_before" | tr '\n' ' ') before"; fi
    exec 3<&-
    # a model with no ACL, in a directory given a default ACL since: the new one has none either
    mkdir -p "$dir/default-acl" && cp "$dir/mnist.npz" "$dir/default-acl/m.npz" && chmod 600 "$dir/default-acl/m.npz" &&
        setfacl -d -m u:nobody:rwx "$dir/default-acl" && acl_before=$(getfacl -c "$dir/default-acl/m.npz")
    if "$py" "$export" "$ck" --npz "$dir/default-acl/m.npz" >"$dir/log" 2>&1 &&
       [ "$(getfacl -c "$dir/default-acl/m.npz")" = "$acl_before" ] && [ "$(stat -c %a "$dir/default-acl/m.npz")" = 600 ]
    then ok "re-export of a model without an ACL, in a directory with a default ACL: none inherited, mode 600"
    else fail "a default ACL on re-export: $(getfacl -c "$dir/default-acl/m.npz" | tr '\n' ' ') after, $(echo "$acl_before" | tr '\n' ' ') before"; fi
else
    echo "skip: the ACL checks need setfacl (package acl) and a filesystem with ACLs"
fi
# A symbolic link is written through: the target replaced, the link kept (until 2026-12-07 the
# link was replaced by a regular file and its target left stale).
mkdir -p "$dir/models" && cp "$dir/tiny-tanh-softmax.npz" "$dir/models/target.npz" &&
    ln -sfn models/target.npz "$dir/via-link.npz" && old_sum=$(sha256sum <"$dir/models/target.npz")
if "$py" "$export" "$ck" --npz "$dir/via-link.npz" >"$dir/log" 2>&1 && [ -L "$dir/via-link.npz" ] &&
   [ "$old_sum" != "$(sha256sum <"$dir/models/target.npz")" ] &&
   "$py" "$check" compare "$ck" "$dir/mnist.onnx" "$dir/models/target.npz" "$data" >>"$dir/log" 2>&1 &&
   [ -z "$(find "$dir" -name '*.tmp')" ]
then ok "--npz via-link.npz (a symbolic link) writes its target models/target.npz; the link stays"
else fail "--npz through a symbolic link: $(ls -l "$dir/via-link.npz" "$dir/models")"; fi
# Its temporary file is FILE.tmp beside the file: a killed export's (it begins as an export
# does) is replaced; anything else there is the user's: exit 2, kept.
head -c 100 "$dir/mnist.npz" >"$dir/mnist.npz.tmp"
if "$py" "$export" "$ck" --npz "$dir/mnist.npz" >"$dir/log" 2>&1 && [ ! -e "$dir/mnist.npz.tmp" ]
then ok "a killed export's mnist.npz.tmp is replaced"
else fail "a killed export's mnist.npz.tmp: exit $?, $(ls "$dir"/*.tmp 2>&1)"; fi
cp "$dir/keep.txt" "$dir/mnist.onnx.tmp"
expect 2 "mnist.onnx.tmp exists and is not a file this exporter was writing; not touching it" \
    "$ck" --onnx "$dir/mnist.onnx"
cmp -s "$dir/keep.txt" "$dir/mnist.onnx.tmp" && ok "the user's mnist.onnx.tmp kept" || fail "the user's mnist.onnx.tmp changed"
rm -f "$dir/mnist.onnx.tmp"
# SIGINT, SIGTERM and SIGUSR1 in the middle of writing (sent by the exporter to itself once
# the first output is written and synced, the second's temporary file open): exit 130 / 143 /
# 138 and one line, no temporary file left, both outputs as they were. Until 2026-12-07 each
# left a hidden .NAME.XXXXXXXX.tmp for good, and SIGINT printed a KeyboardInterrupt traceback;
# SIGUSR1 (a stop signal to nntrain, nneval and nnprep: Slurm's warning before preemption)
# killed the exporter as Python's default does, leaving its FILE.tmp.
signal_mid_export() { # SIG: the export of both outputs, signalling itself after the first fsync
    "$py" - "$export" "$1" "$ck" --onnx "$dir/mnist.onnx" --npz "$dir/mnist.npz" >"$dir/out" 2>"$dir/log" <<'PY'
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("export_model", sys.argv[1])
export_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(export_model)
real_fsync, sig = os.fsync, getattr(signal, "SIG" + sys.argv[2])
def fsync_then_signal(fd):  # the first output synced: the signal arrives mid-export
    real_fsync(fd)
    os.kill(os.getpid(), sig)
os.fsync = fsync_then_signal
sys.exit(export_model.main(sys.argv[3:]))
PY
}
for sig in INT TERM USR1; do
    sums_before=$(sha256sum "$dir/mnist.npz" "$dir/mnist.onnx")
    signal_mid_export "$sig"
    rc=$? want=$((128 + $(kill -l "$sig")))
    if [ "$rc" -eq "$want" ] && [ "$(wc -l <"$dir/log")" -eq 1 ] && grep -q "^export_model.py: stopped by SIG$sig; no output changed" "$dir/log" &&
       [ -z "$(find "$dir" -name '*.tmp')" ] && [ "$sums_before" = "$(sha256sum "$dir/mnist.npz" "$dir/mnist.onnx")" ]
    then ok "SIG$sig mid-export: exit $rc, $(cat "$dir/log"); no .tmp left, the outputs as they were"
    else fail "SIG$sig mid-export: exit $rc (expected $want), $(wc -l <"$dir/log") lines, left: $(find "$dir" -name '*.tmp' | tr '\n' ' ')"; fi
done
# a stop signal ignored at start (nohup, a shell's background job) stays ignored: the export
# runs on through it and writes both outputs
(trap '' USR1 && signal_mid_export USR1); rc=$?
if [ "$rc" -eq 0 ] && [ ! -s "$dir/log" ] && [ "$(grep -c "^export_model.py: wrote " "$dir/out")" -eq 2 ] &&
   [ -z "$(find "$dir" -name '*.tmp')" ]
then ok "SIGUSR1 ignored at start stays ignored: exit 0, both outputs written"
else fail "SIGUSR1 ignored at start: exit $rc, $(cat "$dir/log"), left: $(find "$dir" -name '*.tmp' | tr '\n' ' ')"; fi

# A stop signal at the edges of a step that must not be cut: sent by the exporter to itself
# right after the os.open that makes a FILE.tmp (before it is recorded for removal), or right
# after the os.replace or os.link that puts an output in place (before it is marked so); alone,
# and with a second thread (as a BLAS library's pool has: the signal blocked in the main
# thread goes to it, and the Python handler still runs in the main one). No FILE.tmp is left,
# and the one line says what was written. Until 2026-12-07 the FILE.tmp made then stayed
# behind, and an output put in place then was reported as "no output changed".
signal_after() { # THREAD SIG CALL ARGS...: export_model.py ARGS, signalling itself after os.CALL
    "$py" - "$export" "$@" >"$dir/out" 2>"$dir/log" <<'PY'
import importlib.util, os, select, signal, sys, threading
spec = importlib.util.spec_from_file_location("export_model", sys.argv[1])
export_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(export_model)
thread, sig, name = sys.argv[2] == "thread", getattr(signal, "SIG" + sys.argv[3]), sys.argv[4]
real = getattr(os, name)
if thread:  # a second thread, and a pipe its C-level signal handler writes to (so we wait for it)
    threading.Thread(target=threading.Event().wait, daemon=True).start()
    wake, woken = os.pipe()
    os.set_blocking(woken, False)
    signal.set_wakeup_fd(woken)
def call_then_signal(*args, **kwargs):
    result = real(*args, **kwargs)
    if name != "open" or args[1] & os.O_EXCL:  # os.open: the one that makes a FILE.tmp (not a lock file)
        os.kill(os.getpid(), sig)
        if thread:  # taken by a thread (by this one where it is not blocked here): its handler has run
            select.select([wake], [], [], 10)
    return result
setattr(os, name, call_then_signal)
sys.exit(export_model.main(sys.argv[5:]))
PY
}
mkdir -p "$dir/edges" || exit 1
for thread in alone thread; do
    for step in "TERM open" "INT replace" "USR1 link"; do
        read -r sig call <<<"$step"
        want=$((128 + $(kill -l "$sig"))) m=$dir/edges/m new=$dir/edges/new
        rm -f "$dir"/edges/*
        cp "$dir/tiny-tanh-softmax.onnx" "$m.onnx" && cp "$dir/tiny-tanh-softmax.npz" "$m.npz" || exit 1
        onnx_before=$(sha256sum <"$m.onnx") npz_before=$(sha256sum <"$m.npz")
        case $call in # the outputs, the one line expected, and what the files must be after
            open) outputs=(--onnx "$m.onnx" --npz "$m.npz") msg="no output changed"
                  files='[ "$(sha256sum <"$m.onnx")" = "$onnx_before" ]' ;;
            replace) outputs=(--onnx "$m.onnx" --npz "$m.npz") msg="wrote $m.onnx; $m.npz left as it was"
                     files='[ "$(sha256sum <"$m.onnx")" != "$onnx_before" ]' ;;
            link) outputs=(--onnx "$new.onnx" --npz "$new.npz") msg="wrote $new.onnx; $new.npz left as it was"
                  files='[ -f "$new.onnx" ] && [ ! -e "$new.npz" ]' ;; # no file there: put in place by link(2)
        esac
        signal_after "$thread" "$sig" "$call" "$ck" "${outputs[@]}"; rc=$?
        if [ "$rc" -eq "$want" ] && [ "$(wc -l <"$dir/log")" -eq 1 ] &&
           grep -qxF "export_model.py: stopped by SIG$sig; $msg" "$dir/log" && eval "$files" &&
           [ "$(sha256sum <"$m.npz")" = "$npz_before" ] && [ -z "$(find "$dir/edges" -name '*.tmp')" ]
        then ok "SIG$sig right after os.$call ($thread): exit $rc, $(cat "$dir/log"); no .tmp left"
        else fail "SIG$sig right after os.$call ($thread): exit $rc (expected $want and '$msg'): $(cat "$dir/log"); edges/: $(ls "$dir/edges" | tr '\n' ' ')"; fi
    done
done

# A stop signal during the clean-up at the end (sent by the exporter to itself as its FILE.tmp
# are removed, before its locks are let go): handled once the clean-up is done, as a stop,
# exit 143 and the one line saying what was written, no lock file left. Until 2026-12-07 the
# clean-up was two steps: the signal, handled between them, printed a traceback after "wrote"
# (exit 1) and left the output's lock file.
rm -f "$dir"/edges/*
cp "$dir/tiny-tanh-softmax.onnx" "$dir/edges/m.onnx" || exit 1
"$py" - "$export" "$ck" --onnx "$dir/edges/m.onnx" >"$dir/out" 2>"$dir/log" <<'PY'
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("export_model", sys.argv[1])
export_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(export_model)
real = export_model.nn_outputs.abandon_all
def remove_then_signal(temporaries):  # the FILE.tmp removed: the signal arrives mid-clean-up
    real(temporaries)
    os.kill(os.getpid(), signal.SIGTERM)
export_model.nn_outputs.abandon_all = remove_then_signal
sys.exit(export_model.main(sys.argv[2:]))
PY
rc=$?
if [ "$rc" -eq 143 ] && [ "$(wc -l <"$dir/log")" -eq 1 ] && grep -qxF "export_model.py: stopped by SIGTERM; wrote $dir/edges/m.onnx" "$dir/log" &&
   [ "$(ls "$dir/edges")" = m.onnx ]
then ok "SIGTERM during the clean-up: exit $rc, $(cat "$dir/log"); no .tmp or .lock left"
else fail "SIGTERM during the clean-up: exit $rc (expected 143): $(head -c 300 "$dir/log"); edges/: $(ls "$dir/edges" | tr '\n' ' ')"; fi

# ---- an output changed while the export runs ----
# Each output is looked at again just before it is put in place, as nntrain's saves are
# (src/checkpoint_save.c): only the file checked at start, unchanged, in the directory of
# the start, is replaced; otherwise exit 1, one line, the user's file kept, no FILE.tmp left
# and no output changed. Until 2026-12-07 the path was checked only at start: a file made
# there during the export, a file put in place of the old export, or the directory moved
# away and made anew (with the user's file in it) was replaced, exit 0.
# paused_export COMMAND ARGS...: export_model.py ARGS, which stops itself (SIGSTOP) once all
# its outputs are written and synced, before any is put in place (with PAUSE_AT=checked: once
# the outputs are checked, before their temporary files are made); COMMAND changes things
# then and the export goes on; $rc its exit
paused_export() {
    local change=$1 pid state; shift
    "$py" - "$export" "$@" >"$dir/out" 2>"$dir/log" <<'PY' &
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("export_model", sys.argv[1])
export_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(export_model)
real_fsync, outputs = os.fsync, sum(a in ("--onnx", "--npz") for a in sys.argv[2:])
def fsync_then_stop(fd, synced=[]):  # the last output synced: stopped until the change is made
    real_fsync(fd)
    synced.append(fd)
    if len(synced) == outputs:
        os.kill(os.getpid(), signal.SIGSTOP)
real_check = export_model.check_outputs
def check_then_stop(*args):  # or once the outputs are checked, before anything is written
    real_check(*args)
    os.kill(os.getpid(), signal.SIGSTOP)
if os.environ.get("PAUSE_AT") == "checked":
    export_model.check_outputs = check_then_stop
else:
    os.fsync = fsync_then_stop
sys.exit(export_model.main(sys.argv[2:]))
PY
    pid=$!
    for _ in $(seq 600); do
        state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
        [ "$state" = T ] || [ -z "$state" ] && break
        sleep 0.05
    done
    sh -c "$change"
    kill -CONT "$pid" 2>/dev/null
    wait "$pid"; rc=$?
}
changed_ok() { # WHAT MESSAGE: exit 1 and the one line MESSAGE, no .tmp anywhere in $dir
    if [ "$rc" -eq 1 ] && [ "$(wc -l <"$dir/log")" -eq 1 ] && grep -qF -- "$2" "$dir/log" &&
       [ -z "$(find "$dir" -name '*.tmp')" ] && [ ! -s "$dir/out" ]
    then ok "$1: exit 1, $(cat "$dir/log")"
    else fail "$1: exit $rc (expected 1 and one line '$2'): $(cat "$dir/log" "$dir/out"); left: $(find "$dir" -name '*.tmp' | tr '\n' ' ')"; fi
}
mkdir -p "$dir/mid" && cd "$dir/mid" || exit 1
printf 'my notes\n' >notes.txt
# a file made where there was none (the other output, new too, is not made either)
paused_export 'cp notes.txt new.npz' "$ck" --onnx new.onnx --npz new.npz
changed_ok "new.npz made during the export" "--npz new.npz: is not the file this run checked"
cmp -s notes.txt new.npz && [ ! -e new.onnx ] && ok "the user's new.npz kept, new.onnx not made" ||
    fail "after new.npz was made: $(ls)"
# the earlier export removed and a file of its size made at its name (ext4 gives it the freed
# inode number at once: the number and size alone would take it for the export checked)
cp "$dir/mnist.onnx" old.onnx && cp "$dir/mnist.npz" old.npz && npz_sum=$(sha256sum <old.npz)
paused_export 'size=$(stat -c %s old.onnx) && rm old.onnx && head -c "$size" /dev/zero | tr "\0" u >old.onnx &&
    cp old.onnx mine.onnx' "$ck" --onnx old.onnx --npz old.npz
changed_ok "old.onnx replaced by a file of its size during the export" "--onnx old.onnx: is not the file this run checked"
cmp -s mine.onnx old.onnx && [ "$npz_sum" = "$(sha256sum <old.npz)" ] &&
    ok "the user's old.onnx kept, old.npz as it was" || fail "after old.onnx was replaced: $(ls -l)"
# ... and an earlier export written into in place (the same inode)
paused_export 'cp notes.txt old.npz' "$ck" --npz old.npz
changed_ok "old.npz written into during the export" "--npz old.npz: is not the file this run checked"
cmp -s notes.txt old.npz && ok "the user's old.npz kept" || fail "after old.npz was written into: $(ls -l)"
# the directory moved away and made again, the user's file at the output's name in it
mkdir models && cp "$dir/mnist.onnx" models/m.onnx && old_sum=$(sha256sum <models/m.onnx)
paused_export 'mv models models.old && mkdir models && cp notes.txt models/m.onnx' "$ck" --onnx models/m.onnx
changed_ok "models/ moved away and made again during the export" \
    "--onnx models/m.onnx: its directory is not the one this run started in"
cmp -s notes.txt models/m.onnx && [ "$old_sum" = "$(sha256sum <models.old/m.onnx)" ] &&
    ok "the user's models/m.onnx kept, models.old/m.onnx as it was" || fail "after models/ was moved: $(ls -lR)"
# ... or removed and made again, empty (ext4 may give it the freed inode number)
rm -f models/m.onnx
paused_export 'rm -rf models && mkdir models' "$ck" --onnx models/m.onnx
changed_ok "models/ removed and made again during the export" \
    "--onnx models/m.onnx: its directory is not the one this run started in"
[ -z "$(ls models)" ] && ok "the new models/ left empty" || fail "the new models/: $(ls models)"
# an earlier export replaced by the user's file just after the outputs were checked: the file
# is checked again once held (exit 2: not an export), and kept
cp "$dir/mnist.onnx" early.onnx
PAUSE_AT=checked paused_export 'cp notes.txt new.onnx && mv new.onnx early.onnx' "$ck" --onnx early.onnx
[ "$rc" -eq 2 ] && [ "$(wc -l <"$dir/log")" -eq 1 ] && grep -qF -- "--onnx early.onnx: holds something other than an earlier onnx export" "$dir/log" &&
    cmp -s notes.txt early.onnx && [ -z "$(find . -name '*.tmp')" ] && ok "early.onnx replaced just after the check: exit 2, $(cat "$dir/log"), kept" ||
    fail "early.onnx replaced just after the check: exit $rc: $(cat "$dir/log" "$dir/out")"
# nothing changed: the export goes on as ever (a new file and a replaced one)
paused_export 'true' "$ck" --onnx models/m.onnx --npz old.npz.new
[ "$rc" -eq 0 ] && [ -f models/m.onnx ] && [ -f old.npz.new ] && [ -z "$(find . -name '*.tmp')" ] &&
    "$py" "$check" compare "$ck" models/m.onnx old.npz.new "$data" >"$dir/log" 2>&1 &&
    ok "paused with nothing changed: exit 0, both written" || fail "paused with nothing changed: exit $rc: $(cat "$dir/log")"
cd "$dir" || exit 1

# ---- one export per output: the lock ----
# Each output is locked as nntrain locks its checkpoint (FILE.lock, an fcntl lock naming its
# holder, the C tools' own), before its FILE.tmp is looked at. Until 2026-12-07 there was no
# lock: export B, started while export A had just made m.onnx.tmp (empty), took it for a
# killed export's, removed it and made its own; A then renamed B's unfinished file over the
# user's model (an empty m.onnx, mode 0600), printing "wrote m.onnx", exit 0, and B, stopped,
# said "no output changed". Made deterministic: A stops itself (SIGSTOP) just after making
# its FILE.tmp, and so does B if it gets that far; A goes on, then B gets SIGTERM (SIGINT is
# ignored in a script's background job, and so stays ignored by the export).
# stopping_export OUT ERR ARGS...: export_model.py ARGS in the background ($pid), stopping
# itself just after it makes a FILE.tmp; returns once it is stopped or has ended
stopping_export() {
    local out=$1 err=$2; shift 2
    "$py" - "$export" "$@" >"$out" 2>"$err" <<'PY' &
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("export_model", sys.argv[1])
export_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(export_model)
real_open = os.open
def open_then_stop(path, flags, *args, **kwargs):
    fd = real_open(path, flags, *args, **kwargs)
    if flags & os.O_EXCL:  # a FILE.tmp made (a lock file is opened without O_EXCL)
        os.kill(os.getpid(), signal.SIGSTOP)
    return fd
os.open = open_then_stop
sys.exit(export_model.main(sys.argv[2:]))
PY
    pid=$!
    local state
    for _ in $(seq 600); do # stopped (T), ended (Z, or gone)
        state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
        case $state in T|Z|"") return 0 ;; esac
        sleep 0.05
    done
    fail "export_model.py $* neither stopped itself nor ended within 30 s (state $state)"
    return 1
}
mkdir -p "$dir/two" && cd "$dir/two" || exit 1
"$py" "$export" "$ck" --onnx want.onnx >/dev/null 2>&1 && cp "$dir/mnist.onnx" m.onnx || exit 1
stopping_export a.out a.err "$ck" --onnx m.onnx; a=$pid
stopping_export b.out b.err "$ck" --onnx m.onnx; b=$pid
kill -CONT "$a"; wait "$a"; rc_a=$?
if [ -d "/proc/$b" ] && [ "$(sed 's/.*) //' "/proc/$b/stat" | cut -c1)" = T ]; then kill -TERM "$b"; kill -CONT "$b"; fi
wait "$b"; rc_b=$?
if [ "$rc_a" -eq 0 ] && grep -q '^export_model.py: wrote m.onnx ' a.out && [ "$rc_b" -eq 2 ] && [ "$(wc -l <b.err)" -eq 1 ] &&
   grep -qxF "export_model.py: --onnx m.onnx: in use by another run (PID $a on host $(hostname); lock file m.onnx.lock); give this run another file" b.err &&
   cmp -s want.onnx m.onnx && [ "$(ls)" = "$(printf '%s\n' a.err a.out b.err b.out m.onnx want.onnx)" ]
then ok "a second export of m.onnx while the first writes it: exit 2, $(cat b.err); the first's written whole, no .tmp or .lock left"
else fail "two exports of m.onnx: A exit $rc_a ($(cat a.out a.err)), B exit $rc_b ($(cat b.out b.err)); m.onnx $(stat -c '%s bytes, mode %a' m.onnx), want.onnx $(stat -c '%s bytes' want.onnx); files: $(ls | tr '\n' ' ')"; fi
# The same lock as the C tools': an export refused while a process holds new.npz.lock as
# nntrain would (an fcntl lock, "PID N on host test"), and nntrain refused (exit 2) while
# an export holds new.onnx's; each then goes on. Until 2026-12-07 neither saw the other.
"$py" "$src/tests/hold_lock.py" new.npz.lock &
locker=$!
for _ in $(seq 300); do [ -e new.npz.lock.held ] && break; sleep 0.1; done
"$py" "$export" "$ck" --npz new.npz >out 2>err; rc=$?
kill "$locker"; wait "$locker" 2>/dev/null
if [ "$rc" -eq 2 ] && grep -qxF "export_model.py: --npz new.npz: in use by another run (PID $locker on host test; lock file new.npz.lock); give this run another file" err &&
   [ ! -e new.npz ] && [ ! -e new.npz.tmp ] && [ "$(cat new.npz.lock)" = "PID $locker on host test" ]
then ok "an export while another process holds new.npz.lock (an fcntl lock, as nntrain's): exit 2, $(cat err); its lock file kept"
else fail "an export beside a held new.npz.lock: exit $rc: $(cat out err); files: $(ls | tr '\n' ' ')"; fi
rm -f new.npz.lock new.npz.lock.held
stopping_export a.out a.err "$ck" --onnx new.onnx; a=$pid
timeout 120 "$nntrain" --data "$data" --train-limit 200 --epochs 1 --layers 784,8,10 --metrics new.onnx >out 2>err; rc=$?
kill -CONT "$a"; wait "$a"; rc_a=$?
if [ "$rc" -eq 2 ] && grep -qF -- "--metrics new.onnx: in use by another run (PID $a on host $(hostname); lock file new.onnx.lock)" err &&
   [ "$rc_a" -eq 0 ] && cmp -s want.onnx new.onnx && [ ! -e new.onnx.lock ] && [ ! -e new.onnx.tmp ]
then ok "nntrain --metrics new.onnx while an export holds its lock: exit 2, $(grep -F 'in use' err); the export then written"
else fail "nntrain beside an export's lock: nntrain exit $rc ($(cat err)), export exit $rc_a ($(cat a.err)); files: $(ls | tr '\n' ' ')"; fi
cd "$dir" || exit 1

# A path with a control character is written out in the one line (\n, \t, \x1b), as the C
# tools do; until 2026-12-07 it was printed raw and the line broke in two.
expect 2 '--npz '"$dir"'/no\ndir\t/x\x1b.npz: no such directory' "$ck" --npz "$dir/no"$'\n'"dir"$'\t'"/x"$'\x1b'".npz"

# Two names of one directory (a bind mount) are one directory: outputs not made yet are
# compared by their directory's device and inode and their name, not by their real paths
# (which differ), so that one output, or its FILE.tmp, under the other's second name is
# refused (exit 2). Until 2026-12-07, --onnx bx/e.x.tmp --npz alias/e.x wrote the ONNX model to
# bx/e.x.tmp, then renamed the npz's temporary file, that same file, over bx/e.x, exit 0.
if [ "$(id -u)" -eq 0 ] && mkdir -p "$dir/bx" "$dir/alias" && mount --bind "$dir/bx" "$dir/alias" 2>/dev/null; then
    trap 'umount "$dir/alias" 2>/dev/null' EXIT
    expect 2 "--onnx $dir/bx/e.x.tmp: is the temporary file of --npz's output" \
        "$ck" --onnx "$dir/bx/e.x.tmp" --npz "$dir/alias/e.x"
    expect 2 "--npz $dir/alias/e.x: the same file as --onnx" "$ck" --onnx "$dir/bx/e.x" --npz "$dir/alias/e.x"
    [ -z "$(ls "$dir/bx")" ] && ok "bind-mounted names: nothing written" || fail "bind-mounted names left $(ls "$dir/bx")"
    umount "$dir/alias" && trap - EXIT
else
    echo "skip: the bind-mounted names need root (mount --bind)"
fi

# A full disk: one line, the temporary file removed. Until 2026-12-07 the .npz's one line was
# followed by 8 lines of "Exception ignored in: ZipFile.__del__ ... seek of closed file".
if [ "$(id -u)" -eq 0 ] && mkdir -p "$dir/full" && mount -t tmpfs -o size=64k tmpfs "$dir/full" 2>/dev/null; then
    trap 'umount "$dir/full" 2>/dev/null' EXIT
    # the mnist model (784-64-10: 200 kB) does not fit in 64 kB
    expect 1 "$dir/full/y.npz: write failed: No space left on device" "$dir/mnist.h5" --npz "$dir/full/y.npz"
    [ -z "$(ls -A "$dir/full")" ] && ok "a full disk: nothing left there" || fail "a full disk: left $(ls -A "$dir/full")"
    expect 1 "$dir/full/y.onnx: write failed: No space left on device" "$dir/mnist.h5" --onnx "$dir/full/y.onnx"
    umount "$dir/full" && trap - EXIT
else
    echo "skip: the full-disk case needs root (a small tmpfs)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
