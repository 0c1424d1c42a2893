"""The discovery fabric: leased ``AgentRecord`` files under ``fabric/`` (DESIGN §5).

A live actor publishes ``fabric/<id>.json`` and re-publishes it before the lease runs
out; a record whose lease has expired belongs to a dead process and is invisible to
``resolve`` and ``discover``, and ``gc`` removes it. Clean exits ``withdraw``.
Time comes from an injected clock so lease logic is tested without sleeping.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable


from .durable import PROCESS, Durability, Rewriter, read_bytes
from .ids import check_id
from .jsonable import JsonMixin

log = logging.getLogger(__name__)

Clock = Callable[[], float]

#: Default lease length in seconds.
DEFAULT_LEASE = 60.0
#: Version of the record format.
RECORD_VERSION = 1
#: (field, default, type) a record file must satisfy to be read at all.
_CHECKED_FIELDS = (("agent_id", None, str), ("lease_expires_at", 0.0, (int, float)), ("labels", [], list))


@dataclass
class AgentRecord(JsonMixin):
    """What the fabric knows of a live actor.

    Attributes:
        agent_id: the actor's id.
        role: its role, if any.
        labels: free-form labels for ``discover``.
        endpoint: how to reach it (the mailbox path for the maildir backend).
        pid: its process id.
        version: record format version.
        started_at: unix time the activation began.
        lease_expires_at: unix time after which the record counts as dead.
        system_id: the system that supervises it.
        actor_class: ``module:qualname`` of its class.
    """

    agent_id: str
    role: str | None = None
    labels: list[str] = field(default_factory=list)
    endpoint: str = ""
    pid: int = 0
    version: int = RECORD_VERSION
    started_at: float = 0.0
    lease_expires_at: float = 0.0
    system_id: str | None = None
    actor_class: str = ""

    def is_live(self, now: float) -> bool:
        return self.lease_expires_at > now


_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(AgentRecord))


class Fabric:
    """Leased records in one directory.

    Args:
        root: the ``fabric/`` directory (created if missing).
        clock: returns unix seconds; ``time.time`` unless a test moves it.
        durability: records are rebuilt by re-publishing, so "process" is the default.
    """

    def __init__(self, root: str | os.PathLike[str], *, clock: Clock = time.time,
                 durability: Durability = PROCESS) -> None:
        self.root = os.fspath(root)
        self.clock = clock
        self.durability = durability
        os.makedirs(self.root, exist_ok=True)

    def _path(self, agent_id: str) -> str:
        return os.path.join(self.root, f"{check_id(agent_id)}.json")

    def publish(self, record: AgentRecord, lease: float = DEFAULT_LEASE) -> AgentRecord:
        """Write (or renew) ``record`` with a lease of ``lease`` seconds from now."""
        record.lease_expires_at = self.clock() + lease
        data = json.dumps(dataclasses.asdict(record), separators=(",", ":")).encode()
        Rewriter(self._path(record.agent_id), self.durability).write(data)  # no inode churn
        return record

    def _read(self, path: str) -> AgentRecord | None:
        try:
            doc = json.loads(read_bytes(path))
            # dataclasses-json lets a non-object or a null field through (a null only
            # warns), so check what the lease and filter logic rely on first.
            if not isinstance(doc, dict) or not all(
                isinstance(doc.get(key, default), kind) for key, default, kind in _CHECKED_FIELDS
            ):
                raise ValueError("not an agent record")
            return AgentRecord(**{k: v for k, v in doc.items() if k in _RECORD_FIELDS})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.debug("fabric: unreadable record %s: %s", path, exc)
            return None

    def read(self, agent_id: str) -> AgentRecord | None:
        """The record of ``agent_id`` whether or not its lease is live (``None`` if none)."""
        return self._read(self._path(agent_id))

    def resolve(self, agent_id: str) -> AgentRecord | None:
        """The live record of ``agent_id``, or ``None`` if absent, expired or corrupt."""
        record = self.read(agent_id)
        if record is None or not record.is_live(self.clock()):
            return None
        return record

    def discover(self, *, role: str | None = None, label: str | None = None) -> list[AgentRecord]:
        """Live records, sorted by id, optionally filtered by role or label."""
        now = self.clock()
        found = []
        for name in sorted(os.listdir(self.root)):
            if name[0] == "." or not name.endswith(".json"):
                continue
            record = self._read(os.path.join(self.root, name))
            if record is None or not record.is_live(now):
                continue
            if role is not None and record.role != role:
                continue
            if label is not None and label not in record.labels:
                continue
            found.append(record)
        return found

    def withdraw(self, agent_id: str, pid: int | None = None) -> bool:
        """Remove the record of ``agent_id``; returns whether one was removed.

        With ``pid``, only a record published by that process is removed, so a stale
        activation never withdraws its successor.
        """
        path = self._path(agent_id)
        if pid is not None:
            record = self._read(path)
            if record is not None and record.pid != pid:
                return False
        return Rewriter(path, self.durability).remove()

    def gc(self) -> list[str]:
        """Remove expired and corrupt records; returns the removed ids."""
        now = self.clock()
        removed = []
        for name in sorted(os.listdir(self.root)):
            if name[0] == "." or not name.endswith(".json"):
                continue
            path = os.path.join(self.root, name)
            record = self._read(path)
            if record is not None and record.is_live(now):
                continue
            try:
                os.unlink(path)
                removed.append(name[: -len(".json")])
            except FileNotFoundError:
                pass
        return removed
