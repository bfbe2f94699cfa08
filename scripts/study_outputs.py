"""The outputs rule (docs/reliability.md; scripts/nn_outputs.py) for the scaling study and the
plotting scripts: scripts/scaling_study.py (scaling.csv, scaling.partial.csv),
plot_scaling.py (its five PNGs), project_scaling.py (projection.md, projection.png) and
plot_metrics.py (--out, curves.png). What nn_outputs.py leaves to each script is here: what
the scripts' files look like ("ours"), what a killed run's FILE.tmp looks like, the check made
before any work, and one call that writes a whole file (to FILE.tmp, synced, put in place)
or several (all written before any is put in place).

What is ours:
  - a PNG: the PNG signature, then a tEXt chunk "Software" naming the script that wrote it
    ("nntrain scripts/plot_scaling.py"), set by savefig(metadata=...); matplotlib puts it
    right after the IHDR chunk. Any other PNG (one matplotlib wrote for someone else
    included) is the user's. A killed run's FILE.tmp: empty, or cut anywhere within the
    signature, the IHDR chunk and that tEXt chunk, or holding it whole;
  - the study's CSV: its header line (today's, or the one before the virtual_shards column)
    and rows of as many fields; a killed run's FILE.tmp begins with (part of) that header;
  - projection.md: MARKER_MD first (or the title and first line of one written before the
    marker existed); scaling.sh's table likewise, with its own marker (marked_is_ours);
  - an empty file, always (the rule: nothing to lose).
"""
import contextlib
import csv
import io
import os
import signal
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nn_outputs  # noqa: E402
from nn_outputs import Changed, Refusal, abandon_all, written  # noqa: E402,F401  (re-exported for the scripts)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEAD = 65536  # how much of a file is read to tell whether it is ours


def software(script):
    """The tEXt "Software" value of the PNGs SCRIPT writes (savefig(metadata={"Software": ...}))."""
    return f"nntrain scripts/{script}"


def _png_chunk(script):
    data = b"Software\0" + software(script).encode("latin-1")
    return struct.pack(">I", len(data)) + b"tEXt" + data


def _head(path):
    with open(path, "rb") as f:
        return f.read(HEAD)


def png_is_ours(script):
    """IS_OURS for nn_outputs: an empty file, or a PNG whose chunks before the image data hold
    SCRIPT's tEXt Software chunk."""
    want = _png_chunk(script)[4:]  # its type and data

    def ours(path):
        head = _head(path)
        if head == b"":
            return True
        if not head.startswith(PNG_SIGNATURE):
            return False
        i = 8
        while i + 8 <= len(head):
            n, kind = struct.unpack(">I", head[i:i + 4])[0], head[i + 4:i + 8]
            if kind in (b"IDAT", b"IEND"):
                return False
            if kind == b"tEXt" and head[i + 4:i + 8 + n] == want:
                return True
            i += 12 + n
        return False
    return ours


def png_is_partial(script):
    """IS_PARTIAL for nn_outputs (a killed run's FILE.tmp): ours (png_is_ours), or cut before
    SCRIPT's tEXt chunk was whole: the signature, a 13-byte IHDR chunk (its data and CRC
    any), then the beginning of the chunk."""
    ours, chunk = png_is_ours(script), _png_chunk(script)
    known = [(0, PNG_SIGNATURE + b"\0\0\0\x0dIHDR"), (33, chunk)]  # bytes 16-32: IHDR's data and CRC

    def partial(path):
        if ours(path):
            return True
        head = _head(path)
        if len(head) >= 33 + len(chunk):
            return False
        return all(head[at:at + len(text)] == text[:max(0, min(len(text), len(head) - at))] for at, text in known)
    return partial


def png_bytes(fig, script, **savefig):
    """FIG as PNG bytes, marked as SCRIPT's (the tEXt Software chunk that png_is_ours looks for)."""
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": software(script)}, **savefig)
    return out.getvalue()


# the study's CSV: today's header, and the one before the virtual_shards column (2026-12-06)
CSV_FIELDS = ["suite", "network", "nodes", "ranks", "threads", "link", "allreduce", "compress", "accumulate",
              "global_batch", "virtual_shards", "epochs", "epoch_seconds", "samples_per_second", "compute_seconds",
              "sum_seconds", "data_seconds", "checkpoint_seconds", "sum_share", "speedup", "efficiency",
              "test_accuracy"]
CSV_HEADERS = (",".join(CSV_FIELDS), ",".join(f for f in CSV_FIELDS if f != "virtual_shards"))


def csv_is_ours(path):
    """An empty file, or the study's header and rows of as many fields."""
    with open(path, "rb") as f:
        data = f.read()
    if data == b"":
        return True
    text = data.decode("utf-8", "replace")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return bool(rows) and ",".join(rows[0]) in CSV_HEADERS and all(len(r) == len(rows[0]) for r in rows[1:])


def csv_is_partial(path):
    """A killed run's FILE.tmp: empty, or beginning with (part of) the study's header."""
    first, newline, _ = _head(path).decode("utf-8", "replace").partition("\n")
    if newline:
        return first.rstrip("\r") in CSV_HEADERS
    return any(h.startswith(first) or h + "\r" == first for h in CSV_HEADERS)


MARKER_MD = "<!-- written by scripts/project_scaling.py: a later run writing to this directory replaces it -->"


def marked_is_ours(marker, written_before):
    """IS_OURS for a text file that a script marks as its own with MARKER, its first line: an
    empty file, MARKER first, or one for which WRITTEN_BEFORE(its lines) is true (one the
    script wrote before the marker existed). project_scaling.py's projection.md and
    scaling.sh's table."""
    def ours(path):
        lines = _head(path).decode("utf-8", "replace").split("\n")
        return lines == [""] or lines[0] == marker or written_before(lines)
    return ours


# a projection.md written before MARKER_MD: its title, then its first line
md_is_ours = marked_is_ours(MARKER_MD, lambda lines: len(lines) > 2 and lines[0] == "# Projection"
                            and lines[2].startswith("Fitted links (Allreduce between 2 emulated nodes"))


def md_is_partial(path):
    text = _head(path).decode("utf-8", "replace")
    return text.startswith(MARKER_MD) or MARKER_MD.startswith(text)


class Output:
    """One output: its PATH, LABEL (the path as the messages name it), IS_OURS, IS_PARTIAL,
    NOT_OURS (the refusal's words) and WRITER (nn_outputs.check_temporary's)."""

    def __init__(self, path, is_ours, is_partial, not_ours, writer, label=None):
        self.path, self.label = path, nn_outputs.one_line(label or path)
        self.is_ours, self.is_partial, self.not_ours, self.writer = is_ours, is_partial, not_ours, writer

    def check(self, path=None):
        """Refusal unless the rule lets us write it (the same check again where open_temporary
        holds the file): a regular file of ours, writable, or none in an existing directory;
        a symbolic link is written through, one to nothing refused; FILE.tmp a killed run's
        or none."""
        path = path or self.path
        real = os.path.realpath(path)
        if os.path.islink(path) and not os.path.exists(path):
            raise Refusal(f"{self.label}: a symbolic link to a missing file; give the file's own path")
        if os.path.lexists(real):
            nn_outputs.check_replaceable(self.label, real, self.is_ours, self.not_ours)
        elif not os.path.isdir(os.path.dirname(real)):
            raise Refusal(f"{self.label}: no such directory {os.path.dirname(real)}")
        nn_outputs.check_temporary(self.label, nn_outputs.temporary_name(path), self.is_partial, self.writer)


def png_output(path, script, label=None):
    return Output(path, png_is_ours(script), png_is_partial(script),
                  f"exists and is not a plot written by {script}; not replacing it", f"a plot {script}", label)


def csv_output(path):
    return Output(path, csv_is_ours, csv_is_partial,
                  "exists and is not a CSV written by scaling_study.py; not replacing it", "a CSV scaling_study.py")


def md_output(path):
    return Output(path, md_is_ours, md_is_partial,
                  "exists and is not a projection written by project_scaling.py; not replacing it",
                  "a projection project_scaling.py")


def check_all(outputs):
    """Refusal for the first output the rule does not let us write, or whose directory cannot
    take its FILE.tmp (a probe file of our own, nn_outputs.check_writable): before any work."""
    for o in outputs:
        o.check()
    for o in {os.path.dirname(os.path.realpath(o.path)): o for o in outputs}.values():  # one a directory
        try:
            nn_outputs.check_writable(o.path)
        except OSError as e:
            raise Refusal(f"{o.label}: cannot write in {nn_outputs.one_line(os.path.dirname(os.path.realpath(o.path)))}: "
                          f"{e.strerror or e}") from None


def write_all(pairs, temporaries, locks=None):
    """Each (Output, bytes) of PAIRS written whole to its FILE.tmp (checked again, held,
    nn_outputs.open_temporary), every one synced before any is put in place; then each put in
    place. Each output is locked first, as the C tools lock theirs (nn_outputs.lock: another
    run's FILE.tmp is never taken for a killed one's), until its FILE.tmp is put in place or
    removed. LOCKS, where given, are the outputs' locks, one an output, taken and let go by
    the caller (scaling.sh holds --out's for its whole run). TEMPORARIES records them as they
    are made (the caller's clean-up: abandon_all). Refusal (Busy: another run holds a lock),
    Changed, LockFailed or OSError: nothing more put in place (written() says what was). A stop
    signal during the installs is handled once they are all done."""
    made, taken = [], []  # TAKEN: the locks taken here, let go here
    output = None
    try:
        if locks is None:
            for output, _ in pairs:
                nn_outputs.lock(output.label, output.path, taken.append)
        for (output, _), held in zip(pairs, taken if locks is None else locks):
            nn_outputs.open_temporary(output.label, output.path, output.is_partial, output.writer, output.check,
                                      lambda t: (temporaries.append(t), made.append(t)), lock=held)
        for t, (output, data) in zip(made, pairs):
            t.file.write(data)
            t.seal()
        # the installs, stop signals held: a stop then is handled once every file is in place,
        # so a stopped run never leaves a new table beside the old plots (a Changed still
        # ends the installs where it comes)
        with nn_outputs.signals_held():
            for t in made:
                t.check_still_ours()
            for t, (output, _) in zip(made, pairs):
                t.install()
    except OSError as e:
        e.output = output  # the output whose step failed, for the message
        raise
    finally:
        # one step, stop signals held: a signal is handled once every FILE.tmp not put in place
        # is removed (while its lock is held) and the locks let go, never between the two
        # (until 2026-12-07 one handled there left the lock files)
        with nn_outputs.signals_held():
            abandon_all(list(made))
            for held in taken:
                held.release()
    return [t.path for t in made]


class Stopped(BaseException):
    """A stop signal (SIGINT, SIGTERM, SIGHUP, SIGUSR1), raised where the script is: a
    BaseException, so that no `except Exception` takes it."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


def _on_signal(signum, frame):
    if not nn_outputs.put_off(signum):  # put off while nn_outputs holds the stop signals
        raise Stopped(signum)


def catch_stop_signals():
    """Stop signals raise Stopped from here on (one ignored at start, as nohup does, stays ignored)."""
    for sig in nn_outputs.STOP_SIGNALS:
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, _on_signal)


def ignore_stop_signals():
    """For the clean-up after a stop: a second signal must not cut it short."""
    for sig in nn_outputs.STOP_SIGNALS:
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_IGN)


def start_child(command, **popen):
    """subprocess.Popen(COMMAND, **POPEN), started with the stop signals put off until the
    child is known: a stop meanwhile is handled once Popen has returned, the child stopped
    first (stop_child). Until 2026-12-07 one handled inside Popen raised before the caller had
    the child, and mpirun went on running without a parent. Put off, not blocked
    (signals_held(block=False)): the child would inherit a blocked mask."""
    child = None
    try:
        with nn_outputs.signals_held(block=False):
            child = subprocess.Popen(command, **popen)
    except BaseException:
        if child is not None:
            with child:  # its pipes closed as it ends
                stop_child(child)
        raise
    return child


def stop_child(child, grace=30):
    """CHILD asked to stop (SIGTERM: mpirun passes it to its ranks, a plotting script removes
    its FILE.tmp), killed after GRACE seconds, and waited for, with the stop signals held: a
    second signal must not leave it running."""
    with nn_outputs.signals_held():
        child.terminate()
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def run_main(prog, main):
    """MAIN() with the stop signals caught: a stop before any output is written says so (exit
    128 + the signal), a Refusal is one line and exit 2."""
    catch_stop_signals()
    try:
        return main()
    except Stopped as e:
        ignore_stop_signals()
        print(f"{prog}: stopped by {e.name}; no output changed", file=sys.stderr)
        sys.exit(128 + e.signum)
    except Refusal as e:
        print(f"{prog}: {nn_outputs.one_line(str(e))}", file=sys.stderr)
        sys.exit(2)


def save(prog, pairs):
    """For the plotting scripts: PAIRS (Output, bytes) written (write_all), with the script's
    ending: a refusal exit 2, a failure or a file changed meanwhile exit 1, a stop signal
    128 + the signal, each one line saying what was written and what was left as it was."""
    temporaries = []

    def say(message, code):
        done, left = written(temporaries), [o.path for o, _ in pairs if o.path not in written(temporaries)]
        if code != 2:
            message += (f"; wrote {', '.join(done)}" if done else "; no output changed") + \
                (f"; {', '.join(left)} left as it was" if done and left else "")
        abandon_all(temporaries)
        print(f"{prog}: {nn_outputs.one_line(message)}", file=sys.stderr)
        sys.exit(code)
    try:
        return write_all(pairs, temporaries)
    except Stopped as e:
        ignore_stop_signals()
        say(f"stopped by {e.name}", 128 + e.signum)
    except Refusal as e:
        say(str(e), 2)
    except (Changed, nn_outputs.LockFailed) as e:
        say(str(e), 1)
    except OSError as e:
        where = getattr(e, "output", None)
        say(f"{where.label if where else 'write'}: write failed: {e.strerror or e}", 1)
    finally:
        abandon_all(temporaries)
