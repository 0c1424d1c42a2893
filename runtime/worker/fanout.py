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
from concurrent.futures import Future, InvalidStateError
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
            settled = self._resolve_stashed()
            if self._thread is None and self._expected:
                self._thread = start_thread(self._run, f"actors-replies-{self.outbox.address.name}")
        _settle(settled)
        return future

    def end_turn(self) -> None:
        """Cancel the Futures nobody collected and stop the pump (main thread)."""
        with self.lock:
            thread = self._thread
            expected, self._expected = list(self._expected.values()), {}
        for item in expected:
            item.future.cancel()
        if thread is not None:
            self.outbox.mailbox.wake()
            thread.join()
            self.outbox.looked = True  # it may have taken the loop's wake-up: look first

    def _run(self) -> None:
        outbox = self.outbox
        while True:
            with self.lock:
                outbox.take_into_stash()
                settled = self._resolve_stashed() + self._expire()
                wait = self._wait()
                if not self._expected:
                    self._thread = None
            # Outside the lock: a Future's callbacks run here and may ask again.
            _settle(settled)
            if wait is None:
                return
            outbox.mailbox.wait(wait)

    def _resolve_stashed(self) -> list[tuple["Future[Any]", Any, BaseException | None]]:
        """Take every expected reply that is stashed (hold ``lock``); what to set on
        whose Future, for ``_settle`` once the lock is released."""
        outbox = self.outbox
        settled: list[tuple[Future[Any], Any, BaseException | None]] = []
        for correlation_id in [c for c in self._expected if c in outbox.stash]:
            expected = self._expected.pop(correlation_id)
            delivered = outbox.stash.pop(correlation_id)
            outbox.consumed.append(delivered)
            try:
                settled.append((expected.future, outbox.answer_of(delivered, expected.who), None))
            except BaseException as exc:  # the reply carries an error: it is the result
                settled.append((expected.future, None, exc))
        return settled

    def _expire(self) -> list[tuple["Future[Any]", Any, BaseException | None]]:
        """Fail the Futures past their deadline (hold ``lock``)."""
        now = time.monotonic()
        settled: list[tuple[Future[Any], Any, BaseException | None]] = []
        for correlation_id, expected in list(self._expected.items()):
            if expected.deadline is not None and expected.deadline <= now:
                del self._expected[correlation_id]
                settled.append((expected.future, None, AskTimeout(expected.who, expected.timeout)))
        return settled

    def _wait(self) -> float | None:
        """Seconds until the next deadline, at most a sweep; None with nothing expected
        (hold ``lock``)."""
        if not self._expected:
            return None
        now = time.monotonic()
        wait = self.outbox.sweep_interval
        for expected in self._expected.values():
            if expected.deadline is not None:
                wait = min(wait, max(0.0, expected.deadline - now))
        return wait


def _settle(settled: list[tuple["Future[Any]", Any, BaseException | None]]) -> None:
    for future, value, error in settled:
        try:
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)
        except InvalidStateError:
            pass  # cancelled by end_turn meanwhile: the turn is over

