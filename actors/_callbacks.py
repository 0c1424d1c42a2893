"""Where user code that the system calls back runs: one thread of its own.

``on_failed`` and the done-callbacks of the futures a system hands out run on the
system's callback thread, never on the threads that read replies, flush sends or
watch children, and never under a lock: a callback that asked again, or waited for
another send, on one of those threads would wait for what only that thread can do.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any, Callable

from actors_runtime.threads import QuietExecutor

log = logging.getLogger(__name__)


def call_back_on(callbacks: QuietExecutor, system: str, fn: Callable[..., Any], *args: Any) -> None:
    def run() -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("system %s: callback %r raised", system, fn)

    try:
        callbacks.submit(run)
    except RuntimeError:  # shut down
        run()


class SystemFuture(Future):  # type: ignore[type-arg]
    """The future of an ask or a ``tell_async``. Its done-callbacks run on the
    system's callback thread: the thread that resolves it serves everyone (it reads
    replies, or flushes sends), and a callback that asked again, or waited for
    another send, there would wait for what only that thread could deliver.

    It holds the callback pool, not the system, so a system is not kept alive by
    the futures it made (nor by its backend's flusher, which makes them)."""

    def __init__(self, callbacks: QuietExecutor, system: str) -> None:
        super().__init__()
        self._callbacks, self._system = callbacks, system

    def add_done_callback(self, fn: Callable[[Future[Any]], Any]) -> None:
        callbacks, system = self._callbacks, self._system
        super().add_done_callback(lambda future: call_back_on(callbacks, system, fn, future))
