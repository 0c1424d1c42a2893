"""The supervisor: a system's children, started, watched, restarted and stopped.

::

    spawn(spec) ----> provision storage -> pool or new process -- spec --> pipe_main
                      wait(pipe, sentinel, deadline)  <------- ready ------+
    monitor thread    wait(every sentinel, every pipe, wake-up pipe)
                      a death -> restart_policy.judge -> relaunch after a delay,
                                 or mark failed (askers get ActorFailed at once)
    ensure_active     a known actor with no worker is started (see ``activation``),
                      unless it is marked failed or its class cannot be imported here
    capacity          with ``max_active``, every start takes a slot first; a full set
                      passivates its least recently used idle actor (see ``capacity``)
    shutdown          stop all (deepest first), grace, SIGTERM, SIGKILL

``starting`` holds the start of one worker, ``monitor`` the thread that notices
deaths, ``activation`` the start of actors that a message (not a spawn) needs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from .. import control
from ..address import Address
from ..backends.base import Backend
from ..errors import ActorFailed, ActorNotFound, SpawnError, StoreError, SystemShutDown
from ..messages import AgentRef
from ..records import FAILED, RESTARTING, STARTING, STOPPED, ChildEntry
from ..spec import ProvisionSpec
from ..wakeup import WakeUp
from .activation import ensure_active, find_child
from .capacity import Capacity
from .children import Child
from .importable import unavailable_here
from .lanes import Lanes
from .launcher import Launcher, kill, send, stop_process
from .passivation import SupervisorFleet, holds_slot
from .pool import Pool
from .recorder import Recorder
from .restart_policy import RestartPolicy
from .wakes import Wakes, scan_sessions

log = logging.getLogger(__name__)

#: Seconds between sweeps for messages waiting at actors that are not running.
COLD_SWEEP_INTERVAL = 2.0
#: Seconds a child gets after a stop before the next step (see ``launcher``).
TERMINATE_GRACE = 2.0


class Supervisor:
    """The children of one system (see the module docstring).

    Args:
        backend: the project's backend.
        system_id: the system.
        launcher: starts worker processes.
        pool: warm workers (may be empty).
        policy: restart limits.
        spawn_timeout: seconds a start waits for registration by default.
        on_failed: called (on the monitor thread) as ``on_failed(child, reason)`` when
            an actor is marked failed; it must not block.
        on_reply: gets the frame of a reply that came back on a worker's pipe
            (``control.REPLY_PREFIX`` or ``ANSWER_PREFIX``).
        clock: monotonic seconds, for restart timing and the capacity's last-use
            times (a test's fake clock).
        max_active: the most actors with a worker at once (None: no limit; see
            ``capacity``).
    """

    def __init__(self, backend: Backend, system_id: str, launcher: Launcher, pool: Pool,
                 policy: RestartPolicy, spawn_timeout: float,
                 on_failed: Callable[[Child, str], None], on_reply: Callable[[bytes], None],
                 clock: Callable[[], float] = time.monotonic, max_active: int | None = None) -> None:
        self.backend = backend
        self.system_id = system_id
        self.sender = AgentRef(session_id=system_id, role="system", system_id=system_id)
        self.launcher = launcher
        self.pool = pool
        self.policy = policy
        self.spawn_timeout = spawn_timeout
        self.on_failed = on_failed
        self.on_reply = on_reply
        self.clock = clock
        self.lock = threading.RLock()
        self.state_changed = threading.Condition()
        self.children: dict[str, Child] = {}
        self.restarts_due: list[tuple[float, str]] = []
        self.launching: dict[str, Any] = {}  # actor id -> process of a start in progress
        #: Actors of this system whose class this process cannot import (id -> why);
        #: messages do not start them here (see ``importable``). A spawn forgets one.
        self.unstartable: dict[str, str] = {}
        #: Decides first, for an actor of this system, whether activating it is this
        #: process's business: returns True when it is not (placed on a host of a
        #: pool, see ``placing``; or, on a host, placed on another host).
        self.route: Callable[[Address], bool] | None = None
        self.closing = False
        self.closed = False
        self.wakeup = WakeUp()
        #: The monitor's epoll over the children's pipes, which askers borrow (see ``lanes``).
        self.lanes = Lanes()
        self.recorder = Recorder(self._write_records, f"actors-record-{system_id}")
        self._monitor_thread: threading.Thread | None = None
        self._sweeper_thread: threading.Thread | None = None
        #: Set when shutdown begins: ends the cold sweeper's wait.
        self.ending = threading.Event()
        #: Slots for warm actors: every start takes one (see ``capacity``).
        self.capacity = Capacity(max_active, SupervisorFleet(self), clock=clock, name=system_id)
        #: Cold actors to activate when their timers come due (see ``wakes``).
        self.wakes = Wakes(lambda actor_id: ensure_active(self, backend.address(system_id, actor_id)),
                           f"actors-wakes-{system_id}")

    def start(self) -> None:
        from .monitor import start_monitor, start_sweeper

        self._monitor_thread = start_monitor(self)
        self._sweeper_thread = start_sweeper(self)
        self.pool.start()
        self.wakes.start(lambda: scan_sessions(self))

    def wake(self) -> None:
        """Have the monitor look again now (a child started, a restart was scheduled)."""
        self.wakeup.ring()

    # -- records -------------------------------------------------------------------------

    def record(self, child: Child, wait: bool = True) -> None:
        """Persist the supervision facts of ``child`` (see ``recorder``).

        With ``wait`` true, returns once they are stored; otherwise they are written
        soon, together with other records, with the child's facts as they are then.
        """
        # Under the lock its status changes under: an activation that makes it warm
        # again between the look and the release would have its new slot freed.
        with self.lock:
            if not holds_slot(child):  # every change of a child's status is recorded
                self.capacity.release(child.actor_id)
            elif child.status == RESTARTING:  # died while passivated: it keeps its slot
                self.capacity.kept(child.actor_id)
        self.recorder.record(child.actor_id, child, wait)

    def _write_records(self, children: list[Child]) -> None:
        with self.lock:
            entries = [ChildEntry.for_spec(child.spec, status=child.status, restarts=child.restarts,
                                           last_error=child.last_error) for child in children]
        try:
            self.backend.store.record_children(self.system_id, entries)
        except StoreError as exc:
            log.warning("system %s: could not record %s: %s", self.system_id,
                        ", ".join(f"{e.id} {e.status}" for e in entries), exc)
        with self.state_changed:
            self.state_changed.notify_all()

    # -- spawning ------------------------------------------------------------------------

    def spawn(self, spec: ProvisionSpec, timeout: float | None) -> None:
        """Start the actor ``spec`` provisions (or join a start in progress) and
        return once it registered.

        Raises:
            SpawnError: it could not start, runs elsewhere, or runs as another class.
        """
        from .starting import launch, prepare, settle_failed_start, wait_started

        actor_id = spec.identity.child_id
        self._check_not_elsewhere(actor_id)
        with self.lock:
            self.check_open()
            child = self.children.get(actor_id)
            if child is not None and (child.alive or child.status in (STARTING, RESTARTING)):
                if child.spec.actor_class != spec.actor_class:
                    raise SpawnError(actor_id, f"already running as {child.spec.actor_class}")
                running: Child | None = child
            else:
                # Refused before anything changes: a class only another program can
                # import must not leave the actor marked failed for that program.
                unavailable = unavailable_here(spec.actor_class)
                if unavailable is not None:
                    raise SpawnError(actor_id, unavailable)
                self.unstartable.pop(actor_id, None)
                running = None
                child = Child(spec)
                child.exited.clear()
                self.children[actor_id] = child
        if running is not None:
            wait_started(self, running, timeout)
            return
        deadline = time.monotonic() + (self.spawn_timeout if timeout is None else timeout)
        try:
            prepare(self, child)
            room = self.capacity.acquire(actor_id, deadline - time.monotonic())
            if room:
                launch(self, child, max(0.0, deadline - time.monotonic()))
        except SpawnError as exc:
            settle_failed_start(self, child, exc, self._fail_spawn)
            raise
        if not room:  # nothing is wrong with the actor: it stays cold, and a message starts it
            no_room = SpawnError(actor_id, f"no room: max_active={self.capacity.limit} actors are warm and "
                                           "none became idle in time (it stays cold; a message starts it)")
            settle_failed_start(self, child, no_room, self._leave_cold)
            raise no_room

    def _leave_cold(self, child: Child, reason: str) -> None:
        child.status = STOPPED

    def _fail_spawn(self, child: Child, reason: str) -> None:
        child.status = FAILED
        child.last_error = reason

    def _check_not_elsewhere(self, actor_id: str) -> None:
        record = self.backend.fabric.resolve(actor_id)
        if record is not None and record.system_id not in (None, self.system_id):
            raise SpawnError(actor_id, f"already running in system {record.system_id!r} (pid {record.pid})")
        owner = self.backend.store.resolve_child(actor_id)
        if owner is not None and owner != self.system_id:
            raise SpawnError(actor_id, f"the id belongs to system {owner!r} of this project")

    def check_open(self) -> None:
        if self.closing:
            raise SystemShutDown(self.system_id)

    # -- looking up ----------------------------------------------------------------------

    def owner(self, actor_id: str) -> str | None:
        """The system of this project that holds ``actor_id``: this one's own, the
        index, or, for an actor spawned a moment ago whose index entry is still being
        written, its lease record (published before its spawn returned)."""
        with self.lock:
            if actor_id in self.children:
                return self.system_id
        owner = self.backend.store.resolve_child(actor_id)
        if owner is None:
            record = self.backend.fabric.resolve(actor_id)
            owner = record.system_id if record is not None else None
        return owner

    def spec_of(self, actor_id: str) -> ProvisionSpec | None:
        """The spec a child of this system runs with (None for any other actor)."""
        with self.lock:
            child = self.children.get(actor_id)
            return None if child is None else child.spec

    def child(self, actor_id: str) -> Child | None:
        """This system's child ``actor_id``, or None if another system holds it.

        Raises:
            ActorNotFound: no actor of that id in the project.
        """
        with self.lock:
            child = self.children.get(actor_id)
        if child is None and self.owner(actor_id) is None:
            raise ActorNotFound(actor_id, f"project {self.backend.project_key}")
        return child

    def failed_error(self, address: Address) -> ActorFailed | None:
        """The error an ask gets at once if its actor (of this system) is marked
        failed, by this run or, as its records say, by an earlier one."""
        if address.system_id != self.system_id or address.actor_id is None:
            return None
        child = find_child(self, address)  # what activating it would find
        with self.lock:
            return child.failed_error() if child is not None and child.status == FAILED else None

    def snapshot(self) -> list[Child]:
        with self.lock:
            return list(self.children.values())

    # -- control -------------------------------------------------------------------------

    def cancel(self, actor_id: str) -> None:
        """Interrupt the handler the actor runs now (no-op when idle or not running)."""
        child = self.child(actor_id)
        if child is not None and child.conn_open:
            send(child.conn, control.CANCEL)

    def stop(self, actor_id: str, timeout: float | None) -> None:
        """Stop an actor (its own children first) after its current message."""
        child = self.child(actor_id)
        if child is None:
            return
        with self.lock:
            kids = [c for c in self.children.values() if c.parent_id == child.actor_id]
        for kid in kids:
            self.stop(kid.actor_id, timeout)
        running = self._halting(child, killed=False)
        if running is None:
            return
        conn, process = running
        if conn is not None:
            send(conn, control.STOP)
        if process is not None:
            stop_process(process, timeout)
        child.exited.wait(timeout)

    def kill(self, actor_id: str, timeout: float | None) -> None:
        """SIGKILL an actor's worker; it is not restarted, and its message is not
        blamed as poison."""
        child = self.child(actor_id)
        if child is None:
            return
        running = self._halting(child, killed=True)
        if running is None:
            return
        _, process = running
        if process is not None:
            kill(process)
        child.exited.wait(timeout)

    def _halting(self, child: Child, *, killed: bool) -> tuple[Any, Any] | None:
        """Mark ``child`` as being stopped (or killed); its pipe and process to act on,
        or None when it was only waiting out a restart backoff (now called off)."""
        with self.lock:
            child.stop_requested = True
            child.killed = child.killed or killed
            conn = child.conn if child.conn_open else None
            process = child.process
            cancelled = self._cancel_restart(child)
        if cancelled:
            self.record(child)
            child.exited.set()
            return None
        return conn, process

    def _cancel_restart(self, child: Child) -> bool:
        """Call off a restart still waiting out its backoff (hold ``lock``)."""
        if child.status != RESTARTING or child.process is not None:
            return False
        if not any(actor_id == child.actor_id for _, actor_id in self.restarts_due):
            return False  # already relaunching: the launch sees stop_requested
        self.restarts_due = [(t, a) for t, a in self.restarts_due if a != child.actor_id]
        child.status = STOPPED
        child.stop_requested = child.killed = False
        return True

    # -- shutdown ------------------------------------------------------------------------

    def shutdown(self, timeout: float | None) -> None:
        """Stop every actor (deepest first), politely, then firmly; end the threads."""
        with self.lock:
            self.closing = True
            children = sorted(self.children.values(), key=lambda c: -c.depth)
        self.ending.set()
        self.wakes.close()
        self.capacity.close()
        self.pool.close()
        deadline = None if timeout is None else time.monotonic() + timeout
        # Starts in progress end first (ready, then told to stop; or failed), or are
        # killed: no worker may outlive the system that would have supervised it.
        with self.state_changed:
            while self.launching and (deadline is None or time.monotonic() < deadline):
                self.state_changed.wait(None if deadline is None else deadline - time.monotonic())
        with self.lock:
            stragglers = [process for process in self.launching.values() if process is not None]
        for process in stragglers:
            kill(process)
        for child in children:
            with self.lock:
                conn = child.conn if child.conn_open else None
                child.stop_requested = True
            if conn is not None:
                send(conn, control.STOP)
        for child in children:
            process = child.process
            if process is not None:
                remaining = None if deadline is None else max(0.1, deadline - time.monotonic())
                stop_process(process, remaining)
            child.exited.wait(TERMINATE_GRACE)
        self.closed = True
        self.wake()
        if self._monitor_thread is not None:
            self._monitor_thread.join(TERMINATE_GRACE)
        if self._sweeper_thread is not None:
            self._sweeper_thread.join(TERMINATE_GRACE)
        self.recorder.close()
        if self._monitor_thread is None or not self._monitor_thread.is_alive():
            self.wakeup.close()
            self.lanes.close()

