"""Polling for a little while before sleeping, where what is waited for is due soon.

A process that sleeps in ``poll``/``select`` and is woken by another process's
write pays for the wake-up twice: the writer's system call wakes the sleeper (in a
virtual machine, an idle virtual CPU has to be woken too), and the sleeper runs
again only once it was scheduled back. Measured on the 2-core virtual machine of
docs/benchmarks.md ("Polling before sleeping"), the two wake-ups of an ask cost more
than the rest of its round trip together. A waiter that polls (non-blocking) for a
few hundred microseconds before it sleeps is still running when the answer, or the
next message, arrives: nobody has to be woken.

Polling burns CPU, so a ``Spin`` polls only where it pays:

- when the waits before this one typically ended within its budget (an average of
  the recent waits, each counted at most at four budgets: a pause costs a quick
  rhythm one wait without polling, and a quiet actor stops polling after one);
- with the CPU given up between polls (``sched_yield``: another runnable process
  on this CPU goes first), and not again for ``BACK_OFF`` seconds once two polls in
  a row found their thread held off the CPU for half of their time, whether or not
  they found what they waited for (a busy machine, or other threads of the process
  wanting the GIL: their work comes before the waiting);
- while the machine has a CPU to spare: no more threads runnable than it has CPUs
  (``/proc/loadavg``, read at most every ``LOAD_EVERY`` seconds; polling threads
  count, so many actors told at once poll no more than the cores allow);
- on one thread at a time where polls share a ``Token`` (the parent's askers: each
  thread has its own ``Spin``, and one of them polls at a time).

``ACTORS_SPIN_US`` in the environment sets the budget in microseconds for every
waiter of the process (and of the workers it starts), read when the waiter is made
(set it before a system starts); ``0`` turns polling off.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Callable, TypeVar

from .threads import reset_after_fork

T = TypeVar("T")

#: The environment variable that sets every budget (microseconds; 0: never poll).
ENV = "ACTORS_SPIN_US"
#: Seconds a ``Spin`` does not poll after a poll found its CPU taken by others.
BACK_OFF = 0.02
#: How much of a poll's time its thread must have run; less, ``STRIKES`` polls in a
#: row, means a busy machine.
MIN_CPU_SHARE = 0.5
STRIKES = 2
#: A poll shorter than this (seconds) is not judged: too short for its CPU share to
#: say anything about the machine.
NOTICED = 50e-6
#: The weight of the latest wait in the running average of waits.
WEIGHT = 0.25
#: A wait counts at most this many budgets in the average.
CAP = 4.0

#: Seconds an answer of ``cpu_to_spare`` is kept.
LOAD_EVERY = 0.002
#: Where Linux says how many threads are runnable now ("... running/total ...").
LOADAVG = "/proc/loadavg"

_clock = time.perf_counter
_cpu_clock = time.thread_time
_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class _Load:
    """The last answer of ``cpu_to_spare``, when it was read, and ``/proc/loadavg``
    kept open (a ``pread`` at 0 reads it afresh; a forked child may share it)."""

    fd = -1
    read_at = -1.0
    spare = True


def cpu_to_spare() -> bool:
    """Whether no more threads are runnable on this machine than it has CPUs (the one
    asking included); read at most every ``LOAD_EVERY`` seconds. True where that
    cannot be read."""
    now = _clock()
    if now - _Load.read_at < LOAD_EVERY:
        return _Load.spare
    _Load.read_at = now
    try:
        if _Load.fd < 0:
            _Load.fd = os.open(LOADAVG, os.O_RDONLY | os.O_CLOEXEC)
        running = int(os.pread(_Load.fd, 128, 0).split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        _Load.spare = True
    else:
        _Load.spare = running <= _CPUS
    return _Load.spare


def budget(default_us: float) -> float:
    """The polling budget in seconds: ``ACTORS_SPIN_US`` if set (a number of
    microseconds, at least 0; anything else is ignored), else ``default_us``."""
    raw = os.environ.get(ENV, "").strip()
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if math.isfinite(value) and value >= 0:
            return value / 1e6
    return default_us / 1e6


class Token:
    """Lets one thread at a time poll among the ``Spin``s that share it (made afresh in
    a forked child: a thread polling at the fork does not live on there)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        reset_after_fork(self, lock=threading.Lock)


class Spin:
    """When to poll before a blocking wait, and the polling (see the module docstring).

    Use: ``if spin.wanted(): found = spin.poll(check, limit)``; then, whichever way the
    wait ended, ``spin.waited(seconds)`` with how long it took from its start.
    """

    __slots__ = ("budget", "_typical", "_quiet_until", "_strikes", "_token")

    def __init__(self, budget: float, token: Token | None = None) -> None:
        self.budget = budget
        self._typical = 0.0  # the running average of waits (seconds)
        self._quiet_until = 0.0
        self._strikes = 0  # polls in a row held off the CPU
        self._token = token

    def wanted(self) -> bool:
        """Whether a wait starting now should poll first."""
        return 0 < self.budget and self._typical < self.budget and _clock() >= self._quiet_until \
            and cpu_to_spare()

    def poll(self, check: Callable[[], T], limit: float | None = None) -> T | None:
        """Call ``check`` (which must not block) until it returns something true, for at
        most the budget (or ``limit`` seconds, if shorter); its last result, or None when
        another thread holds the ``token``."""
        lock = None
        try:
            if self._token is not None:
                if not self._token.lock.acquire(blocking=False):
                    return None
                lock = self._token.lock
            start, cpu_start = _clock(), _cpu_clock()
            deadline = start + (self.budget if limit is None else max(0.0, min(self.budget, limit)))
            while True:
                found = check()
                now = _clock()
                if found or now >= deadline:
                    break
                os.sched_yield()
            if now - start > NOTICED:
                if _cpu_clock() - cpu_start >= (now - start) * MIN_CPU_SHARE:
                    self._strikes = 0
                else:  # once may be an interrupt; twice running, others want the CPU
                    self._strikes += 1
                    if self._strikes >= STRIKES:
                        self._strikes = 0
                        self._quiet_until = now + BACK_OFF
            return found
        finally:
            if lock is not None:
                lock.release()

    def wait(self, poll: Callable[[], T], block: Callable[[float | None], T], timeout: float | None) -> T:
        """``block(timeout)``, with ``poll()`` (non-blocking) first while polling pays
        (``wanted``); ``block`` then gets only what is left of ``timeout``. Counts the
        wait, polled or not: how soon waits end decides whether the next one polls."""
        start = _clock()
        found = self.poll(poll, timeout) if self.wanted() else None
        if not found:
            found = block(None if timeout is None else max(0.0, timeout - (_clock() - start)))
        self.waited(_clock() - start)
        return found

    def waited(self, seconds: float) -> None:
        """Count a wait that took ``seconds`` from its start (polling included)."""
        if self.budget > 0:
            self._typical += (min(seconds, CAP * self.budget) - self._typical) * WEIGHT


class PolledWait:
    """A reader's blocking wait that polls first on one thread (``PollsBeforeSleeping``:
    the worker's loop thread; another thread of the process, e.g. one waiting for
    replies while a handler runs, would take the handler's GIL while it polled)."""

    __slots__ = ("spin", "_thread")

    def __init__(self) -> None:
        self.spin = Spin(0.0)
        self._thread = -1

    def poll_from(self, budget: float, thread: int) -> None:
        """Poll for up to ``budget`` seconds in waits of ``thread`` from now on."""
        self.spin = Spin(budget)
        self._thread = thread

    def wait(self, poll: Callable[[], T], block: Callable[[float | None], T], timeout: float | None) -> T:
        """``Spin.wait`` on the polling thread, ``block(timeout)`` on any other."""
        if self._thread != threading.get_ident():
            return block(timeout)
        return self.spin.wait(poll, block, timeout)
