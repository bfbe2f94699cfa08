"""The outputs rule for the Python scripts: how scripts/scaling.sh (its --out table),
scripts/export_model.py (--onnx, --npz), the scaling study and its plots (through
scripts/study_outputs.py) and jobs/nntrain_scaling.sbatch's table replace a user's file
without ever destroying one.
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
    anything else there is the user's: refused, never touched;
  - the output is looked at again just before the rename, as the checkpoint saver does
    (src/checkpoint_save.c): it replaces only the file checked at start (held open by an
    O_PATH descriptor, so that its inode number cannot go to another file meanwhile;
    compared by device, inode and size), in the directory of the start (held likewise). A
    file made where there was none, a file replaced or written into, or the directory
    moved away and made anew is not replaced: Changed, the user's file kept, REAL.tmp
    removed. Where there was no file, the new one is put in place by link(2), which never
    replaces (a file made between the check and the link is kept too), then REAL.tmp is
    unlinked; a filesystem without hard links gets the check and a rename;
  - a stop signal (SIGINT, SIGTERM, SIGHUP, SIGUSR1) never comes between two steps that
    must go together (signals_held): REAL.tmp made and recorded for removal, the new file
    put in place and marked so (Temporary.installed: the script's message says what was
    written, and its clean-up never removes a REAL.tmp made since by another run), a probe
    file made and removed (check_writable, which never touches REAL.tmp: it may be another
    run's, mid-write); a child process started and known to its caller (only put off, not
    blocked: study_outputs.start_child);
  - one run per output, as the C tools keep it (src/outputs.c, nn_output_lock_acquire): a
    Lock, an fcntl lock on "PATH.lock" beside the file (a symbolic link's target's), the
    file naming its holder ("PID N on host H"), made in the directory then held, and
    removed from there by its holder at the end, only where it is still the file locked.
    The same file and the same lock as the C tools', so that a C tool and a script on one
    path keep each other off it. It is taken before REAL.tmp is looked at (open_temporary
    needs it held): a REAL.tmp found then is a killed run's, never a live one's. Until
    2026-12-07 there was none: a second export_model.py took the first's REAL.tmp, empty
    as it was made, for a killed run's and removed it, and the first then renamed the
    second's unfinished file over the user's model, saying "wrote" (an empty file, 0600).

A refusal is a Refusal whose text is the one line "LABEL: why" (LABEL: the option and path
as given, "--out t.md"); the script prints it and exits 2 (a Busy one too: the output is
another run's). Changed and LockFailed are runtime failures (exit 1: the work is lost, or
not begun; the user's file kept). Messages keep each script's words where
the scripts differ (what their files are), so they are passed in; one_line writes a path's
control characters out ("\\n", "\\t", "\\x1b") as the C tools do (src/error.c).
"""
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import secrets
import signal
import socket
import stat


class Refusal(Exception):
    """Bad usage or input (here: a path the rule does not write): exit 2, one line."""


class Busy(Refusal):
    """The output is another live run's: it holds the output's lock (exit 2, one line)."""


class Changed(Exception):
    """The output, or its directory, is not what the run checked at start (changed during the
    run): nothing replaced, exit 1, one line."""


class LockFailed(Exception):
    """The output's lock could not be taken for a reason other than another run holding it
    (exit 1, one line), as src/outputs.c's NN_ERR_RUNTIME."""


# the stop signals of the C tools (src/signals.c) and of export_model.py
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)
_put_off = None  # while signals_held(): the stop signals a handler put off (put_off); else None


@contextlib.contextmanager
def signals_held(block=True):
    """The stop signals kept out of the steps within, which must not be cut apart: blocked in
    this thread (the main one), and one taken by another thread meanwhile (a BLAS library's
    pool), whose Python handler still runs in this one, put off by a handler that asks
    put_off. Each is handled as the block ends, once the steps are done (as the outermost
    one ends, where one is within another). BLOCK=False: put off only, never blocked, for
    starting a child process (study_outputs.start_child): a child inherits a blocked signal
    mask across exec, and mpirun would then never see the SIGTERM that stops it."""
    global _put_off
    outer = _put_off
    old = signal.pthread_sigmask(signal.SIG_BLOCK, ())  # the mask now, changed in the try only
    try:
        _put_off = [] if outer is None else outer
        if block:
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        yield
    finally:
        pending, _put_off = _put_off, outer
        signal.pthread_sigmask(signal.SIG_SETMASK, old)  # a signal blocked meanwhile is handled here
        for signum in pending if outer is None else ():
            signal.raise_signal(signum)


def put_off(signum):
    """For a stop signal's handler: True where signals_held() is on (SIGNUM is then handled
    again as it ends: the handler returns at once), else False (the handler stops the script)."""
    if _put_off is None:
        return False
    _put_off.append(signum)
    return True


def one_line(text):
    """TEXT with its control characters written out ("\\n", "\\t", "\\x1b"), as src/error.c does:
    a path holding a newline would otherwise break a message's one line."""
    return "".join("\\n" if c == "\n" else "\\t" if c == "\t" else f"\\x{ord(c):02x}" if ord(c) < 0x20 or c == "\x7f"
                   else c for c in text)


def entry(path):
    """What PATH names, whether or not it exists yet: (device, inode) of its directory (its
    real one: symbolic links followed, and one directory under two bind-mounted names is one
    directory) and its file's name there; None where the directory cannot be reached. Two
    paths with the same entry are one file, even before it is made."""
    real = os.path.realpath(path)
    try:
        st = os.stat(os.path.dirname(real))
    except OSError:
        return None
    return ("entry", st.st_dev, st.st_ino, os.path.basename(real))


def temporary_entry(path):
    """entry() of PATH's temporary file (temporary_name)."""
    key = entry(path)
    return key and key[:3] + (key[3] + ".tmp",)


def inode(path):
    """(device, inode) of the file PATH names (a symbolic link followed), None where none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return ("inode", st.st_dev, st.st_ino)


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


def check_writable(path):
    """OSError where PATH's temporary file (temporary_name) could not be made beside it, so that
    a script fails before its work rather than after: a name too long, or a directory this user
    cannot write, tried with a probe file of this process's own (".NAME.check-PID-RANDOM", made
    exclusively and removed), never with REAL.tmp, which another run may be writing."""
    real = os.path.realpath(path)
    directory, name = os.path.dirname(real), os.path.basename(real)
    if len(os.fsencode(name + ".tmp")) > os.pathconf(directory, "PC_NAME_MAX"):
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), name + ".tmp")
    probe = os.path.join(directory, f".{name[:32]}.check-{os.getpid()}-{secrets.token_hex(4)}")
    with signals_held():  # made and removed: never one without the other
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        os.unlink(probe)


def check_temporary(label, tmp, is_partial, writer, looked_at=None):
    """Refuse a file at TMP other than a killed run's leftover, which IS_PARTIAL(TMP) tells
    (it begins as the script's files do): the user put it there. WRITER names the script's
    files ("a table scaling.sh"). LOOKED_AT, where given, is the path it is looked at by (the
    name in a held directory, through /proc/self/fd); TMP is how the message names it."""
    at = looked_at or tmp
    if os.path.lexists(at) and (os.path.islink(at) or not os.path.isfile(at)
                                or not shown_ours(is_partial, at)):
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


# link(2) refused by the filesystem (vfat, some FUSE and network filesystems) or by policy
# (fs.protected_hardlinks): the new file is put in place by the check and a rename instead
NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS, errno.EMLINK}


def digest(fd):
    """A digest of the bytes of the regular file held by FD (hold()), read through /proc (the
    held inode, whatever its name holds now); None where it cannot be read."""
    try:
        with open(f"/proc/self/fd/{fd}", "rb") as f:
            h = hashlib.blake2b(digest_size=16)
            while block := f.read(1 << 20):
                h.update(block)
            return h.digest()
    except OSError:
        return None


def hold(path, flags=0):
    """(descriptor, device, inode, size, digest) of the file or directory at PATH, held by an
    O_PATH descriptor (which reads nothing) so that its inode number cannot be given to another
    file while the run holds it; None where there is none. DIGEST: a regular file's bytes
    (digest()), so that one written into in place to the same size is told (as src/file_digest.c);
    None for anything else, or where it cannot be read."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC | flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    return fd, st.st_dev, st.st_ino, st.st_size, digest(fd) if stat.S_ISREG(st.st_mode) else None


def held_unchanged(held, st):
    """Whether ST (a stat of the name now) is the file HELD (hold()) unchanged: the same inode,
    size and, where both then and now can be read, bytes (until 2026-12-08 the size alone, so
    a file written into in place to the same size passed)."""
    if held is None or (st.st_dev, st.st_ino, st.st_size) != held[1:4]:
        return False
    now = digest(held[0]) if held[4] is not None else None
    return now is None or now == held[4]


# ---- one run per output: the lock (src/outputs.c, nn_output_lock_acquire) ----

# what a lock file says of its holder, as the C tools write it and read it back
# (lock_file_is_ours: sscanf "PID %ld on host %299[^\n]\n%n", the whole file)
HOLDER = re.compile(r"PID \s*\+?([0-9]+)\s*on host ([^\n\x00]{1,299})\s*")


def lock_name(path):
    """PATH's lock file, as the C tools name it: "PATH.lock", beside the target where PATH is
    a symbolic link to a regular file (nn_output_follow_link), so that a C tool and a script
    given the same output, by any name, take the same lock."""
    return (os.path.realpath(path) if os.path.islink(path) and os.path.isfile(path) else path) + ".lock"


def lock_file_is_ours(fd):
    """Whether the file open on FD may serve as a lock file: a regular file of one name (not
    a link of any kind), empty (a run killed as it made it) or naming its holder as the C
    tools and this module write it. Anything else at "PATH.lock" is the user's."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        return False
    if st.st_size == 0:
        return True
    if st.st_size >= 320:
        return False
    text = os.pread(fd, 320, 0).decode("latin-1")
    match = HOLDER.fullmatch(text)
    return bool(match) and int(match.group(1)) > 0


def read_holder(fd):
    """What the lock file on FD says of its holder, for the refused run's message."""
    try:
        text = os.pread(fd, 255, 0).decode("utf-8", "replace").split("\n")[0]
    except OSError:
        text = ""
    return text or "a process that has not said who it is"


class Lock:
    """An output's lock, held: PATH the lock file's name (lock_name), FD the file locked,
    open, DIR_FD the directory it was made in (held, O_PATH) and NAME its name there."""

    def __init__(self, path, fd, dir_fd, name):
        self.path, self.fd, self.dir_fd, self.name = path, fd, dir_fd, name

    def release(self):
        """The lock file removed, while still locked (a waiting run then tries again on a
        fresh file), from the directory it was made in (its path may lead elsewhere by now)
        and only where it is still the file locked (not one put at its name since); then the
        lock let go. Once only: a second call does nothing."""
        if self.fd is None:
            return
        with signals_held():
            try:
                held = os.fstat(self.fd)
                named = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
                if (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
                    os.unlink(self.name, dir_fd=self.dir_fd)
            except OSError:
                pass
            for fd in (self.fd, self.dir_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.fd = self.dir_fd = None


def _take_lock(label, shown, dir_fd, name):
    """lock's work, with the lock file's directory held: the Lock, or Refusal (Busy: another
    run holds it) or LockFailed. The holder removes the file as it ends: a lock taken on a
    file already unlinked (or replaced) is no lock at all, so it is checked and tried again."""
    for _ in range(16):
        try:  # O_NOFOLLOW: a symbolic link is refused, never followed; O_NONBLOCK: a FIFO does not hang
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666,
                         dir_fd=dir_fd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise Refusal(f"{label}: its lock file {shown} is a symbolic link; not touching it") from None
            raise Refusal(f"{label}: cannot create lock file {shown}: {e.strerror}") from None
        try:
            if not lock_file_is_ours(fd):
                raise Refusal(f"{label}: {shown} exists and is not an nntrain lock file; not touching it")
            try:  # F_SETLK, F_WRLCK on the whole file: the C tools' lock (an fcntl lock, not flock)
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EACCES, errno.EAGAIN):
                    raise Busy(f"{label}: in use by another run ({read_holder(fd)}; lock file {shown}); "
                               "give this run another file") from None
                raise LockFailed(f"{label}: cannot lock {shown}: {e.strerror}") from None
            held = os.fstat(fd)
            try:
                named = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                named = None
            if named is not None and (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
                holder = f"PID {os.getpid()} on host {socket.gethostname()[:255]}\n".encode()
                with contextlib.suppress(OSError):  # the lock holds all the same
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, holder, 0)
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise LockFailed(f"{label}: cannot lock {shown}: it keeps being replaced")


def lock(label, path, record=None):
    """PATH's Lock, taken now (never waited for): Busy (a Refusal: exit 2) where another run,
    a C tool's or a script's, holds it, naming it ("--out t.md: in use by another run (PID 42
    on host n07; lock file t.md.lock); give this run another file"); Refusal where the lock
    file cannot be made or what is at its name is not a lock file; LockFailed (exit 1) where
    it cannot be locked for another reason. RECORD(Lock), where given, records it for the
    script's clean-up (Lock.release), the stop signals held from the lock file's making."""
    shown = lock_name(path)
    directory, name = os.path.dirname(shown) or ".", os.path.basename(shown)
    with signals_held():
        try:  # the directory first, and the lock file made in it: removed there at the end
            dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise Refusal(f"{label}: cannot create lock file {shown}: {e.strerror}") from None
        try:
            fd = _take_lock(label, shown, dir_fd, name)
        except BaseException:
            os.close(dir_fd)
            raise
        held = Lock(shown, fd, dir_fd, name)
        if record is not None:
            record(held)
    return held


class Temporary:
    """An output being written: FILE open on TMP, to be put in place at REAL (PATH's file).
    HELD_FILE and HELD_DIR (hold()) are what was at REAL and its directory when it was opened:
    the only file it may replace (none: it may only make one), and the only directory.
    INSTALLED: put in place (set with the rename or link itself, no signal between)."""

    def __init__(self, label, path, real, tmp, file, mode, held_file, held_dir):
        self.label, self.path, self.real, self.tmp, self.file, self.mode = label, path, real, tmp, file, mode
        self.held_file, self.held_dir = held_file, held_dir
        self.name, self.tmp_name = os.path.basename(real), os.path.basename(tmp)
        self.installed = self.abandoned = False

    def seal(self):
        """On the disk before the rename (a crash then leaves the old file or the whole new
        one), with the replaced file's mode, owner and ACL (keep_attributes), closed."""
        self.file.flush()
        keep_attributes(self.file.fileno(), self.real, self.mode)
        os.fsync(self.file.fileno())
        self.file.close()

    def _at(self):
        """Names relative to the held directory (REAL's, at start), so that the temporary
        file is found, and the new file put, there and nowhere else; the paths themselves
        where the directory could not be held."""
        if self.held_dir is None:
            return {}, self.tmp, self.real
        return {"dir_fd": self.held_dir[0]}, self.tmp_name, self.name

    def check_still_ours(self):
        """Changed unless REAL's directory is the one of the start and REAL holds what it did
        then: the same file unchanged (device, inode, size, bytes), or still none, or none any more
        (a file the user removed: nothing to lose). True where there is a file to replace."""
        try:
            st = os.stat(os.path.dirname(self.real))
        except OSError:
            st = None
        if self.held_dir is not None and (st is None or (st.st_dev, st.st_ino) != self.held_dir[1:3]):
            raise Changed(f"{self.label}: its directory is not the one this run started in (moved or replaced "
                          "during the run); not writing there")
        at, _, name = self._at()
        try:
            now = os.stat(name, follow_symlinks=False, **at)
        except FileNotFoundError:
            return False
        if not held_unchanged(self.held_file, now):
            raise Changed(f"{self.label}: is not the file this run checked (replaced or changed during the run); "
                          "not replacing it")
        return True

    def install(self):
        """Put in place at REAL: the one moment the output changes, and only where
        check_still_ours passes. Where there is no file to replace, link(2) makes the name
        only if it is still free (FileExistsError: a file made there since: Changed), then the
        temporary name is removed; a filesystem without hard links: a rename. INSTALLED is
        set with it, stop signals held, so that it tells what was done."""
        at, tmp, name = self._at()
        dirs = {"src_dir_fd": at.get("dir_fd"), "dst_dir_fd": at.get("dir_fd")}
        with signals_held():
            if not self.check_still_ours():
                try:
                    os.link(tmp, name, **dirs)
                except FileExistsError:
                    raise Changed(f"{self.label}: is not the file this run checked (replaced or changed during the "
                                  "run); not replacing it") from None
                except OSError as e:
                    if e.errno not in NO_LINK:
                        raise
                else:
                    self.installed = True
                    os.unlink(tmp, **at)
                    self.release()
                    return
            os.replace(tmp, name, **dirs)
            self.installed = True
            self.release()

    def release(self):
        """The held file and directory let go."""
        for held in (self.held_file, self.held_dir):
            if held is not None:
                with contextlib.suppress(OSError):
                    os.close(held[0])
        self.held_file = self.held_dir = None

    def abandon(self):
        """Closed and removed (from the directory it was made in, wherever that now is), the
        real file untouched: after a failure, a Changed or a signal. One put in place is left
        there, and its temporary name alone (another run's REAL.tmp may have it now). Once
        only: a second call (after the lock is let go) leaves the name to whoever has it now."""
        if self.abandoned:
            return
        self.abandoned = True
        with contextlib.suppress(OSError):  # a failed write's buffer cannot be flushed either
            self.file.close()
        if not self.installed:
            at, tmp, _ = self._at()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, **at)
        self.release()


def written(temporaries):
    """The paths of TEMPORARIES put in place (Temporary.installed: set with the rename or link
    itself), for the message of a run that ends part-way."""
    return [t.path for t in temporaries if t.installed]


def abandon_all(temporaries):
    """Each of TEMPORARIES taken off the list and abandoned (closed, and removed where not put
    in place: Temporary.abandon), stop signals held; before the outputs' locks are let go."""
    with signals_held():
        while temporaries:
            temporaries.pop().abandon()


def open_temporary(label, path, is_partial, writer, check=None, record=None, *, lock):
    """PATH's Temporary, created now (a directory that cannot be written fails before the
    work), holding what is at PATH's real file now and its directory (Temporary.install
    replaces nothing else). LOCK is PATH's Lock, which the caller holds until the Temporary
    is put in place or abandoned: a REAL.tmp there is then no live run's. CHECK(PATH), where given, is the script's own check of the output
    (Refusal), made again once the file is held, so that the file held is the one checked (a
    file put there since the script's first check is not taken for it: Changed). A killed
    run's leftover REAL.tmp is removed; anything else there is refused (check_temporary).
    RECORD(Temporary), where given, records it for the script's clean-up (Temporary.abandon):
    the file is made and recorded with the stop signals held (signals_held), so that a signal
    never leaves REAL.tmp made and unrecorded; without RECORD, a signal handled as the hold
    ends abandons it here. OSError: the script words that failure itself."""
    if lock is None or lock.fd is None:
        raise ValueError(f"{label}: open_temporary needs the output's lock held (nn_outputs.lock)")
    real, tmp = os.path.realpath(path), temporary_name(path)
    held_dir = hold(os.path.dirname(real), os.O_DIRECTORY)
    held_file = hold(real, os.O_NOFOLLOW)  # as check_still_ours looks at it: the name's own inode
    made = None
    try:
        # the lock guards REAL.tmp only in the directory it was taken in: a link re-pointed, or
        # the directory moved away and made anew since, is where another run may hold the lock
        # and write its REAL.tmp (scaling.sh locks at start and writes after all its runs)
        lock_dir = os.fstat(lock.dir_fd)
        if lock.path != lock_name(path) or held_dir is None or \
                (lock_dir.st_dev, lock_dir.st_ino) != held_dir[1:3]:
            raise Changed(f"{label}: its directory is not the one this run started in (moved or replaced "
                          "during the run); not writing there")
        if check is not None:
            check(path)
            try:
                now = os.stat(real, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            # the file checked through PATH (a symbolic link re-pointed: another) is the one held
            if (now is None) != (held_file is None) or (now is not None and not held_unchanged(held_file, now)) or \
                    os.path.realpath(path) != real:
                raise Changed(f"{label}: is not the file this run checked (replaced or changed during the run); "
                              "not replacing it")
        # looked at and made in the directory held, where install and abandon look for it
        at, name = {"dir_fd": held_dir[0]}, os.path.basename(tmp)
        proc = f"/proc/self/fd/{held_dir[0]}"  # the held directory by a path (none without /proc)
        check_temporary(label, tmp, is_partial, writer, f"{proc}/{name}" if os.path.isdir(proc) else tmp)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, **at)  # a killed run's (check_temporary), under the lock
        mode = kept_mode(real)
        # exclusive: a file put at the name since the check is never written into (and the one
        # made is ours to remove)
        with signals_held():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, **at)
            try:
                file = os.fdopen(fd, "wb")
            except BaseException:
                os.close(fd)
                os.unlink(name, **at)
                raise
            made = Temporary(label, path, real, tmp, file, mode, held_file, held_dir)
            if record is not None:
                record(made)
    except BaseException:
        if made is None:  # else made holds them, and its abandon lets them go
            for held in (held_file, held_dir):
                if held is not None:
                    os.close(held[0])
        elif record is None:  # a signal handled as the hold ended: made, and no one to remove it
            made.abandon()
        raise
    return made
