"""The Redis fabric: one leased record per live actor, ``actors:<project>:rec:<id>``.

A record is the ``AgentRecord`` JSON with ``host`` (the machine, and the ``actors host``
that runs the worker: ``local_process.record_host``) and ``token`` (who published it).
Liveness is judged by ``lease_expires_at`` against the backend's clock, as on every
backend; the key also carries a server-side TTL of twice the lease, so a record of a
process that died is gone from the server after a while even if nobody runs ``gc``.
``renew`` and ``withdraw`` are scripts that check the owner (a stale process cannot
renew or remove its successor's record). Death is read from the fabric, never from
keyspace notifications (which are lost while a client is disconnected).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Callable

from ...ids import check_id
from ...records import AgentRecord, record_from_doc
from .connection import Server
from .keys import Keys
from .local_process import HOST, record_host

log = logging.getLogger(__name__)

#: The server keeps a record this many leases long (liveness is judged by the clock).
TTL_LEASES = 2


def _token(record: AgentRecord) -> str:
    return f"{HOST}:{record.pid}:{record.started_at!r}"


class RedisFabric:
    """Leased records in Redis, timed by the backend's clock."""

    def __init__(self, server: Server, keys: Keys, clock: Callable[[], float]) -> None:
        self._server = server
        self._keys = keys
        self.clock = clock

    def _doc(self, record: AgentRecord, lease: float) -> tuple[str, int]:
        record.lease_expires_at = self.clock() + lease
        doc = dataclasses.asdict(record) | {"host": record_host(), "token": _token(record)}
        return json.dumps(doc, separators=(",", ":")), max(1, int(lease * TTL_LEASES * 1000))

    def publish(self, record: AgentRecord, lease: float) -> AgentRecord:
        key = self._keys.record(record.agent_id)
        text, ttl = self._doc(record, lease)

        def write(client: Any) -> None:
            pipe = client.pipeline(transaction=True)
            pipe.set(key, text, px=ttl)
            pipe.sadd(self._keys.fabric, record.agent_id)
            pipe.execute()

        self._server.call(f"publish the record of {record.agent_id}", write)
        return record

    def renew(self, record: AgentRecord, lease: float) -> bool:
        key = self._keys.record(record.agent_id)
        text, ttl = self._doc(record, lease)
        return bool(self._server.run(f"renew the record of {record.agent_id}", "renew_record",
                                     [key, self._keys.fabric], [_token(record), text, ttl, record.agent_id]))

    def _parse(self, raw: Any) -> AgentRecord | None:
        if raw is None:
            return None
        try:
            return record_from_doc(json.loads(raw))
        except (ValueError, RecursionError) as exc:
            log.debug("fabric: unreadable record: %s", exc)
            return None

    def read(self, actor_id: str) -> AgentRecord | None:
        key = self._keys.record(actor_id)
        return self._parse(self._server.call(f"read the record of {actor_id}", lambda c: c.get(key)))

    def resolve(self, actor_id: str) -> AgentRecord | None:
        record = self.read(actor_id)
        return record if record is not None and record.is_live(self.clock()) else None

    def is_live(self, actor_id: str) -> bool:
        return self.resolve(actor_id) is not None

    def _all(self) -> list[tuple[str, AgentRecord | None]]:
        ids = sorted(i.decode() for i in self._server.call("list the fabric", lambda c: c.smembers(self._keys.fabric)))
        if not ids:
            return []
        keys = [self._keys.record(i) for i in ids]
        raws = self._server.call("read the fabric", lambda c: c.mget(keys))
        return [(i, self._parse(raw)) for i, raw in zip(ids, raws)]

    def discover(self, *, role: str | None = None, label: str | None = None) -> list[AgentRecord]:
        now = self.clock()
        return [r for _, r in self._all() if r is not None and r.is_live(now)
                and (role is None or r.role == role) and (label is None or label in r.labels)]

    def withdraw(self, actor_id: str, pid: int | None = None) -> bool:
        key = self._keys.record(actor_id)
        return bool(self._server.run(f"withdraw the record of {actor_id}", "fabric_withdraw",
                                     [key, self._keys.fabric], ["" if pid is None else pid, record_host(), actor_id]))

    def gc(self) -> list[str]:
        now = self.clock()
        removed = []
        for actor_id, record in self._all():
            if record is None or not record.is_live(now):
                key = self._keys.record(actor_id)
                expected = None if record is None else record.lease_expires_at

                def remove(client: Any, key: str = key, actor_id: str = actor_id) -> bool:
                    # Only if it was not renewed meanwhile.
                    current = self._parse(client.get(key))
                    if current is not None and current.lease_expires_at != expected:
                        return False
                    pipe = client.pipeline(transaction=True)
                    pipe.delete(key)
                    pipe.srem(self._keys.fabric, actor_id)
                    pipe.execute()
                    return True

                if self._server.call(f"remove the record of {actor_id}", remove):
                    removed.append(check_id(actor_id))
        return removed

