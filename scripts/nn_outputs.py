"""The outputs rule for the Python scripts: how scripts/scaling.sh (its --out table) and
scripts/export_model.py (--onnx, --npz) replace a user's file without ever destroying one.
The C tools keep the same rule in src/outputs.c (docs/reliability.md, "the outputs rule"):

  - an output that exists is replaced only when it is a regular file, one the script wrote
    before (or an empty one: the script says what its files look like), and writable;
  - a symbolic link is written through: its target is replaced and the link stays;
  - the new contents go to REAL.tmp beside the file, renamed over it once whole, so a
    failure or a signal leaves the old file as it was; the new file keeps the replaced
    one's permission bits (a new file: 0666 less the umask);
  - a REAL.tmp that begins as the script's files do is a killed run's and is replaced;
    anything else there is the user's: refused, never touched.

A refusal is a Refusal whose text is the one line "LABEL: why" (LABEL: the option and path
as given, "--out t.md"); the script prints it and exits 2. Messages keep each script's words
where the scripts differ (what their files are), so they are passed in.
"""
import contextlib
import os
import stat


class Refusal(Exception):
    """Bad usage or input (here: a path the rule does not write): exit 2, one line."""


def temporary_name(path):
    """Where PATH's new contents are written: beside the file it names (a symbolic link's
    target, so the rename replaces the target, not the link). A fixed name, so a killed run
    leaves one file behind, which the next run replaces."""
    return os.path.realpath(path) + ".tmp"


def shown_ours(is_ours, path):
    """IS_OURS(PATH), where a file that cannot be read is not shown to be ours: the user's,
    kept (as src/outputs.c does), never a traceback."""
    try:
        return is_ours(path)
    except OSError:
        return False


def check_replaceable(label, path, is_ours, not_ours):
    """Refuse the existing file PATH unless it may be replaced: a regular file (never a
    directory, device or FIFO), IS_OURS(PATH) (anything else is the user's; NOT_OURS says so
    in the script's words), and writable (a file its owner made read-only is kept, although
    the directory would allow the rename, as the C tools do)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise Refusal(f"{label}: not a regular file; not writing to it")
    if not shown_ours(is_ours, path):
        raise Refusal(f"{label}: {not_ours}")
    if not os.access(path, os.W_OK):
        raise Refusal(f"{label}: cannot write: permission denied; not replacing it")


def check_temporary(label, tmp, is_partial, writer):
    """Refuse a file at TMP other than a killed run's leftover, which IS_PARTIAL(TMP) tells
    (it begins as the script's files do): the user put it there. WRITER names the script's
    files ("a table scaling.sh")."""
    if os.path.lexists(tmp) and (os.path.islink(tmp) or not os.path.isfile(tmp)
                                 or not shown_ours(is_partial, tmp)):
        raise Refusal(f"{label}: {tmp} exists and is not {writer} was writing; not touching it")


def kept_mode(real):
    """The new file's permission bits: the replaced file's (a chmod 600 file stays private),
    else a plain create's, 0666 less the umask."""
    if os.path.exists(real):
        return stat.S_IMODE(os.stat(real).st_mode)
    umask = os.umask(0)  # the umask is read only by setting it: put back at once
    os.umask(umask)
    return 0o666 & ~umask


class Temporary:
    """An output being written: FILE open on TMP, to be renamed over REAL (PATH's file)."""

    def __init__(self, path, real, tmp, file, mode):
        self.path, self.real, self.tmp, self.file, self.mode = path, real, tmp, file, mode

    def seal(self):
        """On the disk before the rename (a crash then leaves the old file or the whole new
        one), with the kept mode, closed."""
        self.file.flush()
        os.fsync(self.file.fileno())
        os.fchmod(self.file.fileno(), self.mode)
        self.file.close()

    def install(self):
        """Renamed over the real file: the one moment the output changes."""
        os.replace(self.tmp, self.real)

    def abandon(self):
        """Closed and removed, the real file untouched: after a failure or a signal."""
        with contextlib.suppress(OSError):  # a failed write's buffer cannot be flushed either
            self.file.close()
        if os.path.lexists(self.tmp):
            os.unlink(self.tmp)


def open_temporary(label, path, is_partial, writer):
    """PATH's Temporary, created now (a directory that cannot be written fails before the
    work). A killed run's leftover there is removed; anything else is refused (check_temporary).
    OSError: the script words that failure itself."""
    real, tmp = os.path.realpath(path), temporary_name(path)
    check_temporary(label, tmp, is_partial, writer)
    if os.path.lexists(tmp):
        os.unlink(tmp)
    mode = kept_mode(real)
    # exclusive: a file put at the name since the check is never written into
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return Temporary(path, real, tmp, os.fdopen(fd, "wb"), mode)
