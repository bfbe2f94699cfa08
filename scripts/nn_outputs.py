"""The outputs rule for the Python scripts: how scripts/scaling.sh (its --out table) and
scripts/export_model.py (--onnx, --npz) replace a user's file without ever destroying one.
The C tools keep the same rule in src/outputs.c (docs/reliability.md, "the outputs rule"):

  - an output that exists is replaced only when it is a regular file, one the script wrote
    before (or an empty one: the script says what its files look like), and writable;
  - a symbolic link is written through: its target is replaced and the link stays;
  - the new contents go to REAL.tmp beside the file, renamed over it once whole, so a
    failure or a signal leaves the old file as it was; the new file keeps the replaced
    one's permission bits, owner and group (where the process may give them) and POSIX
    ACL, which is copied whole or, where it cannot be, leaves the new file its owner's
    alone (a new file: 0666 less the umask; src/outputs.c's nn_output_keep_mode);
  - a REAL.tmp that begins as the script's files do is a killed run's and is replaced;
    anything else there is the user's: refused, never touched.

A refusal is a Refusal whose text is the one line "LABEL: why" (LABEL: the option and path
as given, "--out t.md"); the script prints it and exits 2. Messages keep each script's words
where the scripts differ (what their files are), so they are passed in.
"""
import contextlib
import errno
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


ACL = "system.posix_acl_access"  # where Linux keeps a file's POSIX ACL
NO_ACL = {errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP}  # none, or none on this filesystem


def keep_attributes(fd, real, mode):
    """Give the file open on FD what the file at REAL has, as nn_output_keep_mode does in C:
    its owner and group (best effort: a user who is not root may not give a file away), its
    permission bits, and its POSIX ACL, copied whole (with one, the mode's group bits are the
    ACL's mask, not the owning group's, so the mode alone would open the file to its group).
    Where the ACL cannot be copied (it cannot be read whole, or the new file refuses it) the
    new file is its owner's alone: never more open than the old one. Where the old file has
    none, the new file's own (inherited from a default ACL of the directory) is removed. No
    file at REAL (a new output): MODE, the umask's."""
    try:
        old = os.stat(real)
    except FileNotFoundError:
        old = None
    if old is None or not stat.S_ISREG(old.st_mode):
        os.fchmod(fd, mode)
        return
    now = os.fstat(fd)
    if (now.st_uid, now.st_gid) != (old.st_uid, old.st_gid):
        with contextlib.suppress(OSError):  # not ours to give away: the mode still holds
            os.fchown(fd, old.st_uid, old.st_gid)
    os.fchmod(fd, stat.S_IMODE(old.st_mode))  # after the chown, which clears set-id bits
    try:
        entries = os.getxattr(real, ACL)
    except OSError as e:
        if e.errno in NO_ACL:
            with contextlib.suppress(OSError):  # none there, or no ACLs on this filesystem
                os.removexattr(fd, ACL)
        else:  # there, but not to be read whole
            os.fchmod(fd, stat.S_IMODE(old.st_mode) & 0o700)
        return
    try:
        os.setxattr(fd, ACL, entries)
    except OSError:
        os.fchmod(fd, stat.S_IMODE(old.st_mode) & 0o700)


class Temporary:
    """An output being written: FILE open on TMP, to be renamed over REAL (PATH's file)."""

    def __init__(self, path, real, tmp, file, mode):
        self.path, self.real, self.tmp, self.file, self.mode = path, real, tmp, file, mode

    def seal(self):
        """On the disk before the rename (a crash then leaves the old file or the whole new
        one), with the replaced file's mode, owner and ACL (keep_attributes), closed."""
        self.file.flush()
        keep_attributes(self.file.fileno(), self.real, self.mode)
        os.fsync(self.file.fileno())
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
