"""The records every backend keeps about actors: leases and supervision entries.

Both are wire and on-disk formats: field names stay as they are (``agent_id`` and
``id`` are the names the files use), unknown fields are ignored when read, and new
fields get defaults. A file may have been written by anything, so reading one checks
the type of every field it has (``record_from_doc``, ``child_entry_from_doc``): a
pid that is not a number must never reach a signal, an id that is not an id never a
path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .ids import is_valid_id
from .jsonable import JsonMixin
from .spec import ProvisionSpec
from .stamps import format_seconds, parse_ns

_NONE = type(None)
_NUMBER = (int, float)
#: Largest pid a record may name (Linux's ``PID_MAX_LIMIT``).
MAX_PID = 4_194_304

#: Version of the lease record format. 2: the crate's shape (RFC 3339 times, a string
#: ``version``, ``role`` a string); 1: unix-float times and an integer version. Both are read.
RECORD_VERSION = 2

#: Supervision statuses of an actor.
STARTING, RUNNING, STOPPED, IDLE, FAILED, RESTARTING = (
    "starting", "running", "stopped", "idle", "failed", "restarting")
#: A message killed its worker ``max_attempts`` times and its spec says
#: ``on_poison="pause"``: no worker, and nothing is handled until it is resumed.
PAUSED = "paused"
#: Statuses whose entry says why (``last_error``).
EXPLAINED = (FAILED, PAUSED)


@dataclass
class AgentRecord(JsonMixin):
    """What the fabric knows of a live actor (its lease record).

    Attributes:
        agent_id: the actor's id.
        role: its role, if any.
        labels: free-form labels for ``discover``.
        endpoint: how to reach it (the mailbox path for the maildir backend).
        pid: its process id.
        version: record format version (the file holds it as a string; a crate
            record's package version reads as 0).
        started_at: unix time the activation began (the file holds RFC 3339).
        lease_expires_at: unix time after which the record counts as dead.
        system_id: the system that supervises it.
        actor_class: ``module:qualname`` of its class.
        host: where its worker runs: the machine's name, and after a ``/`` the
            ``actors host`` that runs it ("" when a backend does not say: maildir).
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
    host: str = ""

    def is_live(self, now: float) -> bool:
        return self.lease_expires_at > now

    @property
    def actor_id(self) -> str:
        return self.agent_id


#: Field names of a lease record.
RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(AgentRecord))
#: The type each field of a lease record must have to be read at all: what the lease,
#: filter and signal logic rely on (dataclasses-json would let a null or mistyped
#: field through).
RECORD_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "agent_id": str, "role": (str, _NONE), "labels": list, "endpoint": str, "pid": int, "version": (int, str),
    "started_at": (int, float, str), "lease_expires_at": (int, float, str), "system_id": (str, _NONE),
    "actor_class": str, "host": str,
}


def _fits(key: str, value: object, kind: type | tuple[type, ...]) -> bool:
    """Whether a field's value has its type (a JSON ``true`` is not a number)."""
    if isinstance(value, bool) or not isinstance(value, kind):
        return False
    if key == "labels" and isinstance(value, list):
        return all(isinstance(label, str) for label in value)
    if key == "pid" and isinstance(value, int):
        return 0 <= value <= MAX_PID
    return True


def _checked_fields(doc: Any, types: dict[str, type | tuple[type, ...]], what: str,
                    lenient: bool = False) -> dict[str, Any]:
    """The known fields of ``doc`` that have their types (all of them unless ``lenient``).

    Raises:
        ValueError: ``doc`` is not an object, or (unless ``lenient``) a field has the wrong type.
    """
    if not isinstance(doc, dict):
        raise ValueError(f"not {what}: {type(doc).__name__}, not an object")
    fields = {}
    for key, kind in types.items():
        if key not in doc:
            continue
        if _fits(key, doc[key], kind):
            fields[key] = doc[key]
        elif not lenient:
            raise ValueError(f"not {what}: {key} is {type(doc[key]).__name__}")
    return fields


def record_from_doc(doc: Any) -> AgentRecord:
    """A lease record from its parsed JSON (unknown fields are ignored).

    Raises:
        ValueError: not an object, no ``agent_id``, or a field has the wrong type
            (``RECORD_FIELD_TYPES``; a pid must be one a process can have).
    """
    fields = _checked_fields(doc, RECORD_FIELD_TYPES, "an agent record")
    if "agent_id" not in fields:
        raise ValueError("not an agent record: no agent_id")
    for key in ("started_at", "lease_expires_at"):
        if isinstance(fields.get(key), str):  # the crate's shape: RFC 3339
            ns = parse_ns(fields[key])
            if ns is None:
                raise ValueError(f"not an agent record: {key} is not an RFC 3339 time")
            fields[key] = ns / 1e9
    version = fields.get("version")
    if isinstance(version, str):  # the crate writes its package version ("0.3.1"): not ours to read
        fields["version"] = int(version) if version.isdigit() and len(version) < 10 else 0
    if fields.get("role") == "":  # the crate's "no role"
        fields["role"] = None
    return AgentRecord(**fields)


def record_to_doc(record: AgentRecord) -> dict[str, Any]:
    """A lease record in the crate's shape (what the fabric files hold, format 2).

    The crate's ``AgentRecord`` reads it (``agent_id``, ``role`` as a string,
    ``labels``, ``endpoint``, ``pid``, ``version`` as a string, ``started_at`` and
    ``lease_expires_at`` as RFC 3339 UTC times; it ignores ``system_id``,
    ``actor_class`` and ``host``), and so does ``record_from_doc``. Project versions that read
    only format 1 cannot read it (see docs/guide.md, "Compatibility with bamboo-subagent").
    """
    return {
        "agent_id": record.agent_id,
        "role": record.role or "",
        "labels": list(record.labels),
        "endpoint": record.endpoint,
        "pid": record.pid,
        "version": str(RECORD_VERSION),
        "started_at": format_seconds(record.started_at),
        "lease_expires_at": format_seconds(record.lease_expires_at),
        "system_id": record.system_id,
        "actor_class": record.actor_class,
        "host": record.host,
    }


def is_foreign_record(record: AgentRecord) -> bool:
    """Whether a record was published by another program (the crate): it names no
    system and no actor class, which every record this project writes does."""
    return record.system_id is None and not record.actor_class


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
    #: Why the actor was last marked failed, or why it is paused ("" otherwise).
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
                   last_error=last_error if status in EXPLAINED else "")

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "ChildEntry":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Fields of ChildEntry that come from the supervision record rather than the session.
SUPERVISION_FIELDS = ("status", "restarts", "updated_at", "last_error")
#: The type each field of a supervision entry must have.
CHILD_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "id": str, "actor_class": str, "role": (str, _NONE), "labels": list, "parent_id": (str, _NONE),
    "status": str, "restarts": int, "restart": str, "updated_at": _NUMBER, "last_error": str,
}


def child_entry_from_doc(doc: Any, *, lenient: bool = False) -> ChildEntry:
    """A supervision entry from its parsed JSON (unknown fields are ignored).

    Args:
        doc: the parsed entry.
        lenient: leave out a field of the wrong type (it gets its default) instead of
            refusing the entry: for entries rebuilt from files other programs wrote.

    Raises:
        ValueError: not an object, its id is not a valid id (ids become paths), or
            (unless ``lenient``) a field has the wrong type (``CHILD_FIELD_TYPES``).
    """
    fields = _checked_fields(doc, CHILD_FIELD_TYPES, "a supervision entry", lenient)
    if not is_valid_id(fields.get("id")):
        raise ValueError(f"not a supervision entry: id {doc.get('id')!r} is not a valid id")
    return ChildEntry(**fields)
