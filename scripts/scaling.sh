#!/usr/bin/env bash
# Strong scaling: the same training job (global batch fixed) at several rank counts,
# one thread per rank; prints and writes a table of steady-state samples/s, speedup,
# parallel efficiency and the shares of the gradient sum and batch assembly.
#   scripts/scaling.sh [--np "1 2 4 8 16"] [--out bench/scaling.md] [--epochs 4] [nntrain options]
# e.g. scripts/scaling.sh --np "1 2 4 8 16" --layers 784,800,800,10 --activation relu --lr 0.05 --batch-size 128
# Epoch 1 is warm-up, left out of the table: --epochs must be at least 2.
# The nntrain options are checked first (exit 2, one line): each must be one of nntrain's
# (a prefix, as nntrain takes them, too), and those scaling.sh sets itself or that would
# write or read a run's files are refused: --metrics (each run gets its own, which the table
# is made from: until 2026-12-07 yours was overwritten by each rank count, then a traceback),
# --checkpoint and --checkpoint-every (each rank count would write over the last's), --resume
# (each would start past the epochs timed), --threads (one thread per rank), --help and
# --version. A relative --data is the caller's, as --out is (the runs start in the repository).
# --out is relative to where you run the script (the default, to the repository). It
# replaces only an earlier table of this script (its first line is the marker below) or
# an empty file, keeping that file's mode, owner and POSIX ACL; a symbolic link is written
# through. The table goes to OUT.tmp first and is renamed into place; a directory we cannot
# write is refused before any run (tried with a probe file of our own, .OUT.check-PID-RANDOM,
# never OUT.tmp, which another run may be writing). Anything else at OUT is
# left alone, also one put there during the runs (exit 2 before the rename, or exit 1 where
# it came between that check and the rename). A path's control characters are written out
# in the one-line errors (\n, \t, \x1b). One run per --out: it is locked for the whole run
# as nntrain locks its outputs (OUT.lock, an fcntl lock naming its holder; the C tools' own),
# so a second scaling.sh, or a C tool, given the same file is refused (exit 2, "--out OUT: in
# use by another run (PID N on host H; lock file OUT.lock); ...") and never touches OUT.tmp.
# Exit status: 0 ok, 1 a run failed, nntrain is missing or the table could not be put in
# place, 2 bad usage (one line), 128 + the signal when stopped by SIGINT, SIGTERM, SIGHUP or
# SIGUSR1 (the runs stopped, no table written; a signal ignored at start stays ignored).
# Needs build/nntrain (or NNTRAIN_BIN) and data/mnist.h5 (scripts/build.sh, scripts/fetch_mnist.sh).
set -euo pipefail
die() { echo "scaling.sh: $2" >&2; exit "$1"; }
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
# nntrain's long options (src/options.c; test_script_usage checks this list against it) and
# those of them that take no value
nntrain_options=" help version data layers activation loss epochs batch-size lr lr-schedule momentum weight-decay
    seed train-limit metrics checkpoint checkpoint-every resume threads thread-tuning allreduce timeout accumulate
    compress dropout input-dropout shift max-norm warmup-epochs validation momentum-end momentum-ramp-epochs
    deterministic virtual-shards "
no_value=" help version deterministic "
long_name() { # NAME: the nntrain option --NAME means, as getopt_long reads it (the option of that
    local option found="" # name, else the only one NAME begins); "" where none, "?" where several
    for option in $nntrain_options; do
        [ "$option" = "$1" ] && { echo "$option"; return; }
        [[ $option == "$1"* ]] && { [ -z "$found" ] && found=$option || found="?"; }
    done
    echo "$found"
}
nps="1 2 4 8 16" out="" epochs=4
args=() shown=() # the options for nntrain (relative paths made the caller's), and as given (for the table)
while [ $# -gt 0 ]; do
    case $1 in
        --np) [ $# -ge 2 ] || die 2 "--np needs rank counts"; nps=$2; shift 2 ;;
        # the user's --out names a file where they ran us, not in the repository we cd to
        --out) [ $# -ge 2 ] || die 2 "--out needs a file"; out=$(absolute "$2"); shift 2 ;;
        # this script's own options take the = form too (until 2026-12-07 "not an nntrain option")
        --np=*) nps=${1#*=}; shift ;;
        --out=*) [ -n "${1#*=}" ] || die 2 "--out needs a file"; out=$(absolute "${1#*=}"); shift ;;
        --) shift; [ $# -eq 0 ] || die 2 "'$1': unexpected argument (nntrain takes options only)" ;;
        --?*) # an nntrain option in any form it takes (--epochs N, --epochs=N, a prefix such as --ep)
            given=${1%%=*} n=1 value=""
            name=$(long_name "${given:2}")
            [ -n "$name" ] || die 2 "$given: not an nntrain option (see build/nntrain --help)"
            [ "$name" != "?" ] || die 2 "$given: ambiguous: more than one nntrain option begins so; give more of its name"
            if [[ $1 == *=* ]]; then value=${1#*=}
            elif [[ $no_value != *" $name "* ]]; then [ $# -ge 2 ] || die 2 "$given needs a value"; value=$2 n=2; fi
            as_given=${*:1:n}
            case $name in
                # the table needs to know it, and it must leave epochs after the warm-up one
                epochs) epochs=$value; shift "$n"; continue ;;
                metrics) die 2 "$as_given: scaling.sh gives each run its own metrics file, which the table is made from; leave it out" ;;
                checkpoint|checkpoint-every) die 2 "$as_given: each rank count's run would write its checkpoint over the last's; leave it out" ;;
                resume) die 2 "$as_given: each rank count's run would start from it, past the epochs the table times; leave it out" ;;
                threads) die 2 "$as_given: scaling.sh runs one thread per rank (--threads 1); leave it out" ;;
                help|version) die 2 "$given: not with scaling.sh (its usage: the top of scripts/scaling.sh; nntrain's options: build/nntrain --help)" ;;
                # an input: the caller's, as --out (the runs start in the repository)
                data) shown+=("${@:1:n}"); args+=("--data=$([ -z "$value" ] || absolute "$value")"); shift "$n"; continue ;;
            esac
            shown+=("${@:1:n}") args+=("${@:1:n}"); shift "$n" ;;
        -h*) die 2 "$1: not with scaling.sh (its usage: the top of scripts/scaling.sh; nntrain's options: build/nntrain --help)" ;;
        -?*) die 2 "$1: not an nntrain option (see build/nntrain --help)" ;;
        *) die 2 "'$1': unexpected argument (nntrain takes options only)" ;;
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
scripts=$PWD # this script's directory, where the Python below finds nn_outputs.py and study_outputs.py
cd ..
out=${out:-$PWD/bench/scaling.md}

# The runs and the table, in Python: "check" refuses a bad --out before the runs (exit 2, one
# line; a probe file is created and removed, so a directory we cannot write fails here too);
# "run" locks --out (nn_outputs.lock: held until the table is in place), checks it again,
# makes the runs (each rank count's metrics in a directory of its own, removed at the end)
# and writes the table. argv: this script's directory, the mode, --out, then for "run"
# nntrain, the rank counts, --epochs, the options as given (for the table), then nntrain's.
# The outputs rule itself is scripts/nn_outputs.py, which export_model.py follows too; the
# check, the write and the stop signals are scripts/study_outputs.py's, as for the scaling
# study's files (the table is one more Output, told by its marker).
read -r -d '' table_py <<'PY' || true
import datetime, json, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, sys.argv[1])  # this script's directory: the outputs rule, shared with export_model.py
import nn_outputs  # noqa: E402
import study_outputs  # noqa: E402
from nn_outputs import Refusal  # noqa: E402
from study_outputs import Stopped  # noqa: E402  (a stop signal: the runs stopped, exit 128 + signal)

MARKER = "<!-- written by scripts/scaling.sh: a later run with --out naming this file replaces it -->"


class RunFailed(Exception):
    """A run failed or left no epochs to time: exit 1, its lines said."""


def written_before_marker(lines):
    """Whether LINES, a file's first, are those of a table written before the marker existed:
    the title, then the line naming scripts/scaling.sh."""
    return (len(lines) > 2 and lines[0] == "# Strong scaling" and " UTC, commit `" in lines[2]
            and "command: `scripts/scaling.sh " in lines[2])


def output(out):
    """--out OUT as a study_outputs.Output: it replaces only an empty file or a table of this
    script's (the marker first, or written_before_marker), and OUT.tmp only where it is such a
    file too (a killed run's); a symbolic link is followed (the table replaces its target,
    and the link stays). Checked before the runs (study_outputs.check_all: a directory we
    cannot write is tried with a probe file of our own, never OUT.tmp, which another run may be
    writing), again once --out is locked, and again as OUT.tmp is made."""
    ours = study_outputs.marked_is_ours(MARKER, written_before_marker)
    return study_outputs.Output(out, ours, ours, "exists and is not a table written by scaling.sh; not replacing it",
                                "a table scaling.sh", label=f"--out {out}")


def tail(path, lines=5):
    """The last LINES lines of the file at PATH, for a failed run's message."""
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-lines:]).decode("utf-8", "replace")
    except OSError:
        return ""


def run_one(command, log):
    """COMMAND (an mpirun) with its output to LOG, waited for; its exit status. Stopped while it
    runs: it is asked to stop (SIGTERM: mpirun passes it to the ranks) and waited for."""
    # a stop as it starts is handled once the child is known, and stops it (start_child)
    proc = study_outputs.start_child(command, stdout=log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        return proc.wait()
    except BaseException:
        study_outputs.stop_child(proc)  # a second signal must not leave the ranks running
        raise


def runs(nntrain, nps, epochs, args, directory):
    """The job at each rank count, one thread per rank, each with its metrics (npN.jsonl) and
    output (npN.log) in DIRECTORY; RunFailed at the first that fails."""
    cores = len(os.sched_getaffinity(0))
    for np in nps:
        print(f"scaling.sh: -np {np}", file=sys.stderr, flush=True)
        bind = "core" if int(np) <= cores else "none"  # oversubscribed: cores cannot be given out one per rank
        log = f"{directory}/np{np}.log"
        with open(log, "wb") as f:
            rc = run_one(["mpirun", "-np", np, "--bind-to", bind, nntrain, "--epochs", epochs, "--threads", "1",
                          "--metrics", f"{directory}/np{np}.jsonl", *args], f)
        if rc != 0:
            raise RunFailed(f"-np {np} failed:\n{tail(log)}".rstrip("\n"))
    return cores


def table(runs, cores, nps, epochs, args):
    rows, base = [], None
    for np in nps:
        try:
            with open(f"{runs}/np{np}.jsonl") as f:
                recs = [json.loads(l) for l in f][1:]  # steady state: skip epoch 1
        except (OSError, ValueError):
            recs = []
        if not recs:  # (not a traceback)
            raise RunFailed(f"-np {np}: its metrics have no epoch after the warm-up one:\n"
                            + tail(f"{runs}/np{np}.log").rstrip("\n"))
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


def write(table_out, text, lock, temporaries):
    """TEXT to OUT.tmp, renamed over --out (TABLE_OUT) once whole: a failure leaves the old
    table whole (study_outputs.write_all, with LOCK, --out's, held by the caller). It is
    checked again once held: the file replaced is the one checked (nn_outputs.Changed where a
    file was put at --out since). TEMPORARIES: OUT.tmp, recorded as it is made, removed on any
    failure (one put in place is left there: nn_outputs.written)."""
    try:
        study_outputs.write_all([(table_out, text.encode())], temporaries, locks=[lock])
    except OSError as e:
        raise RunFailed(f"{table_out.label}: cannot write: {e.strerror or e}") from None


def run(out, nntrain, nps, epochs, shown, args):
    """The runs and the table, --out locked throughout (a second scaling.sh on it, or a C tool,
    is refused: Busy), the lock file removed at the end."""
    table_out, locks, temporaries, directory, nps = output(out), [], [], None, nps.split()
    try:
        try:
            nn_outputs.lock(table_out.label, out, locks.append)
            table_out.check()  # again, now that it is ours: a file put there since the first check is refused
            directory = tempfile.mkdtemp(prefix="scaling.")
            cores = runs(nntrain, nps, epochs, args, directory)
            text = table(directory, cores, nps, epochs, shown)
            write(table_out, text, locks[0], temporaries)
            print(text)
        finally:
            # one step, stop signals held: a signal here is handled once the runs' directory
            # is removed and the lock let go, as a stop (below); until 2026-12-07 one handled
            # between them printed a traceback after the table and left the lock file
            with nn_outputs.signals_held():
                if directory:
                    shutil.rmtree(directory, ignore_errors=True)
                for held in locks:
                    held.release()
    except Stopped as e:
        study_outputs.ignore_stop_signals()  # a second signal must not cut the message short
        done = f"wrote {out}" if nn_outputs.written(temporaries) else "no table written"
        print(f"scaling.sh: {nn_outputs.one_line(f'stopped by {e.name}; {done}')}", file=sys.stderr)
        sys.exit(128 + e.signum)


def main(mode, out):
    try:
        if mode == "run":
            # first thing: a stop signal stops the runs and exits 128 + signal (one ignored at
            # start stays ignored, as nohup and a shell's background jobs mean)
            study_outputs.catch_stop_signals()
            run(out, *sys.argv[4:8], sys.argv[8:])
        else:
            study_outputs.check_all([output(out)])
    except Refusal as e:  # Busy too: another run's --out
        print(f"scaling.sh: {nn_outputs.one_line(str(e))}", file=sys.stderr)  # a path's newline written out
        sys.exit(2)
    except (RunFailed, nn_outputs.Changed, nn_outputs.LockFailed) as e:  # a file put at --out since: kept
        lines = str(e).split("\n")
        print(f"scaling.sh: {nn_outputs.one_line(lines[0])}", *lines[1:], sep="\n", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":  # (tests/test_script_signals.py loads the functions alone)
    main(sys.argv[2], sys.argv[3])
PY
python3 -c "$table_py" "$scripts" check "$out"

nntrain=${NNTRAIN_BIN:-build/nntrain} # (made absolute before the cd above)
[ -x "$nntrain" ] || die 1 "$nntrain missing: run scripts/build.sh"
. scripts/mpi_env.sh
# the script's own process from here (its PID names the lock's holder, and a signal sent to
# it reaches the runs)
exec python3 -c "$table_py" "$scripts" run "$out" "$nntrain" "$nps" "$epochs" "${shown[*]}" "${args[@]}"
