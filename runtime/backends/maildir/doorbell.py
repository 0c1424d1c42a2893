"""Waking a mailbox's reader: the doorbell FIFO and a wake-up pipe.

Senders ring the doorbell (``.bell``, a FIFO in the mailbox directory) after an
append, non-blocking: no reader, or a full pipe, means a wake-up is not needed or
already pending. The reader clears it *before* it lists what waits, so a ring that
comes later is never lost, and then blocks in ``select`` on it and on a wake-up pipe
of its own (``wake``: a stop request from another thread or a signal handler). An
idle actor costs no CPU. (inotify would do too, but it is capped at 128 instances
per user on these machines.)

A ring is one byte. ``KNOWN_SEGMENT`` says "appended to the segment I rang for last
time": the reader listed ``log/`` after that first ring, so it knows the segment, and
a drain woken only by such rings reads the segments it knows without listing ``new/``
and ``log/`` (two ``stat``s and their bookkeeping per drain; the reader still lists
them at least once a second, for files other programs drop without ringing). Every
other byte (``ANY``: a new segment, a Maildir file, another program's ring) makes it
list again, and so does a pipe found full (a ring may have been dropped).

The bell is opened without following a symlink: a ring writes to it, and a symlink
planted at its name must not take that write out of the home. The reader replaces
anything at the bell's name that is not a FIFO.
"""

from __future__ import annotations

import errno
import logging
import os
import stat

from ...errors import StoreError
from ...spinning import PolledWait
from ...wakeup import PIPE_CAPACITY, WakeUp, wait_readable
from .durable import FILE_MODE, NOFOLLOW

log = logging.getLogger(__name__)

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BELL_FLAGS = os.O_RDWR | os.O_NONBLOCK | _CLOEXEC | NOFOLLOW
#: A ring for a record appended to the segment the sender rang for before.
KNOWN_SEGMENT = b"\x01"
#: Any other ring: the reader lists ``new/`` and ``log/`` again.
ANY = b"\0"
#: The least a pipe holds (a page): this many rings read at once may have filled it.
_SMALLEST_PIPE = 4096


def make_fifo(path: str) -> None:
    """Create a doorbell FIFO (a present one is kept; a symlink or a file in its place
    is replaced).

    Raises:
        OSError: it cannot be made.
    """
    try:
        os.mkfifo(path, FILE_MODE)
        return
    except FileExistsError:
        if stat.S_ISFIFO(os.lstat(path).st_mode):
            return
    log.warning("%s: replacing what is in the doorbell's place (not a FIFO)", path)
    os.unlink(path)
    os.mkfifo(path, FILE_MODE)


def open_bell(path: str) -> int:
    """The reader's descriptor on the doorbell FIFO, made anew if something else is
    in its place (a symlink is never followed).

    Raises:
        StoreError: it cannot be opened or made.
    """
    try:
        try:
            fd = os.open(path, _BELL_FLAGS)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.EMLINK, errno.ENOENT):
                raise
        else:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
        make_fifo(path)
        return os.open(path, _BELL_FLAGS)
    except OSError as exc:
        raise StoreError(path, f"cannot open the doorbell: {exc.strerror or exc}") from exc


class Doorbell:
    """The reader's side: the FIFO to ``select`` on, and a wake-up pipe."""

    def __init__(self, fifo_path: str, waiting: PolledWait | None = None) -> None:
        # O_RDWR keeps a writer open ourselves, so the FIFO never reports EOF (which
        # would make select() spin) when senders come and go.
        self.fd = open_bell(fifo_path)
        self._wakeup = WakeUp()
        #: Polling before ``wait`` sleeps (the mailbox's ``poll_before_sleeping``).
        self.waiting = waiting or PolledWait()

    def clear(self) -> bool:
        """Swallow pending rings. Call *before* listing, so a later ring is not lost.

        Returns whether there were rings and every one was ``KNOWN_SEGMENT`` (the
        reader need not list; see the module docstring)."""
        known = None
        try:
            while True:
                data = os.read(self.fd, PIPE_CAPACITY)
                # A ring may have found the pipe full and been dropped. A pipe holds
                # 64 KiB, or a page once its user has too many (pipe-user-pages-soft).
                maybe_full = len(data) >= _SMALLEST_PIPE
                ours = bool(data) and not maybe_full and not data.strip(KNOWN_SEGMENT)
                known = ours if known is None else known and ours
                if len(data) < PIPE_CAPACITY:
                    break
        except BlockingIOError:
            pass
        return bool(known)

    def wait(self, timeout: float | None) -> bool:
        """Block until rung, woken or ``timeout`` passes; returns whether it was rung or
        woken. A wake-up is consumed; a ring stays until ``clear``.

        On the thread named by the mailbox's ``poll_before_sleeping``, while the rings
        before came quickly, it polls first (``runtime.spinning``): a reader that is
        not asleep when the ring comes spares the sender the wake-up and itself the
        time to be scheduled back."""
        fds = [self.fd, self._wakeup.fd]
        readable = self.waiting.wait(lambda: wait_readable(fds, 0), lambda left: wait_readable(fds, left), timeout)
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

    def ring(self, what: bytes = ANY) -> None:
        """Wake the reader if one waits (``what``: ``ANY`` or ``KNOWN_SEGMENT``). Never
        blocks, never fails."""
        for _ in range(2):
            if self._fd < 0:
                try:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | _CLOEXEC | NOFOLLOW)
                except OSError:  # ENXIO: no reader; ENOENT: no bell (a foreign mailbox); ELOOP: a symlink
                    return
            try:
                os.write(self._fd, what)
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
