"""Cancel: raise ``Cancelled`` inside the running handler, out of band.

A cancel arrives on the control thread (a pipe command), from the handler watchdog,
or as SIGUSR1 (seed-protocol workers). It is raised in the main thread only while
a handler runs (a *cancellable region*), never inside the runtime's own commit and
ack code, and only for the message that was being handled when it was asked for.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from typing import Any, Callable

from ..control import CANCEL_SIGNAL, STOP_SIGNAL
from ..errors import Cancelled
from ..threads import start_thread

log = logging.getLogger(__name__)

#: A pending cancel is signalled again this often (seconds) ...
CANCEL_RESIGNAL_EVERY = 0.02
#: ... for at most this long (a handler stuck in C code cannot be interrupted anyway).
CANCEL_RESIGNAL_FOR = 5.0


class Cancellation:
    """The cancel state of one worker. Create it on the worker's main thread."""

    def __init__(self, actor_id: str) -> None:
        self.actor_id = actor_id
        #: A cancel was requested and not yet raised (``Actor.cancelled`` reads it).
        self.pending = False
        #: Id of the message claimed for handling now (None between messages).
        self.handling: str | None = None
        self._cancellable = False
        self._target: str | None = None  # the message a pending cancel is for
        self._in_flight: str | None = None  # the message being re-signalled for
        self._resignalling = False
        self._lock = threading.RLock()  # RLock: taken inside a signal handler too
        self._main_ident = threading.get_ident()
        self._signals_installed = False
        self._done = threading.Event()
        self._region = _Region(self)

    def install_signal_handlers(self, stop: Callable[[str], None], stopping: Callable[[], bool]) -> None:
        """Route SIGUSR1 (cancel) here and SIGTERM to ``stop``; a second SIGTERM, once
        ``stopping()``, cancels the handler too. Call from the main thread."""

        def on_stop_signal(signum: int, frame: Any) -> None:
            if stopping():  # a second SIGTERM escalates: cancel the handler too
                stop("terminated")
                self._on_signal(signum, frame)
            stop("terminated")

        signal.signal(CANCEL_SIGNAL, self._on_signal)
        signal.signal(STOP_SIGNAL, on_stop_signal)
        self._signals_installed = True

    def request(self) -> None:
        """Interrupt the running handler with ``Cancelled`` (any thread; no-op when idle).

        The cancel is meant for the message being handled when it is requested, even
        if its handler has not quite started yet; one sent to an idle actor is dropped.
        """
        self._target = self.handling
        self.pending = True
        if threading.get_ident() == self._main_ident:
            self.raise_if_cancellable()
        elif self._signals_installed:
            self._signal_until_seen(self._target)

    def _on_signal(self, signum: int, frame: Any) -> None:
        in_flight = self._in_flight
        if in_flight is not None:  # one of our (re-)signals, for that message only
            if in_flight == self.handling:
                self.raise_if_cancellable()
            return
        if not self.pending:  # a SIGUSR1 from outside (seed-protocol workers)
            self._target = self.handling
        self.pending = True
        self.raise_if_cancellable()
        self._signal_until_seen(self._target)

    def _signal_until_seen(self, target: str | None) -> None:
        """Signal the main thread until the handler of ``target`` took the cancel.

        CPython can miss a signal that lands just before a blocking call begins (the
        handler's ``time.sleep`` would then sleep on), so one signal is not enough:
        a helper thread signals again every ``CANCEL_RESIGNAL_EVERY`` seconds while the
        cancel is pending and ``target`` is still being handled. While it runs, the
        signal handler ignores signals for any other message.
        """
        if target is None:
            return  # idle: nothing to interrupt
        with self._lock:
            self._in_flight = target  # a running re-signaller takes the new target over
            if self._resignalling:
                return
            self._resignalling = True
        start_thread(self._resignal, f"cancel-{self.actor_id}")

    def _resignal(self) -> None:
        target, deadline = None, 0.0
        while True:
            with self._lock:
                if self._in_flight != target:
                    target, deadline = self._in_flight, time.monotonic() + CANCEL_RESIGNAL_FOR
            if self.pending and self.handling == target and time.monotonic() < deadline:
                signal.pthread_kill(self._main_ident, CANCEL_SIGNAL)
                self._done.wait(CANCEL_RESIGNAL_EVERY)
                continue
            self._done.wait(CANCEL_RESIGNAL_EVERY)  # the last signal lands while in flight
            with self._lock:
                if self._in_flight == target:  # no new cancel meanwhile: done
                    self._in_flight = None
                    self._resignalling = False
                    return

    def raise_if_cancellable(self) -> None:
        if self._cancellable and self.pending:
            self.pending = False
            raise Cancelled(self.actor_id)

    def shielded(self) -> contextlib.AbstractContextManager[None]:
        """A block a cancel cannot interrupt; a cancel requested inside is raised at its end."""
        return _Shielded(self)

    def region(self) -> contextlib.AbstractContextManager[None]:
        """Where a cancel may be raised: a handler (or ``on_start``/``on_stop``) runs."""
        return self._region

    def close(self) -> None:
        """Stop re-signalling (the worker is done)."""
        self._done.set()


# The two blocks are classes rather than generator context managers: one of each is
# entered per message, and a generator costs several Python frames more per use.


class _Shielded:
    """``Cancellation.shielded``: one per use (it keeps what it restores)."""

    __slots__ = ("_owner", "_previous")

    def __init__(self, owner: Cancellation) -> None:
        self._owner = owner
        self._previous = False

    def __enter__(self) -> None:
        owner = self._owner
        self._previous = owner._cancellable
        owner._cancellable = False

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        owner = self._owner
        owner._cancellable = self._previous
        if exc_type is None:
            owner.raise_if_cancellable()


class _Region:
    """``Cancellation.region``: it keeps nothing, so one serves every use."""

    __slots__ = ("_owner",)

    def __init__(self, owner: Cancellation) -> None:
        self._owner = owner

    def __enter__(self) -> None:
        owner = self._owner
        if owner._target is None or owner._target != owner.handling:
            owner.pending = False  # meant for an earlier message, or for none
        owner._cancellable = True
        try:
            owner.raise_if_cancellable()  # a cancel that came while the message was being set up
        except BaseException:
            owner._cancellable = False
            raise

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._owner._cancellable = False
