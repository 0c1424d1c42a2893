"""The in-flight marker: which message a worker is handling, kept past its death."""

from __future__ import annotations

import mmap
import os

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class MmapMarker:
    """A 64-byte shared page naming the message being handled.

    Written to memory (no syscall), yet it survives the process: after a crash the
    next activation reads which message was running, to count poison attempts.
    """

    SIZE = 64

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _CLOEXEC, 0o644)
        try:
            if os.fstat(fd).st_size < self.SIZE:
                os.ftruncate(fd, self.SIZE)
            self._map = mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)

    def read(self) -> str | None:
        raw = bytes(self._map[:])
        end = raw.find(b"\0")  # a clear writes one NUL at the front: the rest is stale
        return raw[: end if end >= 0 else len(raw)].decode("ascii", "replace") or None

    def set(self, msg_id: str) -> None:
        data = msg_id.encode("ascii", "replace")[: self.SIZE]
        self._map[:] = data + b"\0" * (self.SIZE - len(data))

    def clear(self) -> None:
        self._map[:1] = b"\0"

    def close(self) -> None:
        self._map.close()


def clear_marker(path: str) -> None:
    """Forget the marked message from outside the worker (a deliberate kill)."""
    try:
        fd = os.open(path, os.O_WRONLY | _CLOEXEC)
    except OSError:
        return
    try:
        os.write(fd, b"\0")
    except OSError:
        pass
    finally:
        os.close(fd)
