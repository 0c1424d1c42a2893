"""Memory leases and sessions: the ``Fabric`` and ``SessionStore`` protocols in a dict."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

from ...errors import StoreError
from ...ids import check_id
from ...records import SUPERVISION_FIELDS, AgentRecord, ChildEntry
from ..base import SessionDoc
from .project import Project, SessionData


class MemoryFabric:
    """Lease records in memory, timed by an injected clock."""

    def __init__(self, project: Project, clock: Callable[[], float]) -> None:
        self._project = project
        self.clock = clock

    def publish(self, record: AgentRecord, lease: float) -> AgentRecord:
        check_id(record.agent_id)
        record.lease_expires_at = self.clock() + lease
        with self._project.lock:
            self._project.records[record.agent_id] = dataclasses.asdict(record)
        return record

    def renew(self, record: AgentRecord, lease: float) -> bool:
        with self._project.lock:
            current = self._project.records.get(record.agent_id)
            if current is not None and current["pid"] != record.pid:
                return False
        self.publish(record, lease)
        return True

    def read(self, actor_id: str) -> AgentRecord | None:
        check_id(actor_id)
        with self._project.lock:
            doc = self._project.records.get(actor_id)
        return None if doc is None else AgentRecord(**copy.deepcopy(doc))

    def resolve(self, actor_id: str) -> AgentRecord | None:
        record = self.read(actor_id)
        return record if record is not None and record.is_live(self.clock()) else None

    def is_live(self, actor_id: str) -> bool:
        return self.resolve(actor_id) is not None

    def discover(self, *, role: str | None = None, label: str | None = None) -> list[AgentRecord]:
        with self._project.lock:
            ids = sorted(self._project.records)
        found = [self.resolve(actor_id) for actor_id in ids]
        return [r for r in found if r is not None and (role is None or r.role == role)
                and (label is None or label in r.labels)]

    def withdraw(self, actor_id: str, pid: int | None = None) -> bool:
        check_id(actor_id)
        with self._project.lock:
            doc = self._project.records.get(actor_id)
            if doc is None or (pid is not None and doc["pid"] != pid):
                return False
            del self._project.records[actor_id]
            return True

    def gc(self) -> list[str]:
        now = self.clock()
        with self._project.lock:
            dead = sorted(k for k, doc in self._project.records.items() if not doc["lease_expires_at"] > now)
            for actor_id in dead:
                del self._project.records[actor_id]
        return dead


class MemorySession:
    def __init__(self, project: Project, key: tuple[str, str]) -> None:
        self._project = project
        self._key = key

    def load(self) -> SessionDoc | None:
        with self._project.lock:
            session = self._project.sessions.get(self._key)
            if session is None:
                return None
            return SessionDoc(json.loads(session.state_json), list(session.admitted), json.loads(session.meta_json),
                              json.loads(session.outbox_json), [json.loads(entry) for entry in session.journal])

    def commit(self, state_json: str, meta_json: str, new_ids: Sequence[str], admitted: Iterable[str],
               outbox_json: str = "[]") -> None:
        json.loads(state_json), json.loads(meta_json), json.loads(outbox_json)  # what a file would refuse
        with self._project.lock:
            journal = self._project.sessions.get(self._key, SessionData()).journal
            self._project.sessions[self._key] = SessionData(state_json, meta_json, list(admitted), outbox_json,
                                                            journal)

    def journal(self, entry_json: str) -> None:
        json.loads(entry_json)
        with self._project.lock:
            self._project.sessions.setdefault(self._key, SessionData()).journal.append(entry_json)

    def clear_journal(self) -> None:
        with self._project.lock:
            session = self._project.sessions.get(self._key)
            if session is not None:
                session.journal.clear()

    def close(self) -> None:
        pass


class _Lock:
    def __init__(self, project: Project, system_id: str) -> None:
        self._project, self._system_id = project, system_id

    def release(self) -> None:
        with self._project.lock:
            self._project.locked_systems.discard(self._system_id)


class MemoryStore:
    def __init__(self, project: Project) -> None:
        self._project = project

    def lock_system(self, system_id: str) -> _Lock:
        check_id(system_id, "system id")
        with self._project.lock:
            if system_id in self._project.locked_systems:
                raise StoreError(system_id, f"system {system_id!r} of this project is already running")
            self._project.locked_systems.add(system_id)
        return _Lock(self._project, system_id)

    def save_system(self, system_id: str, meta: dict[str, Any]) -> None:
        with self._project.lock:
            self._project.system_sessions[check_id(system_id, "system id")] = copy.deepcopy(meta)

    def remove_system(self, system_id: str) -> None:
        check_id(system_id, "system id")
        with self._project.lock:
            project = self._project
            project.system_sessions.pop(system_id, None)
            project.children.pop(system_id, None)
            for key in [k for k in project.sessions if k[0] == system_id]:
                del project.sessions[key]
            for key in [k for k in project.supervision if k[0] == system_id]:
                del project.supervision[key]
            for address in [a for a in project.boxes if a.system_id == system_id]:
                del project.boxes[address]
            project.index = {k: v for k, v in project.index.items() if v != system_id}

    def session(self, system_id: str, actor_id: str) -> MemorySession:
        return MemorySession(self._project, (check_id(system_id, "system id"), check_id(actor_id)))

    def load_session(self, system_id: str, actor_id: str) -> SessionDoc | None:
        return self.session(system_id, actor_id).load()

    def record_children(self, system_id: str, entries: Sequence[ChildEntry]) -> None:
        check_id(system_id, "system id")
        now = time.time()
        with self._project.lock:
            for entry in entries:
                check_id(entry.id)
                entry.updated_at = entry.updated_at or now
                doc = entry.to_dict()
                self._project.supervision[(system_id, entry.id)] = doc
                self._project.children.setdefault(system_id, {})[entry.id] = copy.deepcopy(doc)
                self._project.index[entry.id] = system_id

    def list_children(self, system_id: str) -> list[ChildEntry]:
        check_id(system_id, "system id")
        with self._project.lock:
            children = self._project.children.get(system_id, {})
            return [ChildEntry.from_dict(copy.deepcopy(children[k])) for k in sorted(children)]

    def all_children(self) -> Iterator[tuple[str, ChildEntry]]:
        with self._project.lock:
            systems = sorted(self._project.children)
        for system_id in systems:
            for entry in self.list_children(system_id):
                yield system_id, entry

    def resolve_child(self, actor_id: str) -> str | None:
        check_id(actor_id)
        with self._project.lock:
            return self._project.index.get(actor_id)

    def child_entry(self, actor_id: str) -> tuple[str, ChildEntry] | None:
        system_id = self.resolve_child(actor_id)
        if system_id is None:
            return None
        with self._project.lock:
            doc = self._project.children.get(system_id, {}).get(actor_id)
            return None if doc is None else (system_id, ChildEntry.from_dict(copy.deepcopy(doc)))

    def locate(self, actor_id: str, prefer: Sequence[str] = ()) -> str | None:
        check_id(actor_id)
        with self._project.lock:
            known = {key for key in (*self._project.sessions, *self._project.supervision)}
            known |= {(a.system_id, a.actor_id) for a in self._project.boxes if a.actor_id is not None}
        for system_id in [*prefer, *self.systems()]:
            if (system_id, actor_id) in known:
                return system_id
        return None

    def systems(self) -> list[str]:
        with self._project.lock:
            project = self._project
            return sorted({*project.system_sessions, *(k[0] for k in project.sessions),
                           *(k[0] for k in project.supervision)})

    def rebuild_index(self) -> dict[str, Any]:
        with self._project.lock:
            project = self._project
            children: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in self.systems()}
            for (system_id, actor_id) in sorted({*project.sessions, *project.supervision}):
                supervision = project.supervision.get((system_id, actor_id), {})
                session = project.sessions.get((system_id, actor_id))
                meta = json.loads(session.meta_json) if session is not None else {}
                identity = {k: v for k, v in meta.items() if k not in SUPERVISION_FIELDS} \
                    if isinstance(meta, dict) else {}
                facts = {k: supervision[k] for k in SUPERVISION_FIELDS if k in supervision}
                entry = ChildEntry.from_dict(supervision | identity | facts | {"id": actor_id})
                children[system_id][actor_id] = entry.to_dict()
            project.children = children
            project.index = {a: s for s, kids in children.items() for a in kids}
            return {"version": 1, "roots": sorted(children), "child_lookup": dict(project.index)}
