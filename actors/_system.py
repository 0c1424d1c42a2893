"""``ActorSystem``: the parent process that provisions, supervises and talks to actors.

::

    user threads            ActorSystem (parent)                      workers
    ------------            --------------------                      -------
    spawn() ------------->  _launch: pool or new process -- spec --> pipe_main
                             wait(conn, sentinel, deadline)  <- ready -+
    tell()/ask() -------->  Router.deliver --------- file + doorbell --> mailbox
    Future  <------------- inbox thread <------ reply file + doorbell --- worker
                            monitor thread: wait(sentinels, conns, wake pipe)
                             death -> restart policy (backoff, cap) -> relaunch
    shutdown() ---------->  stop all (deepest first), grace, SIGTERM, SIGKILL

One monitor thread waits on every child's sentinel and control pipe plus a wake-up
pipe in one ``wait()`` call, so a death is noticed at once and no thread polls.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import math
import multiprocessing
import os
import select
import signal
import threading
import time
import traceback
import weakref
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

from filelock import FileLock, Timeout

from actors_runtime import worker as _worker
from actors_runtime.address import Address, Router, write_mailbox_config
from actors_runtime.durable import check_durability
from actors_runtime.errors import (
    ActorError,
    ActorFailed,
    ActorNotFound,
    AskTimeout,
    InvalidSpec,
    SpawnError,
    StoreError,
)
from actors_runtime.fabric import Fabric
from actors_runtime.ids import check_id, is_valid_id
from actors_runtime.mailbox import DEFAULT_MAX_PENDING, Mailbox, drain_fd
from actors_runtime.messages import (
    AskBody,
    InboxKind,
    InboxMessage,
    ReplyBody,
    ReplyError,
    check_mode,
    derived_msg_id,
    reply_error,
)
from actors_runtime.segments import Flusher
from actors_runtime.spec import RESTART_POLICIES, Identity, Limits, ProvisionSpec
from actors_runtime.store import ChildEntry, SessionStore
from actors_runtime.threads import QuietExecutor, start_thread

from . import _ref
from ._codec import decode, encode, imported_type, type_tag
from ._recorder import Recorder
from ._ref import ActorRef

log = logging.getLogger(__name__)

#: Default root of all projects' actors.
DEFAULT_HOME = os.path.join("~", ".actors")
#: Default start method, chosen by measurement (docs/benchmarks.md): "fork" is the
#: fastest but unsafe once the parent runs threads (ours always does); "forkserver"
#: starts a child in ~20-26 ms against ~60-75 ms for "spawn" and keeps the parent's
#: descriptors out of the children, so a pipe's EOF reliably means the parent died.
DEFAULT_START_METHOD = "forkserver"
#: Modules imported once in the fork server, so each child starts with them loaded.
PRELOAD = ["actors_runtime.worker", "actors"]
#: Default restart cap: this many restarts ...
RESTART_LIMIT = 5
#: ... within this many seconds, then the actor is marked failed.
RESTART_WINDOW = 60.0
#: First and largest restart delay (seconds); doubles in between.
BACKOFF = (0.1, 5.0)
#: Seconds between sweeps for messages waiting at actors that are not running.
COLD_SWEEP_INTERVAL = 2.0
#: Seconds a stopped child gets after SIGTERM before SIGKILL.
TERMINATE_GRACE = 2.0
#: The pool refills once no spawn has taken from it for this many seconds.
REFILL_DELAY = 0.05
#: Replies remembered per host-tool request id, to answer a re-sent request again.
HOST_REPLY_MEMORY = 1024

#: Statuses in children.json.
STARTING, RUNNING, STOPPED, IDLE, FAILED, RESTARTING = (
    "starting", "running", "stopped", "idle", "failed", "restarting")


@dataclass(frozen=True)
class ChildInfo:
    """What ``ActorSystem.children()`` reports of one actor."""

    name: str
    actor_class: str
    role: str | None
    status: str
    pid: int | None
    restarts: int
    parent_id: str | None


class _Child:
    """The parent's view of one actor of this system."""

    def __init__(self, spec: ProvisionSpec) -> None:
        self.spec = spec
        self.name = spec.identity.child_id
        self.status = STARTING
        self.process: Any = None
        self.conn: Any = None
        self.conn_open = False
        self.exit_reason: str | None = None
        self.stop_requested = False
        self.killed = False
        self.crash_times: collections.deque[float] = collections.deque()
        self.restarts = 0
        self.exited = threading.Event()
        self.exited.set()
        self.last_error = ""

    @property
    def alive(self) -> bool:
        return self.process is not None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class ActorSystem:
    """The parent of a fleet of actors in one project.

    Thread-safe: threads may share a system and its refs, and their sends run at
    once (at "machine", tells to one actor made while a flush runs share the next one).

    Args:
        home: root for all actor data (default ``$ACTORS_HOME`` or ``~/.actors``).
        project: the project directory (default: the current directory); its path
            picks the project key, so each checkout has its own actors.
        name: this system's id within the project (its actors live under it).
        backend: "maildir" (the only one built in).
        durability: "machine" (fsync; survives power loss) or "process" (no fsync;
            survives any process crash).
        pool_size: workers kept started and imported, for fast spawns.
        start_method: multiprocessing start method (default "forkserver").
        max_pending: default mailbox limit for actors spawned here.
        restart_limit, restart_window: more restarts than ``restart_limit`` within
            ``restart_window`` seconds mark an actor failed.
        on_failed: called as ``on_failed(name, reason)`` (on the monitor thread) when
            an actor is marked failed.
        spawn_timeout: default seconds a spawn waits for the actor to register.
        preload: modules pool workers import while they wait (the modules of actor
            classes this system spawns are added as it goes).

    Raises:
        InvalidSpec: a bad argument. StoreError: the same system already runs elsewhere.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        project: str | os.PathLike[str] | None = None,
        name: str = "main",
        backend: str = "maildir",
        durability: str = "machine",
        pool_size: int = 0,
        start_method: str | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        restart_limit: int = RESTART_LIMIT,
        restart_window: float = RESTART_WINDOW,
        on_failed: Callable[[str, str], None] | None = None,
        spawn_timeout: float = 30.0,
        preload: tuple[str, ...] | list[str] = (),
    ) -> None:
        if backend != "maildir":
            raise InvalidSpec("backend", f"{backend!r} is not available (maildir is)")
        self.durability = check_durability(durability)
        self.name = check_id(name, "system name")
        if pool_size < 0:
            raise InvalidSpec("pool_size", f"{pool_size} is negative")
        home = home or os.environ.get("ACTORS_HOME") or DEFAULT_HOME
        self.home = os.path.abspath(os.path.expanduser(os.fspath(home)))
        project_dir = os.path.abspath(os.fspath(project or os.getcwd()))
        if not os.path.isdir(project_dir):
            raise InvalidSpec("project", f"{project_dir} is not a directory")
        self.project_dir = project_dir
        self.start_method = start_method or DEFAULT_START_METHOD
        if self.start_method not in multiprocessing.get_all_start_methods():
            raise InvalidSpec("start_method", f"{self.start_method!r} is not available here")
        self.max_pending = max_pending
        self.restart_limit = restart_limit
        self.restart_window = restart_window
        self.on_failed = on_failed
        self.spawn_timeout = spawn_timeout

        self.store = SessionStore.for_project(self.home, project_dir, self.durability)
        self.project_key = self.store.key
        self.fabric = Fabric(self.store.fabric_dir)
        system_dir = self.store.system_dir(self.name)
        os.makedirs(system_dir, exist_ok=True)
        # Not thread-local: whichever thread shuts the system down releases it.
        self._system_lock = FileLock(os.path.join(system_dir, ".system.lock"), timeout=0,
                                     thread_local=False)
        try:
            self._system_lock.acquire()
        except Timeout:
            raise StoreError(system_dir, f"system {self.name!r} of this project is already running "
                                         "in another process") from None
        self.address = Address(self.store.home, self.project_key, self.name, None)
        self._agent_ref = self.address.agent_ref("system")
        self.store.save_session(self.name, None, {"meta": {"name": self.name, "pid": os.getpid(),
                                                           "started_at": time.time()}})
        self.inbox = Mailbox(self.store.mailbox_dir(self.name), durability=self.durability)
        self._router = Router(self.durability)
        self._lock = threading.RLock()
        self._state_changed = threading.Condition()
        self._children: dict[str, _Child] = {}
        self._pending: dict[str, tuple[Future[Any], str]] = {}
        self._tools: dict[str, Callable[..., Any]] = {}
        self._host_replies: collections.OrderedDict[str, InboxMessage] = collections.OrderedDict()
        self._host_busy: set[str] = set()
        self._restarts_due: list[tuple[float, str]] = []
        self._launching: dict[str, Any] = {}  # name -> process of a start in progress
        self._closing = False
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._mp = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            self._mp.set_forkserver_preload(PRELOAD)
        self._executor = QuietExecutor(max_workers=8, thread_name_prefix=f"actors-host-{self.name}")
        self._recorder = Recorder(self._write_records, f"actors-record-{self.name}")
        # User code called by the system (on_failed, futures' done-callbacks) runs here,
        # never on the threads that read replies or watch children, and never under a lock.
        self._callbacks = QuietExecutor(max_workers=1, thread_name_prefix=f"actors-callbacks-{self.name}")
        self._flusher = Flusher(f"actors-flush-{self.name}",  # for tell_async
                                functools.partial(_SystemFuture, self._callbacks, self.name))
        self._pool = _Pool(self, pool_size, tuple(preload))
        self._inbox_thread = start_thread(self._serve_inbox, f"actors-inbox-{self.name}")
        self._monitor_thread = start_thread(self._monitor, f"actors-monitor-{self.name}")
        self._pool.start()
        _ref._live_systems.append(self)
        # Runs at interpreter exit if the user never shut the system down.
        self._finalizer = weakref.finalize(self, _shutdown_at_exit, weakref.ref(self))

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> "ActorSystem":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def serves(self, address: Address) -> bool:
        """Whether refs to ``address`` can be sent through this system."""
        return address.home == self.store.home and address.project_key == self.project_key

    # -- spawning --------------------------------------------------------------------------

    def spawn(
        self,
        actor_class: type | str,
        name: str | None = None,
        *,
        role: str | None = None,
        labels: tuple[str, ...] | list[str] = (),
        restart: str = "on-failure",
        secrets: dict[str, Any] | None = None,
        idle_timeout: float | None = None,
        handler_timeout: float | None = None,
        max_attempts: int = 3,
        retries: int = 0,
        max_pending: int | None = None,
        timeout: float | None = None,
        parent_id: str | None = None,
        depth: int = 1,
    ) -> ActorRef:
        """Start an actor (or resume it by name) and return a ref once it registered.

        A name that already has a session resumes it: its state is restored and the
        messages that waited in its mailbox are handled. A name already running in
        this system returns the running actor's ref.

        Args:
            actor_class: an ``Actor`` subclass importable by its module path, or
                ``"module:QualName"``.
            name: the actor's id (default: class name + a short random suffix).
            role, labels: free-form, shown by ``children()`` and ``actors ps``.
            restart: "never", "on-failure" (default) or "always".
            secrets: values the actor reads as ``self.secrets``; kept in memory only.
            idle_timeout: seconds without messages after which the actor commits and
                exits; the next message activates it again.
            handler_timeout: seconds after which a running handler is cancelled.
            max_attempts: deliveries that killed the worker before a message is
                moved to the dead letters.
            retries: extra attempts for a handler that raised (default none).
            max_pending: mailbox limit (default: the system's).
            timeout: seconds to wait for registration (default ``spawn_timeout``).

        Raises:
            InvalidSpec: a bad name or option. SpawnError: the actor could not start.
        """
        class_path = actor_class if isinstance(actor_class, str) else type_tag(actor_class)
        if name is None:
            base = class_path.rpartition(":")[2].rpartition(".")[2].lower() or "actor"
            name = f"{base}-{os.urandom(4).hex()}"
        check_id(name)
        if name == self.name:
            raise InvalidSpec("actor id", f"{name!r} is the system's own name")
        if restart not in RESTART_POLICIES:
            raise InvalidSpec("restart", f"{restart!r} is not one of {', '.join(RESTART_POLICIES)}")
        spec = ProvisionSpec(
            identity=Identity(child_id=name, parent_id=parent_id, system_id=self.name,
                              project_key=self.project_key, role=role, labels=list(labels), depth=depth),
            actor_class=class_path, home=self.store.home, project_dir=self.project_dir,
            durability=self.durability, restart=restart, secrets=dict(secrets or {}),
            limits=Limits(idle_timeout=idle_timeout, handler_timeout=handler_timeout,
                          max_attempts=max_attempts, retries=retries,
                          max_pending=max_pending or self.max_pending),
        )
        spec.validate()
        self._check_not_elsewhere(name)
        with self._lock:
            self._check_open()
            child = self._children.get(name)
            if child is not None and (child.alive or child.status in (STARTING, RESTARTING)):
                if child.spec.actor_class != class_path:
                    raise SpawnError(name, f"already running as {child.spec.actor_class}")
                running = child
            else:
                running = None
                child = _Child(spec)
                child.exited.clear()
                self._children[name] = child
        if running is not None:
            self._wait_started(running, timeout)
            return self._ref(name)
        self._prepare(child)
        try:
            self._launch(child, self.spawn_timeout if timeout is None else timeout)
        except SpawnError as exc:
            self._settle_failed_start(child, exc, self._fail_spawn)
            raise
        return self._ref(name)

    def _settle_failed_start(self, child: _Child, exc: SpawnError,
                             give_up: Callable[[_Child, str], None]) -> None:
        """A start that did not come up: stopped if a stop or the shutdown asked for
        that, else ``give_up(child, reason)`` (the caller's rule: fail, or restart)."""
        with self._lock:
            if child.stop_requested or self._closing:
                child.status = STOPPED
                child.stop_requested = child.killed = False
            else:
                give_up(child, exc.reason)
        self._record(child)
        child.exited.set()
        self._wake()

    def _fail_spawn(self, child: _Child, reason: str) -> None:
        child.status = FAILED
        child.last_error = reason

    def _check_not_elsewhere(self, name: str) -> None:
        record = self.fabric.resolve(name)
        if record is not None and record.system_id not in (None, self.name):
            raise SpawnError(name, f"already running in system {record.system_id!r} (pid {record.pid})")
        owner = self.store.resolve_child(name)
        if owner is not None and owner != self.name:
            raise SpawnError(name, f"the id belongs to system {owner!r} of this project")

    def _prepare(self, child: _Child) -> None:
        """Create the mailbox and have the child indexed before its worker exists.

        The index entry is written by the recorder, in the background; until it is on
        disk, other processes find the actor by its lease record, which the worker
        publishes before it reports ready.
        """
        child_dir = self.store.child_dir(self.name, child.name)
        fresh = False
        if not os.path.isdir(child_dir):
            skeleton = self._pool.take_skeleton()
            if skeleton is not None:
                fresh = self.store.claim_skeleton(skeleton, self.name, child.name)
        mailbox_dir = self.store.mailbox_dir(self.name, child.name)
        Mailbox(mailbox_dir, durability=self.durability).close()
        write_mailbox_config(mailbox_dir, child.spec.limits.max_pending)
        existing = None if fresh else self.store.child_entry(child.name)
        child.restarts = existing[1].restarts if existing else 0
        self._record(child, wait=False)

    def _launch(self, child: _Child, timeout: float | None) -> None:
        """Start a worker for ``child`` and wait until it registered.

        Waits on the pipe (the "ready" event) and the process sentinel together; no
        polling. On return the child runs and the monitor watches it.

        Raises:
            SpawnError: exited before registering, activation failed, or timed out
                (the process is killed).
        """
        with self._lock:
            if self._closing:
                raise SpawnError(child.name, f"system {self.name!r} is shutting down")
            self._launching[child.name] = None  # shutdown waits for it from here on
        try:
            # Outside the lock: a process start takes tens of milliseconds, and the
            # monitor and every reply need the lock meanwhile.
            process, conn = self._pool.take() or self._start_process(child.name)
            with self._lock:
                self._launching[child.name] = process  # shutdown finishes or kills it
                closing = self._closing
            if closing:
                _kill(process)
                conn.close()
                raise SpawnError(child.name, f"system {self.name!r} is shutting down")
            self._await_ready(child, process, conn, timeout)
        finally:
            with self._lock:
                self._launching.pop(child.name, None)
            with self._state_changed:
                self._state_changed.notify_all()
            self._pool.refill_soon()  # a failed start used a warm worker up too

    def _await_ready(self, child: _Child, process: Any, conn: Any, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            conn.send_bytes(child.spec.to_wire())
        except OSError:
            pass  # it died already; the sentinel tells why
        error = ""
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = _readable([conn, process.sentinel], remaining)
            if not ready:
                _kill(process)
                conn.close()
                raise SpawnError(child.name, f"did not register within {timeout} s (killed)")
            if conn in ready:
                event = self._recv_event(conn)
                if event is None:  # EOF: only the sentinel is left to wait for
                    if not _readable([process.sentinel], remaining):
                        _kill(process)
                        conn.close()
                        raise SpawnError(child.name, f"closed its pipe but did not exit within "
                                                     f"{timeout} s (killed)")
                elif event.get("event") == "ready":
                    break
                elif event.get("event") == "error":
                    error = str(event.get("error", ""))
                    continue
                else:
                    continue
            process.join(TERMINATE_GRACE)
            if process.exitcode is None:
                _kill(process)
            conn.close()
            detail = error or f"exited before registering: {_describe_exit(process.exitcode)}"
            raise SpawnError(child.name, detail.removeprefix(f"could not start {child.name!r}: "))
        with self._lock:
            child.process, child.conn, child.conn_open = process, conn, True
            child.exit_reason = None
            child.status = RUNNING
            child.exited.clear()
            stop_now = child.stop_requested or self._closing
        self._record(child, wait=False)
        self._wake()
        self._pool.note_module(child.spec.actor_class.partition(":")[0])  # it imports
        if stop_now:  # stopped (or the system shut down) while it was starting
            _send(conn, b"stop")

    def _start_process(self, label: str) -> tuple[Any, Any]:
        parent_conn, child_conn = self._mp.Pipe(duplex=True)
        process = self._mp.Process(target=_worker.pipe_main, args=(child_conn,), name=f"actor-{label}",
                                   daemon=True)
        process.start()
        child_conn.close()
        return process, parent_conn

    def _wait_started(self, child: _Child, timeout: float | None) -> None:
        """Wait for a start already in progress (another caller's) to finish.

        Raises:
            SpawnError: that start failed, or did not finish within ``timeout``.
        """
        deadline = time.monotonic() + (self.spawn_timeout if timeout is None else timeout)
        with self._state_changed:  # status is checked under the condition: no lost wakeup
            while child.status in (STARTING, RESTARTING):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SpawnError(child.name, "still starting")
                self._state_changed.wait(remaining)
        if child.status == FAILED:
            raise SpawnError(child.name, child.last_error or "it failed to start")

    def _record(self, child: _Child, wait: bool = True) -> None:
        """Persist the supervision facts of ``child`` (see ``actors._recorder``).

        With ``wait`` true, returns once they are on disk; otherwise they are written
        soon, together with other records, with the child's facts as they are then.
        """
        self._recorder.record(child.name, child, wait)

    def _write_records(self, children: list[_Child]) -> None:
        with self._lock:
            entries = [ChildEntry.for_spec(child.spec, status=child.status, restarts=child.restarts)
                       for child in children]
        try:
            self.store.record_children(self.name, entries)
        except StoreError as exc:
            log.warning("system %s: could not record %s: %s", self.name,
                        ", ".join(f"{e.id} {e.status}" for e in entries), exc)
        with self._state_changed:
            self._state_changed.notify_all()

    # -- addressing ----------------------------------------------------------------------------

    def _ref(self, name: str, system_id: str | None = None) -> ActorRef:
        return ActorRef(Address(self.store.home, self.project_key, system_id or self.name, name), self)

    def ref(self, name: str) -> ActorRef:
        """A ref to a known actor of this project (running or not).

        Raises:
            ActorNotFound: no actor of that id was ever spawned in this project.
        """
        check_id(name)
        with self._lock:
            if name in self._children:
                return self._ref(name)
        owner = self._owner(name)
        if owner is None:
            raise ActorNotFound(name, f"project {self.project_key}")
        return self._ref(name, owner)

    def _owner(self, name: str) -> str | None:
        """The system of this project that holds ``name``: the index says, or, for an
        actor spawned a moment ago whose index entry is still being written, its lease
        record (published before its spawn returned)."""
        owner = self.store.resolve_child(name)
        if owner is None:
            record = self.fabric.resolve(name)
            owner = record.system_id if record is not None else None
        return owner

    def _address(self, target: ActorRef | str) -> Address:
        if isinstance(target, ActorRef):
            return target.address
        if isinstance(target, str):
            return self.ref(target).address
        raise InvalidSpec("target", f"{target!r} is not an ActorRef or an actor id")

    # -- messaging -----------------------------------------------------------------------------

    def _deliver(self, address: Address, kind: str, body: Any, block_timeout: float | None,
                 correlation_id: str | None = None, msg_id: str | None = None) -> InboxMessage:
        message = InboxMessage.create(self._agent_ref, kind, body, msg_id=msg_id,
                                      correlation_id=correlation_id)
        self._router.deliver(address, message, block_timeout=block_timeout)
        return message

    def tell(self, target: ActorRef | str, payload: Any, *, block_timeout: float | None = 0.0) -> str:
        """Send ``payload`` to an actor; returns the message id once it is durable.

        Delivery is at-least-once and the actor applies each message id once. An actor
        that is known but not running (stopped, idle, or from an earlier run) is
        activated.

        Raises:
            ActorNotFound: unknown actor. MailboxFull: full, no room within ``block_timeout``.
            InvalidSpec: the payload cannot be sent. ActorError: the system is shut down.
        """
        self._check_open()
        address = self._address(target)
        message = self._deliver(address, InboxKind.TASK.value, encode(payload), block_timeout)
        self._ensure_active(address)
        return message.id

    def tell_async(self, target: ActorRef | str, payload: Any, *,
                   block_timeout: float | None = 0.0) -> "Future[str]":
        """Send ``payload`` without waiting for the disk; the ``Future`` gets the
        message id once the message is durable.

        Returns once the message is written to the actor's mailbox: from then on the
        actor can read it and it survives any process crash, and it keeps its place
        among this thread's ``tell``s to the actor. At durability "machine" the
        ``Future`` is resolved once the message is flushed to disk, and messages in
        flight at once share their flushes (group commit), so a loop of
        ``tell_async`` runs at the disk's rate in flushes, not in messages. At
        "process" it is resolved at once. The ``Future`` gets a ``StoreError`` if the
        flush failed (the message is then readable, but not on disk). Until it is
        resolved a power loss can lose the message, even if a later one survives. It
        cannot be cancelled, and its done-callbacks run on the system's callback
        thread; ``shutdown`` waits for every one.

        Raises:
            as ``tell``, before anything is sent.
        """
        self._check_open()
        address = self._address(target)
        message = InboxMessage.create(self._agent_ref, InboxKind.TASK.value, encode(payload))
        written = self._router.deliver_unflushed(address, message, block_timeout=block_timeout)
        if self.durability == "machine":
            future = self._flusher.submit(written, message.id)  # it owns the flush now
        else:
            future = _ref.done_future(message.id)
        self._ensure_active(address)
        return future

    def tell_many(self, target: ActorRef | str, payloads: list[Any], *,
                  block_timeout: float | None = 0.0) -> list[str]:
        """Send several payloads, in order, with one flush to disk; returns their ids.

        Each message has ``tell``'s guarantee once this returns. At durability
        "machine" the batch shares one ``fdatasync`` instead of one per message
        (group commit), which is what makes durable streams fast.

        Raises:
            MailboxFull: the batch does not fit (nothing was sent). ActorNotFound,
            InvalidSpec, ActorError: as for ``tell``.
        """
        self._check_open()
        address = self._address(target)
        bodies = [encode(payload) for payload in payloads]  # refuse bad ones before sending any
        messages = [InboxMessage.create(self._agent_ref, InboxKind.TASK.value, body) for body in bodies]
        self._router.deliver_many(address, messages, block_timeout=block_timeout)
        self._ensure_active(address)
        return [message.id for message in messages]

    def ask_async(self, target: ActorRef | str, question: Any, *, mode: str = "query") -> "Future[Any]":
        """Ask without waiting; the ``Future`` gets the answer or the error.

        ``mode`` "query" answers from the current state and discards changes made while
        answering; "steer" is a real turn whose changes persist.

        Raises:
            ActorFailed: the actor is marked failed (an ask pending when it is marked
                failed gets this error too, instead of waiting out its timeout).
        """
        address = self._address(target)
        with self._lock:
            child = self._children.get(address.name) if address.system_id == self.name else None
            if child is not None and child.status == FAILED:
                raise _failed_error(child)
        body = AskBody(encode(question), check_mode(mode)).to_body()
        message = InboxMessage.create(self._agent_ref, InboxKind.ASK.value, body)
        future: Future[Any] = _SystemFuture(self._callbacks, self.name)
        with self._lock:
            self._check_open()
            self._pending[message.id] = (future, address.name)
        try:
            self._router.deliver(address, message, block_timeout=0.0)
        except BaseException:
            with self._lock:
                self._pending.pop(message.id, None)
            raise
        self._ensure_active(address)
        future.msg_id = message.id  # type: ignore[attr-defined]
        return future

    def ask(self, target: ActorRef | str, question: Any, *, timeout: float | None = 30.0,
            mode: str = "query") -> Any:
        """Ask an actor and wait for the answer.

        Raises:
            AskTimeout: no answer within ``timeout`` (a later answer is dropped).
            ActorFailed: the handler raised (with the remote traceback).
            Cancelled: the handler was cancelled.
        """
        future = self.ask_async(target, question, mode=mode)
        try:
            return future.result(timeout)
        except TimeoutError:
            with self._lock:
                self._pending.pop(future.msg_id, None)  # type: ignore[attr-defined]
            if future.done():
                return future.result()
            raise AskTimeout(self._address(target).name, timeout) from None

    # -- control -------------------------------------------------------------------------------

    def _child(self, target: ActorRef | str) -> _Child | None:
        name = target.name if isinstance(target, ActorRef) else check_id(target)
        with self._lock:
            child = self._children.get(name)
        if child is None and self._owner(name) is None:
            raise ActorNotFound(name, f"project {self.project_key}")
        return child

    def cancel(self, target: ActorRef | str) -> None:
        """Interrupt the handler the actor runs now (out of band; no-op when idle).

        The handler sees ``Cancelled``; its message is acked; its asker gets ``Cancelled``.
        """
        child = self._child(target)
        if child is not None and child.conn_open:
            _send(child.conn, b"cancel")

    def stop(self, target: ActorRef | str, timeout: float | None = 10.0) -> None:
        """Stop an actor after its current message and wait for it to exit.

        Its own children are stopped first. Messages not yet handled stay in its
        mailbox for the next activation. Past ``timeout`` it is terminated, then killed.
        """
        child = self._child(target)
        if child is None:
            return
        with self._lock:
            kids = [c for c in self._children.values() if c.spec.identity.parent_id == child.name]
        for kid in kids:
            self.stop(kid.name, timeout)
        with self._lock:
            child.stop_requested = True
            conn = child.conn if child.conn_open else None
            process = child.process
            cancelled = self._cancel_restart(child)
        if cancelled:
            self._record(child)
            child.exited.set()
            return
        if conn is not None:
            _send(conn, b"stop")
        if process is not None:
            _stop_process(process, timeout)
        child.exited.wait(timeout)

    def _cancel_restart(self, child: _Child) -> bool:
        """Call off a restart still waiting out its backoff (hold ``_lock``)."""
        if child.status != RESTARTING or child.process is not None:
            return False
        if not any(name == child.name for _, name in self._restarts_due):
            return False  # already relaunching: the launch sees stop_requested
        self._restarts_due = [(t, name) for t, name in self._restarts_due if name != child.name]
        child.status = STOPPED
        child.stop_requested = child.killed = False
        return True

    def kill(self, target: ActorRef | str, timeout: float | None = 10.0) -> None:
        """SIGKILL an actor's worker. Not restarted; its message is not blamed as poison."""
        child = self._child(target)
        if child is None:
            return
        with self._lock:
            child.stop_requested = True
            child.killed = True
            process = child.process
            cancelled = self._cancel_restart(child)
        if cancelled:
            self._record(child)
            child.exited.set()
            return
        if process is not None:
            _kill(process)
        child.exited.wait(timeout)

    def children(self) -> list[ChildInfo]:
        """Every actor of this system (running or not), sorted by name."""
        infos = {}
        for entry in self.store.list_children(self.name):
            infos[entry.id] = ChildInfo(entry.id, entry.actor_class, entry.role, entry.status, None,
                                        entry.restarts, entry.parent_id)
        with self._lock:
            for child in self._children.values():
                ident = child.spec.identity
                infos[child.name] = ChildInfo(child.name, child.spec.actor_class, ident.role, child.status,
                                              child.pid, child.restarts, ident.parent_id)
        return [infos[k] for k in sorted(infos)]

    def pid_of(self, target: ActorRef | str) -> int | None:
        """The worker pid of a running actor (``None`` when it does not run)."""
        child = self._child(target)
        return None if child is None else child.pid

    def dead_letters(self, target: ActorRef | str) -> list[Any]:
        """The messages of an actor that were moved to ``dead/`` (see ``DeadLetter``)."""
        address = self._address(target)
        return Mailbox(address.mailbox_dir(), create=False).dead_letters()

    def requeue(self, target: ActorRef | str, msg_id: str) -> bool:
        """Deliver a dead letter again; returns whether it existed."""
        address = self._address(target)
        box = Mailbox(address.mailbox_dir(), durability=self.durability, create=False)
        try:
            found = box.requeue(msg_id)
        finally:
            box.close()
        if found:
            self._ensure_active(address)
        return found

    # -- host tools ----------------------------------------------------------------------------

    def expose(self, name: str, fn: Callable[..., Any]) -> None:
        """Let actors call ``fn(**kwargs)`` here with ``self.call_host(name, **kwargs)``.

        The function runs in the parent (on a small thread pool), so credentials and
        connections stay here; arguments and results travel as JSON.
        """
        if not isinstance(name, str) or not name or name.startswith("actors."):
            raise InvalidSpec("tool name", f"{name!r} is empty or reserved")
        if not callable(fn):
            raise InvalidSpec("tool", f"{fn!r} is not callable")
        with self._lock:
            self._tools[name] = fn

    def _serve_request(self, message: InboxMessage) -> None:
        body = message.body if isinstance(message.body, dict) else {}
        tool, arguments = body.get("tool"), body.get("arguments") or {}
        if tool == _worker.ACTIVATE_TOOL:
            name = arguments.get("name")
            if is_valid_id(name):
                self._ensure_active(self._ref(name).address)
            return
        with self._lock:
            cached = self._host_replies.get(message.id)
            if cached is None and message.id in self._host_busy:
                return  # a re-sent request whose first copy is still running
            if cached is None:
                self._host_busy.add(message.id)
        if cached is not None:
            self._send_reply(message, cached)
            return
        self._executor.submit(self._run_tool, message, str(tool), arguments)

    def _run_tool(self, message: InboxMessage, tool: str, arguments: Any) -> None:
        try:
            result = self._call_tool(message, tool, arguments)
            reply = ReplyBody(answer=encode(result))
        except BaseException as exc:  # reported to the caller, never lost here
            reply = ReplyBody(error=reply_error(exc, traceback.format_exc()))
        answer = InboxMessage.create(self._agent_ref, InboxKind.MCP_REPLY.value,
                                     reply.to_body(),
                                     msg_id=derived_msg_id(message.id, 0), correlation_id=message.id)
        with self._lock:
            self._host_busy.discard(message.id)
            self._host_replies[message.id] = answer
            while len(self._host_replies) > HOST_REPLY_MEMORY:
                self._host_replies.popitem(last=False)
        self._send_reply(message, answer)

    def _call_tool(self, message: InboxMessage, tool: str, arguments: Any) -> Any:
        if not isinstance(arguments, dict):
            raise InvalidSpec("host tool arguments", "must be an object")
        if tool == _worker.SPAWN_TOOL:
            return self._spawn_for(message.sender.session_id, arguments)
        if tool == _worker.CONTROL_TOOL:
            action, name = arguments.get("action"), arguments.get("name")
            if action == "stop":
                self.stop(name, arguments.get("grace", 10.0))
            elif action == "cancel":
                self.cancel(name)
            else:
                raise InvalidSpec("control action", f"{action!r}")
            return None
        with self._lock:
            fn = self._tools.get(tool)
        if fn is None:
            raise ActorNotFound(tool, "the host tools of this system")
        return fn(**decode(arguments, imported_type, lambda address: ActorRef(address, self)))

    def _spawn_for(self, parent: str, arguments: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            parent_child = self._children.get(parent)
        depth = (parent_child.spec.identity.depth if parent_child else 1) + 1
        max_depth = parent_child.spec.limits.max_depth if parent_child else Limits().max_depth
        name = arguments.get("name")
        if depth > max_depth:
            raise SpawnError(str(name), f"spawn depth {depth} exceeds the cap of {max_depth}")
        options = arguments.get("options") or {}
        if not isinstance(options, dict):
            raise InvalidSpec("spawn options", "must be an object")
        allowed = {"role", "labels", "restart", "idle_timeout", "handler_timeout", "max_attempts",
                   "retries", "max_pending", "timeout", "secrets"}
        unknown = set(options) - allowed
        if unknown:
            raise InvalidSpec("spawn options", f"unknown {', '.join(sorted(unknown))}")
        ref = self.spawn(str(arguments.get("actor_class")), name, parent_id=parent, depth=depth, **options)
        return ref.to_dict()

    def _send_reply(self, request: InboxMessage, reply: InboxMessage) -> None:
        try:
            self._router.deliver(self.address.reply_address(request.sender), reply, block_timeout=None)
        except (ActorNotFound, StoreError) as exc:
            log.warning("system %s: reply to %s not delivered: %s", self.name, request.sender.session_id, exc)

    # -- background threads --------------------------------------------------------------------

    def _serve_inbox(self) -> None:
        """Drain the system inbox: replies resolve futures, requests run host tools."""
        bell = self.inbox.doorbell()
        try:
            while not self._closed:
                bell.clear()
                batch = self.inbox.drain(1024)
                for delivered in batch:
                    message = delivered.message
                    try:
                        if message.kind == InboxKind.REPLY.value:
                            self._resolve(message)
                        elif message.kind == InboxKind.MCP_REQUEST.value:
                            self._serve_request(message)
                        else:
                            log.warning("system %s: unexpected %r message %s from %s dropped", self.name,
                                        message.kind, message.id, message.sender.session_id)
                    except Exception:
                        log.exception("system %s: failed to handle %s", self.name, message.id)
                    self.inbox.ack_delivered(delivered)
                if not batch:
                    # Only its own doorbell: the monitor's wake-up pipe stays readable
                    # until the monitor drains it, and watching it here would spin.
                    bell.wait(1.0)
        finally:
            bell.close()

    def _resolve(self, message: InboxMessage) -> None:
        with self._lock:
            entry = self._pending.pop(message.correlation_id or "", None)
        if entry is None:
            log.debug("system %s: late reply %s dropped", self.name, message.correlation_id)
            return
        future, who = entry
        body = message.body if isinstance(message.body, dict) else {}
        if body.get("error"):
            future.set_exception(_worker.error_from_reply(ReplyError.from_dict(body["error"]), who))
        else:
            future.set_result(decode(body.get("answer"), imported_type, lambda a: ActorRef(a, self)))

    def _recv_event(self, conn: Any) -> dict[str, Any] | None:
        """The next event on a child's pipe (``None`` at EOF).

        A reply sent back on the pipe (see ``Worker._reply``) resolves its future here
        and reads as an empty event.
        """
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return None
        if raw[:1] == _worker.REPLY_PREFIX:
            try:
                self._resolve(InboxMessage.from_wire(raw[1:]))
            except ValueError:
                log.warning("system %s: unreadable reply on a child's pipe dropped", self.name)
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            return {}

    def _monitor(self) -> None:
        """Wait on every child's sentinel and pipe; apply the restart policy on deaths.

        Supervision must outlive any one mistake: an iteration that raises is logged
        and the loop goes on.
        """
        self._next_sweep = time.monotonic() + COLD_SWEEP_INTERVAL
        while not self._closed:
            try:
                self._monitor_once()
            except Exception:
                log.exception("system %s: supervision error (continuing)", self.name)

    def _monitor_once(self) -> None:
        """One wait on every sentinel, pipe and the wake-up pipe; then the due work."""
        next_sweep = self._next_sweep
        with self._lock:
            sentinels: dict[int, tuple[_Child, Any]] = {}
            conns: dict[Any, _Child] = {}
            for child in self._children.values():
                if child.process is not None and child.status not in (STARTING, RESTARTING):
                    sentinels[child.process.sentinel] = (child, child.process)
                    if child.conn_open:
                        conns[child.conn] = child
            due = min((t for t, _ in self._restarts_due), default=None)
        now = time.monotonic()
        timeout = max(0.0, min(next_sweep, due if due is not None else next_sweep) - now)
        ready = _readable([self._wake_r, *sentinels, *conns], timeout)
        # Pipes first: an "exit" event must be read before the death is judged.
        for conn in [obj for obj in ready if obj in conns]:
            child = conns[conn]
            if child.conn is not conn or not child.conn_open:
                continue
            event = self._recv_event(conn)
            if event is None:
                child.conn_open = False
            elif event.get("event") == "exit":
                child.exit_reason = str(event.get("reason"))
        for obj in ready:
            if obj == self._wake_r:
                drain_fd(self._wake_r)
            elif not isinstance(obj, int) or obj not in sentinels:
                continue
            else:
                child, process = sentinels[obj]
                if child.process is process:  # not already handled
                    self._child_exited(child)
        self._run_due_restarts()
        if time.monotonic() >= next_sweep:
            self._next_sweep = time.monotonic() + COLD_SWEEP_INTERVAL
            self._sweep_cold()

    def _child_exited(self, child: _Child) -> None:
        process = child.process
        process.join(TERMINATE_GRACE)
        code = process.exitcode
        if child.conn_open:  # pick up a last "exit" event still in the pipe
            while child.conn.poll():
                event = self._recv_event(child.conn)
                if event is None:
                    break
                if event.get("event") == "exit":
                    child.exit_reason = str(event.get("reason"))
        child.conn.close()
        # A worker that died without withdrawing leaves a record that looks alive until
        # its lease runs out; it is dead now, so take it away (only if it is its own).
        self.fabric.withdraw(child.name, pid=process.pid)
        with self._lock:
            child.process, child.conn, child.conn_open = None, None, False
            reason = child.exit_reason
            requested = child.stop_requested or self._closing
            clean = code == 0 and reason is not None
            if child.killed:
                _worker.clear_inflight(self.store.mailbox_dir(self.name, child.name))
            if requested:
                child.status = STOPPED
                child.stop_requested = child.killed = False
            elif clean and reason == "idle":
                child.status = IDLE
            elif clean and child.spec.restart != "always":
                child.status = STOPPED
            else:
                self._on_death(child, code, reason)
        self._record(child)  # on disk before anyone waiting on `exited` looks
        child.exited.set()
        # An actor that went idle as a message arrived comes straight back. One that
        # stopped stays stopped (its leftovers wait) until a new message activates it.
        if child.status == IDLE and not self._closing:
            if Mailbox(self.store.mailbox_dir(self.name, child.name), create=False).has_waiting():
                self._ensure_active(self._ref(child.name).address)

    def _on_death(self, child: _Child, code: int | None, reason: str | None) -> None:
        """An exit nobody asked for: restart with backoff, or mark failed past the cap."""
        if code is None:  # a restart that never registered
            what = reason or "did not start"
        else:
            what = _describe_exit(code) + (f" ({reason})" if reason else "")
        if child.spec.restart == "never":
            log.error("actor %s: worker died: %s; restart policy is never", child.name, what)
            self._mark_failed(child, f"died: {what}")
            return
        now = time.monotonic()
        while child.crash_times and child.crash_times[0] < now - self.restart_window:
            child.crash_times.popleft()
        if len(child.crash_times) >= self.restart_limit:
            log.error("actor %s: worker died: %s; %d restarts in %.0f s, giving up", child.name, what,
                      len(child.crash_times), self.restart_window)
            self._mark_failed(child, f"died {len(child.crash_times) + 1} times within "
                                     f"{self.restart_window:.0f} s; last: {what}")
            return
        delay = min(BACKOFF[0] * (2 ** len(child.crash_times)), BACKOFF[1])
        child.crash_times.append(now)
        child.status = RESTARTING
        log.warning("actor %s: worker died: %s; restarting in %.2f s", child.name, what, delay)
        self._restarts_due.append((now + delay, child.name))

    def _mark_failed(self, child: _Child, reason: str) -> None:
        """Give up on ``child``: its messages stay on disk, its askers get an error now."""
        child.status = FAILED
        child.last_error = reason
        with self._lock:
            waiting = [msg_id for msg_id, (_, who) in self._pending.items() if who == child.name]
            futures = [self._pending.pop(msg_id)[0] for msg_id in waiting]
        error = _failed_error(child)
        for future in futures:
            if not future.done():
                future.set_exception(error)
        if self.on_failed is not None:
            self._call_back(self.on_failed, child.name, reason)

    def _call_back(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run user code on the callback thread; its exceptions are logged, not raised."""
        _call_back_on(self._callbacks, self.name, fn, *args)

    def _run_due_restarts(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [name for t, name in self._restarts_due if t <= now]
            self._restarts_due = [(t, name) for t, name in self._restarts_due if t > now]
        for name in due:
            with self._lock:
                child = self._children.get(name)
                if child is None or child.status != RESTARTING:
                    continue
                if child.stop_requested or self._closing:  # stopped while it waited
                    child.status = STOPPED
                    child.stop_requested = child.killed = False
                    settled = True
                else:
                    settled = False
                    child.restarts += 1
                    child.exited.clear()
            if settled:
                self._record(child)
                child.exited.set()
                continue
            start_thread(self._relaunch, f"actors-restart-{name}", child)

    def _relaunch(self, child: _Child) -> None:
        try:
            self._launch(child, self.spawn_timeout)
            log.info("actor %s: restarted (pid %s)", child.name, child.pid)
        except SpawnError as exc:
            self._settle_failed_start(child, exc, lambda c, reason: self._on_death(c, None, reason))

    def _ensure_active(self, address: Address) -> None:
        """Activate a known actor that has no running worker.

        An actor of this system is started here; one of another system of the project
        is the business of that system, which is asked (through its inbox) to start it.
        """
        if address.agent_id is None or self._closing:
            return
        if address.system_id != self.name:
            _worker.request_activation(self._router, self._agent_ref, address)
            return
        name = address.agent_id
        with self._lock:
            child = self._children.get(name)
            if child is not None and (child.alive or child.status in (STARTING, RESTARTING, FAILED)):
                return
            if child is None:
                spec = self._recorded_spec(name)
                if spec is None:
                    return
                child = _Child(spec)
                self._children[name] = child
            child.status = STARTING
            child.stop_requested = False
            child.exited.clear()
        start_thread(self._activate, f"actors-activate-{name}", child)

    def _activate(self, child: _Child) -> None:
        try:
            self._launch(child, self.spawn_timeout)
        except SpawnError as exc:
            if not self._closing:
                log.error("actor %s: activation failed: %s", child.name, exc.reason)
            self._settle_failed_start(child, exc, self._mark_failed)

    def _recorded_spec(self, name: str) -> ProvisionSpec | None:
        """The spec an actor of this system was last started with (no secrets)."""
        try:
            session = self.store.load_session(self.name, name)
        except StoreError:
            return None
        doc = (session or {}).get("meta", {}).get("spec")
        if not isinstance(doc, dict):
            return None
        try:
            spec = ProvisionSpec.from_doc(doc)
            spec.home, spec.durability = self.store.home, self.durability
            return spec.validate()
        except (InvalidSpec, TypeError, ValueError, KeyError):
            log.warning("actor %s: recorded spec is unusable; not activating", name)
            return None

    def _sweep_cold(self) -> None:
        """Activate known actors with waiting messages but no worker (a safety net)."""
        try:
            entries = self.store.list_children(self.name)
        except StoreError as exc:  # a cache; rebuild_index regenerates it
            log.warning("system %s: cannot read children.json (%s); run `actors rebuild-index`",
                        self.name, exc)
            return
        for entry in entries:
            with self._lock:
                child = self._children.get(entry.id)
                if child is not None and (child.alive or child.status != IDLE):
                    continue
            # Not known to this run: the record says what its last run left it as. A
            # stopped or failed actor waits for a message (or a spawn) to bring it back.
            if child is None and entry.status in (STOPPED, FAILED):
                continue
            try:
                waiting = Mailbox(self.store.mailbox_dir(self.name, entry.id), create=False).has_waiting()
            except (StoreError, OSError):
                continue
            if waiting:
                self._ensure_active(self._ref(entry.id).address)

    def _wake(self) -> None:
        if self._wake_w < 0:  # shut down: nobody to wake, and the number may be reused
            return
        try:
            os.write(self._wake_w, b"w")
        except OSError:
            pass

    def _check_open(self) -> None:
        if self._closing:
            raise ActorError(f"system {self.name!r} is shut down")

    # -- shutdown --------------------------------------------------------------------------------

    def shutdown(self, timeout: float | None = 10.0) -> None:
        """Stop every actor (deepest first), then the system's threads and pool.

        Politely, then firmly: a stop request, ``timeout`` seconds of grace, SIGTERM,
        then SIGKILL. Pending asks fail with ``ActorError``. Idempotent.
        """
        with self._lock:
            if self._closing:
                return
            self._closing = True
            children = sorted(self._children.values(), key=lambda c: -c.spec.identity.depth)
        self._pool.close()
        deadline = None if timeout is None else time.monotonic() + timeout
        # Starts in progress end first (ready, then told to stop; or failed), or are
        # killed: no worker may outlive the system that would have supervised it.
        with self._state_changed:
            while self._launching and (deadline is None or time.monotonic() < deadline):
                self._state_changed.wait(None if deadline is None else deadline - time.monotonic())
        with self._lock:
            stragglers = [process for process in self._launching.values() if process is not None]
        for process in stragglers:
            _kill(process)
        for child in children:
            with self._lock:
                conn = child.conn if child.conn_open else None
                child.stop_requested = True
            if conn is not None:
                _send(conn, b"stop")
        for child in children:
            process = child.process
            if process is not None:
                remaining = None if deadline is None else max(0.1, deadline - time.monotonic())
                _stop_process(process, remaining)
            child.exited.wait(TERMINATE_GRACE)
        self._closed = True
        self._wake()
        self.inbox.ring()
        self._monitor_thread.join(TERMINATE_GRACE)
        self._inbox_thread.join(TERMINATE_GRACE)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._flusher.close()  # every tell_async's Future is resolved
        self._recorder.close()
        self._callbacks.shutdown(wait=False)
        with self._lock:
            pending, self._pending = self._pending, {}
        for future, who in pending.values():
            if not future.done():
                future.set_exception(ActorError(f"system {self.name!r} shut down before {who!r} replied"))
        self._router.close()
        self.inbox.close()
        wake_r, wake_w, self._wake_w = self._wake_r, self._wake_w, -1
        os.close(wake_w)
        os.close(wake_r)
        if self in _ref._live_systems:
            _ref._live_systems.remove(self)
        self._system_lock.release()
        self._finalizer.detach()


def _call_back_on(callbacks: QuietExecutor, system: str, fn: Callable[..., Any], *args: Any) -> None:
    def run() -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("system %s: callback %r raised", system, fn)

    try:
        callbacks.submit(run)
    except RuntimeError:  # shut down
        run()


class _SystemFuture(Future):  # type: ignore[type-arg]
    """The future of an ask or a ``tell_async``. Its done-callbacks run on the
    system's callback thread: the thread that resolves it serves everyone (it reads
    replies, or flushes sends), and a callback that asked again, or waited for
    another send, there would wait for what only that thread could deliver.

    It holds the callback pool, not the system, so a system is not kept alive by
    the futures it made (nor by its flusher, which makes them)."""

    def __init__(self, callbacks: QuietExecutor, system: str) -> None:
        super().__init__()
        self._callbacks, self._system = callbacks, system

    def add_done_callback(self, fn: Callable[[Future[Any]], Any]) -> None:
        callbacks, system = self._callbacks, self._system
        super().add_done_callback(lambda future: _call_back_on(callbacks, system, fn, future))


class _Pool:
    """Warm workers and warm directories, for spawns that only hand over a spec.

    Workers are started, have imported the runtime and the modules of the actor
    classes this system spawned (or was told to ``preload``), and wait for a spec on
    their pipe. Skeletons are actor directories made ahead of time (see
    ``SessionStore.make_skeleton``); a spawn claims one with a rename. Both are
    refilled by one background thread after each spawn.
    """

    def __init__(self, system: ActorSystem, size: int, preload: tuple[str, ...] = ()) -> None:
        self.system, self.size = system, size
        self._idle: collections.deque[tuple[Any, Any]] = collections.deque()
        self._skeletons: list[str] = []
        self._modules: set[str] = set(preload)
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._closing_r, self._closing_w = os.pipe()  # ends a wait for a booting worker
        self._closed = False
        self._thread: threading.Thread | None = None
        self._last_take = 0.0

    def start(self) -> None:
        if self.size > 0:
            self._thread = start_thread(self._refill, "actors-pool")
            self._wanted.set()

    def pids(self) -> list[int]:
        with self._lock:
            return [process.pid for process, _ in self._idle]

    def take(self) -> tuple[Any, Any] | None:
        """An idle warm worker, or ``None`` (the caller starts one cold)."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                process, conn = self._idle.popleft()
            if process.exitcode is None:
                return process, conn
            conn.close()

    def take_skeleton(self) -> str | None:
        """A ready-made actor directory to rename into place, or ``None``."""
        with self._lock:
            return self._skeletons.pop() if self._skeletons else None

    def note_module(self, module: str) -> None:
        """Have idle and future workers import ``module`` (an actor class's)."""
        if self.size == 0 or module == "__main__":  # workers load the main script anyway
            return
        with self._lock:
            if module in self._modules:
                return
            self._modules.add(module)
            for _, conn in self._idle:
                _send(conn, _worker.PRELOAD_PREFIX + json.dumps([module]).encode())

    def refill_soon(self) -> None:
        """Top up once spawns pause: starting a process (and building a skeleton)
        competes with a new actor's first messages for the machine's cores, and a burst
        of spawns is better served from what is left and refilled in one go."""
        self._last_take = time.monotonic()
        self._wanted.set()

    def _refill(self) -> None:
        store, name = self.system.store, self.system.name
        store.remove_unfinished_skeletons(name)  # a crash mid-build left them; we hold the lock
        with self._lock:
            self._skeletons = store.skeletons(name)[: self.size]
        while not self._closed:
            self._wanted.wait()
            self._wanted.clear()
            while not self._closed:  # debounce: wait for a quiet REFILL_DELAY
                quiet_for = time.monotonic() - self._last_take
                if quiet_for >= REFILL_DELAY:
                    break
                self._wanted.wait(REFILL_DELAY - quiet_for)
                self._wanted.clear()
            while not self._closed:
                with self._lock:
                    need_worker = len(self._idle) < self.size
                    need_skeleton = len(self._skeletons) < self.size
                    modules = sorted(self._modules)
                if not (need_worker or need_skeleton):
                    break
                try:
                    # The skeleton first: a full pool of workers is what spawns (and
                    # the benchmark) wait for, and the skeleton must be ready by then.
                    if need_skeleton:
                        skeleton = store.make_skeleton(name)
                        with self._lock:
                            self._skeletons.append(skeleton)
                    if need_worker:
                        started = self.system._start_process("pool")
                        booted = self._boot(started, modules)
                        with self._lock:
                            if booted and not self._closed:
                                self._idle.append(started)
                                continue
                        _close_idle([started])
                        if self._closed:
                            return
                        # Not again until the next spawn asks: a worker that dies
                        # while booting would die the same way in a tight loop.
                        log.error("pool: a new worker exited while booting (exit code %s)",
                                  started[0].exitcode)
                        break
                except OSError as exc:
                    log.error("pool: could not refill: %s", exc)
                    break

    def _boot(self, started: tuple[Any, Any], modules: list[str]) -> bool:
        """Have a new worker import ``modules`` and wait until it has: only a booted
        worker is offered to a spawn (a booting one would make the spawn wait for the
        interpreter to start, and would compete with it for the cores meanwhile).
        Returns False if it died first or the pool closed meanwhile."""
        process, conn = started
        _send(conn, _worker.PRELOAD_PREFIX + json.dumps(modules).encode())
        deadline = time.monotonic() + self.system.spawn_timeout
        while not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("pool: worker %s took over %s s to boot", process.pid, self.system.spawn_timeout)
                return True
            ready = _readable([conn, process.sentinel, self._closing_r], remaining)
            if conn in ready:
                try:
                    raw = conn.recv_bytes()
                except (EOFError, OSError):
                    return False
                if raw[:1] == b"{" and json.loads(raw).get("event") == _worker.PRELOADED:
                    return True
            elif process.sentinel in ready:
                return False
        return False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = list(self._idle), collections.deque()
        self._wanted.set()
        os.write(self._closing_w, b"x")
        if self._thread is not None:
            self._thread.join(TERMINATE_GRACE * 5)
        _close_idle(idle)
        if self._thread is None or not self._thread.is_alive():  # else it may still wait on them
            os.close(self._closing_r)
            os.close(self._closing_w)


def _readable(objects: list[Any], timeout: float | None) -> list[Any]:
    """Those of ``objects`` (file descriptors, or objects with ``fileno()``) that are
    readable, at hang-up too, waiting up to ``timeout`` seconds: what
    ``multiprocessing.connection.wait`` returns, without building a selector per call
    (the monitor calls it once per reply it reads). Every wait of the system on pipes
    and process sentinels goes through here."""
    poller = select.poll()
    by_fd: dict[int, Any] = {}
    for obj in objects:
        fd = obj if isinstance(obj, int) else obj.fileno()
        by_fd[fd] = obj
        poller.register(fd, select.POLLIN)
    return [by_fd[fd] for fd, _ in poller.poll(None if timeout is None else math.ceil(timeout * 1000))]


def _close_idle(idle: list[tuple[Any, Any]]) -> None:
    """EOF tells an unprovisioned worker to exit; then make sure it did."""
    for _, conn in idle:
        conn.close()
    for process, _ in idle:
        process.join(TERMINATE_GRACE)
        if process.exitcode is None:
            _kill(process)


def _failed_error(child: _Child) -> ActorFailed:
    return ActorFailed(child.name, "failed", f"the actor is marked failed ({child.last_error}); its "
                       "messages wait on disk until it is spawned again")


def _send(conn: Any, data: bytes) -> None:
    try:
        conn.send_bytes(data)
    except (OSError, ValueError):
        pass  # the child is gone; its sentinel reports it


def _stop_process(process: Any, timeout: float | None) -> None:
    """Wait for a process asked to stop; then SIGTERM; then SIGKILL."""
    process.join(timeout)
    if process.exitcode is None:
        process.terminate()
        process.join(TERMINATE_GRACE)
    if process.exitcode is None:
        _kill(process)


def _kill(process: Any) -> None:
    try:
        process.kill()
    except (OSError, ValueError):
        pass
    process.join(TERMINATE_GRACE)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _shutdown_at_exit(system_ref: "weakref.ref[ActorSystem]") -> None:
    system = system_ref()
    if system is not None and not system._closing:
        system.shutdown(timeout=5.0)
