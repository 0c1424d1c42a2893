"""``ActorSystem``: the parent process that provisions, supervises and talks to actors.

::

    user threads            ActorSystem (this facade)              runtime.parent / backend
    ------------            -------------------------              ------------------------
    spawn() ------------->  check, build the spec ------------->  Supervisor.spawn
    tell()/ask() -------->  encode, build the message -------->  Backend.deliver (+ activation)
    Future  <------------- decode the answer  <----------------  Inbox (replies, host requests)
    shutdown() ---------->  supervisor, inbox, host tools, backend, the system's lock

The facade checks arguments, encodes payloads and decodes answers; the machinery
lives in ``actors_runtime.parent`` (children, restarts, activation, the inbox) and in
the backend (where messages and state are kept).
"""

from __future__ import annotations

import functools
import logging
import os
import time
import weakref
from concurrent.futures import Future
from datetime import datetime
from typing import Any, Callable

from actors_runtime.address import Address, project_key
from actors_runtime.backends import open_backend
from actors_runtime.backends.base import DeadLetter
from actors_runtime.due import deliver_at
from actors_runtime.durability import check_durability
from actors_runtime.errors import ActorNotFound, AskTimeout, InvalidSpec, SystemShutDown
from actors_runtime.ids import check_id
from actors_runtime.messages import AskBody, InboxKind, InboxMessage, check_mode
from actors_runtime.parent.activation import ensure_active
from actors_runtime.parent.children import Child
from actors_runtime.parent.inbox import Inbox
from actors_runtime.parent.lanes import Lane
from actors_runtime.parent.launcher import Launcher
from actors_runtime.parent.placed import placement, resume_on_host
from actors_runtime.parent.placing import placer_for
from actors_runtime.parent.pool import Pool
from actors_runtime.parent.restart_policy import RESTART_LIMIT, RESTART_WINDOW, RestartPolicy
from actors_runtime.parent.resume import resume, resume_elsewhere
from actors_runtime.parent.supervisor import Supervisor
from actors_runtime.spec import Limits
from actors_runtime.threads import QuietExecutor
from actors_runtime.tracing import outgoing
from actors_runtime.worker.main_guard import refuse_in_bootstrap

from . import _binding
from ._callbacks import SystemFuture, call_back_on
from ._codec import decode, encode, imported_type
from ._host_tools import HostTools
from ._inspect import ActorInfo, ChildInfo, inspect_actor, list_children
from ._options import check_max_active, check_system_backend, exception_names, spawn_spec, system_place
from ._ref import ActorRef

log = logging.getLogger(__name__)

#: Default mailbox limit (messages waiting) of the actors a system spawns.
DEFAULT_MAX_PENDING = 50_000


class ActorSystem:
    """The parent of a fleet of actors in one project.

    Thread-safe: threads may share a system and its refs, and their sends run at
    once (at "machine", tells to one actor made while a flush runs share the next one).

    Args:
        home: root for all actor data (default ``$ACTORS_HOME`` or ``~/.actors``).
        project: the project directory (default: the current directory); its path
            picks the project key, so each checkout has its own actors.
        name: this system's id within the project (its actors live under it).
        backend: "maildir" (files under ``home``; the default), or a Redis server:
            ``"redis://HOST:PORT/DB"`` or ``"unix:///PATH/redis.sock"`` (the extra
            ``durable-actors[redis]``; see the guide's "Running on Redis"). The
            in-process "memory" backend is refused: it serves one process only.
        durability: "machine" (fsync; survives power loss) or "process" (no fsync;
            survives any process crash).
        pool_size: workers kept started and imported, for fast spawns.
        start_method: multiprocessing start method (default "forkserver").
        max_pending: default mailbox limit for actors spawned here.
        restart_limit, restart_window: more restarts than ``restart_limit`` within
            ``restart_window`` seconds mark an actor failed.
        on_failed: called as ``on_failed(name, reason)`` (on the system's callback
            thread) when an actor is marked failed.
        spawn_timeout: default seconds a spawn waits for the actor to register.
        preload: modules pool workers import while they wait (the modules of actor
            classes this system spawns are added as it goes).
        max_active: the most actors of this system with a worker at once (default
            None: no limit). Starting one more (a spawn, or a message for a cold
            actor) first passivates the least recently used idle actor: it finishes
            its message, commits and exits, and stays cold (status "idle") until its
            next message. Spawned and activated actors count alike; while every warm
            actor is busy a start waits, and after a second passivates the least
            recently used busy one between two of its messages. At most N actors
            hold a slot; an idle one passivated gives its slot up at once, while
            its worker still exits, so up to N + N/8 workers can be alive for a
            moment. A spawn that finds no room within its timeout raises
            ``SpawnError`` and leaves the actor cold. See the guide's "Capacity".

    Raises:
        InvalidSpec: a bad argument (an unknown backend names the available ones).
        StoreError: the same system already runs elsewhere, or the home cannot be written.
        WrongContext: built while multiprocessing starts this process by re-running the
            main script (a script without ``if __name__ == "__main__":``); in a worker of
            this runtime the worker exits instead, and the spawn that started it raises
            ``SpawnError`` naming the guard.
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
        max_active: int | None = None,
    ) -> None:
        refuse_in_bootstrap()  # a script without the __main__ guard, re-run in a worker
        self.durability = check_durability(durability)
        self.name = check_id(name, "system name")
        home_dir, project_dir = system_place(home, project, pool_size, max_pending)
        self.max_active = check_max_active(max_active)
        self.project_dir = project_dir
        self.max_pending = max_pending
        self.on_failed = on_failed
        self.spawn_timeout = spawn_timeout
        check_system_backend(backend)
        self.backend_name = backend
        launcher = Launcher(start_method)
        self.start_method = launcher.start_method
        # User code called by the system (on_failed, futures' done-callbacks) runs here,
        # never on the threads that read replies or watch children, and never under a lock.
        self._callbacks = QuietExecutor(max_workers=1, thread_name_prefix=f"actors-callbacks-{self.name}")
        new_future = functools.partial(SystemFuture, self._callbacks, self.name)
        self._backend = open_backend(backend, home_dir, project_key(project_dir), self.durability,
                                     new_future=new_future)
        try:
            self._backend.ensure_project(project_dir)
            self._system_lock = self._backend.store.lock_system(self.name)
        except BaseException:
            self._backend.close()
            raise
        self.home = self._backend.location
        self.project_key = self._backend.project_key
        self._closing = False
        try:
            self._backend.store.save_system(self.name, {"name": self.name, "pid": os.getpid(),
                                                        "started_at": time.time()})
            self.address = self._backend.address(self.name)
            self._agent_ref = self.address.agent_ref("system")
            self._new_future = new_future
            self._host_tools = HostTools(self, self._backend, self._agent_ref)
            self._inbox = Inbox(self._backend, self.address, self._decode_answer, self._host_tools.serve)
            pool = Pool(launcher, self._backend, self.name, pool_size, spawn_timeout, tuple(preload))
            self._supervisor = Supervisor(self._backend, self.name, launcher, pool,
                                          RestartPolicy(restart_limit, restart_window), spawn_timeout,
                                          self._child_failed, self._inbox.resolve_frame,
                                          max_active=self.max_active)
            # Actors placed on hosts of a pool are activated there, never here.
            self._placer = placer_for(self._supervisor)
            if self._placer is not None:
                self._supervisor.route = self._placer.route
        except BaseException:
            self._system_lock.release()
            self._backend.close()
            raise
        self._supervisor.start()
        self._inbox.start()  # after the supervisor: queued activation requests need it
        _binding.register_system(self)
        self._finalizer = weakref.finalize(self, _shutdown_at_exit, weakref.ref(self))  # if never shut down

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> "ActorSystem":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def serves(self, address: Address) -> bool:
        """Whether refs to ``address`` can be sent through this system."""
        return address.home == self.home and address.project_key == self.project_key

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
        retry_backoff: float = 0.1,
        retry_on: tuple[type[BaseException] | str, ...] = (),
        max_pending: int | None = None,
        timeout: float | None = None,
        parent_id: str | None = None,
        depth: int = 1,
        on_poison: str = "dead-letter",
        mailbox: str = "log",
        placement: str | None = None,
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
                poison (see ``on_poison``).
            retries: extra attempts for a handler that raised (default none). Each
                attempt starts from the state before the message; steps that
                succeeded keep their results.
            retry_backoff: seconds before the first retry, doubled for each next one
                (capped at a minute, or at this if longer), with jitter; cancel and
                stop still reach the actor while it waits.
            retry_on: the exception types worth a retry (default: any exception).
            max_pending: mailbox limit (default: the system's).
            timeout: seconds to wait for registration (default ``spawn_timeout``).
            on_poison: "dead-letter" (default): a poison message is moved to the dead
                letters and the actor goes on; "pause": it stays first in line, the
                actor is paused and its messages wait until ``resume``.
            mailbox: "log" (default) or "maildir": senders write one file per
                message into the mailbox's ``new/``, which a bamboo-subagent reader
                can drain (maildir backend only; see "Compatibility with
                bamboo-subagent" in the guide).
            placement: ``"pool:NAME"`` runs the actor on a live host of that pool
                (``actors host``; Redis backend only) instead of in this process's
                children: the host imports ``actor_class`` from its own path, and
                if the host dies its actors are placed again on the pool's other
                hosts. Placed actors take no ``secrets``.

        Raises:
            InvalidSpec: a bad name or option; ``secrets`` with a placement, or a
                placement on a backend other than Redis.
            SpawnError: the actor could not start (with a placement: no live host,
                every host refused it, e.g. it cannot import the class there).
            SystemShutDown: the system is shut down.
        """
        spec = spawn_spec(self, actor_class, name, role=role, labels=labels, restart=restart, secrets=secrets,
                          parent_id=parent_id, depth=depth, on_poison=on_poison, mailbox=mailbox,
                          limits=Limits(idle_timeout=idle_timeout, handler_timeout=handler_timeout,
                                        max_attempts=max_attempts, retries=retries,
                                        retry_backoff=retry_backoff, retry_on=exception_names(retry_on),
                                        max_pending=max_pending or self.max_pending))
        if placement is not None:
            spec.placement = placement
            spec.validate()
            if spec.secrets:
                raise InvalidSpec("secrets", "an actor placed on a pool takes no secrets (they would travel "
                                             "through the server); give the hosts what it needs instead")
            if self._placer is None:
                raise InvalidSpec("placement", f"placing actors on hosts needs the Redis backend, "
                                               f"not {self.backend_name!r}")
        self._check_open()
        if self._placer is not None and placement is not None:
            self._placer.place(spec, self.spawn_timeout if timeout is None else timeout)
        else:
            if self._placer is not None:
                self._placer.check_local(spec.identity.child_id)
            self._supervisor.spawn(spec, timeout)
        return self._ref(spec.identity.child_id)

    # -- addressing ----------------------------------------------------------------------------

    def _ref(self, name: str, system_id: str | None = None) -> ActorRef:
        return ActorRef(self._backend.address(system_id or self.name, name), self)

    def ref(self, name: str) -> ActorRef:
        """A ref to a known actor of this project (running or not).

        Raises:
            ActorNotFound: no actor of that id was ever spawned in this project.
        """
        check_id(name)
        owner = self._supervisor.owner(name)
        if owner is None:
            raise ActorNotFound(name, f"project {self.project_key}")
        return self._ref(name, owner)

    def _address(self, target: ActorRef | str) -> Address:
        if isinstance(target, ActorRef):
            return target.address
        if isinstance(target, str):
            return self.ref(target).address
        raise InvalidSpec("target", f"{target!r} is not an ActorRef or an actor id")

    def _decode_answer(self, answer: Any) -> Any:
        return decode(answer, imported_type, lambda address: ActorRef(address, self))

    # -- messaging -----------------------------------------------------------------------------

    def _message(self, kind: str, body: Any) -> InboxMessage:
        message = InboxMessage.create(self._agent_ref, kind, body)
        message.traceparent = outgoing(message, None)  # the caller's span, with OpenTelemetry
        return message

    def tell(self, target: ActorRef | str, payload: Any, *, block_timeout: float | None = 0.0,
             delay: float | None = None, at: datetime | None = None) -> str:
        """Send ``payload`` to an actor; returns the message id once it is durable.

        Delivery is at-least-once and the actor applies each message id once. An actor
        that is known but not running (stopped, idle, or from an earlier run) is
        activated. With ``delay`` (seconds from now) or ``at`` (an aware ``datetime``)
        the message is durable at once and the actor handles it at that time, not
        before (see the guide's "Timers"): the actor keeps it in its session until
        then, and is woken for it if it went idle.

        Raises:
            ActorNotFound: unknown actor. MailboxFull: full, no room within ``block_timeout``.
            InvalidSpec: the payload cannot be sent; a negative or NaN delay, a naive
                datetime, or both. SystemShutDown: the system is shut down.
        """
        if delay is None and at is None:  # tell_many of one, without its lists
            self._check_open()
            address = self._address(target)
            message = self._message(InboxKind.TASK, encode(payload))
            self._backend.deliver(address, (message,), block_timeout=block_timeout)
            ensure_active(self._supervisor, address)
            return message.id
        when = deliver_at(delay, at, time.time())
        self._check_open()
        address = self._address(target)
        message = InboxMessage.create(self._agent_ref, InboxKind.TASK.value, encode(payload), deliver_at=when)
        self._backend.deliver(address, [message], block_timeout=block_timeout)
        ensure_active(self._supervisor, address)
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
        message = self._message(InboxKind.TASK, encode(payload))
        future = self._backend.deliver_async(address, message, block_timeout=block_timeout)
        ensure_active(self._supervisor, address)
        return future

    def tell_many(self, target: ActorRef | str, payloads: list[Any], *,
                  block_timeout: float | None = 0.0) -> list[str]:
        """Send several payloads, in order, with one flush to disk; returns their ids.

        Each message has ``tell``'s guarantee once this returns. At durability
        "machine" the batch shares one ``fdatasync`` instead of one per message
        (group commit), which is what makes durable streams fast.

        Raises:
            MailboxFull: the batch does not fit (nothing was sent). ActorNotFound,
            InvalidSpec, SystemShutDown: as for ``tell``.
        """
        self._check_open()
        address = self._address(target)
        bodies = [encode(payload) for payload in payloads]  # refuse bad ones before sending any
        messages = [self._message(InboxKind.TASK, body) for body in bodies]
        self._backend.deliver(address, messages, block_timeout=block_timeout)
        ensure_active(self._supervisor, address)
        return [message.id for message in messages]

    def ask_async(self, target: ActorRef | str, question: Any, *, mode: str = "query") -> "Future[Any]":
        """Ask without waiting; the ``Future`` gets the answer or the error.

        ``mode`` "query" answers from the current state and discards changes made while
        answering; "steer" is a real turn whose changes persist.

        Raises:
            ActorFailed: the actor is marked failed (an ask pending when it is marked
                failed gets this error too, instead of waiting out its timeout).
        """
        self._check_open()
        future: Future[Any] = self._new_future()
        self._send_ask(self._address(target), question, mode, future)
        return future

    def _send_ask(self, address: Address, question: Any, mode: str, future: "Future[Any]") -> None:
        """Send an ask whose reply resolves ``future``."""
        placer = self._placer
        if placer is not None and address.system_id == self.name and placer.pool_of(address.name) is not None:
            failed = placer.failed_error(address.name)  # its host's records say
        else:
            failed = self._supervisor.failed_error(address)
        if failed is not None:
            raise failed
        message = self._message(InboxKind.ASK, AskBody(encode(question), check_mode(mode)).to_body())
        self._inbox.expect(message.id, future, address.name)
        try:
            self._backend.deliver(address, [message], block_timeout=0.0)
        except BaseException:
            self._inbox.forget(message.id)
            raise
        ensure_active(self._supervisor, address)
        future.msg_id = message.id  # type: ignore[attr-defined]

    def ask(self, target: ActorRef | str, question: Any, *, timeout: float | None = 30.0,
            mode: str = "query") -> Any:
        """Ask an actor and wait for the answer.

        The asking thread reads the reply off the worker's pipe itself when no other
        thread does (``lanes``): one wake-up fewer than a reply the monitor reads.

        Raises:
            AskTimeout: no answer within ``timeout`` (a later answer is dropped).
            ActorFailed: the handler raised (with the remote traceback).
            Cancelled: the handler was cancelled.
        """
        self._check_open()
        address = self._address(target)
        deadline = None if timeout is None else time.monotonic() + timeout
        future: Future[Any] = Future()  # resolved here or by the thread that reads the reply; no callbacks
        # Taken before the ask leaves: a quick answer is then never the monitor's to read.
        local = address.system_id == self.name
        lane = Lane.take(self._supervisor, address.name) if local else None
        try:
            self._send_ask(address, question, mode, future)
            if lane is None and local:  # its worker started for this ask
                lane = Lane.take(self._supervisor, address.name)
            if lane is not None:
                lane.wait(future, deadline)
        finally:
            if lane is not None:
                lane.release()
        try:
            return future.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            self._inbox.forget(future.msg_id)  # type: ignore[attr-defined]
            if future.done():
                return future.result()
            raise AskTimeout(address.name, timeout) from None

    # -- control -------------------------------------------------------------------------------

    def _name_of(self, target: ActorRef | str) -> str:
        return target.name if isinstance(target, ActorRef) else check_id(target)

    def cancel(self, target: ActorRef | str) -> None:
        """Interrupt the handler the actor runs now (out of band; no-op when idle).

        The handler sees ``Cancelled``; its message is acked; its asker gets ``Cancelled``.
        A placed actor is cancelled by its host.
        """
        name = self._name_of(target)
        if self._placer is not None and self._placer.control(name, "cancel", None):
            return
        self._supervisor.cancel(name)

    def stop(self, target: ActorRef | str, timeout: float | None = 10.0) -> None:
        """Stop an actor after its current message and wait for it to exit.

        Its own children are stopped first. Messages not yet handled stay in its
        mailbox for the next activation. Past ``timeout`` it is terminated, then killed.
        A placed actor is stopped by its host (a later message starts it again there).
        """
        name = self._name_of(target)
        if self._placer is not None and self._placer.control(name, "stop", timeout):
            return
        self._supervisor.stop(name, timeout)

    def kill(self, target: ActorRef | str, timeout: float | None = 10.0) -> None:
        """SIGKILL an actor's worker. Not restarted; its message is not blamed as poison.
        A placed actor is killed by its host (a later message starts it again there)."""
        name = self._name_of(target)
        if self._placer is not None and self._placer.control(name, "kill", timeout):
            return
        self._supervisor.kill(name, timeout)

    def resume(self, target: ActorRef | str, skip: bool = False) -> str:
        """Resume a paused actor; returns the id of the message it was paused at.

        Without ``skip`` that message is tried again, its attempts forgotten (if it
        kills the worker ``max_attempts`` times again, the actor pauses again); with
        ``skip`` it is moved to the dead letters (an asker gets an error reply) and
        the actor goes on with the next. Returns once that is committed to the
        actor's session; the actor is then started in the background. An actor of
        another system is resumed by that system (asked through its inbox if it
        runs; else resumed on disk, and started when that system next runs). An
        actor placed on a pool is resumed by its host, and started there.

        Raises:
            NotPaused: the actor is not paused (nothing changed).
            NoLiveHost: it is placed on a pool and no live host of it runs it.
            ActorNotFound: unknown actor. StoreError: its worker still holds its
                mailbox after a few seconds, or its files failed.
        """
        self._check_open()
        address = self._address(target)
        pool = placement(self._backend, address)
        if pool is not None:  # its host lifts the pause, whether or not its system runs
            return resume_on_host(self._backend, pool, address, skip)[1]
        if address.system_id != self.name:
            return resume_elsewhere(self._backend, self._agent_ref, address, skip).pause.msg_id
        return resume(self._supervisor, address, skip).msg_id

    def children(self) -> list[ChildInfo]:
        """Every actor of this system (running or not), sorted by name."""
        return list_children(self._backend, self._supervisor, self.name)

    def pid_of(self, target: ActorRef | str) -> int | None:
        """The worker pid of a running actor (``None`` when it does not run)."""
        child = self._supervisor.child(self._name_of(target))
        return None if child is None else child.pid

    def inspect(self, target: ActorRef | str) -> ActorInfo:
        """A read-only snapshot of one actor: status, worker, restarts, mailbox counts
        and why it last failed. Works for actors of other systems of the project too
        (from their records).

        Raises:
            ActorNotFound: no actor of that id in the project.
        """
        address = self._address(target)
        return inspect_actor(self._backend, self._supervisor, address)

    def dead_letters(self, target: ActorRef | str) -> list[DeadLetter]:
        """The messages of an actor that were buried (see ``DeadLetter``)."""
        view = self._backend.view(self._address(target))
        try:
            return view.dead_letters()
        finally:
            view.close()

    def requeue(self, target: ActorRef | str, msg_id: str) -> bool:
        """Deliver a dead letter again; returns whether it existed."""
        address = self._address(target)
        view = self._backend.view(address)
        try:
            found = view.requeue(msg_id)
        finally:
            view.close()
        if found:
            ensure_active(self._supervisor, address)
        return found

    # -- host tools ----------------------------------------------------------------------------

    def expose(self, name: str, fn: Callable[..., Any]) -> None:
        """Let actors call ``fn(**kwargs)`` here with ``self.call_host(name, **kwargs)``.

        The function runs in the parent (on a small thread pool), so credentials and
        connections stay here; arguments and results travel as JSON.
        """
        self._host_tools.expose(name, fn)

    # -- failures --------------------------------------------------------------------------------

    def _child_failed(self, child: Child, reason: str) -> None:
        """An actor was marked failed: its askers get the error now, ``on_failed`` runs."""
        self._inbox.fail_for(child.actor_id, child.failed_error())
        if self.on_failed is not None:
            call_back_on(self._callbacks, self.name, self.on_failed, child.actor_id, reason)

    def _check_open(self) -> None:
        if self._closing:
            raise SystemShutDown(self.name)

    # -- shutdown --------------------------------------------------------------------------------

    def shutdown(self, timeout: float | None = 10.0) -> None:
        """Stop every actor (deepest first), then the system's threads and pool.

        Politely, then firmly: a stop request, ``timeout`` seconds of grace, SIGTERM,
        then SIGKILL. Pending asks fail with ``SystemShutDown``. Idempotent.
        """
        if self._closing:
            return
        self._closing = True
        self._supervisor.shutdown(timeout)
        self._host_tools.close()
        self._inbox.close(lambda who: SystemShutDown(self.name, f"before {who!r} replied"), 2.0)
        self._backend.close()  # every tell_async's Future is resolved
        self._callbacks.shutdown(wait=False)
        _binding.unregister_system(self)
        self._system_lock.release()
        self._finalizer.detach()


def _shutdown_at_exit(system_ref: "weakref.ref[ActorSystem]") -> None:
    system = system_ref()
    if system is not None and not system._closing:
        system.shutdown(timeout=5.0)


__all__ = ["ActorInfo", "ActorSystem", "ChildInfo"]
