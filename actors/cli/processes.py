"""Workers seen from outside: is a record's process alive, and signalling it.

A worker killed with SIGKILL leaves a lease record that looks alive for up to a
minute; its pid is then gone, a zombie, or reused by a younger process. Signals go
through a pidfd where there is one, so a reused pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import time
from typing import Iterator

from actors_runtime.backends.base import Backend
from actors_runtime.records import AgentRecord

from .exit_codes import EXIT_NOT_RUNNING, CliError

#: A process that started this much after a record's ``started_at`` is not its author.
_START_SLACK = 2.0


def live_record(backend: Backend, actor_id: str) -> AgentRecord | None:
    """The actor's record if its lease is live and its process still exists."""
    record = backend.fabric.resolve(actor_id)
    return record if record is not None and process_matches(record) else None


def elsewhere(record: AgentRecord) -> bool:
    """Whether the record names another machine as its host (its pid is not ours to check)."""
    return bool(record.host) and record.host.partition("/")[0] != socket.gethostname()


def process_matches(record: AgentRecord) -> bool:
    """Whether the record's pid is a live process that can be the record's author."""
    return process_state(record) == "alive"


def process_state(record: AgentRecord) -> str:
    """"alive", "gone", "exited" (a zombie) or "other" (the pid was reused)."""
    try:
        with open(f"/proc/{record.pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"
    except (OSError, IndexError):
        return "alive"  # no /proc to ask: trust the lease
    if state in (b"Z", b"X"):
        return "exited"
    started = _process_start_time(record.pid)
    return "other" if started is not None and started > record.started_at + _START_SLACK else "alive"


def _process_start_time(pid: int) -> float | None:
    """Unix time the process ``pid`` started (Linux /proc), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().decode(errors="replace").rsplit(")", 1)[1].split()
        with open("/proc/stat", "rb") as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith(b"btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


@contextlib.contextmanager
def pid_handle(actor_id: str, record: AgentRecord) -> Iterator[int | None]:
    """A pidfd on the record's process (None where pidfds are unavailable).

    Raises:
        CliError: the process is gone, or the pid now belongs to a later process
            (a record left by a worker that was killed; its lease has not run out).
    """
    pid = record.pid
    if pid <= 1 or pid == os.getpid():
        raise CliError(f"{actor_id!r} has an unusable pid {pid} in its record", EXIT_NOT_RUNNING)
    fd: int | None = None
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise CliError(f"{actor_id!r} is not running (its record names pid {pid}, which has exited; "
                       "'actors gc' removes the record once its lease expires)", EXIT_NOT_RUNNING) from None
    except (AttributeError, OSError):  # no pidfds here: fall back to the pid
        fd = None
    try:
        state = "gone" if fd is None and not os.path.exists(f"/proc/{pid}") else process_state(record)
        if state in ("gone", "exited"):
            raise CliError(f"{actor_id!r} is not running (its record names pid {pid}, which has exited; "
                           "'actors gc' removes the record once its lease expires)", EXIT_NOT_RUNNING)
        if state == "other":
            raise CliError(f"{actor_id!r} is not running (pid {pid} of its stale record now "
                           "belongs to another process)", EXIT_NOT_RUNNING)
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def send_signal(fd: int | None, pid: int, signum: int) -> None:
    if fd is not None:
        signal.pidfd_send_signal(fd, signum)
    else:
        os.kill(pid, signum)


def wait_exit(fd: int | None, pid: int, timeout: float) -> bool:
    """Wait until the process exits; returns whether it did within ``timeout``."""
    if fd is not None:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    deadline = time.monotonic() + timeout
    while True:  # no pidfd: poll, the only way to watch a process that is not our child
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                if handle.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    return True
        except OSError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
