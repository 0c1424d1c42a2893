"""A worker's log lines to its backend (``Backend.actor_log``), off the handler's thread.

::

    any thread: emit(record) -> format -> lines queued (at most MAX_QUEUED; beyond
                                that the oldest are dropped, and counted)
    its thread: the queued lines -> ActorLog.append (one round trip per batch)
    close():    what is queued is sent (up to FLUSH_TIMEOUT), then the thread ends

A handler that logs never waits for the server. Lines are best effort: a worker
killed (SIGKILL, ``os._exit``) loses what was still queued, some milliseconds' worth,
and a server away for longer than the append's retries loses a batch (the next batch
says how many lines were lost). The log file, where a worker keeps one, has them all.
Records made on this handler's own thread (the client's warnings) are not sent, so a
failing server cannot feed its own log.
"""

from __future__ import annotations

import logging
import threading
import time

from ..backends.base import ActorLog
from ..threads import start_thread

#: Lines queued at most; beyond, the oldest are dropped (a server away, a flood).
MAX_QUEUED = 10_000
#: Seconds ``close`` waits for the queued lines to be sent.
FLUSH_TIMEOUT = 2.0


class ActorLogHandler(logging.Handler):
    """Sends each record's formatted lines to an actor's log (see the module docstring)."""

    def __init__(self, log: ActorLog) -> None:
        super().__init__()
        self.log = log
        self._queued: list[str] = []
        self._lost = 0
        self._sending = False
        self._closed = False
        self._changed = threading.Condition()
        self._thread = start_thread(self._run, "actors-log")

    def emit(self, record: logging.LogRecord) -> None:
        if threading.current_thread() is self._thread:
            return
        try:
            lines = self.format(record).splitlines() or [""]
        except Exception:
            self.handleError(record)
            return
        with self._changed:
            if self._closed:
                return
            idle = not self._queued  # else the thread has a wake-up pending, or is sending
            self._queued.extend(lines)
            excess = len(self._queued) - MAX_QUEUED
            if excess > 0:
                del self._queued[:excess]
                self._lost += excess
            if idle:
                self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._queued and not self._closed:
                    self._changed.wait()
                if not self._queued:
                    return
                batch, self._queued = self._queued, []
                lost, self._lost = self._lost, 0
                self._sending = True
            if lost:
                batch.insert(0, f"({lost} log lines were lost here: the server was away or slow)")
            try:
                self.log.append(batch)
            except Exception:  # StoreError, or anything else: the sender goes on, and counts
                lost = len(batch)
            else:
                lost = 0
            with self._changed:
                self._lost += lost
                self._sending = False
                self._changed.notify_all()

    def flush(self) -> None:
        """Wait (up to ``FLUSH_TIMEOUT``) until every queued line was sent."""
        deadline = time.monotonic() + FLUSH_TIMEOUT
        with self._changed:
            while (self._queued or self._sending) and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(left)

    def close(self) -> None:
        """Send what is queued (up to ``FLUSH_TIMEOUT``), then end the thread."""
        self.flush()
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(FLUSH_TIMEOUT)
        super().close()
