"""Capacity: at most ``max_active`` actors warm; room is made by passivating the
least recently used idle one.

::

    a start needs a slot       acquire(id) -- a slot free (and no earlier waiter) --> start
                                  | full: candidates(LRU order, fleet.is_idle)
                                  |   the least recently used idle actor -> fleet.passivate
                                  |   (a polite stop: it finishes its message, commits, exits)
                                  |   an idle victim is leaving: its slot passes on at once
                                  | else wait (condition, deadline) until release(victim)
    a message for a warm actor touch(id): it becomes the most recently used
    its worker exits           release(id): a slot frees, waiters wake
      (idle, stop, passivated, failed)

A slot is held from ``acquire`` until ``release``: a worker that is starting, running,
or waiting out a restart backoff holds one, so crash restarts never wait for room.
Waiters are served in arrival order. When every warm actor is busy (handling a
message, or messages waiting for it), a waiter looks again every
``RECHECK_INTERVAL`` (or at once when a slot frees) for ``PREEMPT_AFTER`` seconds by
the injected clock; after that it passivates the least recently used busy actor too,
which still ends only between two messages (its backlog stays in its mailbox and
activates it again). A cold actor is never starved by a set of hot ones.

The bound, exactly: at most ``limit`` actors hold a slot. An actor that was idle
when it was asked to go ("leaving") holds none: its worker handles nothing more
(the worker loop looks for a stop before every batch; only a batch it had already
drained when the stop arrived, a message that raced the idleness check, is
finished), and its process lingers only while it commits and exits (tens of
milliseconds). So the target starts while the victim exits, not after. At most
``max_leaving(limit)`` victims are leaving at once; beyond that a start waits for an
exit, as it does for a busy victim, which keeps its slot until it is gone. Worker
processes alive at once: at most ``limit + max_leaving(limit)``. One transient
more: a leaving victim whose worker dies on its way out and is restarted (its
restart policy) counts again at once, and the set is over by one until the next
start makes room.

Nothing here knows how actors run: a ``Fleet`` says whether an actor is idle and
passivates one. The supervisor is the first fleet (``passivation``); a host that
runs workers for another system can be the next.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from typing import Callable, Iterable, Iterator, Protocol

log = logging.getLogger(__name__)

#: Seconds between looks for an idle actor while every warm one is busy.
RECHECK_INTERVAL = 0.05
#: Seconds (by the capacity's clock) a waiter waits for an idle actor before it
#: passivates the least recently used busy one (between two of its messages).
PREEMPT_AFTER = 1.0
#: Share of ``limit`` that idle victims on their way out may add to the worker
#: processes alive at once (at least one): their slots pass on before they exit.
LEAVING_SHARE = 0.125


def max_leaving(limit: int) -> int:
    """How many idle victims may be leaving at once (see the module docstring)."""
    return max(1, int(limit * LEAVING_SHARE))


class Fleet(Protocol):
    """The actors a ``Capacity`` keeps warm, as it needs to see them."""

    def is_idle(self, actor_id: str) -> bool:
        """Whether the actor handles nothing now and has nothing waiting."""
        ...

    def passivate(self, actor_id: str) -> bool:
        """Ask the actor's worker to finish its current message, commit and exit,
        leaving the actor cold (activated again by its next message). Returns False
        when it cannot be asked (not running yet, already stopping)."""
        ...


def candidates(order: Iterable[str], is_idle: Callable[[str], bool], preempt: bool) -> Iterator[str]:
    """The actors to passivate, best first: the idle ones in least-recently-used
    order, then, if ``preempt``, the busy ones in the same order. ``is_idle`` is asked
    lazily, once per actor, only as far as the caller reads."""
    busy = []
    for actor_id in order:
        if is_idle(actor_id):
            yield actor_id
        else:
            busy.append(actor_id)
    if preempt:
        yield from busy


class WarmSet:
    """Which actors hold a slot, least recently used first, and which of them are
    being passivated. Pure bookkeeping (no locks, no waits): ``Capacity`` holds the
    lock; times are the caller's clock."""

    def __init__(self) -> None:
        self.last_used: OrderedDict[str, float] = OrderedDict()
        self.passivating: set[str] = set()
        #: Those of ``passivating`` that were idle when asked: they hold no slot.
        self.leaving: set[str] = set()

    def __len__(self) -> int:
        return len(self.last_used)

    def held(self) -> int:
        """Slots taken: warm actors less those leaving."""
        return len(self.last_used) - len(self.leaving)

    def __contains__(self, actor_id: object) -> bool:
        return actor_id in self.last_used

    def admit(self, actor_id: str, now: float) -> None:
        self.last_used[actor_id] = now
        self.last_used.move_to_end(actor_id)

    def touch(self, actor_id: str, now: float) -> None:
        """Make a warm actor the most recently used (no-op for one that is not warm)."""
        if actor_id in self.last_used:
            self.admit(actor_id, now)

    def release(self, actor_id: str) -> bool:
        """Forget the actor; returns whether that freed a slot (False if it was not
        warm, or was leaving: its slot was passed on already)."""
        self.passivating.discard(actor_id)
        if actor_id in self.leaving:
            self.leaving.discard(actor_id)
            self.last_used.pop(actor_id, None)
            return False
        return self.last_used.pop(actor_id, None) is not None

    def order(self) -> list[str]:
        """Warm actors not already being passivated, least recently used first."""
        return [a for a in self.last_used if a not in self.passivating]


class Capacity:
    """At most ``limit`` warm actors (see the module docstring). Thread-safe.

    Args:
        limit: the most actors warm at once; None: unbounded (every call is then a
            no-op that grants at once).
        fleet: says which actors are idle and passivates them.
        clock: monotonic seconds, for last-use times and ``preempt_after`` (a test's
            fake clock); waits themselves are on real time.
        preempt_after: see ``PREEMPT_AFTER``.
        recheck: see ``RECHECK_INTERVAL``.
        name: for log records (the system's id).

    Lock order: a caller may hold its own lock while it calls ``touch``, ``release``
    or ``holds``; ``Capacity`` never calls the fleet while it holds its own lock.
    """

    def __init__(self, limit: int | None, fleet: Fleet, *, clock: Callable[[], float] = time.monotonic,
                 preempt_after: float = PREEMPT_AFTER, recheck: float = RECHECK_INTERVAL, name: str = "") -> None:
        self.limit = limit
        self.fleet = fleet
        self.clock = clock
        self.preempt_after = preempt_after
        self.recheck = recheck
        self.name = name
        self._warm = WarmSet()
        self._queue: deque[str] = deque()
        self._cond = threading.Condition()
        self._changes = 0  # bumped on every release: a waiter cannot miss one
        self._picking = threading.Lock()  # one victim search at a time: no victim picked twice
        self._closed = False

    @property
    def bounded(self) -> bool:
        return self.limit is not None

    def warm(self) -> list[str]:
        """Actors holding a slot, least recently used first (not those leaving)."""
        with self._cond:
            return [a for a in self._warm.last_used if a not in self._warm.leaving]

    def leaving(self) -> list[str]:
        """Idle victims asked to go whose workers have not exited yet (no slot)."""
        with self._cond:
            return sorted(self._warm.leaving)

    def holds(self, actor_id: str) -> bool:
        """Whether ``actor_id`` holds a slot (one leaving does not)."""
        with self._cond:
            return actor_id in self._warm and actor_id not in self._warm.leaving

    def touch(self, actor_id: str) -> None:
        """A message was delivered to ``actor_id``: it is now the most recently used."""
        if self.limit is None:
            return
        with self._cond:
            self._warm.touch(actor_id, self.clock())

    def acquire(self, actor_id: str, timeout: float | None) -> bool:
        """Take a slot for ``actor_id`` before its worker starts, making room if the
        set is full; True once it holds one (at once if it already does: a worker
        that just exited whose release is still on its way). Call it only when the
        actor has no live worker.

        Returns False if no slot came free within ``timeout`` seconds, or the capacity
        was closed: the caller must not start the worker then (its messages wait).
        """
        if self.limit is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if actor_id in self._warm.leaving:
                # Its last worker is gone and its slot was passed on when it was asked
                # to go: the new worker needs a slot of its own.
                self._warm.release(actor_id)
            elif actor_id in self._warm:
                # Its last worker is gone (callers start one only then) and the slot was
                # not given back yet: the new worker keeps it. If that worker had been
                # passivated, the waiter that asked for it must look for another victim.
                if actor_id in self._warm.passivating:
                    self._warm.passivating.discard(actor_id)
                    self._changes += 1
                    self._cond.notify_all()
                self._warm.touch(actor_id, self.clock())
                return True
            self._queue.append(actor_id)
            since = self.clock()
        try:
            while True:
                with self._cond:
                    if self._closed:
                        return False
                    seen = self._changes
                    position = self._queue.index(actor_id)
                    free = self.limit - self._warm.held()
                    if position < free:  # those ahead of it have room too
                        self._queue.remove(actor_id)
                        self._warm.admit(actor_id, self.clock())
                        return True
                    # Busy victims free their slots when they exit; idle ones already did.
                    coming = len(self._warm.passivating) - len(self._warm.leaving)
                    short = position + 1 - free - coming
                found = self._make_room(since) if short > 0 else True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    log.warning("system %s: no room for actor %s within %s s (%d warm, all busy)",
                                self.name, actor_id, timeout, self.limit)
                    return False
                # Nothing to passivate yet: look again soon (busy actors send no word
                # when they finish), or at once when a slot frees.
                wait = remaining if found else min(self.recheck, remaining if remaining is not None else self.recheck)
                with self._cond:
                    if self._changes == seen and not self._closed:
                        self._cond.wait(wait)
        finally:
            with self._cond:
                if actor_id in self._queue:
                    self._queue.remove(actor_id)
                self._cond.notify_all()  # the next waiter may move up

    def _make_room(self, since: float) -> bool:
        """Passivate one more actor; returns whether one was asked to go. An idle
        one gives up its slot at once, while ``max_leaving`` allows (see the module
        docstring); waiters are woken to take it."""
        assert self.limit is not None
        idle: dict[str, bool] = {}

        def is_idle(actor_id: str) -> bool:
            idle[actor_id] = self.fleet.is_idle(actor_id)
            return idle[actor_id]

        with self._picking:
            with self._cond:
                order = self._warm.order()
                preempt = self.clock() - since >= self.preempt_after
            for victim in candidates(order, is_idle, preempt):
                with self._cond:
                    if victim not in self._warm or victim in self._warm.passivating:
                        continue  # released meanwhile
                    self._warm.passivating.add(victim)
                    leaves = idle.get(victim, False) and len(self._warm.leaving) < max_leaving(self.limit)
                    if leaves:  # before the stop is sent: its exit may come at once
                        self._warm.leaving.add(victim)
                if self.fleet.passivate(victim):
                    log.debug("system %s: passivating actor %s to make room", self.name, victim)
                    if leaves:
                        with self._cond:
                            self._changes += 1
                            self._cond.notify_all()
                    return True
                with self._cond:
                    self._warm.passivating.discard(victim)
                    self._warm.leaving.discard(victim)
            return False

    def release(self, actor_id: str) -> None:
        """``actor_id``'s worker is gone and none is starting: its slot is free."""
        if self.limit is None:
            return
        with self._cond:
            if self._warm.release(actor_id):
                self._changes += 1
                self._cond.notify_all()

    def kept(self, actor_id: str) -> None:
        """``actor_id``'s worker left but it keeps its slot (it restarts after a
        crash): if it was being passivated, that room is not coming. One that was
        leaving counts again: the set is over by one until a start makes room (see
        the module docstring)."""
        if self.limit is None:
            return
        with self._cond:
            if actor_id in self._warm.passivating:
                self._warm.passivating.discard(actor_id)
                self._warm.leaving.discard(actor_id)
                self._changes += 1
                self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiter; ``acquire`` returns False from now on."""
        with self._cond:
            self._closed = True
            self._changes += 1
            self._cond.notify_all()
