"""The in-flight marker: which message a worker is handling, kept past its death.

The marker is written through a shared mapping, so it is opened without following a
symlink, and one that is not a file of its own (a symlink, a FIFO, a file with
another link, say to a file outside the home) is replaced by a new, clear one: its
contents were not written by this mailbox's worker anyway.
"""

from __future__ import annotations

import logging
import mmap
import os
import stat

from ...errors import StoreError
from .durable import FILE_MODE, FOREIGN_AT_NAME, NOFOLLOW

log = logging.getLogger(__name__)

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK (a no-op on a file) keeps a FIFO in the marker's place from blocking the open.
_MARKER_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | _CLOEXEC | NOFOLLOW


def _open_marker(path: str) -> int:
    """The marker, open for reading and writing (made, or made anew, if need be)."""
    try:
        fd = os.open(path, _MARKER_FLAGS, FILE_MODE)
    except OSError as exc:
        if exc.errno not in FOREIGN_AT_NAME:
            raise
    else:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
            return fd
        os.close(fd)
    log.warning("%s: replacing what is in the in-flight marker's place (not a file of its own)", path)
    os.unlink(path)
    return os.open(path, _MARKER_FLAGS | os.O_EXCL, FILE_MODE)


class MmapMarker:
    """A 64-byte shared page naming the message being handled.

    Written to memory (no syscall), yet it survives the process: after a crash the
    next activation reads which message was running, to count poison attempts.

    Raises:
        StoreError: the marker cannot be opened, made or mapped.
    """

    SIZE = 64

    def __init__(self, path: str) -> None:
        try:
            fd = _open_marker(path)
        except OSError as exc:
            raise StoreError(path, f"cannot open the in-flight marker: {exc.strerror or exc}") from exc
        try:
            if os.fstat(fd).st_size < self.SIZE:
                os.ftruncate(fd, self.SIZE)
            self._map = mmap.mmap(fd, self.SIZE)
        except OSError as exc:
            raise StoreError(path, f"cannot map the in-flight marker: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)

    def read(self) -> str | None:
        return marked_id(bytes(self._map[:]))

    def set(self, msg_id: str) -> None:
        data = msg_id.encode("ascii", "replace")[: self.SIZE]
        self._map[:] = data + b"\0" * (self.SIZE - len(data))

    def clear(self) -> None:
        self._map[:1] = b"\0"

    def close(self) -> None:
        self._map.close()


def marked_id(raw: bytes) -> str | None:
    """The message id a marker's bytes name: up to the first NUL (a clear writes one
    NUL at the front, and the rest is stale)."""
    end = raw.find(b"\0")
    return raw[: end if end >= 0 else len(raw)].decode("ascii", "replace") or None


def read_marker(path: str) -> str | None:
    """The message id the marker names, read from outside the worker without creating,
    mapping or following a link to it (a missing or unreadable marker names nothing)."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | _CLOEXEC)
    except OSError:
        return None
    try:
        return marked_id(os.read(fd, MmapMarker.SIZE))
    except OSError:
        return None
    finally:
        os.close(fd)


def clear_marker(path: str) -> None:
    """Forget the marked message from outside the worker (a deliberate kill). A
    symlink in the marker's place is not written through."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | _CLOEXEC | NOFOLLOW)
    except OSError:
        return
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
            os.write(fd, b"\0")
    except OSError:
        pass
    finally:
        os.close(fd)
