"""Asking the host of a placed actor to act on it, from any process.

::

    placement(backend, address)   the pool an actor is placed on (its recorded spec), or None
    HostLine(backend, pool, address)
      owner()    the host it is placed on, if live; else any live host of the pool,
                 which takes it over first if its time came (``hosts.restarts``)
      send()     a request in that host's inbox (the one the host reads placements from)
      ask()      the same, and the host's answer: None when none came in time;
                 NoLiveHost when the host died before it answered, or answers that it
                 does not own the actor (not taken over yet)

A placed actor is its host's to start, whether or not the system that placed it
runs (as on maildir an actor is its system's): ``actors restart``, ``actors resume``
and ``system.resume`` of a placed actor all go this way. A request carries no secret
and changes nothing until its host acts on it.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any, cast

from ..address import Address
from ..backends.base import Backend
from ..errors import InvalidSpec, NoLiveHost, NotPaused, StoreError
from ..worker.resuming import RESUME_CLAIM_TIMEOUT

if TYPE_CHECKING:
    from ..backends.redis import RedisBackend
    from ..backends.redis.pools import PoolStore

#: Seconds between looks at whether the host a request waits for still lives.
HOST_CHECK = 1.0
#: Seconds a resume waits for its host's answer (the host waits up to
#: ``RESUME_CLAIM_TIMEOUT`` for a worker on its way out to let go of the mailbox).
RESUME_ANSWER = RESUME_CLAIM_TIMEOUT + 10.0
#: Seconds an answer may take beyond the time the host was given to act.
ANSWER_MARGIN = 5.0


def placement(backend: Backend, address: Address) -> str | None:
    """The pool the actor at ``address`` is placed on, as its recorded spec says
    (None: not placed, or not on Redis). One read; for an actor that never recorded
    a spec (its first start failed) the pools' registries are looked through.

    Raises:
        StoreError: the server could not be reached.
    """
    if getattr(backend, "name", None) != "redis" or address.actor_id is None:
        return None
    from ..backends.redis.pools import placed_field, pool_holding, pool_name

    try:
        doc = backend.store.load_session(address.system_id, address.actor_id)
    except StoreError:
        doc = None
    spec = doc.meta.get("spec") if doc is not None else None
    if not isinstance(spec, dict):
        redis_backend = cast("RedisBackend", backend)
        return pool_holding(redis_backend.server, placed_field(backend.project_key, address.system_id,
                                                               address.actor_id))
    where = spec.get("placement")
    if not isinstance(where, str):
        return None
    try:
        return pool_name(where)
    except InvalidSpec:
        return None


def await_answer(store: "PoolStore", request_id: str, host: str, deadline: float) -> dict[str, Any] | None:
    """The answer to ``request_id``, or a refusal to retry elsewhere if ``host`` died
    first (its record's lease ran out), or None at ``deadline`` (monotonic). The
    host's liveness is read every ``HOST_CHECK`` seconds of waiting.

    Raises:
        StoreError: the server could not be reached.
    """
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        answer = store.await_answer(request_id, min(left, HOST_CHECK))
        if answer is not None:
            return answer
        if host not in {h.id for h in store.live_hosts()}:
            return {"ok": False, "retry": True, "gone": True, "error": f"host {host} died before it answered"}


class HostLine:
    """Requests about one placed actor to the host that owns it (see the module
    docstring).

    Raises (every method):
        NoLiveHost: no live host owns the actor. StoreError: the server failed.
    """

    def __init__(self, backend: Backend, pool: str, address: Address) -> None:
        from ..backends.redis.pools import PoolStore, placed_field

        backend = cast("RedisBackend", backend)
        self.store = PoolStore(backend.server, pool, backend.fabric.clock)
        self.pool = self.store.pool
        self.actor_id = address.name
        self.field = placed_field(backend.project_key, address.system_id, address.name)

    def owner(self) -> str:
        """The live host to ask: the one the actor is placed on, or, when that one is
        gone, any live host (it takes the actor over if the dead host's lease ran out,
        and otherwise answers that it does not own it)."""
        current = self.store.placed(self.field)
        live = [h.id for h in self.store.live_hosts()]
        if current is None:
            raise NoLiveHost(self.actor_id, self.pool, f"the pool has no record of it; spawn it again with "
                                                       f"placement='pool:{self.pool}'")
        if current.host in live:
            return current.host
        if not live:
            raise NoLiveHost(self.actor_id, self.pool, f"it was placed on host {current.host}, and the pool has no "
                                                       f"live host now (start one: actors --backend URL host "
                                                       f"--pool {self.pool})")
        return random.choice(live)

    def send(self, kind: str, **fields: Any) -> tuple[str, str]:
        """Put a ``kind`` request in the owner's inbox; returns (host, request id)."""
        from ..backends.redis.pools import new_request_id

        host = self.owner()
        request_id = new_request_id()
        self.store.send(host, {**fields, "kind": kind, "id": request_id, "field": self.field})
        return host, request_id

    def ask(self, kind: str, timeout: float, **fields: Any) -> tuple[str, dict[str, Any] | None]:
        """``send``, then wait up to ``timeout`` seconds for the answer; returns (host,
        answer or None)."""
        deadline = time.monotonic() + timeout
        host, request_id = self.send(kind, timeout=timeout, **fields)
        answer = await_answer(self.store, request_id, host, deadline)
        if answer is not None and (answer.get("gone") or answer.get("not_owner")):
            raise NoLiveHost(self.actor_id, self.pool, str(answer.get("error")))
        return host, answer


def resume_on_host(backend: Backend, pool: str, address: Address, skip: bool,
                   timeout: float = RESUME_ANSWER) -> tuple[str, str]:
    """Have the host of a placed actor lift its pause (``skip``: bury the message it
    is paused at) and start it; returns (host, the id of that message) once the
    change is committed to the actor's session.

    Raises:
        NotPaused: it is not paused (nothing changed). NoLiveHost: no live host runs
            it. StoreError: the host failed, or did not answer within ``timeout``.
    """
    host, answer = HostLine(backend, pool, address).ask("resume", timeout, skip=bool(skip))
    if answer is None:
        raise StoreError(f"host {host}", f"no answer to the resume of {address.name!r} within {timeout:g} s "
                                         "(it may still be done: 'actors ps' shows it)")
    if "not_paused" in answer:
        raise NotPaused(address.name, str(answer["not_paused"]))
    if not answer.get("ok"):
        raise StoreError(f"host {host}", str(answer.get("error") or "refused without a reason"))
    return host, str(answer.get("msg_id"))


def restart_on_host(backend: Backend, pool: str, address: Address,
                    timeout: float) -> tuple[str, dict[str, Any] | None]:
    """Have the host of a placed actor start it again (a failure forgotten); returns
    (host, its answer: ``ok`` with the worker's ``pid`` (``running`` if it ran
    already), or ``failed`` / ``paused`` with the ``error``; None: no answer within
    ``timeout`` plus ``ANSWER_MARGIN``).

    Raises:
        NoLiveHost: no live host runs it. StoreError: the server failed.
    """
    return HostLine(backend, pool, address).ask("restart", timeout + ANSWER_MARGIN, start_timeout=timeout)
