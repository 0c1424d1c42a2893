"""``ActorRef``: a handle on an actor that works in the parent and inside actors."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from actors_runtime.address import Address
from actors_runtime.errors import ActorError

if TYPE_CHECKING:
    from ._system import ActorSystem

# The worker side: set once per worker process when its actor is bound.
_worker_actor: Any = None
# The parent side: systems running in this process, for refs that arrive unbound
# (unpickled, or built with ActorRef.from_dict).
_live_systems: "list[ActorSystem]" = []


def _bind_worker_actor(actor: Any) -> None:
    global _worker_actor
    _worker_actor = actor


class ActorRef:
    """Names one actor; sends to it through whichever runtime holds the ref.

    In the parent a ref is bound to its ``ActorSystem``; inside an actor it sends as
    that actor (so replies and message ids follow the actor's rules). Refs pickle and
    encode to JSON, so they travel inside messages, and compare by address.
    """

    __slots__ = ("_address", "_system")

    def __init__(self, address: Address, system: "ActorSystem | None" = None) -> None:
        self._address = address
        self._system = system

    @property
    def name(self) -> str:
        """The actor's id."""
        return self._address.name

    @property
    def address(self) -> Address:
        """Where its mailbox is (home, project, system, id)."""
        return self._address

    def __actor_address__(self) -> Address:
        return self._address

    def _runtime(self) -> Any:
        """The system or worker-side actor that sends for this ref."""
        if self._system is not None:
            return self._system
        if _worker_actor is not None:
            return _worker_actor
        for system in reversed(_live_systems):
            if system.serves(self._address):
                self._system = system
                return system
        raise ActorError(f"the ref to {self.name!r} is not bound to a running system or actor")

    def tell(self, payload: Any, *, block_timeout: float | None = 0.0) -> str:
        """Send ``payload`` (JSON data, a dataclass, refs); returns the message id.

        Returns once the message is durable in the actor's mailbox (at-least-once
        delivery; the actor applies it once).

        Raises:
            MailboxFull: the mailbox is full and no room came within ``block_timeout``.
            ActorNotFound: there is no such actor.
        """
        return self._runtime().tell(self, payload, block_timeout=block_timeout)

    def tell_async(self, payload: Any, *, block_timeout: float | None = 0.0) -> "Future[str]":
        """Send without waiting for the disk; the ``Future`` gets the message id once
        it is durable (see ActorSystem.tell_async: in-flight sends share flushes).

        Inside an actor this is a ``tell`` (durable on return) with a done ``Future``.
        """
        runtime = self._runtime()
        if runtime is _worker_actor:
            return done_future(runtime.tell(self, payload, block_timeout=block_timeout))
        return runtime.tell_async(self, payload, block_timeout=block_timeout)

    def tell_many(self, payloads: list[Any], *, block_timeout: float | None = 0.0) -> list[str]:
        """Send several payloads in order; one flush to disk for all (see ActorSystem.tell_many).

        Inside an actor this is a ``tell`` per payload (same guarantee, no group commit).
        """
        runtime = self._runtime()
        if runtime is _worker_actor:
            return [runtime.tell(self, payload, block_timeout=block_timeout) for payload in payloads]
        return runtime.tell_many(self, payloads, block_timeout=block_timeout)

    def ask(self, question: Any, *, timeout: float | None = 30.0, mode: str = "query") -> Any:
        """Ask and wait for the answer (``mode`` "query" or "steer", see ActorSystem.ask).

        Raises:
            AskTimeout: no answer within ``timeout``. ActorFailed: the handler raised.
            Cancelled: the handler was cancelled.
        """
        return self._runtime().ask(self, question, timeout=timeout, mode=mode)

    def ask_async(self, question: Any, *, mode: str = "query") -> "Future[Any]":
        """Ask without waiting; returns a ``concurrent.futures.Future`` (parent side only)."""
        runtime = self._runtime()
        if runtime is _worker_actor:
            raise ActorError("ask_async is for the parent process; inside an actor use ask()")
        return runtime.ask_async(self, question, mode=mode)

    def cancel(self) -> None:
        """Interrupt the handler the actor is running now (its message is acked)."""
        self._runtime().cancel(self)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the actor after its current message; pending messages stay on disk."""
        self._runtime().stop(self, timeout=timeout)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (also what travels inside messages)."""
        return self._address.to_dict()

    @classmethod
    def from_dict(cls, doc: Any, system: "ActorSystem | None" = None) -> "ActorRef":
        """Rebuild a ref from :meth:`to_dict` (validating every path component)."""
        return cls(Address.from_dict(doc), system)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ActorRef.from_dict, (self.to_dict(),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other._address == self._address

    def __hash__(self) -> int:
        return hash(self._address)

    def __repr__(self) -> str:
        return f"ActorRef({self.name!r}, system={self._address.system_id!r})"


def done_future(value: Any) -> "Future[Any]":
    """A ``Future`` that already holds ``value``."""
    future: Future[Any] = Future()
    future.set_result(value)
    return future
