"""What a host answers, from its inbox (``PoolStore.receive``); each answer goes to
``PoolStore.answer`` under the request's id, where the asker waits for it.

::

    place     {spec, expected}  import the class here, check capacity, assign, start
                                -> {ok, host} | {ok: false, retry?, placed?, error}
    activate  {field}           start it if it is ours and has no worker (no answer)
    stop / kill / cancel        as its system would (its assignment stays: a message
              {field, timeout}  starts it again) -> {ok} | {ok: false, error}
    restart   {field,           start it again with its placement's spec: a failure
              start_timeout}    and the deaths behind it are forgotten (``actors
                                restart``) -> {ok, host, pid, running?} |
                                {ok: false, failed | paused, error}
    resume    {field, skip}     lift its pause (``parent.resume``), then start it
                                -> {ok, host, msg_id} | {ok: false, not_paused, error}

restart and resume act on an actor this host owns. Asked about one it does not own,
the host first sweeps (an actor placed on a dead host whose time came is taken over
here); if it still does not own it, it answers ``not_owner``: the asker says that no
live host runs the actor yet. Every answer is one JSON object; an error is one line.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import ActorError, NotPaused, SpawnError, StoreError
from ..ids import is_valid_id
from ..parent.activation import ensure_active
from ..parent.resume import resume
from ..spec import ProvisionSpec
from ..worker.pausing import recorded_pause
from .machine import import_error

if TYPE_CHECKING:
    from .host import Host

log = logging.getLogger(__name__)

#: What an owned actor's request may ask for (besides "place" and "activate").
CONTROLS = ("stop", "kill", "cancel")


def handle(host: "Host", request: dict[str, Any]) -> None:
    """Handle one request and answer it (on one of the host's request threads)."""
    kind, request_id = request.get("kind"), request.get("id")
    if not isinstance(request_id, str) or not is_valid_id(request_id):
        log.warning("host %s: a request without a valid id: %.200r", host.host_id, request)
        return
    field = str(request.get("field", ""))
    try:
        if kind == "place":
            answer = place(host, request)
        elif kind == "activate":
            activate(host, field)
            return
        elif kind in CONTROLS:
            answer = control(host, str(kind), field, request.get("timeout"))
        elif kind == "restart":
            answer = restart(host, field, request.get("start_timeout"))
        elif kind == "resume":
            answer = resume_here(host, field, bool(request.get("skip")))
        else:
            answer = {"ok": False, "error": f"host {host.host_id}: unknown request {kind!r}"}
    except (ActorError, StoreError) as exc:
        answer = {"ok": False, "error": str(exc)}
    except Exception as exc:  # the host goes on; the asker gets the reason
        log.exception("host %s: request %s failed", host.host_id, request_id)
        answer = {"ok": False, "error": f"host {host.host_id}: {type(exc).__name__}: {exc}"}
    try:
        host.store.answer(request_id, answer)
    except StoreError as exc:
        log.warning("host %s: could not answer request %s: %s", host.host_id, request_id, exc)


def place(host: "Host", request: dict[str, Any]) -> dict[str, Any]:
    spec = ProvisionSpec.from_doc(request.get("spec")).validate()
    actor_id = spec.identity.child_id
    if spec.home != host.location:
        return {"ok": False, "error": f"host {host.host_id} serves redis at {host.location}, "
                                      f"not {spec.home} (every machine must use the same URL)"}
    reason = import_error(spec.actor_class)
    if reason is not None:
        return {"ok": False, "error": f"host {host.host_id} of pool {host.pool!r} cannot import "
                                      f"{spec.actor_class}: {reason}"}
    from ..backends.redis.pools import placed_field

    field = placed_field(spec.identity.project_key, spec.identity.system_id, actor_id)
    expected = str(request.get("expected", ""))
    with host.lock:
        if not host.owns(field) and host.full():
            return {"ok": False, "retry": True, "error": f"host {host.host_id} is full ({host.capacity} actors)"}
        done, current = host.store.assign(field, host.host_id, expected, spec.public_dict())
        if not done:
            return {"ok": False, "retry": True, "error": f"placed on host {current!r} meanwhile"}
        host.mine.add(field)
        host.starting.add(field)
    try:
        host.start(spec)
    except SpawnError as exc:  # placed here, and marked failed: the system knows it is ours
        return {"ok": False, "placed": True, "error": exc.reason}
    finally:
        with host.lock:
            host.starting.discard(field)
    return {"ok": True, "host": host.host_id}


def activate(host: "Host", field: str) -> None:
    if host.owns(field):
        project_key, system_id, actor_id = field.split("/")
        sup = host.supervisor(project_key, system_id)
        ensure_active(sup, sup.backend.address(system_id, actor_id))
        return
    host.sweep()  # placed on a dead host, perhaps: take it over if its time came


def control(host: "Host", kind: str, field: str, timeout: Any) -> dict[str, Any]:
    """Stop, kill or cancel one of this host's actors, as its system would."""
    if not host.owns(field):
        return {"ok": False, "error": f"host {host.host_id} does not run {field}"}
    project_key, system_id, actor_id = field.split("/")
    wait = float(timeout) if isinstance(timeout, (int, float)) else host.grace
    sup = host.supervisor(project_key, system_id)
    if kind == "cancel":
        sup.cancel(actor_id)
    elif kind == "kill":
        sup.kill(actor_id, wait)
    else:
        sup.stop(actor_id, wait)
    return {"ok": True}


def _adopted(host: "Host", field: str) -> dict[str, Any] | None:
    """None if this host owns ``field`` (after a sweep, if it did not at first);
    else the ``not_owner`` answer."""
    if host.owns(field):
        return None
    host.sweep()
    if host.owns(field):
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
        host.start(spec, wait)
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
