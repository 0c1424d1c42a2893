"""The output gate of ``actors run``: progress text only ever lands between whole lines.

While a fleet script runs, the file its stderr writes to (and its stdout, when that is
the same file) is shared by three kinds of writers: the script's threads, its worker
processes (they inherit file descriptors 1 and 2) and the progress line. The gate
makes the progress line's writes wait for a line boundary::

    script, workers --fd 1/2--> pipe (a pty if the file is a terminal) --> pump thread --> the file
                                                                              ^
    progress thread --------------- show() / line() (under the pump's lock) --+

The pump passes every byte through unchanged and remembers whether the last one was a
newline. Progress is written only then; a transient status line (on a terminal) is
cleared before the next output. A pty keeps ``isatty`` true for the script and its
workers, so line buffering and colours stay what they would be without ``actors run``;
its output processing is off, so bytes reach the real terminal verbatim and are
processed there once.

At ``close`` the descriptors point at the file again, a sync token written through the
channel marks the end of what this process wrote, and once the pump has passed it on,
everything before it is out. Processes that still hold the channel (the fork server,
workers of a system stopped only at interpreter exit) keep being passed through until
they close it or this process exits.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import select
import termios
import threading
from typing import IO

from actors_runtime.threads import start_thread

log = logging.getLogger(__name__)

#: Bytes read from the channel at a time.
CHUNK = 1 << 16
#: Clears the terminal line the cursor is on (carriage return, erase to end of line).
CLEAR_LINE = b"\r\x1b[K"
#: Seconds between checks of the pump while ``close`` waits for it to pass the sync token.
SYNC_POLL = 0.5


def _same_file(fd_a: int, fd_b: int) -> bool:
    try:
        return os.path.samestat(os.fstat(fd_a), os.fstat(fd_b))
    except OSError:
        return False


def _fileno(stream: IO[str]) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``, waiting for room when ``fd`` is non-blocking."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


def _open_pty_like(terminal: int) -> tuple[int, int]:
    """A pty whose slave looks like ``terminal`` (size, modes) but passes output verbatim."""
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    os.set_inheritable(slave, False)
    with contextlib.suppress(termios.error, OSError):
        attrs = termios.tcgetattr(terminal)
        attrs[1] &= ~termios.OPOST  # oflag: the real terminal turns "\n" into "\r\n", not us too
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
    with contextlib.suppress(OSError):
        fcntl.ioctl(slave, termios.TIOCSWINSZ, fcntl.ioctl(terminal, termios.TIOCGWINSZ, b"\0" * 8))
    return master, slave


class OutputGate:
    """Routes the progress file through a pump that writes progress only at line boundaries.

    Use ``OutputGate.install(sys.stdout, sys.stderr)`` before the script runs and
    ``close`` after it (also after an exception, Ctrl-C or ``sys.exit``). Guarantees:
    every byte written to the gated descriptors reaches the original file, in the order
    the channel received it; progress text never lands inside a line of that output.
    Failure modes: when the original file refuses a write (a closed pipe), the pump
    closes the channel so the writers see the error as they would have without the
    gate. A script that ends with ``os._exit`` can lose what the pump had not yet read.
    """

    def __init__(self, fds: list[int], original: int, reader: int, writer: int, *, pty: bool) -> None:
        self.fds, self.pty = fds, pty
        self._original = original  # a private dup of the file the gated fds pointed at
        self._reader, self._writer = reader, writer
        self._saved = {fd: os.dup(fd) for fd in fds}
        self._lock = threading.Lock()
        self._at_line_start = True
        self._shown = False
        #: Whether the program's output passed since the last ``line`` (so a last
        #: summary equal to that line is still worth writing after it).
        self.passed_since_line = False
        self._broken = False
        self._token = b"\0actors-gate-" + os.urandom(8).hex().encode() + b"\0"
        self._syncing = False
        self._synced = threading.Event()
        self._finished = threading.Event()
        self._closed = False

    @classmethod
    def install(cls, stdout: IO[str], stderr: IO[str]) -> OutputGate | None:
        """Gate stderr's descriptor (and stdout's, when it is the same file).

        Returns:
            The open gate, or ``None`` when the streams have no real descriptors (the CLI
            embedded in another program) and nothing was changed.
        """
        err_fd, out_fd = _fileno(stderr), _fileno(stdout)
        if err_fd is None:
            return None
        try:
            os.fstat(err_fd)
        except OSError:
            return None
        fds = [err_fd]
        if out_fd is not None and out_fd != err_fd and _same_file(out_fd, err_fd):
            fds.insert(0, out_fd)  # one channel: their relative order is kept
        for stream in (stdout, stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        pty = os.isatty(err_fd)
        reader, writer = _open_pty_like(err_fd) if pty else os.pipe()
        gate = cls(fds, os.dup(err_fd), reader, writer, pty=pty)
        for fd in fds:
            os.dup2(writer, fd)  # inheritable: workers started from now on write here too
        start_thread(gate._pump, "actors-output-gate")
        return gate

    @property
    def at_line_start(self) -> bool:
        """Whether the last byte passed through was a newline (or nothing has passed yet)."""
        return self._at_line_start

    def show(self, text: str) -> bool:
        """Show a transient status line (terminal only) if the output is at a line boundary.

        Returns:
            Whether it was shown; the next output clears it first.
        """
        with self._lock:
            if not self._at_line_start or self._broken:
                return False
            self._emit(b"\r" + text.encode() + b"\x1b[K")
            self._shown = True
            return True

    def line(self, text: str) -> bool:
        """Write ``text`` and a newline if the output is at a line boundary.

        Returns:
            Whether it was written (not while a line of output is unfinished).
        """
        with self._lock:
            if not self._at_line_start or self._broken:
                return False
            self._clear_status()
            self._emit(text.encode() + b"\n")
            self.passed_since_line = False
            return True

    def close(self, final: str | None = None) -> None:
        """Point the descriptors back at the original file once everything this process
        wrote has passed through, clear a status line still shown, and write ``final``
        (a last line, on a line of its own) after all of it.

        The caller flushes its streams first: what is still in a buffer after ``close``
        goes straight to the file. Waits for the pump to pass the sync token on (as long as the file's reader takes
        the output: the wait is the same back-pressure a write would feel). Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)
            os.close(saved)
        self._syncing = True
        try:
            _write_all(self._writer, self._token)
        except OSError:  # the pump closed the channel: the original file is gone
            self._synced.set()
        while not self._synced.wait(SYNC_POLL):
            if self._finished.is_set():
                break
        with self._lock, contextlib.suppress(OSError):
            if not self._broken:
                self._clear_status()
                if final is not None:
                    self._emit((b"" if self._at_line_start else b"\n") + final.encode() + b"\n")
                    self._at_line_start = True
        os.close(self._writer)  # the pump ends at EOF once no other process holds it

    # -- the pump thread --------------------------------------------------------------------

    def _pump(self) -> None:
        held = b""
        try:
            while True:
                try:
                    data = os.read(self._reader, CHUNK)
                except OSError as exc:
                    if exc.errno != errno.EIO:  # EIO: a pty with no slave left, i.e. EOF
                        raise
                    data = b""
                if not data:
                    self._pass(held)
                    return
                if self._syncing and not self._synced.is_set():
                    held, data = b"", held + data
                    cut = data.find(self._token)
                    if cut >= 0:
                        self._pass(data[:cut])
                        self._synced.set()
                        data = data[cut + len(self._token):]
                    else:  # the token may start in this chunk's tail
                        keep = len(self._token) - 1
                        held, data = data[-keep:], data[:-keep]
                self._pass(data)
        except OSError as exc:
            log.debug("output gate: the pump stopped: %s", exc)
        finally:
            with self._lock:
                self._broken = True
                os.close(self._original)
            os.close(self._reader)  # writers now see the failure (EPIPE, EIO), as without the gate
            self._synced.set()
            self._finished.set()

    def _pass(self, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            self._clear_status()
            self._emit(data)
            self._at_line_start = data.endswith(b"\n")
            self.passed_since_line = True

    def _clear_status(self) -> None:
        if self._shown:
            self._emit(CLEAR_LINE)
            self._shown = False

    def _emit(self, data: bytes) -> None:
        _write_all(self._original, data)
