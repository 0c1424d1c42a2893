"""Sessions, supervision records, the index and system locks of one project in Redis.

::

    commit        commit.lua: HSET session state/meta/outbox + RPUSH admitted (LTRIM to
                  the AdmittedSet's capacity), refused to a stale epoch
    journal       journal.lua: RPUSH / DEL, refused to a stale epoch
    children      HSET s:<system>:children <id> <entry>   (the authority)
                  + HSET index <id> <system>                (a cache) in one MULTI
    lock_system   lock.lua: SET lock <holder> PX 15 s (free, or its holder died on this
                  host), renewed every 5 s by a thread; release.lua lets it go

The epoch a commit carries is the one this process's reader claimed for the actor's
mailbox (``epochs``): a worker paused past its lease, whose successor claimed the
mailbox, has its commits refused with ``StoreError`` and its state never overwrites
the successor's. A session committed by a process that never claimed the mailbox
(a tool, a test) is not fenced.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Iterable, Iterator, Sequence

from ...admitted import DEFAULT_CAPACITY
from ...errors import StoreError
from ...ids import check_id
from ...records import SUPERVISION_FIELDS, ChildEntry
from ...threads import start_thread
from ..base import SessionDoc
from .connection import Server
from .keys import Keys
from .local_process import describe, died_here, holder_value

log = logging.getLogger(__name__)

#: Seconds a system lock lasts without renewal (renewed every third of it).
SYSTEM_LOCK_LEASE = 15.0

Epochs = dict[tuple[str, str | None], int]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisSession:
    """One actor's session (see the module docstring)."""

    def __init__(self, server: Server, keys: Keys, system_id: str, actor_id: str, epochs: Epochs) -> None:
        self._server = server
        self._keys = keys
        self._system_id, self._actor_id = system_id, actor_id
        self._session = keys.session(system_id, actor_id)
        self._epoch_key = keys.mailbox(system_id, actor_id).epoch
        self._epochs = epochs

    @property
    def _epoch(self) -> str:
        epoch = self._epochs.get((self._system_id, self._actor_id))
        return "" if epoch is None else str(epoch)

    def load(self) -> SessionDoc | None:
        keys = self._session

        def read(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=True)
            pipe.hgetall(keys.session)
            pipe.lrange(keys.admitted, 0, -1)
            pipe.lrange(keys.journal, 0, -1)
            return list(pipe.execute())

        doc, admitted, journal = self._server.call(f"read the session of {self._actor_id}", read)
        if not doc:
            return None
        try:
            records = []
            for raw in journal:
                try:
                    records.append(json.loads(raw))
                except ValueError:
                    log.warning("actor %s: a journal record is not JSON; skipped", self._actor_id)
            return SessionDoc(json.loads(doc[b"state"]), [_text(i) for i in admitted], json.loads(doc[b"meta"]),
                              json.loads(doc.get(b"outbox", b"[]")), records)
        except (KeyError, ValueError) as exc:
            raise StoreError(keys.session, f"the session cannot be read: {exc}") from None

    def commit(self, state_json: str, meta_json: str, new_ids: Sequence[str], admitted: Iterable[str],
               outbox_json: str = "[]") -> None:
        keys, args = self.commit_parts(state_json, meta_json, new_ids, outbox_json)
        self._server.run(f"commit the session of {self._actor_id}", "commit", [self._epoch_key, *keys],
                         [self._epoch, *args])

    def commit_parts(self, state_json: str, meta_json: str, new_ids: Sequence[str],
                     outbox_json: str) -> tuple[list[str], list[Any]]:
        """The KEYS and ARGV of commit.lua after its epoch's (commit_ack.lua takes them too).

        Raises:
            ValueError: a document is not JSON (nothing was written).
        """
        for text in (state_json, meta_json, outbox_json):
            json.loads(text)  # what a file would refuse
        keys = self._session
        return ([keys.session, keys.admitted, self._keys.sessions(self._system_id), self._keys.systems],
                [state_json, meta_json, outbox_json, DEFAULT_CAPACITY, self._actor_id, self._system_id, *new_ids])

    def fenced_by(self, epoch_key: str, epoch: int | None) -> bool:
        """Whether this session's commits are fenced by ``epoch`` at ``epoch_key`` (a
        reader of its own actor's mailbox claimed in this process)."""
        return epoch is not None and epoch_key == self._epoch_key and self._epoch == str(epoch)

    def journal(self, entry_json: str) -> None:
        json.loads(entry_json)
        self._server.run(f"journal a step of {self._actor_id}", "journal", [self._epoch_key, self._session.journal],
                         [self._epoch, entry_json])

    def clear_journal(self) -> None:
        self._server.run(f"clear the journal of {self._actor_id}", "journal",
                         [self._epoch_key, self._session.journal], [self._epoch])

    def close(self) -> None:
        pass


class RedisSystemLock:
    """A system's lock, renewed by a thread until released (or the process dies)."""

    def __init__(self, server: Server, key: str, holder: str) -> None:
        self._server, self._key, self._holder = server, key, holder
        self._ended = threading.Event()
        start_thread(self._renew_loop, f"system-lock-{key.rsplit(':', 2)[-2]}")

    def _renew_loop(self) -> None:
        while not self._ended.wait(SYSTEM_LOCK_LEASE / 3):
            try:
                if not self._server.run("renew a system lock", "renew", [self._key],
                                        [self._holder, int(SYSTEM_LOCK_LEASE * 1000)]):
                    log.error("%s: the system lock %s was lost (this process was paused past its lease?)",
                              self._server.where, self._key)
                    return
            except StoreError as exc:
                log.warning("could not renew the system lock: %s", exc)

    def release(self) -> None:
        if self._ended.is_set():
            return
        self._ended.set()
        try:
            self._server.run("release a system lock", "release", [self._key], [self._holder])
        except StoreError as exc:
            log.warning("could not release the system lock (it expires): %s", exc)


class RedisStore:
    """The ``SessionStore`` of one project in Redis (see the module docstring)."""

    def __init__(self, server: Server, keys: Keys, epochs: Epochs) -> None:
        self._server = server
        self._keys = keys
        self._epochs = epochs

    def _call(self, what: str, fn: Any) -> Any:
        return self._server.call(what, fn)

    def lock_system(self, system_id: str) -> RedisSystemLock:
        key = self._keys.system_lock(system_id)
        holder, replaceable = holder_value(), ""
        while True:
            taken, current = self._server.run(f"lock system {system_id}", "lock", [key],
                                              [holder, int(SYSTEM_LOCK_LEASE * 1000), replaceable])
            if taken:
                return RedisSystemLock(self._server, key, holder)
            if not died_here(current):
                raise StoreError(system_id, f"system {system_id!r} of this project is already running "
                                            f"({describe(current)})")
            replaceable = _text(current)

    def system_running(self, system_id: str) -> bool:
        """Whether a process holds the system's lock (one that died on this host does not)."""
        key = self._keys.system_lock(system_id)
        holder = self._call(f"look at the lock of {system_id}", lambda c: c.get(key))
        return holder is not None and not died_here(holder)

    def save_system(self, system_id: str, meta: dict[str, Any]) -> None:
        text = json.dumps(meta, separators=(",", ":"))

        def write(client: Any) -> None:
            pipe = client.pipeline(transaction=True)
            pipe.set(self._keys.system_meta(system_id), text)
            pipe.sadd(self._keys.systems, system_id)
            pipe.execute()

        self._call(f"save system {system_id}", write)

    def remove_system(self, system_id: str) -> None:
        prefix = self._keys.system(system_id)

        def remove(client: Any) -> None:
            actors = [_text(a) for a in client.hkeys(self._keys.children(system_id))]
            doomed = list(client.scan_iter(match=prefix + "*", count=1000))
            pipe = client.pipeline(transaction=True)
            for start in range(0, len(doomed), 1000):
                pipe.unlink(*doomed[start:start + 1000])
            pipe.srem(self._keys.systems, system_id)
            pipe.execute()
            for actor_id in actors:  # only where the index still names this system
                if client.hget(self._keys.index, actor_id) == system_id.encode():
                    client.hdel(self._keys.index, actor_id)

        self._call(f"remove system {system_id}", remove)

    def session(self, system_id: str, actor_id: str) -> RedisSession:
        return RedisSession(self._server, self._keys, check_id(system_id, "system id"), check_id(actor_id),
                            self._epochs)

    def load_session(self, system_id: str, actor_id: str) -> SessionDoc | None:
        return self.session(system_id, actor_id).load()

    def record_children(self, system_id: str, entries: Sequence[ChildEntry]) -> None:
        key = self._keys.children(system_id)
        now = time.time()
        docs = {}
        for entry in entries:
            check_id(entry.id)
            entry.updated_at = entry.updated_at or now
            docs[entry.id] = json.dumps(entry.to_dict(), separators=(",", ":"))
        if not docs:
            return

        def write(client: Any) -> None:
            pipe = client.pipeline(transaction=True)
            pipe.hset(key, mapping=docs)
            pipe.hset(self._keys.index, mapping={actor_id: system_id for actor_id in docs})
            pipe.sadd(self._keys.systems, system_id)
            pipe.execute()

        self._call(f"record the children of {system_id}", write)

    def list_children(self, system_id: str) -> list[ChildEntry]:
        raw = self._call(f"list the children of {system_id}", lambda c: c.hgetall(self._keys.children(system_id)))
        found = []
        for actor_id in sorted(_text(k) for k in raw):
            try:
                found.append(ChildEntry.from_dict(json.loads(raw[actor_id.encode()])))
            except (ValueError, TypeError) as exc:
                log.warning("system %s: the supervision record of %s is unreadable: %s", system_id, actor_id, exc)
        return found

    def all_children(self) -> Iterator[tuple[str, ChildEntry]]:
        for system_id in self.systems():
            for entry in self.list_children(system_id):
                yield system_id, entry

    def resolve_child(self, actor_id: str) -> str | None:
        check_id(actor_id)
        found = self._call(f"look up {actor_id}", lambda c: c.hget(self._keys.index, actor_id))
        return None if found is None else _text(found)

    def child_entry(self, actor_id: str) -> tuple[str, ChildEntry] | None:
        system_id = self.resolve_child(actor_id)
        if system_id is None:
            return None
        raw = self._call(f"read the entry of {actor_id}", lambda c: c.hget(self._keys.children(system_id), actor_id))
        if raw is None:
            return None
        try:
            return system_id, ChildEntry.from_dict(json.loads(raw))
        except (ValueError, TypeError):
            return None

    def locate(self, actor_id: str, prefer: Sequence[str] = ()) -> str | None:
        check_id(actor_id)
        for system_id in [*prefer, *self.systems()]:
            def known(client: Any, system_id: str = system_id) -> bool:
                return bool(client.sismember(self._keys.sessions(system_id), actor_id)
                            or client.hexists(self._keys.children(system_id), actor_id)
                            or client.exists(self._keys.mailbox(system_id, actor_id).cfg))
            if self._call(f"look for {actor_id}", known):
                return system_id
        return None

    def systems(self) -> list[str]:
        return sorted(_text(s) for s in self._call("list the systems", lambda c: c.smembers(self._keys.systems)))

    def rebuild_index(self) -> dict[str, Any]:
        children: dict[str, dict[str, str]] = {}
        for system_id in self.systems():
            supervision = {e.id: e.to_dict() for e in self.list_children(system_id)}
            sessions = {_text(a) for a in self._call("list sessions",
                                                     lambda c: c.smembers(self._keys.sessions(system_id)))}
            kids: dict[str, str] = {}
            for actor_id in sorted(set(supervision) | sessions):
                doc = self.load_session(system_id, actor_id) if actor_id in sessions else None
                meta = doc.meta if doc is not None and isinstance(doc.meta, dict) else {}
                identity = {k: v for k, v in meta.items() if k not in SUPERVISION_FIELDS}
                facts = supervision.get(actor_id, {})
                kept = {k: facts[k] for k in SUPERVISION_FIELDS if k in facts}
                entry = ChildEntry.from_dict(facts | identity | kept | {"id": actor_id})
                kids[actor_id] = json.dumps(entry.to_dict(), separators=(",", ":"))
            children[system_id] = kids

        def write(client: Any) -> None:
            pipe = client.pipeline(transaction=True)
            pipe.delete(self._keys.index)
            for system_id, kids in children.items():
                if kids:
                    pipe.hset(self._keys.children(system_id), mapping=kids)
                    pipe.hset(self._keys.index, mapping={a: system_id for a in kids})
            pipe.execute()

        self._call("rebuild the index", write)
        lookup = {a: s for s, kids in children.items() for a in kids}
        return {"version": 1, "roots": sorted(children), "child_lookup": lookup}
