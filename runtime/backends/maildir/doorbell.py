"""Waking a mailbox's reader: the doorbell FIFO and a wake-up pipe.

Senders ring the doorbell (``.bell``, a FIFO in the mailbox directory) after an
append, non-blocking: no reader, or a full pipe, means a wake-up is not needed or
already pending. The reader clears it *before* it lists what waits, so a ring that
comes later is never lost, and then blocks in ``select`` on it and on a wake-up pipe
of its own (``wake``: a stop request from another thread or a signal handler). An
idle actor costs no CPU. (inotify would do too, but it is capped at 128 instances
per user on these machines.)
"""

from __future__ import annotations

import errno
import os

from ...wakeup import WakeUp, drain_fd, wait_readable

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def make_fifo(path: str) -> None:
    """Create a doorbell FIFO (a present one is kept)."""
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        pass


class Doorbell:
    """The reader's side: the FIFO to ``select`` on, and a wake-up pipe."""

    def __init__(self, fifo_path: str) -> None:
        # O_RDWR keeps a writer open ourselves, so the FIFO never reports EOF (which
        # would make select() spin) when senders come and go.
        self.fd = os.open(fifo_path, os.O_RDWR | os.O_NONBLOCK | _CLOEXEC)
        self._wakeup = WakeUp()

    def clear(self) -> None:
        """Swallow pending rings. Call *before* listing, so a later ring is not lost."""
        drain_fd(self.fd)

    def wait(self, timeout: float | None) -> bool:
        """Block until rung, woken or ``timeout`` passes; returns whether it was rung or
        woken. A wake-up is consumed; a ring stays until ``clear``."""
        readable = wait_readable([self.fd, self._wakeup.fd], timeout)
        if self._wakeup.fd in readable:
            self._wakeup.clear()
        return bool(readable)

    def wake(self) -> None:
        """End a ``wait`` (any thread, or a signal handler). Never blocks."""
        self._wakeup.ring()

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)
        self._wakeup.close()


class Ringer:
    """A sender's side: rings the FIFO, keeping it open between rings. Not thread-safe:
    the sender calls it under its own lock."""

    def __init__(self, fifo_path: str) -> None:
        self.path = fifo_path
        self._fd = -1

    def ring(self) -> None:
        """Wake the reader if one waits. Never blocks, never fails."""
        for _ in range(2):
            if self._fd < 0:
                try:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | _CLOEXEC)
                except OSError:  # ENXIO: no reader; ENOENT: no bell (a foreign mailbox)
                    return
            try:
                os.write(self._fd, b"\0")
                return
            except BlockingIOError:  # the pipe is full: a wake-up is already pending
                return
            except OSError as exc:  # EPIPE: the reader went away; reopen once
                self.close()
                if exc.errno != errno.EPIPE:
                    return

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
