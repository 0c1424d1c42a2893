"""Starting one worker for a child and waiting until it registered.

Waits on the pipe (the "ready" event) and the process sentinel together, with a
deadline; no polling. A warm worker from the pool that turns out to have died while
parked is replaced once by a new process. A start that does not come up is settled
by the caller's rule: a spawn marks the actor failed, a restart counts it as a death.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from .. import control
from ..backends.base import OpensSendersAhead
from ..errors import ActorError, SpawnError
from ..records import FAILED, RESTARTING, RUNNING, STARTING, STOPPED
from ..worker.main_guard import EXIT_UNGUARDED_MAIN, unguarded_reason
from .children import Child
from .launcher import TERMINATE_GRACE, describe_exit, kill, readable, receive, send
from .scriptless import needs_main
from .worker_logs import parent_levels

if TYPE_CHECKING:
    from .supervisor import Supervisor

log = logging.getLogger(__name__)


def prepare(sup: "Supervisor", child: Child) -> None:
    """Make the child's storage and have it recorded before its worker exists.

    The record is written by the recorder, in the background; until it is stored,
    other processes find the actor by its lease record, which the worker publishes
    before it reports ready.
    """
    address = sup.backend.address(sup.system_id, child.actor_id)
    fresh = sup.backend.provision(address, child.spec.limits.max_pending)
    set_format = getattr(sup.backend, "set_mailbox_format", None)  # the maildir backend's (crate interop)
    if set_format is not None:
        set_format(address, child.spec.mailbox)
    existing = None if fresh else sup.backend.store.child_entry(child.actor_id)
    child.restarts = existing[1].restarts if existing else 0
    sup.record(child, wait=False)


def launch(sup: "Supervisor", child: Child, timeout: float | None) -> None:
    """Start a worker for ``child`` and wait until it registered; on return the child
    runs and the monitor watches it.

    Raises:
        SpawnError: exited before registering, activation failed, or timed out (the
            process is killed), or the system is shutting down.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    with sup.lock:
        if sup.closing:
            raise SpawnError(child.actor_id, f"system {sup.system_id!r} is shutting down")
        sup.launching[child.actor_id] = None  # shutdown waits for it from here on
    try:
        # Outside the lock: a process start takes tens of milliseconds, and the
        # monitor and every reply need the lock meanwhile.
        warm = sup.pool.take()
        try:
            _start_on(sup, child, warm or _cold_start(sup, child), timeout)
        except _Vanished as exc:
            if warm is None:
                raise SpawnError(child.actor_id, exc.reason) from None
            # A parked worker can die while it waits (the OOM killer, a stray
            # signal), just before a spawn takes it. That says nothing about the
            # actor: try once more on a new process.
            log.warning("actor %s: warm worker %s was gone (%s); starting a new one",
                        child.actor_id, warm[0].pid, exc.reason)
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                _start_on(sup, child, _cold_start(sup, child), remaining)
            except _Vanished as again:
                raise SpawnError(child.actor_id, again.reason) from None
    finally:
        with sup.lock:
            sup.launching.pop(child.actor_id, None)
        with sup.state_changed:
            sup.state_changed.notify_all()
        sup.pool.refill_soon()  # a failed start used a warm worker up too


def _cold_start(sup: "Supervisor", child: Child) -> tuple[Any, Any]:
    """A new process for ``child``: it runs the program's main script only if the
    actor's class is defined there (``scriptless``)."""
    return sup.launcher.start(child.actor_id, run_main=needs_main(child.spec.actor_class))


class _Vanished(SpawnError):
    """The worker exited before registering without saying why (no error event);
    ``launch`` turns it into a plain ``SpawnError``."""


def _start_on(sup: "Supervisor", child: Child, started: tuple[Any, Any], timeout: float | None) -> None:
    """Hand ``child``'s spec to the worker ``started`` and wait until it registered."""
    process, conn = started
    with sup.lock:
        sup.launching[child.actor_id] = process  # shutdown finishes or kills it
        closing = sup.closing
    if closing:
        kill(process)
        conn.close()
        raise SpawnError(child.actor_id, f"system {sup.system_id!r} is shutting down")
    _await_ready(sup, child, process, conn, timeout)


def _await_ready(sup: "Supervisor", child: Child, process: Any, conn: Any, timeout: float | None) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    send(conn, control.levels(parent_levels()))  # the worker logs what this process would
    send(conn, child.spec.to_wire())  # if it died already, the sentinel tells why
    _open_sender(sup, child)
    error = ""
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = readable([conn, process.sentinel], remaining)
        if not ready:
            kill(process)
            conn.close()
            raise SpawnError(child.actor_id, f"did not register within {timeout} s (killed)")
        if conn in ready:
            event = receive(conn, sup.on_reply)
            if event is None:  # EOF: only the sentinel is left to wait for
                if not readable([process.sentinel], remaining):
                    kill(process)
                    conn.close()
                    raise SpawnError(child.actor_id, f"closed its pipe but did not exit within "
                                                     f"{timeout} s (killed)")
            elif event.kind == control.READY:
                break
            elif event.kind == control.ERROR:
                error = event.text("error")
                continue
            else:
                continue
        process.join(TERMINATE_GRACE)  # reaps it
        if process.exitcode is None:
            kill(process)
        conn.close()
        if process.exitcode == EXIT_UNGUARDED_MAIN:  # not the actor's fault: a retry would die the same way
            raise SpawnError(child.actor_id, unguarded_reason())
        if not error:
            raise _Vanished(child.actor_id, f"exited before registering: {describe_exit(process.exitcode)}")
        raise SpawnError(child.actor_id, error.removeprefix(f"could not start {child.actor_id!r}: "))
    with sup.lock:
        child.process, child.conn, child.conn_open = process, conn, True
        child.exit_reason = None
        child.status = RUNNING
        child.exited.clear()
        stop_now = child.stop_requested or sup.closing
    sup.record(child, wait=False)
    sup.wake()
    sup.pool.note_module(child.spec.actor_class.partition(":")[0])  # it imports
    if stop_now:  # stopped (or the system shut down) while it was starting
        send(conn, control.STOP)


def _open_sender(sup: "Supervisor", child: Child) -> None:
    """While the worker starts, open what this process's first message to it would
    (the maildir backend's sender handle and segment): that message, usually the
    caller's first ask right after ``spawn`` returns, then only writes. A failure
    here is only a lost head start: the first delivery opens them, or reports why."""
    backend = sup.backend
    if not isinstance(backend, OpensSendersAhead):
        return
    try:
        backend.open_sender(backend.address(sup.system_id, child.actor_id))
    except (ActorError, OSError) as exc:
        log.debug("actor %s: could not open its sender ahead of its first message: %s", child.actor_id, exc)


def settle_failed_start(sup: "Supervisor", child: Child, exc: SpawnError,
                        give_up: Callable[[Child, str], None]) -> None:
    """A start that did not come up: stopped if a stop or the shutdown asked for
    that, else ``give_up(child, reason)`` (the caller's rule: fail, or restart)."""
    with sup.lock:
        if child.stop_requested or sup.closing:
            child.status = STOPPED
            child.stop_requested = child.killed = False
        else:
            give_up(child, exc.reason)
    sup.record(child)
    child.exited.set()
    sup.wake()


def wait_started(sup: "Supervisor", child: Child, timeout: float | None) -> None:
    """Wait for a start already in progress (another caller's) to finish.

    Raises:
        SpawnError: that start failed, or did not finish within ``timeout``.
    """
    deadline = time.monotonic() + (sup.spawn_timeout if timeout is None else timeout)
    with sup.state_changed:  # status is checked under the condition: no lost wakeup
        while child.status in (STARTING, RESTARTING):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SpawnError(child.actor_id, "still starting")
            sup.state_changed.wait(remaining)
    if child.status == FAILED:
        raise SpawnError(child.actor_id, child.last_error or "it failed to start")
