"""Asks a handler makes without waiting: ``ask_async`` returns a Future.

::

    handler: ask_async(a), ask_async(b)   -> the asks leave at once (ids derived from the turn)
    pump thread (while any is expected)   -> mailbox.take(replies) -> stash -> resolve the Futures
    handler: fa.result(), fb.result()     -> answers, in whatever order they came
    end of the turn                       -> Futures still unresolved are cancelled; the pump stops

One thread, started by the first ``ask_async`` of a turn, takes every reply out of
the mailbox while Futures wait; a plain ``ask`` made meanwhile waits on a Future of
its own instead of on the mailbox, so exactly one thread waits on the mailbox.
A reply a turn consumed is acked with the batch that committed it (as for ``ask``):
a turn that runs again after a crash re-sends its asks with the same ids, the peers
drop those as repeats, and the answers are found again in the mailbox.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ..errors import AskTimeout
from ..threads import start_thread

if TYPE_CHECKING:
    from .replies import Outbox


class _Expected:
    __slots__ = ("future", "who", "timeout", "deadline")

    def __init__(self, future: "Future[Any]", who: str, timeout: float | None) -> None:
        self.future, self.who, self.timeout = future, who, timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout


class ReplyPump:
    """Resolves the Futures of one worker's pending asks from its mailbox."""

    def __init__(self, outbox: "Outbox") -> None:
        self.outbox = outbox
        self.lock = threading.Lock()
        self._expected: dict[str, _Expected] = {}
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def expect(self, correlation_id: str, who: str, timeout: float | None) -> "Future[Any]":
        """A Future for the reply to ``correlation_id``; starts the pump if needed."""
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        with self.lock:
            self._expected[correlation_id] = _Expected(future, who, timeout)
            self._resolve_stashed()
            if self._thread is None and self._expected:
                self._thread = start_thread(self._run, f"actors-replies-{self.outbox.address.name}")
        return future

    def end_turn(self) -> None:
        """Cancel the Futures nobody collected and stop the pump (main thread)."""
        with self.lock:
            thread = self._thread
            for expected in self._expected.values():
                expected.future.cancel()
            self._expected.clear()
        if thread is not None:
            self.outbox.mailbox.wake()
            thread.join()
            self.outbox.looked = True  # it may have taken the loop's wake-up: look first

    def _run(self) -> None:
        outbox = self.outbox
        while True:
            with self.lock:
                outbox.take_into_stash()
                self._resolve_stashed()
                wait = self._expire()
                if not self._expected:
                    self._thread = None
                    return
            outbox.mailbox.wait(wait)

    def _resolve_stashed(self) -> None:
        """Resolve every expected Future whose reply is stashed (hold ``lock``)."""
        outbox = self.outbox
        for correlation_id in [c for c in self._expected if c in outbox.stash]:
            expected = self._expected.pop(correlation_id)
            delivered = outbox.stash.pop(correlation_id)
            outbox.consumed.append(delivered)
            try:
                expected.future.set_result(outbox.answer_of(delivered, expected.who))
            except BaseException as exc:  # the reply carries an error: it is the result
                expected.future.set_exception(exc)

    def _expire(self) -> float:
        """Fail the Futures past their deadline; seconds until the next one (hold ``lock``)."""
        now = time.monotonic()
        wait = self.outbox.sweep_interval
        for correlation_id, expected in list(self._expected.items()):
            if expected.deadline is None:
                continue
            if expected.deadline <= now:
                del self._expected[correlation_id]
                expected.future.set_exception(AskTimeout(expected.who, expected.timeout))
            else:
                wait = min(wait, expected.deadline - now)
        return wait
