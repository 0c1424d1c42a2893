"""Background threads that leave the process's signals to its main thread.

The kernel hands a signal sent to a process to any thread that does not block it.
When that is one of our background threads, Python only notes the signal, and a
main thread blocked in a lock, ``Event.wait()`` or ``time.sleep`` is not woken: a
Ctrl-C does not become a ``KeyboardInterrupt``, a SIGTERM stop waits, a SIGUSR1
cancel leaves a sleeping handler asleep. So every thread the library starts is born
with those signals blocked: they are blocked in the creating thread around the
start (a new thread inherits the mask; blocking from inside the new thread would
leave a window), and a signal arriving meanwhile stays pending until the creator
unblocks it, then reaches it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator, TypeVar

#: Signals only the main thread should receive.
MAIN_THREAD_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGUSR1})


@contextlib.contextmanager
def main_thread_signals_blocked() -> Iterator[None]:
    """Block ``MAIN_THREAD_SIGNALS`` in the calling thread for the block's duration."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_thread(target: Callable[..., Any], name: str, *args: Any) -> threading.Thread:
    """Start a daemon thread running ``target(*args)``, born with those signals blocked."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    with main_thread_signals_blocked():
        thread.start()
    return thread


class QuietExecutor(ThreadPoolExecutor):
    """A thread pool whose threads (made on demand in ``submit``) are born with the
    main thread's signals blocked."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with main_thread_signals_blocked():
            return super().submit(fn, *args, **kwargs)


#: Objects whose attributes ``reset_after_fork`` makes afresh in a forked child.
_renewed: "weakref.WeakKeyDictionary[Any, dict[str, Callable[[], Any]]]" = weakref.WeakKeyDictionary()


def reset_after_fork(owner: Any, **factories: Callable[[], Any]) -> None:
    """Make ``owner.<name> = factory()`` afresh in every forked child, for each of
    ``factories`` (the owner sets them itself first). For locks (only the forking
    thread lives on in a child, so a lock another thread held at the fork would stay
    held there for ever) and for state that belongs to the parent's threads."""
    _renewed[owner] = factories


def _reset_in_child() -> None:
    for owner, factories in list(_renewed.items()):
        for name, factory in factories.items():
            setattr(owner, name, factory())


os.register_at_fork(after_in_child=_reset_in_child)


#: A Future's value type.
T = TypeVar("T")


def done_future(value: T) -> "Future[T]":
    """A ``Future`` that already holds ``value`` (for a call that finished at once)."""
    future: Future[T] = Future()
    future.set_result(value)
    return future
