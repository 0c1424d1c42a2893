"""Placing actors on the hosts of a pool: the system's side.

::

    spawn(placement="pool:NAME")
      place(spec) -> choose a live host (the placed one, else the least loaded)
                  -> "place" request in that host's inbox (spec without secrets)
                  -> wait for its answer: placed (the actor registered there), or
                     refused (cannot import the class, full: the next host is tried;
                     a host whose lease ran out meanwhile counts as a refusal)
    tell/ask to a placed actor: ensure_active -> Supervisor.route -> ``route``
      live lease (one read) -> nothing; else an "activate" request to its host (at
      most one per actor every ``ASK_AGAIN`` seconds; the host's sweep of actors
      with waiting messages is the safety net)
    stop / kill / cancel -> a request to its host, which answers once done
    restart / resume     -> the same way, from any process (``placed``)

A placed actor is never started by the system itself: its worker runs on a host,
and a host that dies has its actors placed again by the pool's other hosts
(``runtime.hosts``). Placement needs the Redis backend: hosts on other machines
reach the same server.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from ..address import Address
from ..errors import ActorFailed, InvalidSpec, SpawnError, StoreError
from ..records import FAILED
from ..spec import ProvisionSpec
from .placed import await_answer

if TYPE_CHECKING:
    from ..backends.redis import RedisBackend
    from ..backends.redis.pools import PoolStore
    from .supervisor import Supervisor

log = logging.getLogger(__name__)

#: Seconds between two activation requests for one cold placed actor (while it
#: starts, every tell would ask again).
ASK_AGAIN = 0.25


def placer_for(sup: "Supervisor") -> "Placer | None":
    """A placer for the system of ``sup`` (None unless its backend is Redis)."""
    if getattr(sup.backend, "name", None) != "redis":
        return None
    return Placer(sup, sup.backend)  # type: ignore[arg-type]


class Placer:
    """Places a system's actors on pools and routes their activations (see the module
    docstring). Thread-safe."""

    def __init__(self, sup: "Supervisor", backend: "RedisBackend", clock: Callable[[], float] = time.time) -> None:
        self.sup = sup
        self.backend = backend
        self.clock = clock
        self._lock = threading.Lock()
        self._stores: dict[str, "PoolStore"] = {}
        self._pools: dict[str, str | None] = {}  # actor id -> its pool (None: not placed)
        self._asked_at: dict[str, float] = {}

    def store(self, pool: str) -> "PoolStore":
        from ..backends.redis.pools import PoolStore

        with self._lock:
            found = self._stores.get(pool)
            if found is None:
                found = self._stores[pool] = PoolStore(self.backend.server, pool, self.backend.fabric.clock)
            return found

    def _field(self, actor_id: str) -> str:
        from ..backends.redis.pools import placed_field

        return placed_field(self.backend.project_key, self.sup.system_id, actor_id)

    # -- spawning ------------------------------------------------------------------------

    def place(self, spec: ProvisionSpec, timeout: float) -> str:
        """Place the actor of ``spec`` on a live host of its pool; returns the host's
        id once the actor registered there.

        Raises:
            SpawnError: no live host, every host refused (the last refusal says why:
                the class cannot be imported there, or the hosts are full), the host
                did not answer within ``timeout``, or the start failed on the host.
            StoreError: the server could not be reached.
        """
        from ..backends.redis.pools import new_request_id, pool_name

        assert spec.placement is not None and not spec.secrets
        actor_id = spec.identity.child_id
        pool = pool_name(spec.placement)
        local = self.sup.spec_of(actor_id)
        if local is not None and local.placement is None:
            raise SpawnError(actor_id, "it was spawned in this system without a placement; a placed actor "
                                       "needs a name of its own")
        placed_on = self.pool_of(actor_id)
        if placed_on is not None and placed_on != pool:
            raise SpawnError(actor_id, f"it is placed on pool {placed_on!r}, not {pool!r}")
        store = self.store(pool)
        field = self._field(actor_id)
        deadline = time.monotonic() + timeout
        refused: dict[str, str] = {}
        while True:
            live = {h.id: h for h in store.live_hosts()}
            if not live:
                raise SpawnError(actor_id, f"pool {pool!r} has no live host (start one: "
                                           f"actors --backend URL host --pool {pool})")
            current = store.placed(field)
            expected = "" if current is None else current.host
            if current is not None and current.host in live and current.host not in refused:
                host = current.host
            else:
                candidates = [h for h in live.values() if h.id not in refused]
                if not candidates:
                    reasons = "; ".join(refused.values())
                    raise SpawnError(actor_id, f"every host of pool {pool!r} refused it: {reasons}")
                load = store.load()
                random.shuffle(candidates)
                host = min(candidates, key=lambda h: load.get(h.id, 0)).id
            request_id = new_request_id()
            doc = spec.public_dict() | {"backend": self.backend.location}  # never the URL's password
            store.send(host, {"kind": "place", "id": request_id, "spec": doc, "expected": expected})
            answer = await_answer(store, request_id, host, deadline)
            if answer is None:
                raise SpawnError(actor_id, f"host {host} of pool {pool!r} did not answer within {timeout:g} s")
            if answer.get("ok") or answer.get("placed"):
                with self._lock:
                    self._pools[actor_id] = pool  # placed, if failed: its asks fail at once
            if answer.get("ok"):
                return host
            reason = str(answer.get("error") or "refused without a reason")
            if not answer.get("retry"):
                raise SpawnError(actor_id, reason)
            refused[host] = reason
            if time.monotonic() >= deadline:
                raise SpawnError(actor_id, reason)

    # -- routing -------------------------------------------------------------------------

    def pool_of(self, actor_id: str) -> str | None:
        """The pool ``actor_id`` is placed on (None for an actor of this process)."""
        from ..backends.redis.pools import pool_name

        with self._lock:
            if actor_id in self._pools:
                return self._pools[actor_id]
        spec = self.sup.spec_of(actor_id)
        if spec is None:
            from .activation import recorded_spec

            spec = recorded_spec(self.sup, actor_id)
            if spec is None:
                return None  # nothing known yet: asked again next time
        try:
            pool = None if spec.placement is None else pool_name(spec.placement)
        except InvalidSpec:
            pool = None
        with self._lock:
            self._pools[actor_id] = pool
        return pool

    def route(self, address: Address) -> bool:
        """``Supervisor.route``: True for a placed actor (activated on its host if its
        lease is not live), False for one this process starts. Never raises."""
        assert address.actor_id is not None
        try:
            pool = self.pool_of(address.actor_id)
            if pool is None:
                return False
            self._activate(address.actor_id, pool)
        except StoreError as exc:
            log.warning("actor %s: could not ask its pool to activate it: %s", address.actor_id, exc)
        return True

    def _activate(self, actor_id: str, pool: str) -> None:
        from ..backends.redis.pools import new_request_id

        # Read every time: a placed actor can go idle or be stopped on its host at any
        # moment, and a message that finds it gone must ask for it.
        if self.backend.fabric.is_live(actor_id):
            return
        now = self.clock()
        with self._lock:
            if now - self._asked_at.get(actor_id, -math.inf) < ASK_AGAIN:
                return
            self._asked_at[actor_id] = now
        host = self._host_for(actor_id, pool)
        if host is None:
            log.warning("actor %s: pool %r has no live host to activate it; its messages wait", actor_id, pool)
            return
        self.store(pool).send(host, {"kind": "activate", "id": new_request_id(),
                                     "field": self._field(actor_id)})

    def _host_for(self, actor_id: str, pool: str) -> str | None:
        """Its host if live, else any live host (which takes it over once the dead
        host's leases ran out)."""
        store = self.store(pool)
        live = [h.id for h in store.live_hosts()]
        current = store.placed(self._field(actor_id))
        if current is not None and current.host in live:
            return current.host
        return random.choice(live) if live else None

    def failed_error(self, actor_id: str) -> ActorFailed | None:
        """For a placed actor: the error an ask gets at once if its host marked it
        failed (None otherwise, and for an actor that is not placed). One read."""
        if self.pool_of(actor_id) is None:
            return None
        found = self.backend.store.child_entry(actor_id)
        if found is None or found[1].status != FAILED:
            return None
        if self.backend.fabric.is_live(actor_id):
            # Started again (a restart) and registered, its host's record not yet
            # rewritten: a failed actor's host withdraws its record before marking it.
            return None
        return ActorFailed(actor_id, "failed", f"the actor is marked failed on its host ({found[1].last_error}); "
                           "its messages wait in its mailbox until it is spawned again")

    def check_local(self, actor_id: str) -> None:
        """Refuse to spawn a placed actor as a child of this process.

        Raises:
            SpawnError: it is placed on a pool.
        """
        pool = self.pool_of(actor_id)
        if pool is not None:
            raise SpawnError(actor_id, f"it is placed on pool {pool!r}: spawn it with placement='pool:{pool}'")

    def control(self, actor_id: str, kind: str, timeout: float | None) -> bool:
        """Ask the host of a placed actor to ``kind`` it ("stop", "kill" or "cancel");
        returns whether the actor is placed (and so was asked). Waits up to
        ``timeout`` (10 s when None) for the host's answer."""
        from ..backends.redis.pools import new_request_id

        pool = self.pool_of(actor_id)
        if pool is None:
            return False
        store = self.store(pool)
        current = store.placed(self._field(actor_id))
        live = {h.id for h in store.live_hosts()}
        if current is None or current.host not in live:
            return True  # no host runs it
        request_id = new_request_id()
        wait = 10.0 if timeout is None else timeout
        with self._lock:
            self._asked_at.pop(actor_id, None)  # the next message after this asks at once
        store.send(current.host, {"kind": kind, "id": request_id, "field": self._field(actor_id), "timeout": wait})
        answer: dict[str, Any] | None = store.await_answer(request_id, wait + 5.0)
        if answer is None:
            log.warning("actor %s: host %s did not confirm the %s", actor_id, current.host, kind)
        return True
