"""A wake-up pipe: the one primitive a waiting thread and a waker share.

Writing to a pipe is safe from any thread and from a signal handler (no lock is
taken), and a reader blocked in ``select`` on it wakes at once. The pipe carries no
data: ``clear`` empties it.
"""

from __future__ import annotations

import os
import select

#: Bytes a pipe holds on Linux: one read of this size empties it.
PIPE_CAPACITY = 65536


def drain_fd(fd: int) -> None:
    """Read a non-blocking pipe empty (doorbells and wake-up pipes carry no data)."""
    try:
        while len(os.read(fd, PIPE_CAPACITY)) == PIPE_CAPACITY:
            pass  # one read takes everything written; a full one means there may be more
    except BlockingIOError:
        pass


class WakeUp:
    """A non-blocking pipe pair: ``ring`` from anywhere, ``wait`` or ``select`` on ``fd``."""

    def __init__(self) -> None:
        self.fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def ring(self) -> None:
        """Never blocks, never fails (a full pipe means a wake-up is pending)."""
        try:
            os.write(self._write_fd, b"w")
        except OSError:
            pass

    def clear(self) -> None:
        drain_fd(self.fd)

    def close(self) -> None:
        for name in ("fd", "_write_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)


def wait_readable(fds: list[int], timeout: float | None) -> list[int]:
    """The descriptors of ``fds`` that are readable, waiting up to ``timeout`` seconds."""
    readable, _, _ = select.select(fds, [], [], timeout)
    return readable
