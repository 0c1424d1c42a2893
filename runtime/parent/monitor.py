"""The monitor thread: one wait on every child's sentinel and pipe, and a wake-up pipe;
and the sweeper thread, which runs the cold sweep (``activation.sweep_cold``).

A death is noticed at once; the restart policy decides what follows. Supervision
must outlive any one mistake: an iteration that raises is logged and the loop goes
on. Nothing here sleeps: the wait's timeout is the next due restart. The cold sweep
reads the mailbox of every cold actor this run knows, which with thousands of them
takes a good part of a second: it runs on a thread of its own, so it never holds up
the handling of an exit, and comes round every ``COLD_SWEEP_INTERVAL`` seconds or,
when a sweep takes long, seldom enough that it uses at most ``SWEEP_SHARE`` of a
core.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import ActorNotFound, SpawnError, StoreError
from ..records import FAILED, IDLE, RESTARTING, STARTING, STOPPED
from ..threads import start_thread
from ..worker.pausing import PAUSED_EXIT
from .activation import ensure_active, sweep_cold
from .children import Child
from .lanes import read_one
from .launcher import TERMINATE_GRACE, describe_exit, readable
from .restart_policy import judge
from .resume import paused_exit
from .starting import launch, settle_failed_start

if TYPE_CHECKING:
    from .supervisor import Supervisor

log = logging.getLogger(__name__)

#: The most of one core the cold sweep may use: a sweep that took ``t`` seconds is
#: followed by a pause of at least ``t / SWEEP_SHARE - t``.
SWEEP_SHARE = 0.05


def start_monitor(sup: "Supervisor") -> threading.Thread:
    return start_thread(_monitor, f"actors-monitor-{sup.system_id}", sup)


def start_sweeper(sup: "Supervisor") -> threading.Thread:
    return start_thread(_sweeper, f"actors-sweep-{sup.system_id}", sup)


def _monitor(sup: "Supervisor") -> None:
    while not sup.closed:
        try:
            _monitor_once(sup)
        except Exception:
            log.exception("system %s: supervision error (continuing)", sup.system_id)


def _sweeper(sup: "Supervisor") -> None:
    from .supervisor import COLD_SWEEP_INTERVAL

    pause = COLD_SWEEP_INTERVAL
    while not sup.ending.wait(pause):
        began = time.monotonic()
        try:
            sweep_cold(sup)
        except Exception:
            log.exception("system %s: cold sweep error (continuing)", sup.system_id)
        took = time.monotonic() - began
        pause = max(COLD_SWEEP_INTERVAL, took / SWEEP_SHARE - took)


def _monitor_once(sup: "Supervisor") -> None:
    """One wait on every sentinel, pipe and the wake-up pipe; then the due work."""
    from .supervisor import COLD_SWEEP_INTERVAL

    with sup.lock:
        sentinels: dict[int, tuple[Child, Any]] = {}
        conns: dict[Any, Child] = {}
        for child in sup.children.values():
            if child.process is not None and child.status not in (STARTING, RESTARTING):
                sentinels[child.process.sentinel] = (child, child.process)
                if child.conn_open:
                    conns[child.conn] = child
        due = min((t for t, _ in sup.restarts_due), default=None)
    # A restart is due by the supervisor's clock (a test's may be fake): look again
    # at least every COLD_SWEEP_INTERVAL of real time while one is pending.
    timeout = None if due is None else min(COLD_SWEEP_INTERVAL, max(0.0, due - sup.clock()))
    lanes = sup.lanes
    lanes.sync(conns)
    ready = readable([sup.wakeup.fd, lanes.fd, *sentinels], timeout)
    # Pipes first: an "exit" event must be read before the death is judged.
    if lanes.fd in ready:
        for conn in lanes.ready():
            owner = conns.get(conn)
            if owner is None or owner.conn is not conn or not owner.conn_open:
                continue
            if not owner.reader.acquire(blocking=False):
                continue  # an asker reads it, and re-arms it when it is done
            try:
                # The report may be stale: an asker can have taken the lock after the
                # report and read everything there was. Never block on an empty pipe.
                if owner.conn_open and conn.poll():
                    read_one(sup, owner, conn)
            finally:
                owner.reader.release()
            if owner.conn_open:
                lanes.arm(conn.fileno())
    for obj in ready:
        if obj == sup.wakeup.fd:
            sup.wakeup.clear()
        elif isinstance(obj, int) and obj in sentinels:
            child, process = sentinels[obj]
            if child.process is process:  # not already handled
                _child_exited(sup, child)
    _run_due_restarts(sup)


def _child_exited(sup: "Supervisor", child: Child) -> None:
    process = child.process
    process.join(TERMINATE_GRACE)
    code = process.exitcode
    with child.reader:  # an asker reading the pipe lets go at once: it polls the sentinel too
        if child.conn_open:  # pick up a last "exit" event still in the pipe
            while child.conn.poll():
                read_one(sup, child, child.conn)
                if not child.conn_open:
                    break
        # Closed under the lock and marked closed first: an asker that takes the lock
        # next finds it closed, never a closed pipe that still says it is open.
        child.conn_open = False
        sup.lanes.forget(child.conn)
        child.conn.close()
    # A worker that died without withdrawing leaves a record that looks alive until
    # its lease runs out; it is dead now, so take it away (only if it is its own).
    sup.backend.fabric.withdraw(child.actor_id, pid=process.pid)
    address = sup.backend.address(sup.system_id, child.actor_id)
    # Read before anything starts again: the next activation clears the marker.
    in_flight = _inflight_id(sup, address)
    with sup.lock:
        child.process, child.conn, child.conn_open = None, None, False
        reason = child.exit_reason
        requested = child.stop_requested or sup.closing
        clean = code == 0 and reason is not None
        killed = child.killed
        wake_at, child.wake_at = child.wake_at, None
        passivated, child.passivating = child.passivating, False
        if requested:
            child.status = STOPPED
            child.stop_requested = child.killed = False
        elif clean and passivated:  # capacity made room: cold, not stopped (see ``passivation``)
            child.status = IDLE
        elif clean and reason == "idle":
            child.status = IDLE
        elif clean and reason == PAUSED_EXIT:
            paused_exit(sup, child)  # never restarted, whatever its restart policy
        elif clean and child.spec.restart != "always":
            child.status = STOPPED
        else:
            on_death(sup, child, code, reason, in_flight)
    if killed:  # a deliberate kill is no evidence that the message it interrupted is poison
        _forget_inflight(sup, address)
    # Stored before anyone waiting on `exited` looks; nobody asked for a passivation
    # (a stop meanwhile leaves it stopped), and under churn waiting for each record
    # would hold up every other exit behind the index writes.
    sup.record(child, wait=not (passivated and child.status == IDLE))
    child.exited.set()
    if child.status == FAILED:
        sup.on_failed(child, child.last_error)
    # An actor that went idle as a message arrived comes straight back. One that
    # stopped stays stopped (its leftovers wait) until a new message activates it.
    if child.status == IDLE and not sup.closing and _has_waiting(sup, address):
        ensure_active(sup, address)
    elif wake_at is not None and clean and child.status in (IDLE, STOPPED) and not sup.closing:
        sup.wakes.schedule(child.actor_id, wake_at)  # its timers bring it back


def _has_waiting(sup: "Supervisor", address: Any) -> bool:
    view = sup.backend.view(address)
    try:
        return view.has_waiting()
    finally:
        view.close()


def _inflight_id(sup: "Supervisor", address: Any) -> str | None:
    """The message the dead worker was handling, if the in-flight marker names one."""
    try:
        view = sup.backend.view(address)
    except (ActorNotFound, StoreError):
        return None
    try:
        return view.inflight_id()
    finally:
        view.close()


def _forget_inflight(sup: "Supervisor", address: Any) -> None:
    view = sup.backend.view(address)
    try:
        view.forget_inflight()
    finally:
        view.close()


def on_death(sup: "Supervisor", child: Child, code: int | None, reason: str | None,
             in_flight: str | None = None) -> None:
    """An exit nobody asked for: restart with backoff, or mark failed past the cap
    (hold ``sup.lock``; the caller reports a failure with ``on_failed``).

    A death while the message ``in_flight`` was handled is blamed on the message:
    it does not use up the restart budget (see ``restart_policy``), and the next
    activation counts it against the message, burying it after ``max_attempts``.
    """
    if code is None:  # a restart that never registered
        what = reason or "did not start"
    else:
        what = describe_exit(code) + (f" ({reason})" if reason else "")
    if in_flight is not None:
        what += f" while handling message {in_flight}"
    verdict, child.deaths = judge(sup.policy, child.spec.restart, child.deaths, sup.clock(),
                                  poison=in_flight is not None)
    if not verdict.restart:
        log.error("actor %s: worker died: %s; %s, giving up", child.actor_id, what, verdict.reason)
        child.status = FAILED
        child.last_error = f"died: {what}" if child.spec.restart == "never" else f"{verdict.reason}; last: {what}"
        return
    child.status = RESTARTING
    blame = " (counted against the message, not the restart limit)" if in_flight is not None else ""
    log.warning("actor %s: worker died: %s; restarting in %.2f s%s", child.actor_id, what, verdict.delay, blame)
    sup.restarts_due.append((sup.clock() + verdict.delay, child.actor_id))


def _run_due_restarts(sup: "Supervisor") -> None:
    now = sup.clock()
    with sup.lock:
        due = [actor_id for t, actor_id in sup.restarts_due if t <= now]
        sup.restarts_due = [(t, actor_id) for t, actor_id in sup.restarts_due if t > now]
    for actor_id in due:
        with sup.lock:
            child = sup.children.get(actor_id)
            if child is None or child.status != RESTARTING:
                continue
            if child.stop_requested or sup.closing:  # stopped while it waited
                child.status = STOPPED
                child.stop_requested = child.killed = False
                settled = True
            else:
                settled = False
                child.restarts += 1
                child.exited.clear()
        if settled:
            sup.record(child)
            child.exited.set()
            continue
        start_thread(_relaunch, f"actors-restart-{actor_id}", sup, child)


def _relaunch(sup: "Supervisor", child: Child) -> None:
    try:
        launch(sup, child, sup.spawn_timeout)
        log.info("actor %s: restarted (pid %s)", child.actor_id, child.pid)
    except SpawnError as exc:
        settle_failed_start(sup, child, exc, lambda c, reason: on_death(sup, c, None, reason))
        if child.status == FAILED:
            sup.on_failed(child, child.last_error)
