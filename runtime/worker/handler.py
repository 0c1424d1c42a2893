"""What the worker drives (``Handler``) and what a handler may do (``Context``).

``actors.Actor`` implements ``Handler``; the runtime never imports it. Tests may
drive the worker with any object that satisfies the protocol.
"""

from __future__ import annotations

import contextlib
import importlib
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..address import Address
from ..errors import InvalidSpec, SpawnError
from ..messages import AskBody, AskMode, InboxKind, InboxMessage
from ..spec import ProvisionSpec
from .dispatch import is_query
from .timers import check_name

if TYPE_CHECKING:
    from .activation import Worker


class Handler(Protocol):
    """The actor object the worker drives (all calls on the worker's main thread)."""

    def bind_context(self, context: "Context") -> None: ...
    def restore_state(self, state: dict[str, Any]) -> None: ...
    def snapshot_state(self) -> dict[str, Any]: ...
    def on_start(self) -> None: ...
    def on_stop(self) -> None: ...
    def dispatch(self, message: InboxMessage) -> Any: ...
    def on_failure(self, exc: BaseException, message: InboxMessage) -> None: ...


def import_class(path: str) -> type:
    """Import ``module:qualname``.

    Raises:
        SpawnError: the module or the attribute cannot be found (naming which).
    """
    module_name, _, qualname = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is a spawn failure
        raise SpawnError(path, f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise SpawnError(path, f"module {module_name!r} has no {qualname!r}") from None
    if not isinstance(target, type):
        raise SpawnError(path, f"{qualname!r} is not a class")
    return target


def _same(value: Any) -> Any:
    return value


class Context:
    """What a handler can do, bound to the running worker (``Actor`` wraps it).

    All methods run in the worker process, on its main thread, inside a handler
    (or ``on_start`` / ``on_stop``).
    """

    def __init__(self, worker: "Worker") -> None:
        self._worker = worker
        spec = worker.spec
        self.actor_id: str = spec.identity.child_id
        self.system_id: str = spec.identity.system_id
        self.role: str | None = spec.identity.role
        self.address: Address = worker.address
        self.spec: ProvisionSpec = spec
        self.secrets: dict[str, Any] = spec.secrets
        #: The worker has finished: nothing can be sent as this actor any more.
        self.closed = False

    @property
    def name(self) -> str:
        """The actor's id (``actor_id``)."""
        return self.actor_id

    @property
    def current(self) -> InboxMessage | None:
        """The message being handled (``None`` in ``on_start`` / ``on_stop``)."""
        return self._worker.outbox.current

    @property
    def cancelled(self) -> bool:
        """Whether a cancel of the running handler was requested (for polling code)."""
        return self._worker.cancellation.pending

    def send(self, target: Address, kind: str, body: Any, *, correlation_id: str | None = None,
             block_timeout: float | None = 0.0, deliver_at: float | None = None) -> str:
        """Deliver a message from this actor; returns its id (durable on return).
        With ``deliver_at`` (unix seconds) the receiver handles it then, not before."""
        return self._worker.outbox.send(target, kind, body, correlation_id=correlation_id,
                                        block_timeout=block_timeout, deliver_at=deliver_at)

    # -- timers (see ``timers``) -------------------------------------------------------------

    def now(self) -> float:
        """Unix seconds by the worker's clock (what timers are due against)."""
        return self._worker.clock()

    def remind(self, name: str, due: float, period: float | None, payload: Any) -> None:
        """Set reminder ``name`` (due: unix seconds); committed with the running turn.

        Raises:
            InvalidSpec: a bad name, or called while answering a query (which changes nothing).
        """
        self._check_not_query("remind")
        self._worker.state.timers.set(check_name(name), due, period, payload)

    def forget(self, name: str) -> bool:
        """Remove reminder ``name`` (committed with the turn); returns whether it existed."""
        self._check_not_query("forget")
        return self._worker.state.timers.forget(check_name(name))

    def reminders(self) -> list[dict[str, Any]]:
        """The reminders and delayed messages as the running turn sees them (see
        ``TimerTable.listing``), earliest first."""
        return self._worker.state.timers.listing()

    def _check_not_query(self, what: str) -> None:
        current = self.current
        if current is not None and is_query(current):
            raise InvalidSpec(what, "an ask in 'query' mode changes nothing (ask with mode='steer')")

    def ask(self, target: Address, question: Any, *, mode: str = AskMode.QUERY.value,
            timeout: float | None = 30.0) -> Any:
        """Ask another actor and wait for its answer; other messages stay queued.

        Raises:
            AskTimeout: no reply in time. ActorFailed: the handler raised there.
            Cancelled: the question was cancelled there, or this handler was.
            InvalidSpec: asked itself (that could never be answered).
        """
        if target == self.address:
            raise InvalidSpec("ask", f"{self.actor_id!r} cannot ask itself from inside a handler")
        msg_id = self.send(target, InboxKind.ASK.value, AskBody(question, mode).to_body())
        return self._worker.outbox.await_reply(msg_id, timeout, target.name)

    def ask_async(self, target: Address, question: Any, *, mode: str = AskMode.QUERY.value,
                  timeout: float | None = 30.0) -> "Future[Any]":
        """Ask another actor without waiting; the answer resolves the Future.

        The ask leaves at once. Futures the handler has not collected when it returns
        are cancelled (see ``fanout``).

        Raises:
            InvalidSpec: asked itself.
        """
        if target == self.address:
            raise InvalidSpec("ask", f"{self.actor_id!r} cannot ask itself from inside a handler")
        return self._worker.outbox.ask_async(target, AskBody(question, mode).to_body(), timeout)

    def step(self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
             encode: Callable[[Any], Any] = _same, decode: Callable[[Any], Any] = _same) -> Any:
        """Run ``fn`` as a journaled step of the running turn (see ``journal``).

        Raises:
            WrongContext: not inside a handler. StepFailed: a recorded error that could
                not be rebuilt. Exception: what ``fn`` raised, now or in a recorded run.
        """
        return self._worker.journal.run(name, fn, args, kwargs, encode, decode)

    @property
    def step_key(self) -> str | None:
        """The key of the step whose function runs now: the same on every run of the
        turn, for ``fn`` to pass on as an idempotency key (``None`` outside a step)."""
        return self._worker.journal.running_key

    def call_host(self, tool: str, arguments: dict[str, Any], timeout: float | None = 60.0) -> Any:
        """Call a function the system exposed; returns its result.

        Raises:
            ActorFailed: the tool raised (or does not exist). AskTimeout: no answer in time.
        """
        msg_id = self.send(self.address.system_inbox, InboxKind.MCP_REQUEST.value,
                           {"tool": tool, "arguments": arguments})
        return self._worker.outbox.await_reply(msg_id, timeout, f"host tool {tool}")

    def shielded(self) -> contextlib.AbstractContextManager[None]:
        """A block a cancel cannot interrupt; a cancel requested inside is raised at its end."""
        return self._worker.cancellation.shielded()
