"""Writing the supervision records of a system's children, off the hot paths.

A spawn changes a child's status twice within milliseconds (starting, running), and
a burst of spawns changes many. Each record rewrites the child's ``supervision.json``
and the system's ``children.json`` under the project's index lock, which costs
hundreds of microseconds and, run on a thread of the parent next to a spawn, takes
the GIL from the threads that wait for the new actor's first reply. So records are
coalesced: the recorder keeps the latest request per child and writes them together
once requests have paused for ``delay`` seconds (at most ``max_delay`` after the
first), each with the child's facts as they are at that moment, so a later record
never loses to an earlier one. A caller that needs the record on disk (a stop, a
death, a failed start) asks with ``wait=True``: everything pending is written at
once and the call returns after that.

Nothing depends on these files for correctness while the system runs: it keeps the
same facts in memory, and the worker's own session and lease record are written by
the worker before it reports ready. They are for other processes (``actors ps``,
``rebuild_index``) and for the next run.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from ..threads import start_thread

log = logging.getLogger(__name__)

#: Seconds without new requests after which pending records are written.
RECORD_DELAY = 0.05
#: Seconds a request may wait at most while requests keep coming.
RECORD_MAX_DELAY = 0.5


class Recorder:
    """Coalesces records per key and hands them to ``write`` on one thread, in order.

    Args:
        write: called with the items to record (the latest one per key), on the
            recorder's thread; it reads each item's facts when it runs.
        name: the thread's name.
        delay, max_delay: the debounce (see the module docstring).
    """

    def __init__(self, write: Callable[[list[Any]], None], name: str, *,
                 delay: float = RECORD_DELAY, max_delay: float = RECORD_MAX_DELAY) -> None:
        self._write = write
        self._delay, self._max_delay = delay, max_delay
        self._cond = threading.Condition()
        self._pending: dict[str, Any] = {}
        self._first_at = self._last_at = 0.0
        self._requested = 0  # requests made so far
        self._written = 0  # requests whose records are on disk
        self._urgent = 0  # a caller waits until this many are written
        self._closed = False
        self._thread = start_thread(self._run, name)

    def record(self, key: str, item: Any, wait: bool = False) -> None:
        """Record ``item`` under ``key`` (replacing a pending one).

        With ``wait`` true, returns once it (and everything pending) is written.
        After ``close`` the record is written by the caller, synchronously.
        """
        with self._cond:
            if not self._closed:
                now = time.monotonic()
                if not self._pending:
                    self._first_at = now
                self._pending[key] = item
                self._last_at = now
                self._requested += 1
                ticket = self._requested
                if wait:
                    self._urgent = ticket
                self._cond.notify_all()
                if wait:
                    # The thread writes everything pending before it ends, even closed.
                    while self._written < ticket:
                        self._cond.wait()
                return
        # Closed: whoever is still recording is the last writer.
        self._write([item])

    def flush(self) -> None:
        """Write everything pending now and wait for it."""
        with self._cond:
            if self._closed or not self._pending:
                return
            ticket = self._urgent = self._requested
            self._cond.notify_all()
            while self._written < ticket:
                self._cond.wait()

    def close(self, timeout: float | None = None) -> None:
        """Write what is pending and stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return  # closed, nothing left
                while not self._closed and self._urgent <= self._written:
                    now = time.monotonic()
                    quiet_left = self._delay - (now - self._last_at)
                    age_left = self._max_delay - (now - self._first_at)
                    if quiet_left <= 0 or age_left <= 0:
                        break
                    self._cond.wait(min(quiet_left, age_left))
                items = list(self._pending.values())
                self._pending.clear()
                ticket = self._requested
            try:
                self._write(items)
            except Exception:
                log.exception("could not write %d supervision record(s)", len(items))
            with self._cond:
                self._written = ticket
                self._cond.notify_all()
