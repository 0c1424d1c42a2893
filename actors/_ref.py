"""``ActorRef``: a handle on an actor that works in the parent and inside actors."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import datetime
from typing import Any

from actors_runtime.address import Address
from actors_runtime.threads import done_future

from . import _binding


class ActorRef:
    """Names one actor; sends to it through whichever runtime holds the ref.

    In the parent a ref is bound to its ``ActorSystem``; inside an actor it sends as
    that actor (so replies and message ids follow the actor's rules). Refs pickle and
    encode to JSON, so they travel inside messages, and compare by address.
    """

    __slots__ = ("_address", "_system")

    def __init__(self, address: Address, system: Any = None) -> None:
        self._address = address
        self._system = system

    @property
    def name(self) -> str:
        """The actor's id."""
        return self._address.name

    @property
    def address(self) -> Address:
        """Where its mailbox is (backend location, project, system, id)."""
        return self._address

    def __actor_address__(self) -> Address:
        return self._address

    def _runtime(self) -> Any:
        """The system or worker-side actor that sends for this ref.

        Raises:
            UnboundRef: nothing in this process can send to it.
        """
        if self._system is not None:
            return self._system
        runtime = _binding.runtime_for(self._address)
        if runtime is not _binding.worker_side():
            self._system = runtime
        return runtime

    def _in_worker(self, runtime: Any) -> bool:
        return runtime is _binding.worker_side()

    def tell(self, payload: Any, *, block_timeout: float | None = 0.0, delay: float | None = None,
             at: datetime | None = None) -> str:
        """Send ``payload`` (JSON data, a dataclass, refs); returns the message id.

        Returns once the message is durable in the actor's mailbox (at-least-once
        delivery; the actor applies it once). With ``delay`` (seconds) or ``at`` (an
        aware ``datetime``) the actor handles it at that time, not before; it is
        durable at once all the same, and a cold actor is activated to keep it.

        Raises:
            MailboxFull: the mailbox is full and no room came within ``block_timeout``.
            ActorNotFound: there is no such actor.
            InvalidSpec: a negative or NaN delay, a naive datetime, or both given.
        """
        if delay is None and at is None:
            return self._runtime().tell(self, payload, block_timeout=block_timeout)  # type: ignore[no-any-return]
        return self._runtime().tell(self, payload, block_timeout=block_timeout,  # type: ignore[no-any-return]
                                    delay=delay, at=at)

    def tell_async(self, payload: Any, *, block_timeout: float | None = 0.0) -> "Future[str]":
        """Send without waiting for the disk; the ``Future`` gets the message id once
        it is durable (see ActorSystem.tell_async: in-flight sends share flushes).

        Inside an actor this is a ``tell`` (it leaves when the turn commits) with a
        done ``Future``.
        """
        runtime = self._runtime()
        if self._in_worker(runtime):
            return done_future(runtime.tell(self, payload, block_timeout=block_timeout))
        return runtime.tell_async(self, payload, block_timeout=block_timeout)  # type: ignore[no-any-return]

    def tell_many(self, payloads: list[Any], *, block_timeout: float | None = 0.0) -> list[str]:
        """Send several payloads in order; one flush to disk for all (see ActorSystem.tell_many).

        Inside an actor this is a ``tell`` per payload (they leave, in order, when the
        turn commits).
        """
        runtime = self._runtime()
        if self._in_worker(runtime):
            return [runtime.tell(self, payload, block_timeout=block_timeout) for payload in payloads]
        return runtime.tell_many(self, payloads, block_timeout=block_timeout)  # type: ignore[no-any-return]

    def ask(self, question: Any, *, timeout: float | None = 30.0, mode: str = "query") -> Any:
        """Ask and wait for the answer (``mode`` "query" or "steer", see ActorSystem.ask).

        Raises:
            AskTimeout: no answer within ``timeout``. ActorFailed: the handler raised.
            Cancelled: the handler was cancelled.
        """
        return self._runtime().ask(self, question, timeout=timeout, mode=mode)

    def ask_async(self, question: Any, *, mode: str = "query") -> "Future[Any]":
        """Ask without waiting; returns a ``concurrent.futures.Future`` with the answer.

        Inside an actor this is ``Actor.ask_async``: the question leaves at once and
        Futures the handler has not collected when it returns are cancelled.
        """
        return self._runtime().ask_async(self, question, mode=mode)  # type: ignore[no-any-return]

    def cancel(self) -> None:
        """Interrupt the handler the actor is running now (its message is acked)."""
        self._runtime().cancel(self)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the actor after its current message; pending messages stay stored."""
        self._runtime().stop(self, timeout=timeout)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (also what travels inside messages)."""
        return self._address.to_dict()

    @classmethod
    def from_dict(cls, doc: Any, system: Any = None) -> "ActorRef":
        """Rebuild a ref from :meth:`to_dict` (validating every component)."""
        return cls(Address.from_dict(doc), system)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ActorRef.from_dict, (self.to_dict(),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other._address == self._address

    def __hash__(self) -> int:
        return hash(self._address)

    def __repr__(self) -> str:
        return f"ActorRef({self.name!r}, system={self._address.system_id!r})"

