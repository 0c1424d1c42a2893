"""``Actor``: the class users subclass, and ``receive`` for typed handlers."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import typing
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar, TypeVar

from actors_runtime import control
from actors_runtime.address import Address
from actors_runtime.due import deliver_at, due_from, period_of
from actors_runtime.errors import ActorFailed, InvalidSpec, NoHandler, SpawnError, WrongContext
from actors_runtime.messages import AskMode, InboxKind, InboxMessage, check_mode
from actors_runtime.worker import Context

from . import _binding
from ._codec import TYPED, decode, encode, imported_type, type_tag
from ._options import exception_names
from ._ref import ActorRef
from ._timers import Reminder

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_RECEIVE_MARK = "__actors_receive__"


def receive(method: F) -> F:
    """Mark a method as the handler of one payload type.

    The method's first parameter (after ``self``) must be annotated with a dataclass
    (dataclass-json or plain). A ``tell`` or ``ask`` carrying an instance of that type
    is dispatched to it; the value it returns answers an ask::

        @dataclass_json
        @dataclass
        class Deposit:
            amount: int

        class Account(Actor):
            @receive
            def deposit(self, d: Deposit, msg):
                self.state["balance"] = self.state.get("balance", 0) + d.amount

    Only types declared this way are ever resolved from a message's type tag, so a
    message cannot make the actor import a module it names.
    """
    setattr(method, _RECEIVE_MARK, True)
    return method


def _declared_type(cls: type, name: str, method: Callable[..., Any]) -> type:
    hints = typing.get_type_hints(method)
    params = [p for p in inspect.signature(method).parameters.values()][1:]
    if not params or params[0].name not in hints:
        raise InvalidSpec("handler", f"{cls.__qualname__}.{name} needs an annotated first parameter")
    payload_type = hints[params[0].name]
    if not (isinstance(payload_type, type) and dataclasses.is_dataclass(payload_type)):
        raise InvalidSpec("handler", f"{cls.__qualname__}.{name}: {payload_type!r} is not a dataclass")
    return payload_type


class Actor:
    """Base class of actors. Subclass it and write plain synchronous handlers.

    Each actor runs in its own worker process and handles one message at a time.
    ``self.state`` (a JSON-able dict) is committed to disk with the ids of the
    messages applied, after each batch and before those messages are acked, so a
    crash never loses a message nor applies one twice to the state.

    Hooks (all run in the actor's worker process):

    - ``on_start()`` after the state is restored, before any message;
    - ``on_task(body, msg)`` for ``tell``;
    - ``on_ask(question, msg)`` for ``ask``; the return value is the answer;
    - ``on_handoff(body, msg)`` for work handed over by another actor;
    - ``receive(msg)`` for anything else (the default of the three above);
    - ``on_failure(exc, msg)`` after a handler raised;
    - ``on_stop()`` on a clean stop (not after a crash).

    The methods ``bind_context``, ``restore_state``, ``snapshot_state`` and
    ``dispatch`` connect the actor to the runtime; do not override them.
    """

    #: Payload tag -> (type, method name), collected from @receive methods.
    _typed_handlers: ClassVar[dict[str, tuple[type, str]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, tuple[type, str]] = {}
        for base in reversed(cls.__mro__[1:]):
            handlers.update(getattr(base, "_typed_handlers", {}))
        for name, member in vars(cls).items():
            if getattr(member, _RECEIVE_MARK, False):
                payload_type = _declared_type(cls, name, member)
                handlers[type_tag(payload_type)] = (payload_type, name)
        cls._typed_handlers = handlers

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self._context: Context | None = None

    # -- the runtime protocol ------------------------------------------------------------

    def bind_context(self, context: Context) -> None:
        """Called by the worker before ``on_start``."""
        self._context = context
        _binding.bind_worker(_WorkerSide(self))

    def restore_state(self, state: dict[str, Any]) -> None:
        """Called by the worker with the last committed state."""
        self.state = state

    def snapshot_state(self) -> dict[str, Any]:
        """Called by the worker at commit."""
        if not isinstance(self.state, dict):
            raise WrongContext(f"{self.name!r}", f"self.state must stay a dict, not {type(self.state).__name__}")
        return self.state

    def dispatch(self, message: InboxMessage) -> Any:
        """Route one message to its handler; the return value answers an ask."""
        kind = message.kind
        if kind == InboxKind.TASK:
            body = self._decode(message.body)
            typed = self._typed_method(body)
            return typed(body, message) if typed else self.on_task(body, message)
        if kind == InboxKind.ASK:
            raw = message.body.get("question") if isinstance(message.body, dict) else None
            question = self._decode(raw)
            typed = self._typed_method(question)
            answer = typed(question, message) if typed else self.on_ask(question, message)
            return encode(answer)
        if kind == InboxKind.HANDOFF:
            return self.on_handoff(self._decode(message.body), message)
        return self.receive(message)

    def _decode(self, value: Any) -> Any:
        if not isinstance(value, (dict, list)):
            return value
        handlers = self._typed_handlers
        context = self._require_context()
        return decode(value, lambda tag: handlers[tag][0] if tag in handlers else None,
                      lambda address: ActorRef(address) if address != context.address else self.ref)

    def _typed_method(self, value: Any) -> Callable[[Any, InboxMessage], Any] | None:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            entry = self._typed_handlers.get(type_tag(type(value)))
            if entry is not None:
                method: Callable[[Any, InboxMessage], Any] = getattr(self, entry[1])
                return method
        elif isinstance(value, dict) and TYPED in value:
            raise NoHandler(type(self).__qualname__, f"payloads of type {value[TYPED]}")
        return None

    # -- hooks -----------------------------------------------------------------------------

    def on_start(self) -> None:
        """Runs in the worker after the state is restored, before the first message."""

    def on_stop(self) -> None:
        """Runs in the worker on a clean stop (stop request, idle timeout, parent gone)."""

    def on_failure(self, exc: BaseException, msg: InboxMessage) -> None:
        """Runs in the worker after a handler raised ``exc`` on ``msg`` (already logged,
        retries spent). ``self.state`` is as it was before ``msg``: the failed turn
        changed nothing. What this hook changes or sends is kept, with the message."""

    def on_task(self, body: Any, msg: InboxMessage) -> None:
        """Runs in the worker for each ``tell``; defaults to ``receive``."""
        self.receive(msg)

    def on_ask(self, question: Any, msg: InboxMessage) -> Any:
        """Runs in the worker for each ``ask``; returns the answer. Defaults to ``receive``."""
        return self.receive(msg)

    def on_handoff(self, body: Any, msg: InboxMessage) -> None:
        """Runs in the worker when another actor hands work over; defaults to ``receive``."""
        self.receive(msg)

    def receive(self, msg: InboxMessage) -> Any:
        """Runs in the worker for messages no other handler takes; the default raises."""
        raise NoHandler(type(self).__qualname__, f"{msg.kind!r} messages")

    # -- what a handler can use ----------------------------------------------------------------

    def _require_context(self) -> Context:
        if self._context is None:
            raise WrongContext(type(self).__qualname__, "this actor is not running in a worker (use ActorSystem.spawn)")
        return self._context

    @property
    def name(self) -> str:
        """This actor's id."""
        return self._context.actor_id if self._context else type(self).__name__

    @property
    def role(self) -> str | None:
        """The role given at spawn, if any."""
        return self._require_context().role

    @property
    def ref(self) -> ActorRef:
        """A ref to this actor, to hand to others."""
        return ActorRef(self._require_context().address)

    @property
    def sender(self) -> ActorRef | None:
        """Who sent the message being handled (an actor, or the system), else ``None``."""
        context = self._require_context()
        current = context.current
        if current is None:
            return None
        return ActorRef(context.address.reply_address(current.sender))

    @property
    def secrets(self) -> dict[str, Any]:
        """Values passed to ``spawn(secrets=...)``; kept in memory only."""
        return self._require_context().secrets

    @property
    def cancelled(self) -> bool:
        """Whether a cancel of the running handler was requested.

        Handlers in Python loops or ``time.sleep`` are interrupted with ``Cancelled``
        anyway; code blocked in C (a socket read) can poll this between steps.
        """
        return self._require_context().cancelled

    def _address_of(self, target: ActorRef | str) -> Address:
        context = self._require_context()
        if isinstance(target, ActorRef):
            return target.address
        if isinstance(target, str):
            return Address(context.address.home, context.address.project_key, context.system_id, target)
        raise InvalidSpec("target", f"{target!r} is not an ActorRef or an actor id")

    def tell(self, target: ActorRef | str, payload: Any, *, block_timeout: float | None = 0.0,
             delay: float | None = None, at: datetime | None = None) -> str:
        """Send ``payload`` to ``target`` (a ref, or an id in this system); returns its id.

        Inside a handler the message is held until the turn commits (the output
        gate): a turn that raises, is cancelled or dies sends nothing, and a turn that
        commits sends it exactly as often as it commits (once). Its id derives from the
        message being handled, so should it go out twice after a crash, the receiver
        drops the repeat. A question this turn asks afterwards leaves at once, so it can
        overtake this tell. In ``on_start``/``on_stop`` it is delivered (durable) on
        return. With ``delay`` (seconds) or ``at`` (an aware ``datetime``) the receiver
        handles it at that time, not before.

        Raises:
            ActorNotFound: no such actor.
            InvalidSpec: a bad payload, a negative/NaN delay, a naive datetime, or both.
        """
        context = self._require_context()
        when = None if delay is None and at is None else deliver_at(delay, at, context.now())
        return context.send(self._address_of(target), InboxKind.TASK.value, encode(payload),
                            block_timeout=block_timeout, deliver_at=when)

    # -- durable timers ----------------------------------------------------------------------

    def remind(self, name: str, due: float | datetime, *, period: float | None = None,
               payload: Any = None) -> None:
        """Set a durable reminder: at ``due`` this actor gets ``payload`` as a tell.

        ``due`` is seconds from now or an aware ``datetime``; with ``period`` (seconds)
        it fires again every ``period`` after that, until ``forget(name)``. Setting a
        name that exists replaces that reminder. The reminder is part of the turn: it
        is committed with the state, and a turn that does not commit never set it.
        The tick is handled like any tell (``on_task`` or a typed handler) and
        ``msg.reminder`` says which reminder, which due time and how many due times
        it stands for. See the guide's "Timers" section for the guarantees.

        Raises:
            InvalidSpec: a bad name, due time, period or payload, or called while
                answering a query (an ask in "query" mode changes nothing).
        """
        context = self._require_context()
        context.remind(name, due_from(due, context.now()), period_of(period), encode(payload))

    def forget(self, name: str) -> bool:
        """Remove reminder ``name`` (committed with the turn); returns whether it existed."""
        return self._require_context().forget(name)

    def reminders(self) -> list[Reminder]:
        """This actor's reminders as the running turn sees them, earliest first."""
        rows = self._require_context().reminders()
        return [Reminder(row["name"], datetime.fromtimestamp(row["due"], timezone.utc), row["period"],
                         self._decode(row["payload"])) for row in rows if row["kind"] == "reminder"]

    def handoff(self, target: ActorRef | str, body: Any) -> str:
        """Hand work over to ``target`` (its ``on_handoff`` runs); returns the message id.
        Like ``tell``, it leaves when the turn commits."""
        return self._require_context().send(self._address_of(target), InboxKind.HANDOFF.value, encode(body))

    def ask(self, target: ActorRef | str, question: Any, *, timeout: float | None = 30.0,
            mode: str = AskMode.QUERY.value) -> Any:
        """Ask another actor from inside a handler and wait for the answer.

        Other messages to this actor stay queued meanwhile (one message at a time).

        Raises:
            AskTimeout, ActorFailed, Cancelled: as for ``ActorSystem.ask``.
        """
        context = self._require_context()
        answer = context.ask(self._address_of(target), encode(question), mode=check_mode(mode),
                             timeout=timeout)
        return self._decode_answer(answer)

    def ask_async(self, target: ActorRef | str, question: Any, *, timeout: float | None = 30.0,
                  mode: str = AskMode.QUERY.value) -> "Future[Any]":
        """Ask another actor from inside a handler without waiting for the answer.

        The question leaves at once; the returned ``concurrent.futures.Future`` holds the
        answer (or the error ``ask`` would raise) once it comes, so one turn can ask
        several actors and gather their answers::

            futures = [self.ask_async(ref, "price?") for ref in shops]
            prices = [f.result() for f in futures]

        ``concurrent.futures.wait`` and ``as_completed`` work on them too. Futures not
        collected when the handler returns are cancelled. Like ``ask``, the question's
        id derives from the message being handled, so a turn that runs again after a
        crash gets the same answers without asking twice.

        Raises:
            InvalidSpec: asked itself.
        """
        context = self._require_context()
        inner = context.ask_async(self._address_of(target), encode(question), mode=check_mode(mode),
                                  timeout=timeout)
        outer: Future[Any] = Future()

        def decoded(done: "Future[Any]") -> None:
            if done.cancelled():
                outer.cancel()
            elif done.exception() is not None:
                outer.set_exception(done.exception())
            else:
                try:
                    outer.set_result(self._decode_answer(done.result()))
                except Exception as exc:  # a typed answer this actor cannot decode
                    outer.set_exception(exc)

        outer.set_running_or_notify_cancel()
        inner.add_done_callback(decoded)
        return outer

    def step(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` at most once for this turn, and journal what it gave.

        Inside a handler: the result (JSON data or a dataclass) or the exception of
        ``fn`` is stored durably before the handler goes on. If the turn runs again (a
        crash before its commit, a retry, a rollback), the step returns the stored
        result, or raises the stored exception, without calling ``fn``. Calls with the
        same name in one turn are told apart by their order.

        At most once holds unless the process dies *inside* ``fn``, after its effect
        and before its result was stored: then ``fn`` runs again on the re-run. Make
        that harmless by passing ``self.step_key`` (stable across runs) to the service
        as an idempotency key. A retry (``retries=``) runs failed steps again and keeps
        the results of the others.

        Raises:
            WrongContext: outside a handler. StepFailed: a stored exception that cannot
                be rebuilt in this process. TypeError: ``fn`` returned something that is
                not JSON (the call is recorded as failed).
        """
        return self._require_context().step(name, fn, args, kwargs, encode, self._decode_answer)

    @property
    def step_key(self) -> str | None:
        """While a step's function runs: its key, ``<actor>/<message id>/<name>/<n>``,
        the same on every run of the turn (an idempotency key for the service it
        calls); ``None`` otherwise."""
        return self._require_context().step_key

    def _decode_answer(self, answer: Any) -> Any:
        if not isinstance(answer, (dict, list)):
            return answer
        handlers = self._typed_handlers
        return decode(answer, lambda tag: handlers[tag][0] if tag in handlers else imported_type(tag),
                      ActorRef)

    def call_host(self, tool: str, timeout: float | None = 60.0, **arguments: Any) -> Any:
        """Call a function the parent exposed with ``ActorSystem.expose``.

        Credentials and connections stay in the parent; only arguments and the result
        (JSON data) travel.

        Raises:
            ActorFailed: the tool raised, or no tool has that name. AskTimeout.
        """
        answer = self._require_context().call_host(tool, encode(arguments), timeout=timeout)
        return self._decode_answer(answer)

    def host_tools(self, timeout: float | None = 60.0) -> list[dict[str, str]]:
        """The tools the parent exposes, as ``[{"name", "signature", "doc"}]`` sorted
        by name (what ``call_host`` can call; the system's own tools are not listed).

        Raises:
            AskTimeout: no answer in time.
        """
        answer = self._require_context().call_host(control.MANIFEST_TOOL, {}, timeout=timeout)
        return list(answer)

    def spawn(self, actor_class: type["Actor"] | str, name: str | None = None, *,
              timeout: float | None = 60.0, **options: Any) -> ActorRef:
        """Start a child actor (supervised by the system, parent recorded as this actor).

        Options are those of ``ActorSystem.spawn``. Depth is capped (default 4).

        Raises:
            SpawnError: the child could not start, or the depth cap was reached.
        """
        class_path = actor_class if isinstance(actor_class, str) else type_tag(actor_class)
        if "retry_on" in options:
            options["retry_on"] = exception_names(options["retry_on"])
        try:
            doc = self.call_host(control.SPAWN_TOOL, timeout=timeout, actor_class=class_path, name=name,
                                 parent_id=self.name, options=options)
        except ActorFailed as exc:
            if exc.type_name.rsplit(".", 1)[-1] in ("SpawnError", "InvalidSpec"):
                raise SpawnError(name or class_path, exc.message) from None
            raise
        if isinstance(doc, ActorRef):
            return doc
        return ActorRef.from_dict(doc)


class _WorkerSide:
    """How refs send from inside a worker: as the actor, through its context."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor

    @property
    def running(self) -> bool:
        """Whether the actor's worker still serves (refs may send as it)."""
        context = self.actor._context
        return context is not None and not context.closed

    def serves(self, address: Address) -> bool:
        """Whether refs to ``address`` can be sent as this actor (same project)."""
        if not self.running:
            return False
        own = self.actor._require_context().address
        return address.home == own.home and address.project_key == own.project_key

    def tell(self, ref: ActorRef, payload: Any, *, block_timeout: float | None = 0.0,
             delay: float | None = None, at: datetime | None = None) -> str:
        return self.actor.tell(ref, payload, block_timeout=block_timeout, delay=delay, at=at)

    def ask(self, ref: ActorRef, question: Any, *, timeout: float | None, mode: str) -> Any:
        return self.actor.ask(ref, question, timeout=timeout, mode=mode)

    def ask_async(self, ref: ActorRef, question: Any, *, mode: str) -> "Future[Any]":
        return self.actor.ask_async(ref, question, mode=mode)

    def cancel(self, ref: ActorRef) -> None:
        self.actor.call_host(control.CONTROL_TOOL, action="cancel", name=ref.name)

    def stop(self, ref: ActorRef, timeout: float | None = 10.0) -> None:
        self.actor.call_host(control.CONTROL_TOOL, action="stop", name=ref.name, grace=timeout)
