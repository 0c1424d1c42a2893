"""Waking cold actors whose timers come due: one thread per system, not one per actor.

::

    a worker goes idle / stops with timers   EXIT event {"wake_at": t}  -> schedule(id, t)
    the system starts                        scan its children's sessions -> schedule(id, t)
    t comes (by the injected clock)          ensure_active(id): a worker starts, finds
                                             the due entries and fires them (coalesced)

A running worker fires its own timers; this only brings back one that is not running.
Waking early or twice costs a start, never a tick: the worker fires only what is due
in its own committed table, and each tick's id makes a repeat harmless. The latest
report for an actor replaces the earlier one (its table changed since).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from ..errors import StoreError
from ..records import FAILED
from ..threads import start_thread
from ..worker.timers import TimerTable

if TYPE_CHECKING:
    from .supervisor import Supervisor

log = logging.getLogger(__name__)

#: The longest single wait (seconds): a wall-clock step is noticed within it.
LONGEST_WAIT = 30.0


class Wakes:
    """When each cold actor must be activated, and the thread that does it.

    Args:
        on_due: called with an actor id once its time came (on the wake thread; it
            must not block for long: ``ensure_active`` starts a thread per start).
        name: the thread's name.
        clock: unix seconds (a test's fake clock); timers are due in unix time.
    """

    def __init__(self, on_due: Callable[[str], None], name: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.on_due = on_due
        self.name = name
        self.clock = clock
        self._heap: list[tuple[float, str]] = []
        self._at: dict[str, float] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def schedule(self, actor_id: str, at: float) -> None:
        """Activate ``actor_id`` at ``at`` (unix seconds; now, if it passed)."""
        with self._cond:
            if self._at.get(actor_id) == at:
                return
            self._at[actor_id] = at
            heapq.heappush(self._heap, (at, actor_id))
            self._cond.notify()

    def cancel(self, actor_id: str) -> None:
        """Forget the wake of ``actor_id`` (it runs, and reports again when it stops)."""
        with self._cond:
            self._at.pop(actor_id, None)

    def scheduled(self) -> dict[str, float]:
        """Actor id -> when it will be woken."""
        with self._cond:
            return dict(self._at)

    def pop_due(self, now: float) -> list[str]:
        """The actors due at ``now``, earliest first, taken off the schedule."""
        due = []
        with self._cond:
            while self._heap and self._heap[0][0] <= now:
                at, actor_id = heapq.heappop(self._heap)
                if self._at.get(actor_id) == at:  # else replaced or cancelled since
                    del self._at[actor_id]
                    due.append(actor_id)
        return due

    def next_at(self) -> float | None:
        """The earliest wake still scheduled."""
        with self._cond:
            while self._heap and self._at.get(self._heap[0][1]) != self._heap[0][0]:
                heapq.heappop(self._heap)  # stale
            return self._heap[0][0] if self._heap else None

    # -- the thread ---------------------------------------------------------------------

    def start(self, first: Callable[[], None] | None = None) -> None:
        """Start the thread; it runs ``first`` (the scan of the sessions) before waiting."""
        self._thread = start_thread(self._run, self.name, first)

    def _run(self, first: Callable[[], None] | None) -> None:
        if first is not None:
            try:
                first()
            except Exception:
                log.exception("%s: looking for timers failed (continuing)", self.name)
        while True:
            with self._cond:
                if self._closed:
                    return
                at = self.next_at()
                wait = LONGEST_WAIT if at is None else min(LONGEST_WAIT, at - self.clock())
                if wait > 0:
                    self._cond.wait(wait)
                    continue
            for actor_id in self.pop_due(self.clock()):
                try:
                    self.on_due(actor_id)
                except Exception:
                    log.exception("actor %s: waking it for its timers failed", actor_id)

    def close(self) -> None:
        """Stop the thread (scheduled wakes are dropped: the next system scans again)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(5.0)


def next_due_in(meta: dict[str, Any], actor_id: str) -> float | None:
    """The earliest due time of the timers kept in a session's meta."""
    table = TimerTable()
    table.load(meta, actor_id)
    return table.next_due


def scan_sessions(sup: "Supervisor") -> None:
    """Schedule a wake for every child of this system whose session holds timers
    (at a system's start: its children from an earlier run are cold). One whose time
    passed while the system was down is woken at once; its worker coalesces the ticks
    it missed."""
    try:
        entries = sup.backend.store.list_children(sup.system_id)
    except StoreError as exc:
        log.warning("system %s: cannot list its children to find timers (%s)", sup.system_id, exc)
        return
    for entry in entries:
        if sup.closing:
            return
        if entry.status == FAILED:
            continue  # messages and timers wait until it is restarted
        try:
            doc = sup.backend.store.load_session(sup.system_id, entry.id)
        except StoreError as exc:
            log.warning("actor %s: cannot read its session to find timers (%s)", entry.id, exc)
            continue
        due = next_due_in(doc.meta, entry.id) if doc is not None else None
        if due is not None:
            log.debug("actor %s: timers due at %s; scheduled a wake", entry.id, due)
            sup.wakes.schedule(entry.id, due)
