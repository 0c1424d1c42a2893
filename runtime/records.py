"""The records every backend keeps about actors: leases and supervision entries.

Both are wire and on-disk formats: field names stay as they are (``agent_id`` and
``id`` are the names the files use), unknown fields are ignored when read, and new
fields get defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .jsonable import JsonMixin
from .spec import ProvisionSpec

#: Version of the lease record format.
RECORD_VERSION = 1

#: Supervision statuses of an actor.
STARTING, RUNNING, STOPPED, IDLE, FAILED, RESTARTING = (
    "starting", "running", "stopped", "idle", "failed", "restarting")


@dataclass
class AgentRecord(JsonMixin):
    """What the fabric knows of a live actor (its lease record).

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

    @property
    def actor_id(self) -> str:
        return self.agent_id


#: Field names of a lease record.
RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(AgentRecord))
#: (field, default, type) a record must satisfy to be read at all: what the lease and
#: filter logic rely on (dataclasses-json would let a null or mistyped field through).
CHECKED_RECORD_FIELDS: tuple[tuple[str, Any, type | tuple[type, ...]], ...] = (("agent_id", None, str), ("lease_expires_at", 0.0, (int, float)),
                         ("labels", [], list))


def record_from_doc(doc: Any) -> AgentRecord:
    """A lease record from its parsed JSON.

    Raises:
        ValueError: not an object, or a field the lease logic reads has the wrong type.
    """
    if not isinstance(doc, dict) or not all(
            isinstance(doc.get(key, default), kind) for key, default, kind in CHECKED_RECORD_FIELDS):
        raise ValueError("not an agent record")
    try:
        return AgentRecord(**{k: v for k, v in doc.items() if k in RECORD_FIELDS})
    except TypeError as exc:
        raise ValueError(f"not an agent record: {exc}") from None


@dataclass
class ChildEntry:
    """One actor's supervision entry (status and restarts), and who it is."""

    id: str
    actor_class: str = ""
    role: str | None = None
    labels: list[str] = field(default_factory=list)
    parent_id: str | None = None
    status: str = STARTING
    restarts: int = 0
    restart: str = "on-failure"
    updated_at: float = 0.0
    #: Why the actor was last marked failed ("" otherwise).
    last_error: str = ""

    @property
    def actor_id(self) -> str:
        return self.id

    @classmethod
    def for_spec(cls, spec: ProvisionSpec, *, status: str, restarts: int = 0,
                 last_error: str = "") -> "ChildEntry":
        """The entry of the actor ``spec`` provisions."""
        ident = spec.identity
        return cls(id=ident.child_id, actor_class=spec.actor_class, role=ident.role, labels=list(ident.labels),
                   parent_id=ident.parent_id, status=status, restarts=restarts, restart=spec.restart,
                   last_error=last_error if status == FAILED else "")

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "ChildEntry":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Fields of ChildEntry that come from the supervision record rather than the session.
SUPERVISION_FIELDS = ("status", "restarts", "updated_at", "last_error")
