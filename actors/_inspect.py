"""What the system reports of its actors: ``children()`` rows and ``inspect()`` snapshots."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from actors_runtime.address import Address
from actors_runtime.backends.base import Backend
from actors_runtime.errors import StoreError
from actors_runtime.observe import COUNTERS_KEY, TurnCounters, failures_of
from actors_runtime.parent.supervisor import Supervisor
from actors_runtime.records import EXPLAINED, FAILED, PAUSED, RUNNING, ChildEntry
from actors_runtime.worker.pausing import pause_of

log = logging.getLogger(__name__)


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
    #: Why it is failed or paused ("" otherwise).
    reason: str = ""


@dataclass(frozen=True)
class ActorInfo:
    """What ``ActorSystem.inspect()`` reports of one actor (a snapshot; read-only).

    Attributes:
        name: the actor's id.
        system: the system that holds it.
        actor_class: ``module:QualName`` of its class.
        status: "starting", "running", "idle", "restarting", "stopped", "failed",
            "paused", or "unknown" for an actor this system has no record of.
        pid: its worker's pid while one runs.
        restarts: restarts recorded.
        pending: messages waiting to be handled.
        claimed: messages handed to the worker and not yet acked.
        dead: dead letters.
        corrupt: unreadable inputs kept aside.
        last_failure: why it was last marked failed ("" if it was not).
        live: whether it has a live lease record.
        paused_message: the message it is paused at (None unless paused).
        paused_reason: why it paused ("" unless paused).
        handled: turns its handlers ran to the end, failed ones included (as of its
            last commit; they survive restarts).
        failed: turns whose handler raised.
        failures: its last failure records, oldest first: dicts with ``time``,
            ``msg_id``, ``type``, ``message`` and ``traceback``.
    """

    name: str
    system: str
    actor_class: str
    status: str
    pid: int | None
    restarts: int
    pending: int
    claimed: int
    dead: int
    corrupt: int
    last_failure: str
    live: bool
    paused_message: str | None = None
    paused_reason: str = ""
    handled: int = 0
    failed: int = 0
    failures: tuple[dict[str, Any], ...] = ()


def inspect_actor(backend: Backend, supervisor: Supervisor, address: Address) -> ActorInfo:
    """A snapshot of the actor at ``address``: this system's own view of a child it
    supervises, else the records any process can read.

    Raises:
        ActorNotFound: no actor of that id in the project.
    """
    actor_id = address.name
    child = supervisor.child(actor_id) if address.system_id == supervisor.system_id else None
    if child is not None and child.spec.placement is not None:
        child = None  # runs on a host of a pool: its records say how
    found = backend.store.child_entry(actor_id)
    entry = found[1] if found is not None else ChildEntry(id=actor_id, status="unknown")
    view = backend.view(address)
    try:
        counts = view.counts()
    finally:
        view.close()
    record = backend.fabric.resolve(actor_id)
    if child is not None:
        with supervisor.lock:
            status, pid, restarts = child.status, child.pid, child.restarts
            actor_class = child.spec.actor_class
            last_failure = child.last_error if child.status == FAILED else ""
    else:
        status = RUNNING if record is not None else entry.status
        pid = record.pid if record is not None else None
        restarts, actor_class = entry.restarts, entry.actor_class
        last_failure = entry.last_error if entry.status == FAILED else ""
    try:
        doc = backend.store.load_session(address.system_id, actor_id)
    except StoreError as exc:
        log.warning("actor %s: cannot read its session: %s", actor_id, exc)
        doc = None
    meta = doc.meta if doc is not None else {}
    counters = TurnCounters.from_meta(meta.get(COUNTERS_KEY))
    # The session is the authority on a pause (a record may lag: a system that died).
    pause = pause_of(meta) if record is None else None
    if pause is not None:
        status = PAUSED
    return ActorInfo(name=actor_id, system=address.system_id, actor_class=actor_class, status=status,
                     pid=pid, restarts=restarts, pending=counts["new"], claimed=counts["cur"],
                     dead=counts["dead"], corrupt=counts["corrupt"], last_failure=last_failure,
                     live=record is not None, paused_message=pause.msg_id if pause else None,
                     paused_reason=pause.reason if pause else "", handled=counters.handled,
                     failed=counters.failed, failures=tuple(failures_of(meta)))


def list_children(backend: Backend, supervisor: Supervisor, system_id: str) -> list[ChildInfo]:
    """Every actor of a system, sorted by name: its records, overlaid with the
    supervisor's view of those it runs now."""
    infos = {}
    for entry in backend.store.list_children(system_id):
        infos[entry.id] = ChildInfo(entry.id, entry.actor_class, entry.role, entry.status, None,
                                    entry.restarts, entry.parent_id,
                                    entry.last_error if entry.status in EXPLAINED else "")
    for child in supervisor.snapshot():
        if child.spec.placement is not None:
            continue  # runs on a host of a pool: its records say how
        ident = child.spec.identity
        with supervisor.lock:
            status, pid, why = child.status, child.pid, child.last_error if child.status in EXPLAINED else ""
        infos[child.actor_id] = ChildInfo(child.actor_id, child.spec.actor_class, ident.role, status,
                                          pid, child.restarts, ident.parent_id, why)
    return [infos[k] for k in sorted(infos)]
