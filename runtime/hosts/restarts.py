"""Restart and resume of a host's actors, on request (``actors restart``, ``actors
resume``, ``system.resume``: from any process, through ``parent.placed``). The host's
inbox loop hands them here; each answer goes to ``PoolStore.answer`` under the
request's id, where the asker waits for it.

::

    restart   {field, start_timeout}  start it again with its placement's spec: a failure
                                      and the deaths behind it are forgotten
                                      -> {ok, host, pid, running?} |
                                         {ok: false, failed | paused, error}
    resume    {field, skip}           lift its pause (``parent.resume``), then start it
                                      -> {ok, host, msg_id} | {ok: false, not_paused, error}

Both act on an actor this host owns. Asked about one it does not own, the host first
sweeps (an actor placed on a dead host whose time came is taken over here); if it
still does not own it, it answers ``not_owner``: the asker says that no live host
runs the actor yet. Every answer is one JSON object; an error is one line.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import NotPaused, SpawnError
from ..parent.resume import resume
from ..spec import ProvisionSpec
from ..worker.pausing import recorded_pause

if TYPE_CHECKING:
    from .host import Host

log = logging.getLogger(__name__)


def _adopted(host: "Host", field: str) -> dict[str, Any] | None:
    """None if this host owns ``field`` (after a sweep, if it did not at first);
    else the ``not_owner`` answer."""
    if field in host._mine:
        return None
    host._sweep()
    if field in host._mine:
        return None
    current = host.store.placed(field)
    where = f"placed on host {current.host}" if current is not None else "not placed on the pool"
    return {"ok": False, "not_owner": True,
            "error": f"it is {where}, which is gone; a live host of the pool takes it over once that host's "
                     f"lease ran out (host {host.host_id} has not yet): try again shortly"}


def restart(host: "Host", field: str, timeout: Any) -> dict[str, Any]:
    """Start an owned actor again (``actors restart``): its placement's spec, a fresh
    supervision record (a failure and its deaths forgotten). A running actor is left
    alone; a paused one is refused (only a resume lifts a pause)."""
    refused = _adopted(host, field)
    if refused is not None:
        return refused
    project_key, system_id, actor_id = field.split("/")
    sup = host.supervisor(project_key, system_id)
    child = sup.child(actor_id)
    if child is not None and child.alive:
        return {"ok": True, "running": True, "host": host.host_id, "pid": child.pid}
    pause = recorded_pause(sup.backend.store, system_id, actor_id)
    if pause is not None:
        return {"ok": False, "paused": True, "error": f"{actor_id!r} is paused ({pause.reason}); a restart does "
                                                      f"not lift a pause: 'actors resume {actor_id} [--skip]' does"}
    placed = host.store.placed(field)
    if placed is None:
        return {"ok": False, "error": f"pool {host.pool!r} has no record of {actor_id!r}"}
    spec = ProvisionSpec.from_doc(placed.spec).validate()
    wait = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else host.spawn_timeout
    log.info("host %s: restarting actor %s", host.host_id, actor_id)
    try:
        host._start(spec, wait)
    except SpawnError as exc:
        return {"ok": False, "failed": True, "error": exc.reason}
    child = sup.child(actor_id)
    return {"ok": True, "host": host.host_id, "pid": child.pid if child is not None else None}


def resume_here(host: "Host", field: str, skip: bool) -> dict[str, Any]:
    """Lift the pause of an owned actor and start it (``parent.resume.resume``);
    answers once the change is committed to its session."""
    refused = _adopted(host, field)
    if refused is not None:
        return refused
    project_key, system_id, actor_id = field.split("/")
    sup = host.supervisor(project_key, system_id)
    try:
        pause = resume(sup, sup.backend.address(system_id, actor_id), skip)
    except NotPaused as exc:
        return {"ok": False, "not_paused": exc.status, "error": str(exc)}
    return {"ok": True, "host": host.host_id, "msg_id": pause.msg_id}
