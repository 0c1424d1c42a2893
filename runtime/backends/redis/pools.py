"""Pools of hosts on a Redis server: host records, host inboxes, placed actors.

::

    actors:pools:<pool>:hosts              set    host ids that published a record
    actors:pools:<pool>:host:<id>          string the HostRecord JSON (+ token), PX lease
    actors:pools:<pool>:host:<id>:inbox    list   placement and activation requests
    actors:pools:<pool>:placed             hash   "<project>/<system>/<actor>" -> {"host", "spec"}
    actors:pools:<pool>:load               hash   host id -> actors assigned to it
    actors:pools:<pool>:answer:<request>   list   a host's answer to one request (expires)

A pool is not a project's: one host serves every project whose actors are placed on
its pool, so its keys sit beside the projects' (``actors:<project>:...``); a project
key always ends in ``-`` and eight hex digits, so ``pools`` is never one. A host is
live while its record's lease (judged by the clock, as on the fabric) runs; the key's
TTL of two leases clears the record of a host that died. Assignment is one script
(``assign.lua``) that moves an actor only from the host the caller saw, so two hosts
that both see a dead host's actor cannot both take it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from ...errors import InvalidSpec
from ...ids import check_id
from .connection import Server
from .keys import PREFIX

log = logging.getLogger(__name__)

#: The server keeps a host record this many leases long (liveness is judged by the clock).
TTL_LEASES = 2
#: Seconds an unread answer stays on the server.
ANSWER_TTL = 60
#: The longest single blocking pop (below the client's socket timeout).
MAX_BLOCK = 5.0


def pool_name(placement: str) -> str:
    """The pool of a placement, ``"pool:NAME"``.

    Raises:
        InvalidSpec: not ``pool:`` and a valid id.
    """
    kind, _, name = placement.partition(":")
    if kind != "pool" or not name:
        raise InvalidSpec("placement", f"{placement!r} is not 'pool:NAME'")
    return check_id(name, "pool name")


def placed_field(project_key: str, system_id: str, actor_id: str) -> str:
    return f"{project_key}/{system_id}/{actor_id}"


@dataclass
class HostRecord:
    """What a pool knows of one host (its leased record)."""

    id: str
    pool: str
    capacity: int | None = None
    machine: str = ""
    pid: int = 0
    started_at: float = 0.0
    lease_expires_at: float = 0.0
    location: str = ""

    def is_live(self, now: float) -> bool:
        return self.lease_expires_at > now


@dataclass
class Placed:
    """One actor placed on the pool: its host and its spec (without secrets)."""

    field: str
    host: str
    spec: dict[str, Any]


class PoolStore:
    """One pool's keys on one server (see the module docstring).

    Raises (every method):
        StoreError: the server refused or could not be reached.
    """

    def __init__(self, server: Server, pool: str, clock: Callable[[], float] = time.time) -> None:
        self.server = server
        self.pool = check_id(pool, "pool name")
        self.clock = clock
        self.root = f"{PREFIX}:pools:{self.pool}"
        self.hosts_key = f"{self.root}:hosts"
        self.placed_key = f"{self.root}:placed"
        self.load_key = f"{self.root}:load"

    def host_key(self, host_id: str) -> str:
        return f"{self.root}:host:{check_id(host_id, 'host id')}"

    def inbox_key(self, host_id: str) -> str:
        return self.host_key(host_id) + ":inbox"

    def answer_key(self, request_id: str) -> str:
        return f"{self.root}:answer:{check_id(request_id, 'request id')}"

    # -- hosts ---------------------------------------------------------------------------

    def publish_host(self, record: HostRecord, token: str, lease: float) -> bool:
        """Publish or renew ``record`` for ``lease`` seconds; False if another live
        process holds the host's name."""
        record.lease_expires_at = self.clock() + lease
        text = json.dumps(asdict(record) | {"token": token}, separators=(",", ":"))
        ttl = max(1, int(lease * TTL_LEASES * 1000))
        return bool(self.server.run(f"publish host {record.id} of pool {self.pool}", "renew_record",
                                    [self.host_key(record.id), self.hosts_key], [token, text, ttl, record.id]))

    def withdraw_host(self, host_id: str, token: str) -> bool:
        return bool(self.server.run(f"withdraw host {host_id} of pool {self.pool}", "host_withdraw",
                                    [self.host_key(host_id), self.hosts_key], [token, host_id]))

    def hosts(self) -> list[HostRecord]:
        """Every host with a readable record, live or not, sorted by id."""
        ids = sorted(i.decode() for i in self.server.call(f"list the hosts of pool {self.pool}",
                                                          lambda c: c.smembers(self.hosts_key)))
        if not ids:
            return []
        raws = self.server.call(f"read the hosts of pool {self.pool}",
                                lambda c: c.mget([self.host_key(i) for i in ids]))
        found = []
        for raw in raws:
            if raw is None:
                continue
            try:
                doc = json.loads(raw)
                doc.pop("token", None)
                found.append(HostRecord(**doc))
            except (ValueError, TypeError) as exc:
                log.debug("pool %s: unreadable host record: %s", self.pool, exc)
        return found

    def live_hosts(self) -> list[HostRecord]:
        now = self.clock()
        return [h for h in self.hosts() if h.is_live(now)]

    def load(self) -> dict[str, int]:
        """Actors assigned to each host (a host that died keeps its count until its
        actors are placed again)."""
        raw = self.server.call(f"read the load of pool {self.pool}", lambda c: c.hgetall(self.load_key))
        return {k.decode(): int(v) for k, v in raw.items()}

    # -- placed actors -------------------------------------------------------------------

    def placed(self, field: str) -> Placed | None:
        raw = self.server.call(f"read placement {field}", lambda c: c.hget(self.placed_key, field))
        return None if raw is None else _placed(field, raw)

    def all_placed(self) -> list[Placed]:
        raw = self.server.call(f"read the placements of pool {self.pool}", lambda c: c.hgetall(self.placed_key))
        found = [_placed(k.decode(), v) for k, v in raw.items()]
        return sorted((p for p in found if p is not None), key=lambda p: p.field)

    def assign(self, field: str, host_id: str, expected: str, spec: dict[str, Any]) -> tuple[bool, str]:
        """Assign the actor ``field`` to ``host_id`` if it is still on ``expected``
        ("" not placed yet, "*" anywhere). Returns (assigned, the host it is on now)."""
        entry = json.dumps({"host": host_id, "spec": spec}, separators=(",", ":"))
        done, current = self.server.run(f"assign {field} to host {host_id}", "assign",
                                        [self.placed_key, self.load_key], [field, host_id, expected, entry])
        current = current.decode() if isinstance(current, bytes) else str(current)
        return bool(done), (host_id if done else current)

    # -- requests and answers ------------------------------------------------------------

    def send(self, host_id: str, request: dict[str, Any]) -> None:
        """Append ``request`` to a host's inbox (read by that host only)."""
        text = json.dumps(request, separators=(",", ":"))
        key = self.inbox_key(host_id)

        def push(client: Any) -> None:
            pipe = client.pipeline(transaction=True)
            pipe.rpush(key, text)
            pipe.pexpire(key, ANSWER_TTL * 1000)  # an inbox of a host that is gone does not stay
            pipe.execute()

        self.server.call(f"send a request to host {host_id}", push)

    def receive(self, host_id: str, timeout: float) -> dict[str, Any] | None:
        """The next request in this host's inbox, waiting up to ``timeout`` seconds."""
        key = self.inbox_key(host_id)
        got = self.server.call(f"read the inbox of host {host_id}",
                               lambda c: c.blpop([key], timeout=max(0.01, min(timeout, MAX_BLOCK))))
        return _json_object(got[1]) if got else None

    def answer(self, request_id: str, answer: dict[str, Any]) -> None:
        key = self.answer_key(request_id)
        text = json.dumps(answer, separators=(",", ":"))

        def push(client: Any) -> None:
            pipe = client.pipeline(transaction=True)
            pipe.rpush(key, text)
            pipe.expire(key, ANSWER_TTL)
            pipe.execute()

        self.server.call(f"answer request {request_id}", push)

    def await_answer(self, request_id: str, timeout: float) -> dict[str, Any] | None:
        """The answer to ``request_id``, or None after ``timeout`` seconds."""
        key = self.answer_key(request_id)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            got = self.server.call(f"wait for the answer to {request_id}",
                                   lambda c: c.blpop([key], timeout=max(0.01, min(left, MAX_BLOCK))))
            if got:
                return _json_object(got[1])


def pool_holding(server: Server, field: str) -> str | None:
    """The pool whose registry holds the actor ``field``, found by scanning for the
    pools' registries (for an actor whose spec was never recorded: one whose first
    start failed); None if none does.

    Raises:
        StoreError: the server could not be reached.
    """
    pattern = f"{PREFIX}:pools:*:placed"

    def look(client: Any) -> str | None:
        for key in client.scan_iter(match=pattern, count=1000):
            if client.hexists(key, field):
                name = key.decode() if isinstance(key, bytes) else str(key)
                return name.split(":")[2]
        return None

    return server.call(f"look for the pool of {field}", look)


def new_request_id() -> str:
    return os.urandom(8).hex()


def _json_object(raw: Any) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except (ValueError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


def _placed(field: str, raw: Any) -> Placed | None:
    doc = _json_object(raw)
    if doc is None or not isinstance(doc.get("host"), str) or not isinstance(doc.get("spec"), dict):
        log.warning("placement %s: unreadable entry; left as it is", field)
        return None
    return Placed(field, doc["host"], doc["spec"])
