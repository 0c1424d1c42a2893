"""Activating actors that a message needs: virtual actors, and a safety sweep.

A tell to a known actor with no worker starts one: an actor of this system is
started here; one of another system of the project is that system's business, and
it is asked through its inbox. Every ``COLD_SWEEP_INTERVAL`` (or less often, see
``monitor.SWEEP_SHARE``) a thread of the supervisor also looks
for actors of this system with messages waiting and no worker.

Three kinds of actor are left as they are: one marked failed (a spawn, or ``revive``
for ``actors restart``, brings it back), one paused (its session says so; only
``resume`` brings it back: see ``resume``), and one whose class this process cannot
import (see ``importable``): its messages wait for a program that can.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from ..address import Address
from ..errors import ActorNotFound, InvalidSpec, SpawnError, StoreError
from ..records import FAILED, IDLE, PAUSED, RESTARTING, STARTING, STOPPED
from ..spec import ProvisionSpec
from ..threads import start_thread
from ..worker.pausing import recorded_pause
from ..worker.replies import request_activation
from .children import Child
from .importable import say_once, unavailable_here
from .restart_policy import Deaths

if TYPE_CHECKING:
    from .supervisor import Supervisor

log = logging.getLogger(__name__)

#: A child in one of these states is not started for a message: it is on its way up,
#: or left as it is (see the module docstring).
_LEFT_AS_IS = frozenset({STARTING, RESTARTING, FAILED, PAUSED})


def ensure_active(sup: "Supervisor", address: Address) -> None:
    """Activate a known actor that has no running worker (see the module docstring)."""
    if address.actor_id is None or sup.closing:
        return
    if address.system_id != sup.system_id:
        request_activation(sup.backend, sup.sender, address)
        return
    actor_id = address.actor_id
    if sup.route is not None and sup.route(address):
        return  # placed on a host of a pool: the placement activates it (see ``placing``)
    with sup.lock:  # the common case, a running worker, under one hold of the lock
        child = sup.children.get(address.name)
        if child is not None and (child.alive or child.status in _LEFT_AS_IS):
            sup.capacity.touch(actor_id)  # a message for it: recently used (see ``capacity``)
            return
    child = find_child(sup, address)
    if child is None:
        return
    with sup.lock:
        if child.alive or child.status in _LEFT_AS_IS:
            sup.capacity.touch(actor_id)
            return
    if served_elsewhere(sup, actor_id):
        with sup.lock:
            if child.status == STOPPED and not child.alive:
                child.status = IDLE  # the cold sweep looks again, and starts it once that worker is gone
        return
    with sup.lock:
        if child.alive or child.status in _LEFT_AS_IS:
            return
        child.status = STARTING
        child.stop_requested = False
        child.exited.clear()
    start_thread(_activate, f"actors-activate-{actor_id}", sup, child)


def served_elsewhere(sup: "Supervisor", actor_id: str) -> bool:
    """Whether a worker this system did not start serves the actor: a live lease
    record whose process runs (a seed worker started by hand or by another program).
    A second activation would only be refused the mailbox; the messages reach the
    worker that holds it. A record left by a worker that died with its parent names a
    process that is gone, and does not count (records name a process of this
    machine: the maildir backend is one machine)."""
    try:
        record = sup.backend.fabric.resolve(actor_id)
    except StoreError:
        return False
    if record is None or record.pid <= 0:
        return False
    try:
        os.kill(record.pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # it runs, as another user
    return True


def revive(sup: "Supervisor", address: Address) -> None:
    """Bring back an actor of this system that was marked failed (``actors restart``):
    forget its failure and its recent deaths and activate it. An actor that is not
    failed is only activated (a no-op if it runs)."""
    actor_id = address.actor_id
    if actor_id is None or address.system_id != sup.system_id or sup.closing:
        return
    with sup.lock:
        child = child_of(sup, address)
        if child is not None and child.status == FAILED and not child.alive:
            log.info("actor %s: restarting after it was marked failed (%s)", actor_id, child.last_error)
            child.status, child.last_error, child.deaths = STOPPED, "", Deaths()
    ensure_active(sup, address)


def child_of(sup: "Supervisor", address: Address) -> Child | None:
    """The child for an actor of this system, from this run or else from its records
    (then kept); None if there is nothing to start it with (hold ``sup.lock``)."""
    child = sup.children.get(address.name)
    if child is None and address.name not in sup.unstartable:
        child = known_child(sup, address)
        if child is not None:
            sup.children[address.name] = child
    return child


def find_child(sup: "Supervisor", address: Address) -> Child | None:
    """``child_of`` for a caller that does not hold ``sup.lock``: the records of an
    actor this run has not met yet are read outside the lock (the monitor, every
    reply and every other sender need it meanwhile); the first of two concurrent
    finders to come back is kept."""
    with sup.lock:
        child = sup.children.get(address.name)
        if child is not None or address.name in sup.unstartable:
            return child
    found = known_child(sup, address)
    with sup.lock:
        child = sup.children.get(address.name)
        if child is None and found is not None and address.name not in sup.unstartable:
            child = sup.children[address.name] = found
        return child


def known_child(sup: "Supervisor", address: Address) -> Child | None:
    """A child for an actor of this system that this run has not started, from its
    records (it reads files: better without ``sup.lock``, see ``find_child``), not
    kept yet: None if there is nothing to start it with, or if this
    process cannot import its class (remembered, and said once). One its last run
    marked failed is known as failed, with the recorded reason: messages do not
    bring it back; a spawn or ``actors restart`` does. One whose session records a
    pause is known as paused (the session is the authority): only a resume lifts it."""
    actor_id = address.name
    spec = recorded_spec(sup, actor_id)
    if spec is None:
        return None
    reason = unavailable_here(spec.actor_class)
    if reason is not None:
        with sup.lock:
            sup.unstartable[actor_id] = reason
        say_once(actor_id, address, reason)
        return None
    child = Child(spec)
    child.status = STOPPED  # no worker yet: the caller starts one
    try:
        found = sup.backend.store.child_entry(actor_id)
    except StoreError:
        found = None
    if found is not None and found[0] == sup.system_id and found[1].status == FAILED:
        entry = found[1]
        child.status, child.restarts = FAILED, entry.restarts
        child.last_error = entry.last_error or "marked failed by an earlier run"
    pause = recorded_pause(sup.backend.store, sup.system_id, actor_id)
    if pause is not None:
        child.status, child.last_error = PAUSED, pause.reason
    return child


def _activate(sup: "Supervisor", child: Child) -> None:
    from .starting import launch, settle_failed_start

    if not sup.capacity.acquire(child.actor_id, sup.spawn_timeout):
        # No room came free: it stays cold with its messages, and the cold sweep tries
        # again (a stop or the shutdown meanwhile leaves it stopped).
        with sup.lock:
            child.status = STOPPED if child.stop_requested or sup.closing else IDLE
            child.stop_requested = child.killed = False
        sup.record(child)
        child.exited.set()
        return
    try:
        launch(sup, child, sup.spawn_timeout)
    except SpawnError as exc:
        if not sup.closing:
            log.error("actor %s: activation failed: %s", child.actor_id, exc.reason)

        def give_up(c: Child, reason: str) -> None:
            c.status = FAILED
            c.last_error = reason

        settle_failed_start(sup, child, exc, give_up)
        if child.status == FAILED:
            sup.on_failed(child, child.last_error)


def recorded_spec(sup: "Supervisor", actor_id: str) -> ProvisionSpec | None:
    """The spec an actor of this system was last started with (no secrets)."""
    try:
        doc = sup.backend.store.load_session(sup.system_id, actor_id)
    except StoreError:
        return None
    spec_doc = doc.meta.get("spec") if doc is not None else None
    if not isinstance(spec_doc, dict):
        return None
    try:
        spec = ProvisionSpec.from_doc(spec_doc)
        # It belongs to this project wherever the project's files were made.
        spec.home, spec.durability = sup.backend.location, sup.backend.durability
        spec.identity.project_key = sup.backend.project_key
        return spec.validate()
    except (InvalidSpec, TypeError, ValueError, KeyError):
        log.warning("actor %s: recorded spec is unusable; not activating", actor_id)
        return None


def sweep_cold(sup: "Supervisor") -> None:
    """Activate known actors with waiting messages but no worker (a safety net)."""
    try:
        entries = sup.backend.store.list_children(sup.system_id)
    except StoreError as exc:  # a cache; rebuild_index regenerates it
        log.warning("system %s: cannot read the list of its children (%s); run `actors rebuild-index`",
                    sup.system_id, exc)
        return
    for entry in entries:
        with sup.lock:
            child = sup.children.get(entry.id)
            if child is not None and (child.alive or child.status != IDLE):
                continue
        # Not known to this run: the record says what its last run left it as. A
        # stopped or failed actor waits for a message (or a spawn) to bring it back.
        if child is None and entry.status in (STOPPED, FAILED, PAUSED):
            continue
        address = sup.backend.address(sup.system_id, entry.id)
        try:
            view = sup.backend.view(address)
        except (ActorNotFound, StoreError):
            continue
        try:
            waiting = view.has_waiting()
        except (StoreError, OSError):
            continue
        finally:
            view.close()
        if waiting:
            ensure_active(sup, address)
