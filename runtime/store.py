"""The session store: projects, sessions and their indices on disk (DESIGN §2).

::

    <home>/projects/<project-key>/
        project.json                 workspace path, created_at
        index.json                   roots + child_lookup {agent_id: system_id}   (cache)
        fabric/<agent_id>.json       leased records (runtime.fabric)
        sessions/<system_id>/
            session.json             the system's own session
            children.json            per-system index of its actors              (cache)
            mailbox/                 the system's inbox
            children/<agent_id>/
                session.json         {"state", "admitted", "meta"}  -- authority; the worker writes it
                supervision.json     the ChildEntry as its supervisor last wrote it: authority
                                     for status and restarts, and the only record of an
                                     actor that failed before its first commit
                mailbox/

``session.json`` is written only by the actor's own worker (and once by the spawner,
before the worker exists); supervision facts have their own file so two processes
never overwrite each other's updates. ``children.json`` and ``index.json`` are caches:
``rebuild_index`` regenerates both by scanning, and index writers hold a ``filelock``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterator

from filelock import FileLock, Timeout

from .durable import MACHINE, Durability, Rewriter, atomic_write, read_bytes
from .errors import StoreError
from .ids import check_id
from .mailbox import INFLIGHT, Mailbox
from .spec import ProvisionSpec

#: Seconds to wait for the index lock before giving up with ``StoreError``.
LOCK_TIMEOUT = 30.0
#: Extra reads of a document that did not parse (it may have been mid-rewrite).
TORN_READ_RETRIES = 3
#: Name prefix of a ready-made actor directory (see ``SessionStore.make_skeleton``).
SKELETON_PREFIX = ".spare-"
#: In a skeleton, the spare that becomes the actor's first lease record.
FABRIC_SPARE = "fabric-record.json"
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_SLUG_MAX = 48


def fnv1a_64(data: bytes) -> int:
    """FNV-1a, 64 bits."""
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return value


def project_key(project_dir: str | os.PathLike[str]) -> str:
    """The key of a project directory: folded path slug + ``-`` + 8 hex digits.

    The slug makes the key readable; the hash (FNV-1a 64 of the absolute path, low
    32 bits) keeps ``/a/b`` and ``/a-b``, which fold to the same slug, apart.
    """
    path = os.path.abspath(os.fspath(project_dir))
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")[-_SLUG_MAX:].strip("-") or "root"
    # A non-UTF-8 file name arrives with surrogate escapes, which plain .encode() refuses.
    return f"{slug}-{fnv1a_64(path.encode('utf-8', 'surrogateescape')) & 0xFFFFFFFF:08x}"


@dataclass
class ChildEntry:
    """One actor's line in ``children.json`` (denormalised; rebuildable)."""

    id: str
    actor_class: str = ""
    role: str | None = None
    labels: list[str] = field(default_factory=list)
    parent_id: str | None = None
    status: str = "starting"
    restarts: int = 0
    restart: str = "on-failure"
    updated_at: float = 0.0

    @classmethod
    def for_spec(cls, spec: ProvisionSpec, *, status: str, restarts: int = 0) -> "ChildEntry":
        """The entry of the actor ``spec`` provisions."""
        ident = spec.identity
        return cls(id=ident.child_id, actor_class=spec.actor_class, role=ident.role, labels=list(ident.labels),
                   parent_id=ident.parent_id, status=status, restarts=restarts, restart=spec.restart)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "ChildEntry":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


#: Fields of ChildEntry that come from supervision.json rather than session meta.
SUPERVISION_FIELDS = ("status", "restarts", "updated_at")


class SessionStore:
    """Paths and durable documents of one project under ``home``.

    Args:
        home: the ``ACTORS_HOME`` root.
        key: the project key (see :func:`project_key`).
        durability: level for session and index writes.
    """

    def __init__(self, home: str | os.PathLike[str], key: str,
                 durability: Durability = MACHINE) -> None:
        self.home = os.path.abspath(os.fspath(home))
        self.key = check_id(key, "project key")
        self.durability = durability
        self.root = os.path.join(self.home, "projects", self.key)
        self.fabric_dir = os.path.join(self.root, "fabric")
        self.sessions_dir = os.path.join(self.root, "sessions")
        self.index_path = os.path.join(self.root, "index.json")
        self._lock: FileLock | None = None  # made on first use: a FileLock costs ~50-400 us
        self._lock_made = threading.Lock()


    @classmethod
    def for_project(cls, home: str | os.PathLike[str], project_dir: str | os.PathLike[str],
                    durability: Durability = MACHINE) -> "SessionStore":
        """Open (creating if needed) the store of ``project_dir``."""
        store = cls(home, project_key(project_dir), durability)
        store.ensure_project(os.path.abspath(os.fspath(project_dir)))
        return store

    # -- paths ---------------------------------------------------------------------------

    def system_dir(self, system_id: str) -> str:
        return os.path.join(self.sessions_dir, check_id(system_id, "system id"))

    def child_dir(self, system_id: str, agent_id: str) -> str:
        return os.path.join(self.system_dir(system_id), "children", check_id(agent_id))

    def mailbox_dir(self, system_id: str, agent_id: str | None = None) -> str:
        """The mailbox of an actor, or of the system itself when ``agent_id`` is None."""
        base = self.system_dir(system_id) if agent_id is None else self.child_dir(system_id, agent_id)
        return os.path.join(base, "mailbox")

    def session_path(self, system_id: str, agent_id: str | None = None) -> str:
        base = self.system_dir(system_id) if agent_id is None else self.child_dir(system_id, agent_id)
        return os.path.join(base, "session.json")

    def supervision_path(self, system_id: str, agent_id: str) -> str:
        return os.path.join(self.child_dir(system_id, agent_id), "supervision.json")

    def children_path(self, system_id: str) -> str:
        return os.path.join(self.system_dir(system_id), "children.json")

    def children_dir(self, system_id: str) -> str:
        return os.path.join(self.system_dir(system_id), "children")

    # -- skeletons: actor directories made ahead of time -----------------------------------

    def make_skeleton(self, system_id: str) -> str:
        """Build an empty actor directory, ready to be renamed into place; returns it.

        It holds the mailbox (its directories, doorbell and in-flight marker) and the
        spare files the first commits rewrite, so a spawn that claims it with one
        ``rename`` creates almost nothing: on this file system every new inode costs up
        to ~1 ms while other processes churn files. Built under a temporary name and
        renamed to ``.spare-*`` only when complete; scans skip dot-names.
        """
        children_dir = self.children_dir(system_id)
        os.makedirs(children_dir, exist_ok=True)
        token = os.urandom(6).hex()
        building = os.path.join(children_dir, f".building-{token}")
        os.mkdir(building)
        mailbox = Mailbox(os.path.join(building, "mailbox"), durability=self.durability)
        mailbox.close()
        with open(os.path.join(mailbox.root, INFLIGHT), "wb"):
            pass
        for name in ("session.json", "supervision.json", "admitted.json", FABRIC_SPARE):
            Rewriter(os.path.join(building, name), self.durability).prepare()
        ready = os.path.join(children_dir, f"{SKELETON_PREFIX}{token}")
        os.rename(building, ready)
        return ready

    def claim_skeleton(self, skeleton: str, system_id: str, agent_id: str) -> bool:
        """Rename a skeleton into place as ``agent_id``'s directory; returns whether it was.

        Its fabric spare moves to where the actor's first lease record will be written.
        """
        target = self.child_dir(system_id, agent_id)
        try:
            os.rename(skeleton, target)
        except OSError:  # the directory appeared meanwhile; the skeleton stays unused
            return False
        record_spare = Rewriter(os.path.join(self.fabric_dir, f"{agent_id}.json")).spare
        try:
            os.rename(Rewriter(os.path.join(target, FABRIC_SPARE)).spare, record_spare)
        except OSError:
            pass
        return True

    def remove_unfinished_skeletons(self, system_id: str) -> None:
        """Delete half-built skeletons (``.building-*``); only the system's owner may."""
        children_dir = self.children_dir(system_id)
        if os.path.isdir(children_dir):
            for name in os.listdir(children_dir):
                if name.startswith(".building-"):
                    shutil.rmtree(os.path.join(children_dir, name), ignore_errors=True)

    def skeletons(self, system_id: str) -> list[str]:
        """Skeletons left ready by an earlier run (reused, not rebuilt)."""
        children_dir = self.children_dir(system_id)
        if not os.path.isdir(children_dir):
            return []
        return [os.path.join(children_dir, n) for n in sorted(os.listdir(children_dir))
                if n.startswith(SKELETON_PREFIX)]

    # -- documents -------------------------------------------------------------------------

    def ensure_project(self, workspace: str) -> None:
        """Create the project directory and ``project.json`` if missing."""
        os.makedirs(self.fabric_dir, exist_ok=True)
        os.makedirs(self.sessions_dir, exist_ok=True)
        path = os.path.join(self.root, "project.json")
        if not os.path.exists(path):
            doc = {"workspace": workspace, "key": self.key, "created_at": time.time()}
            atomic_write(path, _dump(doc), self.durability)

    def exists(self) -> bool:
        return os.path.isdir(self.sessions_dir)

    def read_json(self, path: str) -> Any:
        """A JSON document, or ``None`` if the file does not exist.

        Raises:
            StoreError: unreadable or not JSON (naming the path).
        """
        for attempt in range(TORN_READ_RETRIES + 1):
            try:
                return json.loads(read_bytes(path))
            except FileNotFoundError:
                return None
            except ValueError as exc:
                # A session file is rewritten in place by its worker (runtime.durable.
                # Rewriter); a read that spans two commits can see a torn text. Again.
                if attempt == TORN_READ_RETRIES:
                    raise StoreError(path, f"cannot read: {exc}") from exc
            except OSError as exc:
                raise StoreError(path, f"cannot read: {exc}") from exc
        raise AssertionError("unreachable")

    def write_json(self, path: str, doc: Any) -> None:
        """Replace a document atomically (callers serialise writers of one path)."""
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
        Rewriter(path, self.durability).write(_dump(doc))

    def save_session(self, system_id: str, agent_id: str | None, doc: dict[str, Any]) -> None:
        """Write a ``session.json`` atomically."""
        self.write_json(self.session_path(system_id, agent_id), doc)

    def load_session(self, system_id: str, agent_id: str | None = None) -> dict[str, Any] | None:
        """Read a ``session.json`` (``None`` if there is none)."""
        doc = self.read_json(self.session_path(system_id, agent_id))
        if doc is not None and not isinstance(doc, dict):
            raise StoreError(self.session_path(system_id, agent_id), "not a JSON object")
        return doc

    def load_supervision(self, system_id: str, agent_id: str) -> dict[str, Any]:
        doc = self.read_json(self.supervision_path(system_id, agent_id))
        return doc if isinstance(doc, dict) else {}

    # -- indices ---------------------------------------------------------------------------

    def _read_index(self) -> dict[str, Any]:
        doc = self.read_json(self.index_path)
        if not isinstance(doc, dict):
            doc = {}
        doc.setdefault("version", 1)
        doc.setdefault("roots", [])
        doc.setdefault("child_lookup", {})
        return doc

    def _read_children(self, system_id: str) -> dict[str, dict[str, Any]]:
        doc = self.read_json(self.children_path(system_id))
        children = doc.get("children") if isinstance(doc, dict) else None
        return children if isinstance(children, dict) else {}

    def upsert_child(self, system_id: str, entry: ChildEntry) -> ChildEntry:
        """Insert or replace one child (see ``record_children``)."""
        self.record_children(system_id, [entry])
        return entry

    def record_children(self, system_id: str, entries: list[ChildEntry]) -> None:
        """Insert or replace children in ``children.json``, then in ``index.json``.

        Each entry's supervision fields are also written to the child's
        ``supervision.json``, their authority. One lock, one rewrite of each index
        for the whole batch. Children first, then the index: a crash in between
        leaves an index that ``rebuild_index`` completes.

        Raises:
            StoreError: the index lock could not be had within ``LOCK_TIMEOUT``.
        """
        if not entries:
            return
        now = time.time()
        for entry in entries:
            check_id(entry.id)
            entry.updated_at = entry.updated_at or now
        with self._index_lock():
            self._write_entries(system_id, self._read_children(system_id), entries)
            index = self._read_index()
            lookup = index["child_lookup"]
            missing = [entry.id for entry in entries if lookup.get(entry.id) != system_id]
            if missing or system_id not in index["roots"]:
                if system_id not in index["roots"]:
                    index["roots"].append(system_id)
                    index["roots"].sort()
                for agent_id in missing:
                    lookup[agent_id] = system_id
                self.write_json(self.index_path, index)

    def update_status(self, system_id: str, agent_id: str, **changes: Any) -> ChildEntry | None:
        """Change supervision fields of a known child; returns the entry (None if unknown)."""
        with self._index_lock():
            children = self._read_children(system_id)
            doc = children.get(agent_id)
            if doc is None:
                return None
            entry = ChildEntry.from_dict(doc)
            for key, value in changes.items():
                setattr(entry, key, value)
            entry.updated_at = time.time()
            self._write_entries(system_id, children, [entry])
        return entry

    def _write_entries(self, system_id: str, children: dict[str, dict[str, Any]],
                       entries: list[ChildEntry]) -> None:
        """Write each entry's ``supervision.json``, then ``children`` with them in it
        (the caller holds the index lock and read ``children`` under it)."""
        for entry in entries:
            doc = asdict(entry)
            self.write_json(self.supervision_path(system_id, entry.id), doc)
            children[entry.id] = doc
        self.write_json(self.children_path(system_id), {"version": 1, "children": children})

    def _index_lock(self) -> "_LockGuard":
        with self._lock_made:
            if self._lock is None:
                self._lock = FileLock(os.path.join(self.root, ".index.lock"), timeout=LOCK_TIMEOUT)
        return _LockGuard(self._lock, self.index_path)

    def list_children(self, system_id: str) -> list[ChildEntry]:
        """The children of one system, sorted by id."""
        children = self._read_children(system_id)
        return [ChildEntry.from_dict(children[k]) for k in sorted(children)]

    def all_children(self) -> Iterator[tuple[str, ChildEntry]]:
        """``(system_id, entry)`` for every child of every system in the project."""
        for system_id in self._read_index()["roots"]:
            for entry in self.list_children(system_id):
                yield system_id, entry

    def resolve_child(self, agent_id: str) -> str | None:
        """The system id that holds ``agent_id`` (one index lookup), or ``None``."""
        check_id(agent_id)
        return self._read_index()["child_lookup"].get(agent_id)

    def child_entry(self, agent_id: str) -> tuple[str, ChildEntry] | None:
        """``(system_id, entry)`` of ``agent_id``, or ``None`` if unknown."""
        system_id = self.resolve_child(agent_id)
        if system_id is None:
            return None
        doc = self._read_children(system_id).get(agent_id)
        return None if doc is None else (system_id, ChildEntry.from_dict(doc))

    def remove_child(self, system_id: str, agent_id: str) -> bool:
        """Drop a child from both indices (its files stay). Returns whether it was listed."""
        check_id(agent_id)
        with self._index_lock():
            children = self._read_children(system_id)
            present = children.pop(agent_id, None) is not None
            self.write_json(self.children_path(system_id), {"version": 1, "children": children})
            index = self._read_index()
            present = index["child_lookup"].pop(agent_id, None) is not None or present
            self.write_json(self.index_path, index)
        return present

    def rebuild_index(self) -> dict[str, Any]:
        """Regenerate every ``children.json`` and ``index.json`` by scanning sessions.

        Idempotent; the result equals what incremental upserts produce. Returns the index.
        """
        with self._index_lock():
            index: dict[str, Any] = {"version": 1, "roots": [], "child_lookup": {}}
            for system_id in sorted(os.listdir(self.sessions_dir)):
                system_dir = os.path.join(self.sessions_dir, system_id)
                if system_id[0] == "." or not os.path.isdir(system_dir):
                    continue
                index["roots"].append(system_id)
                children: dict[str, Any] = {}
                children_dir = os.path.join(system_dir, "children")
                names = sorted(os.listdir(children_dir)) if os.path.isdir(children_dir) else []
                for agent_id in names:
                    entry = self._scan_child(system_id, agent_id)
                    if entry is not None:
                        children[agent_id] = asdict(entry)
                        index["child_lookup"][agent_id] = system_id
                self.write_json(os.path.join(system_dir, "children.json"),
                                {"version": 1, "children": children})
            self.write_json(self.index_path, index)
        return index

    def _scan_child(self, system_id: str, agent_id: str) -> ChildEntry | None:
        """Rebuild one child's entry: identity from its session, supervision facts from
        ``supervision.json`` (which alone describes a child that never committed)."""
        if agent_id[0] == ".":
            return None
        try:
            session = self.load_session(system_id, agent_id)
        except StoreError:
            session = None
        try:
            supervision = self.load_supervision(system_id, agent_id)
        except StoreError:
            supervision = {}
        if session is None and not supervision:
            return None
        meta = (session or {}).get("meta")
        meta = meta if isinstance(meta, dict) else {}
        identity = {k: v for k, v in meta.items() if k not in SUPERVISION_FIELDS}
        facts = {k: supervision[k] for k in SUPERVISION_FIELDS if k in supervision}
        # The directory name is the id (a session from elsewhere may carry none in meta).
        return ChildEntry.from_dict(supervision | identity | facts | {"id": agent_id})


class _LockGuard:
    """The index lock, turning a lock timeout into ``StoreError``."""

    def __init__(self, lock: FileLock, path: str) -> None:
        self.lock, self.path = lock, path

    def __enter__(self) -> None:
        try:
            self.lock.acquire()
        except Timeout as exc:
            raise StoreError(self.path, f"index lock busy for {LOCK_TIMEOUT} s") from exc

    def __exit__(self, *exc_info: object) -> None:
        self.lock.release()


def _dump(doc: Any) -> bytes:
    # Compact on purpose: with ``indent`` json falls back to its pure-Python encoder,
    # ~10x slower, and children.json grows with every actor of the system.
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
