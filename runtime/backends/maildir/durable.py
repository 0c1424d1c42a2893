"""The one durable-write primitive of the maildir backend, and its relatives.

``atomic_write`` is the discipline every file that must survive goes through: a
hidden, uniquely named temp file in the target directory, write, fsync, rename over
the target, fsync the directory. A reader sees the old file or the new one, never a
torn one, and a crash leaves at most a dot-file that scanners skip.

Everything the backend creates is its owner's only (directories ``DIR_MODE``, files
``FILE_MODE``, whatever the umask: it can only take bits away), and nothing it writes
follows a symlink: files are opened for writing with ``O_NOFOLLOW``, temps with
``O_EXCL`` too, and a directory something is moved into is checked to be a directory
of its own (``require_real_dir``). A symlink planted in the home could otherwise send
a write, or a quarantined file, to a place outside it.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import os
import stat
from typing import Any

from ...durability import MACHINE, Durability
from ...errors import StoreError

log = logging.getLogger(__name__)

#: Mode of every directory the backend creates: its owner's only.
DIR_MODE = 0o700
#: Mode of every file the backend creates: message bodies, states and specs are private.
FILE_MODE = 0o600

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: Added to every open of a file in the home: a symlink at its name fails the open
#: (``ELOOP``) instead of reaching the file it points to.
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC | NOFOLLOW
# A spare is reopened in place. O_NONBLOCK (a no-op on a file) makes a FIFO planted at
# its name fail the open (ENXIO) rather than block it.
_SPARE_FLAGS = os.O_WRONLY | os.O_CREAT | _CLOEXEC | NOFOLLOW | os.O_NONBLOCK
#: Errors of an open that say something not ours is at the name (a symlink, a FIFO, a directory).
FOREIGN_AT_NAME = (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR)


def sync_data(fd: int) -> None:
    """Make a file's contents durable: ``fdatasync``, which also flushes a changed size
    but skips the timestamps ``fsync`` would write (a recycled file keeps its size)."""
    os.fdatasync(fd)


def flush_file(path: str) -> None:
    """Make the contents of the file at ``path`` durable (``sync_data`` by name)."""
    fd = os.open(path, os.O_RDONLY | _CLOEXEC | NOFOLLOW | os.O_NONBLOCK)
    try:
        sync_data(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    """Make a directory's entries (a rename, a create) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_real_dir(path: str) -> bool:
    """Whether ``path`` is a directory itself (not a symlink to one, not missing)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def require_real_dir(path: str) -> None:
    """Check that ``path`` is a directory of its own before moving or writing into it.

    Raises:
        StoreError: it is a symlink (which could lead out of the home), a file, or missing.
    """
    if not is_real_dir(path):
        raise StoreError(path, "not a directory of its own (a symlink, a file or nothing is in its place): "
                               "refusing to move or write anything into it")


def make_dirs(path: str) -> None:
    """Create the directory ``path`` and its missing parents, each with ``DIR_MODE``.

    (``os.makedirs`` gives the parents it makes the umask's mode.) An existing
    ``path`` must be a directory of its own: what is written below it must stay in
    the home. Its parents may be symlinks (a home can be one).

    Raises:
        NotADirectoryError: a symlink or a file is at ``path``.
        OSError: it cannot be made.
    """
    _make_dir(path, own=True)


def _make_dir(path: str, own: bool) -> None:
    try:
        os.mkdir(path, DIR_MODE)
        return
    except FileExistsError:
        if own and not is_real_dir(path):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory of its own (a symlink or a file)",
                                     path) from None
        return
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if not parent or parent == path:
            raise
    _make_dir(parent, own=False)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:  # made by someone else meanwhile
        if own and not is_real_dir(path):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory of its own (a symlink or a file)",
                                     path) from None


def write_file(path: str, data: bytes, durability: Durability = MACHINE) -> None:
    """Create ``path`` exclusively and write ``data`` to it (fsynced at "machine").

    Raises:
        FileExistsError: ``path`` exists (a symlink too: none is followed).
        OSError: the write failed; a partial file is removed.
    """
    fd = os.open(path, _WRITE_FLAGS, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durability == MACHINE:
            sync_data(fd)
    except BaseException:
        os.close(fd)
        unlink_quietly(path)
        raise
    os.close(fd)


def _new_temp_prefix() -> None:
    # Runs in every forked worker at its start: four random bytes, not a uuid4 (the
    # same eight random hex digits, at a fifth of a first call's cost there).
    global _temp_prefix
    _temp_prefix = f".tmp-{os.getpid()}-{os.urandom(4).hex()}-"


_temp_prefix = ""
_new_temp_prefix()
os.register_at_fork(after_in_child=_new_temp_prefix)
_temp_counter = itertools.count()


def temp_name(directory: str) -> str:
    """A hidden, unique path in ``directory`` (scanners skip dot-files).

    Unique per process by a prefix (the pid and a random part, renewed in forked
    children) and a counter, which is cheaper than a fresh UUID per file. The pid lets
    a sweep tell a live writer's temp from a dead one's (see :func:`temp_owner_alive`).
    """
    return os.path.join(directory, f"{_temp_prefix}{next(_temp_counter)}")


#: Largest pid Linux hands out (``/proc/sys/kernel/pid_max`` can be at most this).
_PID_MAX = 4_194_304


def temp_owner_alive(name: str) -> bool:
    """Whether the process that made the temp file ``name`` still runs.

    A name without a pid (an older format) counts as dead. A reused pid keeps a dead
    writer's debris a while longer, which is harmless.
    """
    try:
        pid = int(name.split("-")[1])
        if not 0 < pid <= _PID_MAX:  # e.g. an older name whose random part is all digits
            return False
        os.kill(pid, 0)
    except (IndexError, ValueError, OverflowError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def atomic_write(path: str, data: bytes, durability: Durability = MACHINE) -> None:
    """Replace ``path`` with ``data`` atomically.

    Args:
        path: the target file; its directory must exist.
        data: the complete new contents.
        durability: "machine" fsyncs the file and the directory; "process" does not
            (still atomic and safe against kill -9).

    A symlink at ``path`` is replaced, never written through (the rename replaces
    the link itself); the caller checks a directory it does not trust with
    ``require_real_dir``.

    Raises:
        StoreError: the write failed; the target is untouched and no temp file remains
            (or, if only the directory's flush failed, the target was replaced).
    """
    directory = os.path.dirname(path) or "."
    tmp = temp_name(directory)
    try:
        write_file(tmp, data, durability)
        os.replace(tmp, path)
        if durability == MACHINE:
            fsync_dir(directory)
    except OSError as exc:
        unlink_quietly(tmp)
        raise StoreError(path, f"write failed: {exc.strerror or exc}") from exc
    except BaseException:
        unlink_quietly(tmp)
        raise


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _load_renameat2() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def exchange(a: str, b: str) -> None:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``).

    Raises:
        OSError: unsupported here (``ENOSYS``/``EINVAL``), or either path is missing.
    """
    if _renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), a)


def overwrite(fd: int, data: bytes, old_size: int) -> None:
    """Write ``data`` over an open file's contents from offset 0, without ``O_TRUNC``.

    A shorter text is padded with spaces (JSON readers skip trailing whitespace) as
    long as the file is small, so no block is freed: on this file system freeing
    blocks means a synchronous discard, and truncation could cost a millisecond.
    """
    view = memoryview(data)
    offset = 0
    while offset < len(data):
        offset += os.pwrite(fd, view[offset:], offset)
    if old_size > len(data):
        if old_size <= PAD_LIMIT:
            os.pwrite(fd, b" " * (old_size - len(data)), len(data))
        else:
            os.ftruncate(fd, len(data))


#: Files up to this size are padded rather than truncated when rewritten shorter.
PAD_LIMIT = 64 * 1024


class Rewriter:
    """Replaces one file again and again without creating or freeing an inode.

    The new text goes into a hidden spare file next to the target (written in place),
    which is then swapped with the target by ``exchange``: readers see the old or the
    new text, never a torn one, and the old text becomes the next spare. When there is
    no target yet (first write, or after :meth:`remove`) the spare is renamed into
    place. Creating a file costs up to ~0.8 ms on this file system when others churn
    inodes, so commits, index writes and lease renewals all go this way. Falls back to
    :func:`atomic_write` where ``renameat2`` is missing.

    Writers of one path must be serialised (one process, or a lock). A reader holding
    the old file open across two later writes could see it rewritten; readers retry a
    read that does not parse.

    Whatever else is found at the spare's name (a symlink, a FIFO, a directory, a file
    with a second link, say to a file outside the home) is not written through: it is
    unlinked and a new spare made. A spare of an older home (mode 0644) is narrowed to
    ``FILE_MODE`` when it is next written.
    """

    def __init__(self, path: str, durability: Durability = MACHINE, *, keep_names: bool = False) -> None:
        self.path = path
        self.durability = durability
        directory, name = os.path.split(path)
        self.directory = directory or "."
        self.spare = os.path.join(self.directory, f".{name}.spare")
        #: The caller tells the two texts apart by their contents (``session_file``:
        #: a commit number and a CRC), so an exchange of two names already on disk
        #: needs no directory flush: either mapping leads a reader to the newer text.
        self.keep_names = keep_names
        self._names_on_disk: tuple[int, ...] = ()  # their inodes as of the last directory flush
        self._staged: tuple[int, bytes] | None = None  # the spare's inode and text, once ``stage``d

    def write(self, data: bytes) -> None:
        """Replace the target's contents with ``data`` atomically.

        Raises:
            StoreError: the write failed; the target keeps its previous contents.
        """
        staged, self._staged = self._staged, None  # this text replaces it
        if _renameat2 is None:
            atomic_write(self.path, data, self.durability)
            return
        try:
            fd, size, inode = self._open_spare()
            try:
                overwrite(fd, data, size)
                if self.durability == MACHINE:
                    sync_data(fd)
            finally:
                os.close(fd)
            self._swap(inode)
        except OSError as exc:
            if exc.errno not in _NO_EXCHANGE:  # (else ``_failed`` writes ``data`` another way)
                self._written_over(staged)
            self._failed(exc, data)

    def stage(self, data: bytes) -> None:
        """Write ``data`` into the spare only: not flushed, not swapped in (for a
        ``keep_names`` caller, who tells the newer text by its contents, and only over
        a target that exists). ``flush_staged`` finishes the write; a ``write`` in
        between replaces it. Until then a crash of this process loses nothing (the
        text is in the spare, for a reader of both names), and a power loss may lose
        it or tear it, never the target's text.

        Raises:
            StoreError: the write failed (the spare may be torn; the target is whole).
        """
        assert self.keep_names, "only a reader of both names finds a staged text"
        if _renameat2 is None:
            self.write(data)
            return
        try:
            fd, size, inode = self._open_spare()
            try:
                overwrite(fd, data, size)
            finally:
                os.close(fd)
        except OSError as exc:
            self._written_over(self._staged)
            raise StoreError(self.path, f"write failed: {exc.strerror or exc}") from exc
        self._staged = (inode, data)

    @property
    def staged(self) -> bool:
        """Whether a ``stage``d text waits for ``flush_staged``."""
        return self._staged is not None

    def flush_staged(self) -> None:
        """Flush the staged text (at "machine") and swap it in: ``write``'s second half.

        Raises:
            StoreError: it failed; the staged text stays in the spare unflushed, the
                target whole (a later ``write`` replaces both).
        """
        if self._staged is None:
            return
        inode, data = self._staged
        if inode == _WRITTEN_OVER:
            self.write(data)
            return
        try:
            if self.durability == MACHINE:
                fd = os.open(self.spare, os.O_RDONLY | _CLOEXEC | NOFOLLOW | os.O_NONBLOCK)
                try:
                    if os.fstat(fd).st_ino != inode and inode >= 0:  # not ours any more: write it again
                        self.write(data)
                        return
                    sync_data(fd)
                finally:
                    os.close(fd)
            self._staged = None
            self._swap(inode)
        except OSError as exc:
            self._failed(exc, data)

    def _swap(self, inode: int) -> None:
        """Swap the written spare (``inode``) in, flushing the directory when it must."""
        try:
            exchange(self.spare, self.path)
            swapped = self.keep_names
        except FileNotFoundError:  # no target yet: the spare becomes it
            os.rename(self.spare, self.path)
            swapped = False
        if self.durability == MACHINE and not (swapped and inode in self._names_on_disk):
            fsync_dir(self.directory)
            self._names_on_disk = (inode, os.lstat(self.spare).st_ino) if swapped else ()

    def _written_over(self, staged: tuple[int, bytes] | None) -> None:
        """A write into the spare failed: a text staged there may be torn, so the
        flush writes it again (it is still the last commit its caller made)."""
        self._staged = None if staged is None else (_WRITTEN_OVER, staged[1])

    def _failed(self, exc: OSError, data: bytes) -> None:
        if exc.errno in _NO_EXCHANGE:  # e.g. a file system without it
            _disable_exchange()
            atomic_write(self.path, data, self.durability)
            return
        raise StoreError(self.path, f"write failed: {exc.strerror or exc}") from exc

    def _open_spare(self) -> tuple[int, int, int]:
        """The spare, open for writing, its size and its inode (-1 if made anew). Costs
        the open and the ``fstat`` a rewrite needs anyway, unless something not ours
        is at the spare's name."""
        try:
            fd = os.open(self.spare, _SPARE_FLAGS, FILE_MODE)
        except OSError as exc:
            if exc.errno not in FOREIGN_AT_NAME:
                raise
            return self._replace_spare(exc.strerror or str(exc))
        try:
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                if info.st_mode & 0o077:
                    os.fchmod(fd, FILE_MODE)
                return fd, info.st_size, info.st_ino
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        return self._replace_spare("not a file of its own (a FIFO, or a file with another link)")

    def _replace_spare(self, why: str) -> tuple[int, int, int]:
        log.warning("%s: replacing what is at its spare's name, not writing through it: %s", self.path, why)
        try:
            os.unlink(self.spare)  # a symlink goes, not what it points to
        except IsADirectoryError:
            os.rmdir(self.spare)  # an empty one; one with files in it is not ours to delete (StoreError)
        return os.open(self.spare, _WRITE_FLAGS, FILE_MODE), 0, -1

    def prepare(self) -> None:
        """Make the spare now (empty), so the first write creates no file.

        Raises:
            StoreError: it cannot be made.
        """
        try:
            fd, _, _ = self._open_spare()
        except OSError as exc:
            raise StoreError(self.spare, f"cannot make the spare: {exc.strerror or exc}") from exc
        os.close(fd)

    def remove(self) -> bool:
        """Remove the target (the spare stays for the next write). Returns whether it existed.

        Raises:
            StoreError: it cannot be removed.
        """
        try:
            os.unlink(self.path)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreError(self.path, f"cannot remove: {exc.strerror or exc}") from exc


#: Errors of ``exchange`` that say this file system has no ``renameat2``.
_NO_EXCHANGE = (errno.ENOSYS, errno.EINVAL)
#: The inode of a staged text whose spare a failed write went over (``Rewriter._written_over``).
_WRITTEN_OVER = -2


def _disable_exchange() -> None:
    global _renameat2
    _renameat2 = None


def read_bytes(path: str) -> bytes:
    """Read a whole file with one ``os.pread`` loop (cheaper than ``open()``).

    Raises:
        OSError: as ``os.open`` and ``os.pread`` do. A symlink at ``path`` is not
            followed (``ELOOP``): nothing in the home is read from outside it; and a
            FIFO reads as empty rather than blocking (``O_NONBLOCK``, a no-op on files).
    """
    fd = open_for_reading(path)
    try:
        return read_open(fd)
    finally:
        os.close(fd)


def open_for_reading(path: str) -> int:
    """``path`` open for reading as ``read_bytes`` opens it (no symlink followed, no
    FIFO waited for): a reader of two names holds both files before it reads either
    (``session_file.read_session``).

    Raises:
        OSError: as ``os.open`` does.
    """
    return os.open(path, os.O_RDONLY | _CLOEXEC | NOFOLLOW | os.O_NONBLOCK)


def read_open(fd: int) -> bytes:
    """All of an open file from its start (``pread``: a torn read can be made again).
    A FIFO reads as empty.

    Raises:
        OSError: as ``os.pread`` does (``EISDIR`` for a directory).
    """
    chunks: list[bytes] = []
    offset = 0
    while True:
        try:
            chunk = os.pread(fd, 1 << 16, offset)
        except OSError as exc:
            if exc.errno != errno.ESPIPE:
                raise
            return b""  # a FIFO (or a socket) at a file's name: nothing of ours
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def unlink_quietly(path: str) -> None:
    """Remove ``path`` if it is there; never raises."""
    try:
        os.unlink(path)
    except OSError:
        pass
