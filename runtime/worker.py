"""The worker: one actor per process, one message at a time (DESIGN §4, §5).

::

    activate  read spec -> import class -> restore state + AdmittedSet
              -> batch = recover() (poison check: bury repeat killers) -> on_start
              -> commit -> publish AgentRecord
    loop      batch = batch or drain()           (wait on the doorbell when empty)
              for each message:  AdmittedSet.insert(id) is False -> duplicate, skip
                                 else dispatch (outgoing messages sent as it runs;
                                 an answer to the parent goes back on the pipe)
              commit: session.json = state + admitted ids, one atomic rewrite
              ack every message of the batch (and the replies its handlers consumed)
    exit      stop / parent gone / idle: commit, on_stop, withdraw, exit 0

Commit comes before ack: a crash between the two redelivers the batch, and the
AdmittedSet committed with the state drops every message already applied. A crash
before the commit loses the in-memory state changes *and* the admitted ids together,
so the batch is applied again from the last committed state. Either way each message
id changes the state exactly once.

Control arrives out of band, never through the mailbox: on the provisioning pipe
(``stop``, ``cancel``; EOF = the parent is gone) or as signals for seed-protocol
workers (SIGTERM = stop, SIGUSR1 = cancel). Cancel raises ``Cancelled`` in the main
thread only while a handler runs and never inside the runtime's own commit and ack.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import mmap
import os
import queue
import select
import signal
import sys
import threading
import time
import traceback
from typing import Any, BinaryIO, Callable, Iterator, Protocol

from .address import Address, Router, write_mailbox_config
from .admitted import DEFAULT_CAPACITY, AdmittedSet
from .durable import MACHINE, Rewriter
from .errors import (
    ActorError,
    ActorFailed,
    ActorNotFound,
    AskTimeout,
    Cancelled,
    InvalidSpec,
    SpawnError,
    StoreError,
)
from .fabric import AgentRecord, Fabric
from .mailbox import INFLIGHT, Delivered, Mailbox, drain_fd
from .messages import (
    AgentRef,
    AskBody,
    AskMode,
    InboxKind,
    InboxMessage,
    ReplyBody,
    ReplyError,
    derived_msg_id,
    new_msg_id,
    reply_error,
)
from .spec import Identity, ProvisionSpec, read_spec
from .store import ChildEntry, SessionStore
from .threads import start_thread

log = logging.getLogger(__name__)

#: Exit codes of a worker process.
EXIT_OK = 0
EXIT_BAD_SPEC = 2
EXIT_ACTIVATION_FAILED = 3
EXIT_INTERNAL = 70

#: Ids admitted since the last checkpoint are kept in session.json; past this many,
#: the whole AdmittedSet is written to admitted.json and session.json starts afresh.
#: A commit then writes ~40 B per tail id and a checkpoint ~160 KB (4,096 ids), so
#: per message ~20*T + 160,000/T bytes: smallest near T = 100.
CHECKPOINT_EVERY = 128
#: Seconds an activation waits for another process (a worker whose system died,
#: finishing its message) to let go of the actor's mailbox.
CLAIM_TIMEOUT = 5.0
#: Reply kinds: claimed by whoever waits for them, never dispatched to a handler.
REPLY_KINDS = frozenset({InboxKind.REPLY.value, InboxKind.MCP_REPLY.value})
#: First byte of a reply sent to the parent over the control pipe (events are JSON
#: objects, so they start with "{").
REPLY_PREFIX = b"R"
#: First byte of a message to an unprovisioned (pool) worker: a JSON list of modules
#: to import while it waits for its spec.
PRELOAD_PREFIX = b"I"
#: The event a pool worker answers each preload with, once it has imported them: it is
#: booted and waits for its spec.
PRELOADED = "preloaded"
#: Reserved host tool names (served by the system, not registered by users).
SPAWN_TOOL = "actors.spawn"
ACTIVATE_TOOL = "actors.activate"
CONTROL_TOOL = "actors.control"
#: Kinds whose delivery should bring a deactivated actor back.
WAKING_KINDS = frozenset({InboxKind.TASK.value, InboxKind.ASK.value, InboxKind.HANDOFF.value})

_CANCEL_SIGNAL = signal.SIGUSR1
#: A pending cancel is signalled again this often (seconds) ...
CANCEL_RESIGNAL_EVERY = 0.02
#: ... for at most this long (a handler stuck in C code cannot be interrupted anyway).
CANCEL_RESIGNAL_FOR = 5.0


class _UnencodableState(StoreError):
    """The handler's state cannot be written as JSON (nothing was written)."""


class Handler(Protocol):
    """What the worker drives. ``actors.Actor`` implements it; tests may too."""

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


class InflightMarker:
    """A 64-byte shared page naming the message being handled.

    Written to memory (no syscall), yet it survives the process: after a crash the
    next activation reads which message was running, to count poison attempts.
    """

    SIZE = 64

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            if os.fstat(fd).st_size < self.SIZE:
                os.ftruncate(fd, self.SIZE)
            self._map = mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)

    def read(self) -> str | None:
        raw = bytes(self._map[:]).rstrip(b"\0")
        return raw.decode("ascii", "replace") or None

    def set(self, msg_id: str) -> None:
        data = msg_id.encode("ascii", "replace")[: self.SIZE]
        self._map[:] = data + b"\0" * (self.SIZE - len(data))

    def clear(self) -> None:
        self._map[:1] = b"\0"

    def close(self) -> None:
        self._map.close()


def request_activation(router: Router, sender: AgentRef, target: Address, *,
                       record_path: str | None = None) -> bool:
    """Ask the system that owns ``target`` to start it, unless it has a lease record.

    For a message already delivered to an actor that may not be running: the message
    is durable either way, this only decides how soon it is handled. The owning system
    reads the request from its inbox (when it next runs). Never raises.

    Returns:
        Whether a request was sent.
    """
    if os.path.exists(record_path or target.fabric_path()):
        return False
    owner = Address(target.home, target.project_key, target.system_id, None)
    request = InboxMessage.create(sender, InboxKind.MCP_REQUEST.value,
                                  {"tool": ACTIVATE_TOOL, "arguments": {"name": target.agent_id},
                                   "no_reply": True})
    try:
        router.deliver(owner, request, block_timeout=None)
        return True
    except (ActorNotFound, StoreError) as exc:
        log.warning("could not ask system %s to activate %s: %s", target.system_id, target.name, exc)
        return False


def clear_inflight(mailbox_dir: str) -> None:
    """Forget which message was running when a worker died.

    For deliberate kills: a SIGKILL sent by an operator is no evidence that the
    message it interrupted is poison.
    """
    try:
        with open(os.path.join(mailbox_dir, INFLIGHT), "r+b") as handle:
            handle.write(b"\0")
    except OSError:
        pass


class Context:
    """What a handler can do, bound to the running worker (``Actor`` wraps it).

    All methods run in the worker process, on its main thread, inside a handler
    (or ``on_start`` / ``on_stop``).
    """

    def __init__(self, worker: "Worker") -> None:
        self._worker = worker
        spec = worker.spec
        self.name: str = spec.identity.child_id
        self.system_id: str = spec.identity.system_id
        self.role: str | None = spec.identity.role
        self.address: Address = worker.address
        self.spec: ProvisionSpec = spec
        self.secrets: dict[str, Any] = spec.secrets

    @property
    def current(self) -> InboxMessage | None:
        """The message being handled (``None`` in ``on_start`` / ``on_stop``)."""
        return self._worker.current

    @property
    def cancelled(self) -> bool:
        """Whether a cancel of the running handler was requested (for polling code)."""
        return self._worker.cancel_pending

    def send(self, target: Address, kind: str, body: Any, *, correlation_id: str | None = None,
             block_timeout: float | None = 0.0) -> str:
        """Deliver a message from this actor; returns its id (durable on return)."""
        return self._worker.send(target, kind, body, correlation_id=correlation_id,
                                 block_timeout=block_timeout)

    def ask(self, target: Address, question: Any, *, mode: str = AskMode.QUERY.value,
            timeout: float | None = 30.0) -> Any:
        """Ask another actor and wait for its answer; other messages stay queued.

        Raises:
            AskTimeout: no reply in time. ActorFailed: the handler raised there.
            Cancelled: the question was cancelled there, or this handler was.
            InvalidSpec: asked itself (that could never be answered).
        """
        if target == self.address:
            raise InvalidSpec("ask", f"{self.name!r} cannot ask itself from inside a handler")
        msg_id = self.send(target, InboxKind.ASK.value, AskBody(question, mode).to_body())
        return self._worker.await_reply(msg_id, timeout, target.name)

    def call_host(self, tool: str, arguments: dict[str, Any], timeout: float | None = 60.0) -> Any:
        """Call a function the system exposed; returns its result.

        Raises:
            ActorFailed: the tool raised (or does not exist). AskTimeout: no answer in time.
        """
        system = Address(self.address.home, self.address.project_key, self.system_id, None)
        msg_id = self.send(system, InboxKind.MCP_REQUEST.value, {"tool": tool, "arguments": arguments})
        return self._worker.await_reply(msg_id, timeout, f"host tool {tool}")

    def shielded(self) -> contextlib.AbstractContextManager[None]:
        """A block a cancel cannot interrupt; a cancel requested inside is raised at its end."""
        return self._worker.shielded()


class Worker:
    """Runs one activation of one actor. See the module docstring for the protocol."""

    def __init__(self, spec: ProvisionSpec, *, clock: Callable[[], float] = time.time) -> None:
        self.spec = spec.validate()
        ident = spec.identity
        self.name = ident.child_id
        self.durability = MACHINE if spec.durability == MACHINE else "process"
        self.store = SessionStore(spec.home, ident.project_key, self.durability)
        self.address = Address(self.store.home, ident.project_key, ident.system_id, ident.child_id)
        self.mailbox = Mailbox(self.store.mailbox_dir(ident.system_id, ident.child_id),
                               durability=self.durability, max_pending=spec.limits.max_pending)
        self.fabric = Fabric(self.store.fabric_dir, clock=clock)
        self.router = Router(self.durability)
        self.session_path = self.store.session_path(ident.system_id, ident.child_id)
        self.admitted_path = os.path.join(os.path.dirname(self.session_path), "admitted.json")
        # Commits rewrite these two files in place and swap them in: no inode is created
        # or freed per commit (see runtime.durable.Rewriter for why that matters here).
        self._session_writer = Rewriter(self.session_path, self.durability)
        self._admitted_writer = Rewriter(self.admitted_path, self.durability)
        self.current: InboxMessage | None = None
        self.cancel_pending = False
        self._cancellable = False
        self._handling: str | None = None  # id of the message claimed for handling now
        self._cancel_target: str | None = None  # the message a pending cancel is for
        self._cancel_in_flight: str | None = None  # the message being re-signalled for
        self._resignalling = False
        self._cancel_lock = threading.RLock()  # RLock: taken inside a signal handler too
        self._stop_requested = False
        self._stop_reason = ""
        self._sent_counter = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stash: dict[str, Delivered] = {}
        self._consumed: list[Delivered] = []
        self._spare_replies: list[Delivered] = []
        self._lease_stop = threading.Event()
        self._lease_lock = threading.Lock()  # a renewal never lands after the withdraw
        self._handler_deadline: float | None = None
        self._deadline_changed = threading.Condition()
        self._main_ident = threading.get_ident()
        self.handler: Handler | None = None
        self.record: AgentRecord | None = None
        self._signals_installed = False
        self._bell = self.mailbox.doorbell()
        self._bell_taken = False
        self._state_hint: str | None = None
        self._meta_json: str | None = None
        #: Sends a reply's wire bytes to the parent system over the control pipe;
        #: returns whether it could (set by the pipe launcher, None otherwise).
        self.parent_lane: Callable[[bytes], bool] | None = None
        #: Set by a launcher whose system indexes this actor itself (the pipe launcher);
        #: a worker started by hand adds itself to the index.
        self.supervised = False
        #: Set by a launcher that renews the lease record from a thread it already
        #: runs (the pipe launcher's control thread); otherwise ``run`` starts one.
        self.lease_renewed_elsewhere = False
        self._parent_inbox = Address(self.address.home, self.address.project_key, ident.system_id, None)
        self._fabric_paths: dict[Address, str] = {}

    def install_signal_handlers(self) -> None:
        """Route SIGUSR1 (cancel) and SIGTERM (stop; a second one cancels too) here.

        Call from the main thread of the worker process before ``activate``.
        """
        signal.signal(_CANCEL_SIGNAL, self._on_cancel_signal)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        self._signals_installed = True

    # -- control (any thread or signal handler) ------------------------------------------

    def request_stop(self, reason: str = "stop requested") -> None:
        """Finish the current message, commit, withdraw and exit."""
        if not self._stop_requested:
            self._stop_reason = reason
        self._stop_requested = True
        try:
            os.write(self._wake_w, b"s")
        except OSError:
            pass

    def request_cancel(self) -> None:
        """Interrupt the running handler with ``Cancelled`` (no-op when idle).

        The cancel is meant for the message being handled when it is requested, even
        if its handler has not quite started yet; one sent to an idle actor is dropped.
        """
        self._cancel_target = self._handling
        self.cancel_pending = True
        if threading.get_ident() == self._main_ident:
            self._raise_if_cancellable()
        elif self._signals_installed:
            self._signal_until_seen(self._cancel_target)

    def _on_cancel_signal(self, signum: int, frame: Any) -> None:
        in_flight = self._cancel_in_flight
        if in_flight is not None:  # one of our (re-)signals, for that message only
            if in_flight == self._handling:
                self._raise_if_cancellable()
            return
        if not self.cancel_pending:  # a SIGUSR1 from outside (seed-protocol workers)
            self._cancel_target = self._handling
        self.cancel_pending = True
        self._raise_if_cancellable()
        self._signal_until_seen(self._cancel_target)

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
        with self._cancel_lock:
            self._cancel_in_flight = target  # a running re-signaller takes the new target over
            if self._resignalling:
                return
            self._resignalling = True
        start_thread(self._resignal, f"cancel-{self.name}")

    def _resignal(self) -> None:
        target, deadline = None, 0.0
        while True:
            with self._cancel_lock:
                if self._cancel_in_flight != target:
                    target, deadline = self._cancel_in_flight, time.monotonic() + CANCEL_RESIGNAL_FOR
            if self.cancel_pending and self._handling == target and time.monotonic() < deadline:
                signal.pthread_kill(self._main_ident, _CANCEL_SIGNAL)
                self._lease_stop.wait(CANCEL_RESIGNAL_EVERY)
                continue
            self._lease_stop.wait(CANCEL_RESIGNAL_EVERY)  # the last signal lands while in flight
            with self._cancel_lock:
                if self._cancel_in_flight == target:  # no new cancel meanwhile: done
                    self._cancel_in_flight = None
                    self._resignalling = False
                    return

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        if self._stop_requested:  # a second SIGTERM escalates: cancel the handler too
            self.request_stop("terminated")
            self._on_cancel_signal(signum, frame)
        self.request_stop("terminated")

    def _raise_if_cancellable(self) -> None:
        if self._cancellable and self.cancel_pending:
            self.cancel_pending = False
            raise Cancelled(self.name)

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        previous = self._cancellable
        self._cancellable = False
        try:
            yield
        finally:
            self._cancellable = previous
        self._raise_if_cancellable()

    @contextlib.contextmanager
    def _cancellable_region(self) -> Iterator[None]:
        if self._cancel_target is None or self._cancel_target != self._handling:
            self.cancel_pending = False  # meant for an earlier message, or for none
        try:
            self._cancellable = True
            self._raise_if_cancellable()  # a cancel that came while the message was being set up
            yield
        finally:
            self._cancellable = False

    # -- activation ----------------------------------------------------------------------------

    def activate(self) -> list[Delivered]:
        """Restore, start and register; returns the recovered batch.

        Raises:
            SpawnError: another process reads this actor's mailbox, the class cannot be
                imported or instantiated, or ``on_start`` failed.
        """
        try:
            # Before anything is read or written. A worker of an earlier system may
            # still be finishing its message (its parent died): give it a moment.
            self.mailbox.claim_reader(CLAIM_TIMEOUT)
        except StoreError as exc:
            raise SpawnError(self.name, exc.reason) from None
        try:
            return self._activate()
        except BaseException:
            self.mailbox.release_reader()
            raise

    def _activate(self) -> list[Delivered]:
        cls = import_class(self.spec.actor_class)
        try:
            handler: Handler = cls()
        except Exception as exc:
            raise SpawnError(self.name, f"{self.spec.actor_class}() failed: {type(exc).__name__}: {exc}") from None
        session = self.store.load_session(self.spec.identity.system_id, self.name) or {}
        self.meta: dict[str, Any] = session.get("meta") or {}
        self.meta.update(self._identity_meta())
        ids = []
        checkpoint = self.store.read_json(self.admitted_path)
        if isinstance(checkpoint, dict):
            ids.extend(checkpoint.get("ids") or [])
        self._tail: list[str] = list(session.get("admitted") or [])
        ids.extend(self._tail)
        self.admitted = AdmittedSet.from_list(ids, DEFAULT_CAPACITY)
        handler.restore_state(session.get("state") or {})
        self._state_json = json.dumps(session.get("state") or {})
        handler.bind_context(Context(self))
        self.handler = handler
        write_mailbox_config(self.mailbox.root, self.spec.limits.max_pending)
        self.marker = InflightMarker(os.path.join(self.mailbox.root, INFLIGHT))
        recovered = self._check_poison(self.mailbox.recover())  # all of it: see _check_poison
        # Handle one batch now; the rest goes back to the mailbox's queue, where a
        # handler waiting for a reply finds it and senders count it as waiting.
        self.mailbox.give_back(recovered[self.spec.limits.batch_size:])
        recovered = recovered[:self.spec.limits.batch_size]
        try:
            with self._cancellable_region():
                handler.on_start()
        except BaseException as exc:
            raise SpawnError(self.name, f"on_start failed: {type(exc).__name__}: {exc}") from None
        try:
            self.commit()
        except _UnencodableState as exc:
            raise SpawnError(self.name, f"on_start left {exc.reason}") from None
        self._index_self()
        self.record = AgentRecord(
            agent_id=self.name, role=self.spec.identity.role, labels=list(self.spec.identity.labels),
            endpoint=self.mailbox.root, pid=os.getpid(), started_at=time.time(),
            system_id=self.spec.identity.system_id, actor_class=self.spec.actor_class,
        )
        self.fabric.publish(self.record, self.spec.limits.lease)
        return recovered

    def _index_self(self) -> None:
        """Make sure the project's index knows this actor.

        A system indexes the actors it starts (``supervised``; its recorder writes the
        entry soon after); a worker started by hand (the seed protocol) has nobody to
        do it, so it adds itself.
        """
        if self.supervised or self.store.resolve_child(self.name) is not None:
            return
        self.store.upsert_child(self.spec.identity.system_id, ChildEntry.for_spec(self.spec, status="running"))

    def _identity_meta(self) -> dict[str, Any]:
        ident = self.spec.identity
        return {
            "id": ident.child_id, "actor_class": self.spec.actor_class, "role": ident.role,
            "labels": list(ident.labels), "parent_id": ident.parent_id, "restart": self.spec.restart,
            "depth": ident.depth, "spec": self.spec.public_dict(),
        }

    def _check_poison(self, recovered: list[Delivered]) -> list[Delivered]:
        """Count the message that was running when the last activation died; bury repeat killers.

        ``recovered`` must be every unacked message: attempts are kept only for those.
        """
        crashed = self.marker.read()
        present = {d.id for d in recovered}
        attempts = {k: v for k, v in (self.meta.get("attempts") or {}).items() if k in present}
        if crashed is not None and crashed in present:
            attempts[crashed] = attempts.get(crashed, 0) + 1
            log.warning("actor %s: message %s was running when the worker died (attempt %d of %d)",
                        self.name, crashed, attempts[crashed], self.spec.limits.max_attempts)
        self.marker.clear()
        survivors = []
        for delivered in recovered:
            count = attempts.get(delivered.id, 0)
            if count >= self.spec.limits.max_attempts:
                reason = f"the worker died while handling it {count} times"
                self.bury(delivered, reason, count)
                attempts.pop(delivered.id, None)
            else:
                survivors.append(delivered)
        self.meta["attempts"] = attempts
        return survivors

    def bury(self, delivered: Delivered, reason: str, attempts: int) -> None:
        """Dead-letter a message, telling an asker it will get no answer."""
        log.error("actor %s: message %s moved to dead/: %s", self.name, delivered.id, reason)
        self.mailbox.bury(delivered, reason, attempts)
        if delivered.message.kind == InboxKind.ASK.value:
            error = ReplyError(type="runtime.errors.ActorFailed", message=f"dead letter: {reason}")
            self._reply(delivered.message, ReplyBody(error=error), derived_msg_id(delivered.id, -1))

    # -- the loop ------------------------------------------------------------------------------

    def run(self, batch: list[Delivered]) -> str:
        """Serve until stopped; returns why it stopped ("stop requested", "idle", ...)."""
        limits = self.spec.limits
        bell = self._bell
        if not self.lease_renewed_elsewhere:
            start_thread(self._renew_lease, f"lease-{self.name}")
        if limits.handler_timeout is not None:
            start_thread(self._watch_handlers, f"watchdog-{self.name}")
        last_work = time.monotonic()
        try:
            while not self._stop_requested:
                if not batch:
                    bell.clear()
                    self._bell_taken = False
                    batch = self.mailbox.drain(limits.batch_size)
                if batch:
                    self.process(batch)
                    batch = []
                    last_work = time.monotonic()
                    if self.mailbox.more_waiting or self._bell_taken:
                        continue
                    # Anything delivered since the drain rang the bell after our clear,
                    # so waiting on the bell (not listing again) cannot miss it.
                wait = limits.sweep_interval
                if limits.idle_timeout is not None:
                    idle_left = limits.idle_timeout - (time.monotonic() - last_work)
                    if idle_left <= 0:
                        # Withdraw first, then look once more: a sender that delivered
                        # before our withdraw is seen here; one after it sees no record
                        # and asks the system to activate us again.
                        self.fabric.withdraw(self.name, pid=os.getpid())
                        if self.mailbox.has_new():
                            assert self.record is not None
                            self.fabric.publish(self.record, limits.lease)
                            last_work = time.monotonic()
                            continue
                        return "idle"
                    wait = min(wait, idle_left)
                readable, _, _ = select.select([bell.fd, self._wake_r], [], [], wait)
                if self._wake_r in readable:
                    drain_fd(self._wake_r)
            return self._stop_reason or "stop requested"
        finally:
            self._lease_stop.set()
            with self._deadline_changed:
                self._deadline_changed.notify_all()

    def process(self, batch: list[Delivered]) -> None:
        """Dispatch one batch, commit once, then ack (the order crash safety rests on)."""
        done: list[Delivered] = []
        applied: list[Delivered] = []
        for delivered in batch:
            if delivered.message.kind in REPLY_KINDS:
                self._stash_reply(delivered)
        cut_short = False
        for delivered in batch:
            if delivered.message.kind in REPLY_KINDS:
                continue
            if self._stop_requested and done:
                cut_short = True  # the rest stays unacked, for the next activation
                break
            if self.admitted.insert(delivered.id):
                self._apply(delivered)
                applied.append(delivered)
            else:
                log.debug("actor %s: duplicate %s dropped", self.name, delivered.id)
            done.append(delivered)
        # Commit before ack: once state and admitted ids are on disk, a redelivery of
        # any of these messages is recognised as a duplicate. A batch of queries (and
        # repeats) changed nothing, so it skips the write and its flush, and their ids
        # ride with the next commit; unless one consumed a reply: should its ack reach
        # the disk and the query's not, the query would run again and wait for an
        # answer already spent.
        if all(map(_is_query, applied)) and not self._consumed and len(self._tail) < CHECKPOINT_EVERY:
            self._state_hint = None  # describes the state only until it next changes
        else:
            try:
                self.commit()
            except _UnencodableState as exc:
                self._replay_singly(applied, exc)
        # Replies are acked with the batch that consumed them: a crash before the commit
        # re-runs the handler, and it must find its reply again.
        retired = done + self._consumed + self._spare_replies
        if not cut_short:  # else the messages left unacked may still need these
            retired += self._stash.values()  # late replies nobody waits for
        self.mailbox.ack_all(retired)
        self._consumed.clear()
        self._spare_replies.clear()
        self._stash.clear()

    def _stash_reply(self, delivered: Delivered) -> None:
        """Keep a claimed reply for the handler that will wait for it (a repeat is spare)."""
        key = delivered.message.correlation_id or ""
        if key in self._stash:
            self._spare_replies.append(delivered)
        else:
            self._stash[key] = delivered

    def _unconsume(self) -> None:
        """Put the replies handlers consumed back, before those handlers run again.

        A handler that runs again (a retry, a replay) re-sends its asks with the same
        ids; the peers drop them as repeats, so the answers must come from here.
        """
        for delivered in self._consumed:
            self._stash_reply(delivered)
        self._consumed.clear()

    def _apply(self, delivered: Delivered) -> None:
        """Dispatch an admitted message, naming it in the marker while it runs."""
        self._tail.append(delivered.id)
        self._handling = delivered.id  # before the marker names it: a cancel then has a target
        self.marker.set(delivered.id)
        try:
            self.dispatch(delivered.message)
        finally:
            self._handling = None
        self.marker.clear()

    def _replay_singly(self, applied: list[Delivered], error: "_UnencodableState") -> None:
        """A message of the batch left a state that is not JSON: find it and fail it alone.

        The batch is rolled back to the last committed state and applied again one
        message at a time, committing after each. The message after which the state
        does not encode is failed like a raising handler (its changes are dropped,
        ``on_failure`` runs) and the others keep their effects, once. Messages they
        sent are sent again with the same ids, so receivers drop the repeats.
        """
        log.error("actor %s: the batch left %s; finding the message that caused it", self.name,
                  error.reason)
        assert self.handler is not None
        self._unconsume()
        ids = {d.id for d in applied}
        self._tail = [i for i in self._tail if i not in ids]
        for delivered in applied:
            self.admitted.discard(delivered.id)
        self.handler.restore_state(json.loads(self._state_json))
        for delivered in applied:
            self.admitted.insert(delivered.id)
            self._apply(delivered)
            try:
                self.commit()
            except _UnencodableState as exc:
                log.error("actor %s: message %s left %s; its changes are dropped", self.name,
                          delivered.id, exc.reason)
                self.handler.restore_state(json.loads(self._state_json))
                self._on_failure(exc, delivered.message)
                self.commit()

    def dispatch(self, message: InboxMessage) -> None:
        """Run the handler for one message; reply to an ask; never raises (but BaseExceptions)."""
        assert self.handler is not None
        self.current = message
        self._sent_counter = 0
        self._state_hint = None
        is_ask = message.kind == InboxKind.ASK.value
        saved = None
        if is_ask and _ask_mode(message) == AskMode.QUERY.value:
            try:
                saved = json.dumps(self.handler.snapshot_state())
            except (TypeError, ValueError):  # an earlier message of the batch broke it;
                saved = json.dumps(None)      # the commit will find and fail that one
        reply: ReplyBody | None = None
        attempts_left = self.spec.limits.retries
        try:
            while True:
                try:
                    self._arm_watchdog()
                    with self._cancellable_region():
                        answer = self.handler.dispatch(message)
                    reply = ReplyBody(answer=answer)
                    break
                except Cancelled as exc:
                    log.info("actor %s: handler for %s cancelled", self.name, message.id)
                    reply = ReplyBody(error=ReplyError(type="runtime.errors.Cancelled", message=exc.reason))
                    break
                except Exception as exc:
                    text = traceback.format_exc()
                    if attempts_left > 0:
                        attempts_left -= 1
                        self._sent_counter = 0
                        self._unconsume()
                        log.warning("actor %s: handler failed on %s, retrying: %s", self.name, message.id, exc)
                        continue
                    log.error("actor %s: handler failed on %s: %s: %s", self.name, message.id,
                              type(exc).__name__, exc)
                    reply = ReplyBody(error=reply_error(exc, text))
                    self._on_failure(exc, message)
                    break
                finally:
                    self._disarm_watchdog()
        finally:
            if saved is not None:
                restored = json.loads(saved)
                if restored is not None:
                    self.handler.restore_state(restored)
                    # The state is exactly that text again: a commit right after this
                    # (a batch of queries) need not encode it once more.
                    self._state_hint = saved
            self.current = None
        if is_ask:
            self._reply(message, reply, derived_msg_id(message.id, -1))

    def _on_failure(self, exc: BaseException, message: InboxMessage) -> None:
        assert self.handler is not None
        try:
            self.handler.on_failure(exc, message)
        except Exception:
            log.exception("actor %s: on_failure raised", self.name)

    def _reply(self, message: InboxMessage, body: ReplyBody | None, msg_id: str) -> None:
        """Send the reply to an ask (an answer that is not JSON becomes an error reply)."""
        sender = self.address.agent_ref(self.spec.identity.role)
        target = self.address.reply_address(message.sender)
        reply = InboxMessage.create(sender, InboxKind.REPLY.value, (body or ReplyBody()).to_body(),
                                    msg_id=msg_id, correlation_id=message.id)
        try:
            try:
                wire = reply.to_wire()
            except (TypeError, ValueError) as exc:
                error = ReplyError("TypeError", f"the answer is not JSON-serialisable: {exc}")
                reply.body = ReplyBody(error=error).to_body()
                wire = reply.to_wire()
            # A reply to the system that started us goes back on the control pipe: the
            # question waits in that process's memory only, so a file (and its fsync,
            # its doorbell and the system's drain) would buy nothing. If the pipe is
            # gone, the file path below still delivers it.
            if target == self._parent_inbox and self.parent_lane is not None and self.parent_lane(wire):
                return
            self.router.deliver(target, reply, block_timeout=None)
        except (ActorNotFound, StoreError) as exc:
            log.warning("actor %s: reply to %s not delivered: %s", self.name, message.sender.session_id, exc)

    def commit(self) -> None:
        """Write state + admitted ids + meta in one atomic write, then checkpoint if due.

        ``session.json`` carries only the ids admitted since the last checkpoint;
        ``admitted.json`` holds the whole set as of that checkpoint. It is written only
        after the ids in it were committed, so their union, read at activation, is
        always exactly the committed ids (or more of the already-committed ones).
        """
        assert self.handler is not None
        state_json, self._state_hint = self._state_hint, None
        if state_json is None:
            try:
                state_json = json.dumps(self.handler.snapshot_state(), separators=(",", ":"))
            except (TypeError, ValueError) as exc:
                raise _UnencodableState(self.session_path,
                                        f"a state that is not JSON-serialisable ({exc})") from None
        if self._meta_json is None:  # meta is settled by activation, before the first commit
            self._meta_json = json.dumps(self.meta, separators=(",", ":"))
        data = f'{{"state":{state_json},"admitted":{json.dumps(self._tail)},"meta":{self._meta_json}}}'.encode()
        self._session_writer.write(data)
        self._state_json = state_json
        if len(self._tail) >= CHECKPOINT_EVERY:
            self._admitted_writer.write(json.dumps({"ids": self.admitted.to_list()}).encode())
            self._tail = []

    # -- sending and waiting -------------------------------------------------------------------

    def send(self, target: Address, kind: str, body: Any, *, correlation_id: str | None = None,
             block_timeout: float | None = 0.0) -> str:
        if self.current is not None:
            msg_id = derived_msg_id(self.current.id, self._sent_counter)
            self._sent_counter += 1
        else:
            msg_id = new_msg_id()
        message = InboxMessage.create(self.address.agent_ref(self.spec.identity.role), kind, body,
                                      msg_id=msg_id, correlation_id=correlation_id)
        with self.shielded():
            self.router.deliver(target, message, block_timeout=block_timeout)
            if target.agent_id is not None and kind in WAKING_KINDS:
                self._wake_if_inactive(target)
        return msg_id

    def _wake_if_inactive(self, target: Address) -> None:
        """Ask the target's system to activate it if it has no lease record.

        The request has a random id (not a derived one) so that whether it was needed
        never shifts the ids of the handler's later messages.
        """
        path = self._fabric_paths.get(target)
        if path is None:
            path = self._fabric_paths[target] = target.fabric_path()
        request_activation(self.router, self.address.agent_ref(self.spec.identity.role), target,
                           record_path=path)

    def await_reply(self, correlation_id: str, timeout: float | None, who: str) -> Any:
        """Wait for the reply to ``correlation_id``, leaving other messages queued."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.shielded():
                found = self._stash.pop(correlation_id, None) or self._scan_for_reply(correlation_id)
                if found is not None:  # recorded before a deferred cancel can be raised
                    self._consumed.append(found)
            if found is not None:
                return _unwrap_reply(found.message, who)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise AskTimeout(who, timeout)
            wait = self.spec.limits.sweep_interval if remaining is None else min(remaining, self.spec.limits.sweep_interval)
            select.select([self._bell.fd], [], [], wait)

    def _scan_for_reply(self, correlation_id: str) -> Delivered | None:
        """Take every reply waiting into the stash; return the one asked for."""
        self._bell.clear()
        self._bell_taken = True  # rings of other messages went here: the loop must look
        for delivered in self.mailbox.take(REPLY_KINDS):
            self._stash_reply(delivered)
        return self._stash.pop(correlation_id, None)

    # -- background threads ------------------------------------------------------------------

    def _renew_lease(self) -> None:
        while not self._lease_stop.wait(self.lease_renewal_interval):
            self.renew_lease()

    @property
    def lease_renewal_interval(self) -> float:
        """Seconds between lease renewals (a third of the lease)."""
        return self.spec.limits.lease / 3

    def renew_lease(self) -> None:
        """Publish the lease record again (any thread; a no-op once the worker ends)."""
        with self._lease_lock:
            if self.record is None or self._lease_stop.is_set():
                return
            try:
                self.fabric.publish(self.record, self.spec.limits.lease)
            except (StoreError, OSError) as exc:
                log.warning("actor %s: lease renewal failed: %s", self.name, exc)

    def _arm_watchdog(self) -> None:
        if self.spec.limits.handler_timeout is not None:
            with self._deadline_changed:
                self._handler_deadline = time.monotonic() + self.spec.limits.handler_timeout
                self._deadline_changed.notify()

    def _disarm_watchdog(self) -> None:
        if self.spec.limits.handler_timeout is not None:
            with self._deadline_changed:
                self._handler_deadline = None

    def _watch_handlers(self) -> None:
        with self._deadline_changed:
            while not self._lease_stop.is_set():
                deadline = self._handler_deadline
                if deadline is None:
                    self._deadline_changed.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._deadline_changed.wait(remaining)
                    continue
                log.warning("actor %s: handler exceeded %s s, cancelling", self.name,
                            self.spec.limits.handler_timeout)
                self._handler_deadline = None
                self.request_cancel()

    # -- exit ----------------------------------------------------------------------------------

    def finish(self) -> None:
        """Commit, run ``on_stop``, withdraw. Messages not handled stay in the mailbox."""
        if self.handler is not None:
            try:
                with self._cancellable_region():
                    self.handler.on_stop()
            except BaseException as exc:  # a failing on_stop must not cost the state
                log.error("actor %s: on_stop failed: %s: %s", self.name, type(exc).__name__, exc)
            try:
                self.commit()
            except _UnencodableState as exc:
                log.error("actor %s: on_stop left %s; keeping the last committed state",
                          self.name, exc.reason)
        with self._lease_lock:
            self._lease_stop.set()
        self.fabric.withdraw(self.name, pid=os.getpid())
        self.close()

    def close(self) -> None:
        """Release descriptors (the worker object is done)."""
        self._bell.close()
        self.router.close()
        self.mailbox.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


def _is_query(delivered: Delivered) -> bool:
    """Whether a message is an ask in "query" mode, whose state changes are discarded."""
    message = delivered.message
    return message.kind == InboxKind.ASK.value and _ask_mode(message) == AskMode.QUERY.value


def _ask_mode(message: InboxMessage) -> str:
    body = message.body
    return body.get("mode", AskMode.QUERY.value) if isinstance(body, dict) else AskMode.QUERY.value


def _unwrap_reply(message: InboxMessage, who: str) -> Any:
    """The answer of a reply, or raise the error it carries."""
    body = message.body if isinstance(message.body, dict) else {}
    error = body.get("error")
    if error:
        raise error_from_reply(ReplyError.from_dict(error), who)
    return body.get("answer")


def error_from_reply(error: ReplyError, who: str) -> BaseException:
    """The exception an asker raises for an error reply."""
    if error.type.rsplit(".", 1)[-1] == "Cancelled":
        return Cancelled(who, error.message or "cancelled")
    return ActorFailed(who, error.type, error.message, error.traceback)


def serve(spec: ProvisionSpec, *, notify: Callable[[dict[str, Any]], None] | None = None,
          on_worker: Callable[[Worker], None] | None = None) -> int:
    """Activate and serve one actor in this process; returns the exit code.

    ``notify`` receives events for the parent: ``{"event": "ready", ...}`` once the
    record is published, ``{"event": "error", ...}`` if activation failed, and
    ``{"event": "exit", "reason": ...}`` at the end.
    """
    notify = notify or (lambda event: None)
    worker = Worker(spec)
    if on_worker is not None:
        on_worker(worker)
    try:
        batch = worker.activate()
    except ActorError as exc:
        notify({"event": "error", "error": str(exc)})
        log.error("%s", exc)
        worker.close()
        return EXIT_ACTIVATION_FAILED
    notify({"event": "ready", "pid": os.getpid()})
    reason = worker.run(batch)
    worker.finish()
    notify({"event": "exit", "reason": reason})
    return EXIT_OK


def _configure_logging() -> None:
    """Worker processes are programs: give them a stderr handler if none is set."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)


def pipe_main(conn: Any) -> None:
    """Entry of a multiprocessing worker: spec first on ``conn``, then control.

    A warm-pool worker sits here, started and imported, until a spec arrives. Its one
    helper thread is started at once and reads the pipe from then on (imports asked
    for while waiting, the spec, then control commands), and also renews the lease:
    an activation starts no thread. EOF on the pipe, at any time, means the parent is
    gone: the worker stops cleanly.
    """
    _configure_logging()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    lane = _ParentLane(conn)
    specs: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    workers: queue.SimpleQueue[Worker] = queue.SimpleQueue()
    start_thread(_control_loop, "control", conn, lane, specs, workers)
    raw = specs.get()
    try:
        spec = ProvisionSpec.from_wire(raw).validate()
    except InvalidSpec as exc:
        lane.event({"event": "error", "error": str(exc)})
        os._exit(EXIT_BAD_SPEC)

    def attach(worker: Worker) -> None:
        worker.parent_lane = lane.reply
        worker.supervised = True
        worker.lease_renewed_elsewhere = True
        worker.install_signal_handlers()
        workers.put(worker)

    code = serve(spec, notify=lane.event, on_worker=attach)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class _ParentLane:
    """The worker's side of its pipe to the parent: events and replies, one at a time."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def event(self, event: dict[str, Any]) -> None:
        """Send an event ("ready", "error", "exit"); a gone parent is not an error."""
        with self.lock:
            try:
                self.conn.send_bytes(json.dumps(event).encode())
            except (OSError, ValueError):
                pass  # the control loop sees EOF and stops us

    def reply(self, wire: bytes) -> bool:
        """Send a reply to one of the parent's asks; returns whether it could."""
        with self.lock:
            try:
                self.conn.send_bytes(REPLY_PREFIX + wire)
                return True
            except (OSError, ValueError):
                return False


def _preload(modules: list[str]) -> None:
    """Import modules while waiting in the pool, so an activation finds them loaded."""
    for module in modules:
        try:
            importlib.import_module(module)
        except BaseException as exc:  # even SystemExit: the activation reports it, if it matters
            log.debug("pool worker: preloading %s failed: %s", module, exc)


def _warm_up() -> None:
    """Run the codecs an activation and its first message use, once, while in the pool.

    A forked worker's first pass through any code is several times slower than later
    ones (copy-on-write page faults, cold caches, the interpreter specialising its
    bytecode): decoding the spec took ~0.3 ms in a fresh worker, ~14 us once warm.
    """
    identity = Identity(child_id="warm-up", system_id="pool", project_key="pool-00000000")
    spec = ProvisionSpec(identity=identity, actor_class="pool:WarmUp", home=os.sep, project_dir=os.sep)
    spec = ProvisionSpec.from_wire(spec.to_wire())
    spec.validate().public_dict()
    sender = AgentRef(session_id="pool", role="system")
    ask = InboxMessage.create(sender, InboxKind.ASK.value, AskBody("warm-up", AskMode.QUERY.value).to_body())
    ask = InboxMessage.from_wire(ask.to_wire())
    reply = InboxMessage.create(sender, InboxKind.REPLY.value, ReplyBody(answer=0).to_body(),
                                msg_id=derived_msg_id(ask.id, 0), correlation_id=ask.id)
    InboxMessage.from_wire(reply.to_wire())
    AdmittedSet.from_list([ask.id], DEFAULT_CAPACITY)
    record = AgentRecord(agent_id="warm-up", role=None, labels=[], endpoint="", pid=os.getpid(),
                         started_at=time.time(), system_id="pool", actor_class=spec.actor_class)
    json.loads(json.dumps(dataclasses.asdict(record), separators=(",", ":")))


def _control_loop(conn: Any, lane: _ParentLane, specs: "queue.SimpleQueue[bytes]",
                  workers: "queue.SimpleQueue[Worker]") -> None:
    """The pipe reader of a multiprocessing worker (see ``pipe_main``)."""
    warm = False
    while True:  # in the pool: imports, each answered with "preloaded", until the spec comes
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            os._exit(EXIT_OK)  # parent gone before provisioning: nothing to clean up
        if raw[:1] != PRELOAD_PREFIX:
            break
        _preload(json.loads(raw[1:]))
        if not warm:  # once: later preloads only add modules
            warm = True
            try:
                _warm_up()
            except Exception as exc:  # only a lost speed-up; the activation reports real trouble
                log.debug("pool worker: warm-up failed: %s", exc)
        lane.event({"event": PRELOADED})
    specs.put(raw)
    worker = workers.get()
    every = worker.lease_renewal_interval
    renew_at = time.monotonic() + every
    while True:
        now = time.monotonic()
        if now >= renew_at:
            worker.renew_lease()
            renew_at = now + every
        if not conn.poll(renew_at - now):
            continue
        try:
            command = conn.recv_bytes()
        except (EOFError, OSError):
            worker.request_stop("parent gone")
            return
        if command == b"stop":
            worker.request_stop()
        elif command == b"cancel":
            worker.request_cancel()
        else:
            log.warning("actor %s: unknown control command %r", worker.name, command[:40])


def main(stdin: BinaryIO | int | None = None) -> int:
    """Seed-protocol worker: one spec as a JSON line on stdin; SIGTERM stop, SIGUSR1 cancel.

    Args:
        stdin: where the spec comes from (default: this process's standard input).

    Returns:
        The exit code (``EXIT_OK``, ``EXIT_BAD_SPEC``, ``EXIT_ACTIVATION_FAILED``).
    """
    _configure_logging()
    try:
        spec = read_spec(sys.stdin.buffer if stdin is None else stdin)
    except InvalidSpec as exc:
        print(f"actors worker: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC

    try:
        return serve(spec, on_worker=Worker.install_signal_handlers)
    except ActorError as exc:
        print(f"actors worker: {exc}", file=sys.stderr)
        return EXIT_ACTIVATION_FAILED


if __name__ == "__main__":
    sys.exit(main())
