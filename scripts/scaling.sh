#!/usr/bin/env bash
# Strong scaling: the same training job (global batch fixed) at several rank counts,
# one thread per rank; prints and writes a table of steady-state samples/s, speedup,
# parallel efficiency and the shares of the gradient sum and batch assembly.
#   scripts/scaling.sh [--np "1 2 4 8 16"] [--out bench/scaling.md] [--epochs 4] [nntrain options]
# e.g. scripts/scaling.sh --np "1 2 4 8 16" --layers 784,800,800,10 --activation relu --lr 0.05 --batch-size 128
# Epoch 1 is warm-up, left out of the table: --epochs must be at least 2.
# --out is relative to where you run the script (the default, to the repository). It
# replaces only an earlier table of this script (its first line is the marker below) or
# an empty file, keeping that file's mode, owner and POSIX ACL; a symbolic link is written
# through. The table goes to OUT.tmp first and is renamed into place; a directory we cannot
# write is refused before any run (tried with a probe file of our own, .OUT.check-PID-RANDOM,
# never OUT.tmp, which another run may be writing). Anything else at OUT is
# left alone, also one put there during the runs (exit 2 before the rename, or exit 1 where
# it came between that check and the rename). A path's control characters are written out
# in the one-line errors (\n, \t, \x1b).
# Exit status: 0 ok, 1 a run failed, nntrain is missing or the table could not be put in
# place, 2 bad usage (one line).
# Needs build/nntrain (or NNTRAIN_BIN) and data/mnist.h5 (scripts/build.sh, scripts/fetch_mnist.sh).
set -euo pipefail
die() { echo "scaling.sh: $2" >&2; exit "$1"; }
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
nps="1 2 4 8 16" out="" epochs=4
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --np) [ $# -ge 2 ] || die 2 "--np needs rank counts"; nps=$2; shift 2 ;;
        # the user's --out names a file where they ran us, not in the repository we cd to
        --out) [ $# -ge 2 ] || die 2 "--out needs a file"; out=$(absolute "$2"); shift 2 ;;
        # --epochs in any form nntrain takes (--epochs N, --epochs=N, a prefix such as --ep):
        # the table needs to know it, and it must leave epochs after the warm-up one
        --e=*|--ep=*|--epo=*|--epoc=*|--epoch=*|--epochs=*) epochs=${1#*=}; shift ;;
        --e|--ep|--epo|--epoc|--epoch|--epochs) [ $# -ge 2 ] || die 2 "$1 needs a number"; epochs=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
[[ $epochs =~ ^[0-9]+$ ]] || die 2 "--epochs '$epochs': not a whole number"
[ "$((10#$epochs))" -ge 2 ] ||
    die 2 "--epochs $epochs: needs at least 2 (the first epoch is warm-up, left out of the table)"
epochs=$((10#$epochs))
[ -n "${nps// /}" ] || die 2 "--np: no rank counts"
for np in $nps; do [[ $np =~ ^[1-9][0-9]*$ ]] || die 2 "--np '$nps': '$np' is not a rank count"; done
[[ ${NNTRAIN_BIN:-} == */* ]] && NNTRAIN_BIN=$(absolute "$NNTRAIN_BIN") # the caller's, as --out
cd "$(dirname "$0")"
scripts=$PWD # this script's directory, where the Python below finds nn_outputs.py
cd ..
out=${out:-$PWD/bench/scaling.md}

# The output side, in Python: "check" refuses a bad --out before the runs (exit 2, one
# line; a probe file is created and removed, so a directory we cannot write fails here too),
# "write" checks again and writes the table (argv: this script's directory, the mode,
# --out, then for "write" the runs' directory, ...). The outputs rule itself is
# scripts/nn_outputs.py, which export_model.py follows too.
read -r -d '' table_py <<'PY' || true
import datetime, json, os, subprocess, sys

sys.path.insert(0, sys.argv[1])  # this script's directory: the outputs rule, shared with export_model.py
import nn_outputs  # noqa: E402
from nn_outputs import Refusal  # noqa: E402

MARKER = "<!-- written by scripts/scaling.sh: a later run with --out naming this file replaces it -->"
WRITER = "a table scaling.sh"  # for the refusal of a foreign OUT.tmp


def ours(path):
    """Whether PATH is empty or a table this script wrote (the marker first; tables written
    before the marker existed: the title, then the line naming scripts/scaling.sh)."""
    with open(path, "rb") as f:
        head = f.read(4096).decode("utf-8", "replace").split("\n")
    if head == [""] or head[0] == MARKER:
        return True
    return (len(head) > 2 and head[0] == "# Strong scaling" and " UTC, commit `" in head[2]
            and "command: `scripts/scaling.sh " in head[2])


def check(out):
    """Refuse (Refusal) an --out the outputs rule does not let this script write. A symbolic
    link is followed: the table replaces its target, and the link stays."""
    label, real = f"--out {out}", os.path.realpath(out)
    if os.path.islink(out) and not os.path.exists(out):
        raise Refusal(f"{label}: a symbolic link to a missing file; give the file's own path")
    if os.path.exists(real):
        nn_outputs.check_replaceable(label, real, ours, "exists and is not a table written by scaling.sh; not replacing it")
    elif not os.path.isdir(os.path.dirname(real)):
        raise Refusal(f"{label}: no such directory {os.path.dirname(real)}")
    # a killed run's OUT.tmp is ours to replace; anything else there is the user's
    nn_outputs.check_temporary(label, nn_outputs.temporary_name(out), ours, WRITER)


def check_writable(out):
    """Refuse (Refusal) an --out whose OUT.tmp could not be created (a directory this user
    cannot write, a name too long), so that it fails before the runs rather than after them.
    Tried with a probe file of our own (nn_outputs.check_writable), never OUT.tmp itself: until
    2026-12-07 OUT.tmp was made and removed here, and a table another run was writing there
    (empty, or begun with the marker: taken for a killed run's) was removed."""
    try:
        nn_outputs.check_writable(out)
    except OSError as e:
        raise Refusal(f"--out {out}: cannot write in {os.path.dirname(os.path.realpath(out))}: {e.strerror or e}")


def table(runs, cores, nps, epochs, args):
    rows, base = [], None
    for np in nps:
        recs = [json.loads(l) for l in open(f"{runs}/np{np}.jsonl")][1:]  # steady state: skip epoch 1
        secs = sum(r["epoch_seconds"] for r in recs)
        sps = sum(r["samples_per_second"] * r["epoch_seconds"] for r in recs) / secs
        ar = sum(r["allreduce_seconds"] for r in recs) / secs
        da = sum(r["data_seconds"] for r in recs) / secs
        base = base or sps  # the first rank count is the reference
        n = int(np)
        rows.append(f"| {n} | {sps:,.0f} | {sps / base:.2f} | {sps / base / n * int(nps[0]):.0%} | {ar:.1%} | {da:.1%} | {recs[-1]['test_accuracy']:.2%} |")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return "\n".join([
        MARKER, "# Strong scaling", "",
        f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit `{commit}`, {cores} cores, one thread per rank; "
        f"command: `scripts/scaling.sh --np \"{' '.join(nps)}\" --epochs {epochs} {args}` (epochs 2-{epochs} averaged).", "",
        "| ranks | samples/s | speedup | efficiency | gradient sum | data | test accuracy |",
        "|---:|---:|---:|---:|---:|---:|---:|", *rows, ""])


def write(out, text):
    """TEXT to the temporary file beside OUT's file, renamed over it: a failure leaves the old table whole."""
    made = []  # the temporary file, recorded as it is made (no signal between): removed on any failure
    try:
        # checked again once held: the file replaced is the one checked (Temporary.install
        # replaces nothing else, and no file put at --out since: nn_outputs.Changed)
        nn_outputs.open_temporary(f"--out {out}", out, ours, WRITER, check, made.append)
        t = made[0]
        t.file.write(text.encode())
        t.seal()
        t.install()
    except BaseException as e:
        for t in made:
            t.abandon()  # (one put in place is left there)
        if isinstance(e, OSError):
            print(f"scaling.sh: {nn_outputs.one_line(f'--out {out}: cannot write: {e.strerror or e}')}", file=sys.stderr)
            sys.exit(1)
        if isinstance(e, nn_outputs.Changed):  # a file put at --out since the check: kept
            print(f"scaling.sh: {nn_outputs.one_line(str(e))}", file=sys.stderr)
            sys.exit(1)
        raise


mode, out = sys.argv[2], sys.argv[3]
try:
    check(out)
    if mode == "check":
        check_writable(out)
    if mode == "write":
        runs, cores, nps, epochs, args = sys.argv[4], sys.argv[5], sys.argv[6].split(), sys.argv[7], sys.argv[8]
        text = table(runs, cores, nps, epochs, args)
        write(out, text)
        print(text)
except Refusal as e:
    print(f"scaling.sh: {nn_outputs.one_line(str(e))}", file=sys.stderr)  # a path's newline written out
    sys.exit(2)
PY
python3 -c "$table_py" "$scripts" check "$out"

nntrain=${NNTRAIN_BIN:-build/nntrain} # (made absolute before the cd above)
[ -x "$nntrain" ] || die 1 "$nntrain missing: run scripts/build.sh"
. scripts/mpi_env.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cores=$(nproc)
for np in $nps; do
    echo "scaling.sh: -np $np" >&2
    bind=core
    [ "$np" -le "$cores" ] || bind=none # oversubscribed: cores cannot be given out one per rank
    OMP_NUM_THREADS=1 mpirun -np "$np" --bind-to "$bind" "$nntrain" --epochs "$epochs" --threads 1 \
        --metrics "$tmp/np$np.jsonl" "${args[@]}" >"$tmp/np$np.log" 2>&1 ||
        { echo "scaling.sh: -np $np failed:" >&2; tail -5 "$tmp/np$np.log" >&2; exit 1; }
done
python3 -c "$table_py" "$scripts" write "$out" "$tmp" "$cores" "$nps" "$epochs" "${args[*]}"
