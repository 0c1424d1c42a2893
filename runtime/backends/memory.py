"""The memory backend: every promise of the seam, kept in this process's memory.

It is the reference the contract suite is written against, and the fastest way to
test code that drives the runtime in one process (a ``Worker`` on a thread). It keeps
nothing past the process, so its durability levels mean "survives the handle that
wrote it": a reader handle closed without acking is a crashed reader, and what it
held comes back through the next reader's ``recover``.

Backends opened with the same location share their data (``memory://NAME``), as
processes share a maildir home: a test opens one backend for the sender and another
for the reader and sees what each would see.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import itertools
import json
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..address import Address
from ..durability import Durability
from ..errors import ActorNotFound, InvalidSpec, MailboxFull, StoreError
from ..ids import check_id
from ..messages import InboxMessage
from ..records import SUPERVISION_FIELDS, AgentRecord, ChildEntry
from ..wakeup import WakeUp, wait_readable
from .base import DeadLetter, Delivered, SessionDoc

#: Default backpressure limit, as on every backend.
DEFAULT_MAX_PENDING = 50_000
#: The longest message (encoded) a mailbox takes, as on maildir.
MAX_MESSAGE = (64 << 20) - 64


class _Marker:
    def __init__(self) -> None:
        self.value: str | None = None

    def read(self) -> str | None:
        return self.value

    def set(self, msg_id: str) -> None:
        self.value = msg_id

    def clear(self) -> None:
        self.value = None

    def close(self) -> None:
        pass


@dataclass
class _Box:
    """One mailbox's contents. ``lock`` is the project's (see ``_Project``)."""

    max_pending: int = DEFAULT_MAX_PENDING
    waiting: collections.deque[tuple[int, InboxMessage]] = field(default_factory=collections.deque)
    handed: dict[int, InboxMessage] = field(default_factory=dict)  # receipt -> message, in order
    dead: list[DeadLetter] = field(default_factory=list)
    reader: "MemoryMailbox | None" = None
    bells: list[WakeUp] = field(default_factory=list)  # readers' doorbells
    inflight: _Marker = field(default_factory=_Marker)


@dataclass
class _Session:
    state_json: str = "{}"
    meta_json: str = "{}"
    admitted: list[str] = field(default_factory=list)


class _Project:
    """Everything one project holds; one lock guards it all (tests, not throughput)."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.receipts = itertools.count(1)
        self.boxes: dict[Address, _Box] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.sessions: dict[tuple[str, str], _Session] = {}
        self.system_sessions: dict[str, dict[str, Any]] = {}
        self.supervision: dict[tuple[str, str], dict[str, Any]] = {}  # authority
        self.children: dict[str, dict[str, dict[str, Any]]] = {}  # cache
        self.index: dict[str, str] = {}  # cache: actor_id -> system_id
        self.locked_systems: set[str] = set()
        self.created = False


_projects: dict[tuple[str, str], _Project] = {}
_projects_lock = threading.Lock()


def _project(location: str, key: str) -> _Project:
    with _projects_lock:
        return _projects.setdefault((location, key), _Project())


def forget_all() -> None:
    """Drop every memory project of this process (between tests)."""
    with _projects_lock:
        _projects.clear()


def _copy_message(message: InboxMessage) -> InboxMessage:
    """What a receiver gets: the message as the wire carries it, checked as every
    backend checks it (a valid id, JSON, not too long)."""
    check_id(message.id, "message id")
    data = message.to_wire()
    if len(data) > MAX_MESSAGE:
        raise InvalidSpec("message", f"{len(data):,} bytes encoded is more than the {MAX_MESSAGE:,} a message may have")
    return InboxMessage.from_wire(data)


def _deliver(project: _Project, address: Address, box: _Box, messages: Sequence[InboxMessage],
             block_timeout: float | None) -> None:
    copies = [_copy_message(m) for m in messages]  # all checked before any is delivered
    deadline = None if block_timeout is None else time.monotonic() + block_timeout
    with project.lock:
        while len(box.waiting) + len(copies) > box.max_pending:
            remaining = None if deadline is None else deadline - time.monotonic()
            if len(copies) > box.max_pending or (remaining is not None and remaining <= 0):
                raise MailboxFull(address.name, len(box.waiting), box.max_pending)
            project.lock.wait(remaining)
        for message in copies:
            box.waiting.append((next(project.receipts), message))
        for bell in box.bells:
            bell.ring()


class MemoryMailbox:
    """A handle on one memory mailbox (see ``runtime.backends.base.Mailbox``)."""

    def __init__(self, project: _Project, address: Address, box: _Box) -> None:
        self._project = project
        self._address = address
        self._box = box
        self._bell: WakeUp | None = None  # rung by senders; the reader's
        self._wakeup: WakeUp | None = None  # rung by wake()
        self._more = False
        self._closed = False

    @property
    def endpoint(self) -> str:
        address = self._address
        return f"{address.home}/{address.project_key}/{address.system_id}/{address.actor_id or ''}"

    @property
    def max_pending(self) -> int:
        return self._box.max_pending

    @property
    def more_waiting(self) -> bool:
        return self._more

    # -- senders ------------------------------------------------------------------------

    def deliver(self, messages: Sequence[InboxMessage], *, block_timeout: float | None = 0.0) -> None:
        _deliver(self._project, self._address, self._box, messages, block_timeout)

    def deliver_async(self, message: InboxMessage, *, block_timeout: float | None = 0.0) -> "Future[str]":
        self.deliver([message], block_timeout=block_timeout)
        future: Future[str] = Future()
        future.set_result(message.id)
        return future

    # -- the reader ---------------------------------------------------------------------

    def claim(self, timeout: float = 0.0) -> None:
        deadline = time.monotonic() + timeout
        with self._project.lock:
            while self._box.reader not in (None, self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreError(str(self._address.name), "another reader holds this mailbox")
                self._project.lock.wait(remaining)
            self._box.reader = self
            self._ensure_bell()

    def _ensure_bell(self) -> WakeUp:  # hold the lock
        if self._bell is None:
            self._bell = WakeUp()
            self._wakeup = WakeUp()
            self._box.bells.append(self._bell)
        return self._bell

    def recover(self) -> list[Delivered]:
        with self._project.lock:
            left = [Delivered(message, receipt) for receipt, message in self._box.handed.items()]
        return left + self.drain()

    def drain(self, limit: int | None = None) -> list[Delivered]:
        with self._project.lock:
            self._ensure_bell().clear()
            box = self._box
            count = len(box.waiting) if limit is None else min(limit, len(box.waiting))
            batch = []
            for _ in range(count):
                receipt, message = box.waiting.popleft()
                box.handed[receipt] = message
                batch.append(Delivered(message, receipt))
            self._more = bool(box.waiting)
            self._project.lock.notify_all()  # room for blocked senders
        return batch

    def take(self, kinds: Iterable[str]) -> list[Delivered]:
        wanted = set(kinds)
        with self._project.lock:
            self._ensure_bell().clear()
            box = self._box
            taken = [(r, m) for r, m in box.waiting if m.kind in wanted]
            if taken:
                box.waiting = collections.deque((r, m) for r, m in box.waiting if m.kind not in wanted)
                for receipt, message in taken:
                    box.handed[receipt] = message
                self._project.lock.notify_all()
        return [Delivered(message, receipt) for receipt, message in taken]

    def give_back(self, batch: Sequence[Delivered]) -> None:
        with self._project.lock:
            box = self._box
            for delivered in reversed(batch):
                message = box.handed.pop(delivered.receipt, None)
                if message is not None:
                    box.waiting.appendleft((delivered.receipt, message))
            if batch:
                self._more = True

    def ack(self, batch: Iterable[Delivered]) -> int:
        with self._project.lock:
            return sum(self._box.handed.pop(d.receipt, None) is not None for d in batch)

    def bury(self, delivered: Delivered, reason: str, attempts: int) -> None:
        with self._project.lock:
            if delivered.receipt in self._box.handed:
                self._box.dead.append(DeadLetter(delivered.message, reason, attempts, time.time()))
                del self._box.handed[delivered.receipt]

    def has_new(self) -> bool:
        with self._project.lock:
            return bool(self._box.waiting)

    def wait(self, timeout: float | None) -> bool:
        with self._project.lock:
            bell = self._ensure_bell()
        wakeup = self._wakeup
        assert wakeup is not None
        readable = wait_readable([bell.fd, wakeup.fd], timeout)
        if wakeup.fd in readable:
            wakeup.clear()
        return bool(readable)

    def wake(self) -> None:
        wakeup = self._wakeup  # no lock: a signal handler may call this
        if wakeup is not None:
            wakeup.ring()

    @property
    def inflight(self) -> _Marker:
        return self._box.inflight

    # -- any process --------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self._project.lock:
            box = self._box
            return {"new": len(box.waiting), "cur": len(box.handed), "corrupt": 0, "dead": len(box.dead)}

    def pending_count(self) -> int:
        found = self.counts()
        return found["new"] + found["cur"]

    def has_waiting(self) -> bool:
        return self.pending_count() > 0

    def peek(self, state: str = "new") -> Iterator[InboxMessage]:
        if state not in ("new", "cur"):
            raise ValueError(f"peek reads 'new' or 'cur', not {state!r}")
        with self._project.lock:
            found = [m for _, m in self._box.waiting] if state == "new" else list(self._box.handed.values())
        return iter(found)

    def dead_letters(self) -> list[DeadLetter]:
        with self._project.lock:
            return list(self._box.dead)

    def requeue(self, msg_id: str) -> bool:
        with self._project.lock:
            for letter in self._box.dead:
                if letter.message.id == msg_id:
                    self._box.dead.remove(letter)
                    break
            else:
                return False
        self.deliver([letter.message], block_timeout=None)
        return True

    def forget_inflight(self) -> None:
        self._box.inflight.clear()

    def close(self) -> None:
        """Let go of the mailbox: what a reader handed out and did not ack stays
        handed out, for the next reader's ``recover`` (a reader that crashed)."""
        if self._closed:
            return
        self._closed = True
        with self._project.lock:
            if self._box.reader is self:
                self._box.reader = None
                self._project.lock.notify_all()
            if self._bell is not None:
                self._box.bells.remove(self._bell)
                self._bell.close()
        if self._wakeup is not None:
            self._wakeup.close()


class MemoryFabric:
    """Lease records in memory, timed by an injected clock."""

    def __init__(self, project: _Project, clock: Callable[[], float]) -> None:
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
    def __init__(self, project: _Project, key: tuple[str, str]) -> None:
        self._project = project
        self._key = key

    def load(self) -> SessionDoc | None:
        with self._project.lock:
            session = self._project.sessions.get(self._key)
            if session is None:
                return None
            return SessionDoc(json.loads(session.state_json), list(session.admitted), json.loads(session.meta_json))

    def commit(self, state_json: str, meta_json: str, new_ids: Sequence[str], admitted: Iterable[str]) -> None:
        json.loads(state_json), json.loads(meta_json)  # what a file would refuse, this refuses too
        with self._project.lock:
            self._project.sessions[self._key] = _Session(state_json, meta_json, list(admitted))

    def close(self) -> None:
        pass


class _Lock:
    def __init__(self, project: _Project, system_id: str) -> None:
        self._project, self._system_id = project, system_id

    def release(self) -> None:
        with self._project.lock:
            self._project.locked_systems.discard(self._system_id)


class MemoryStore:
    def __init__(self, project: _Project) -> None:
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


class MemoryBackend:
    """One project in this process's memory (see the module docstring)."""

    name = "memory"

    def __init__(self, location: str, project_key: str, durability: Durability, *,
                 clock: Callable[[], float] = time.time,
                 new_future: Callable[[], "Future[Any]"] = Future) -> None:
        self.location = location
        self.project_key = check_id(project_key, "project key")
        self.durability = durability
        self._project = _project(location, self.project_key)
        self.fabric = MemoryFabric(self._project, clock)
        self.store = MemoryStore(self._project)
        self._new_future = new_future

    def exists(self) -> bool:
        with self._project.lock:
            return self._project.created

    def ensure_project(self, workspace: str) -> None:
        with self._project.lock:
            self._project.created = True

    def address(self, system_id: str, actor_id: str | None = None) -> Address:
        return Address(self.location, self.project_key, check_id(system_id, "system id"),
                       None if actor_id is None else check_id(actor_id))

    def _box(self, address: Address, create: bool) -> _Box:
        with self._project.lock:
            box = self._project.boxes.get(address)
            if box is None:
                if not create:
                    raise ActorNotFound(address.name, f"project {address.project_key}")
                box = self._project.boxes[address] = _Box()
            return box

    def mailbox(self, address: Address, *, create: bool = False,
                max_pending: int | None = None) -> MemoryMailbox:
        box = self._box(address, create)
        if create and max_pending is not None:
            box.max_pending = max_pending
        return MemoryMailbox(self._project, address, box)

    def view(self, address: Address) -> MemoryMailbox:
        return self.mailbox(address)

    def deliver(self, address: Address, messages: Sequence[InboxMessage], *,
                block_timeout: float | None = 0.0) -> None:
        _deliver(self._project, address, self._box(address, False), messages, block_timeout)

    def deliver_async(self, address: Address, message: InboxMessage, *,
                      block_timeout: float | None = 0.0) -> "Future[str]":
        self.deliver(address, [message], block_timeout=block_timeout)
        future: Future[str] = self._new_future()
        future.set_result(message.id)
        return future

    def provision(self, address: Address, max_pending: int) -> bool:
        with self._project.lock:
            fresh = address not in self._project.boxes and \
                (address.system_id, address.actor_id) not in self._project.sessions
        self.mailbox(address, create=True, max_pending=max_pending).close()
        return fresh

    def prepare(self, system_id: str, count: int) -> None:
        pass  # nothing to build ahead of time

    def close(self) -> None:
        pass
