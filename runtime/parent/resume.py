"""Paused actors seen from their system: marked paused, and resumed.

A worker that finds its actor paused exits with ``PAUSED_EXIT`` (see
``worker.pausing``); the monitor marks the child paused with the session's reason
(``paused_exit``) and never restarts it. Activation leaves a paused child alone, so a
message to it waits. ``resume`` lifts the pause (``worker.resuming.resume_cold``) and
activates the actor.

An actor of another system is resumed by that system: asked through its inbox when
it runs, or, when it does not (its lock is free), resumed on disk here under its
lock, its record reset, and an activation request queued for its next run
(``resume_elsewhere``).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from typing import TYPE_CHECKING

from ..address import Address
from ..backends.base import Backend
from ..errors import NotPaused, StoreError
from ..messages import AgentRef
from ..records import IDLE, PAUSED, RESTARTING, STARTING, STOPPED
from ..worker.pausing import Pause, read_pause, recorded_pause
from ..worker.replies import request_activation
from ..worker.resuming import RESUME_CLAIM_TIMEOUT, ask_system_to_resume, resume_cold
from .activation import child_of, ensure_active
from .children import Child

if TYPE_CHECKING:
    from .supervisor import Supervisor

log = logging.getLogger(__name__)


def paused_exit(sup: "Supervisor", child: Child) -> None:
    """A worker exited because its actor is paused: mark the child paused, with the
    reason its session gives (hold ``sup.lock``). A pause lifted meanwhile (a resume
    that raced the exit) leaves it idle: the monitor starts it again if messages wait."""
    pause = recorded_pause(sup.backend.store, sup.system_id, child.actor_id)
    if pause is None:
        child.status = IDLE
        return
    child.status, child.last_error = PAUSED, pause.reason
    log.warning("actor %s: paused: %s; its messages wait ('actors resume %s [--skip]')",
                child.actor_id, pause.reason, child.actor_id)


def resume(sup: "Supervisor", address: Address, skip: bool, timeout: float = RESUME_CLAIM_TIMEOUT) -> Pause:
    """Lift the pause of an actor of this system and activate it; returns the pause.

    Without ``skip`` the message it paused at is tried again with its attempts
    forgotten; with ``skip`` it goes to the dead letters. Returns once that is
    committed; the worker starts in the background.

    Raises:
        NotPaused: its session records no pause. StoreError: a worker still holds
            its mailbox after ``timeout`` seconds, or its files failed.
        SystemShutDown: the system is shutting down.
    """
    actor_id = address.name
    sup.check_open()
    with sup.lock:
        child = child_of(sup, address)
    if read_pause(sup.backend.store, sup.system_id, actor_id) is None:
        raise NotPaused(actor_id, child.status if child is not None else "")
    # A worker that found the pause is on its way out: the monitor marks it paused.
    if child is not None and not child.exited.wait(timeout):
        raise StoreError(actor_id, f"its worker (pid {child.pid}) still runs after {timeout} s")
    with sup.lock:
        if child is not None and child.status not in (STARTING, RESTARTING) and not child.alive:
            child.status = PAUSED  # no activation while its session changes
    try:
        pause = resume_cold(sup.backend, address, skip=skip, claim_timeout=timeout)
    finally:
        _settle(sup, child, address)
    ensure_active(sup, address)
    return pause


def _settle(sup: "Supervisor", child: Child | None, address: Address) -> None:
    """After a resume (done or not): paused as the session says, else stopped."""
    if child is None:
        return
    pause = recorded_pause(sup.backend.store, sup.system_id, child.actor_id)
    with sup.lock:
        if child.status != PAUSED or child.alive:
            return
        if pause is None:
            child.status, child.last_error = STOPPED, ""
        else:
            child.last_error = pause.reason
    sup.record(child)


class Resumed(enum.Enum):
    """How ``resume_elsewhere`` went."""

    DONE = "done"  # resumed on disk; its system starts it when it next runs
    ASKED = "asked"  # its system runs and was asked to resume it


@dataclasses.dataclass(frozen=True)
class Elsewhere:
    how: Resumed
    pause: Pause


def resume_elsewhere(backend: Backend, sender: AgentRef, address: Address, skip: bool) -> Elsewhere:
    """Resume an actor from a process that is not its system (see the module docstring).

    Raises:
        NotPaused: its session records no pause. ActorNotFound: no mailbox, or its
            system runs without an inbox. StoreError: its files failed.
    """
    system_id, actor_id = address.system_id, address.name
    pause = read_pause(backend.store, system_id, actor_id)
    if pause is None:
        found = backend.store.child_entry(actor_id)
        raise NotPaused(actor_id, found[1].status if found is not None else "")
    try:
        lock = backend.store.lock_system(system_id)
    except StoreError:  # held: the system runs, and it alone may start the actor
        ask_system_to_resume(backend, sender, address, skip)
        return Elsewhere(Resumed.ASKED, pause)
    try:
        lifted = resume_cold(backend, address, skip=skip)
        found = backend.store.child_entry(actor_id)
        if found is not None and found[0] == system_id and found[1].status == PAUSED:
            backend.store.record_children(system_id, [dataclasses.replace(found[1], status=STOPPED,
                                                                          last_error="", updated_at=0.0)])
        request_activation(backend, sender, address)  # served when the system next runs
    finally:
        lock.release()
    return Elsewhere(Resumed.DONE, lifted)
