"""The maildir fabric: one leased ``AgentRecord`` file per live actor.

A live actor publishes ``fabric/<id>.json`` and re-publishes it before the lease runs
out; a record whose lease has expired belongs to a dead process and is invisible to
``resolve``, ``is_live`` and ``discover``, and ``gc`` removes it. Clean exits
``withdraw``. Records are written in the original crate's shape and read in either
(``records.record_to_doc``, ``record_from_doc``). Time comes from an injected clock so lease logic is tested without
sleeping. A record that does not parse, or has a field of the wrong type, is no
record (``None``; ``gc`` removes it); a failing disk is ``StoreError``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Callable

from ...durability import PROCESS, Durability
from ...errors import StoreError
from ...ids import check_id
from ...records import AgentRecord, record_from_doc, record_to_doc
from .durable import Rewriter, is_real_dir, make_dirs, read_bytes
from .quarantine import STALE_TEMP_AGE, is_foreign_temp

log = logging.getLogger(__name__)

Clock = Callable[[], float]

#: Default lease length in seconds.
DEFAULT_LEASE = 60.0


class MaildirFabric:
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
        # is_live asks on every send to another actor: a record is parsed again only
        # when its file changed (its inode, size or mtime moved).
        self._parsed: dict[str, tuple[tuple[int, int, int], AgentRecord | None]] = {}
        self._parsed_lock = threading.Lock()

    def _listing(self) -> list[str]:
        try:
            return sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(self.root, f"cannot list the fabric: {exc.strerror or exc}") from exc

    def _path(self, actor_id: str) -> str:
        return os.path.join(self.root, f"{check_id(actor_id)}.json")

    def publish(self, record: AgentRecord, lease: float = DEFAULT_LEASE) -> AgentRecord:
        """Write (or renew) ``record`` with a lease of ``lease`` seconds from now.

        Raises:
            StoreError: it cannot be written (or ``fabric/`` is a symlink or a file).
        """
        path = self._path(record.agent_id)  # the id is checked before anything is made
        record.lease_expires_at = self.clock() + lease
        data = json.dumps(record_to_doc(record), separators=(",", ":")).encode()  # the crate's shape
        if not is_real_dir(self.root):  # made by the first publish: looking creates nothing
            try:
                make_dirs(self.root)
            except OSError as exc:
                raise StoreError(self.root, f"cannot create the fabric: {exc.strerror or exc}") from exc
        Rewriter(path, self.durability).write(data)  # no inode churn
        return record

    def renew(self, record: AgentRecord, lease: float = DEFAULT_LEASE) -> bool:
        """Publish again, unless another process's record took its place."""
        current = self.read(record.agent_id)
        if current is not None and current.pid != record.pid:
            return False
        self.publish(record, lease)
        return True

    def _read(self, path: str) -> AgentRecord | None:
        """The record in ``path``; ``None`` if there is none or it is unreadable (a
        symlink, not JSON, nested too deep, or not a record)."""
        try:
            return record_from_doc(json.loads(read_bytes(path)))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:
            log.debug("fabric: unreadable record %s: %s", path, exc)
            return None

    def read(self, actor_id: str) -> AgentRecord | None:
        """The record of ``actor_id`` whether or not its lease is live (``None`` if none)."""
        return self._read(self._path(actor_id))

    def resolve(self, actor_id: str) -> AgentRecord | None:
        """The live record of ``actor_id``, or ``None`` if absent, expired or corrupt."""
        record = self.read(actor_id)
        if record is None or not record.is_live(self.clock()):
            return None
        return record

    def is_live(self, actor_id: str) -> bool:
        """Whether ``actor_id`` has a live record (a ``stat``, and a read only when the
        file changed since this fabric last read it)."""
        path = self._path(actor_id)
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreError(path, f"cannot read the record: {exc.strerror or exc}") from exc
        key = (info.st_ino, info.st_size, info.st_mtime_ns)
        with self._parsed_lock:
            cached = self._parsed.get(path)
        if cached is not None and cached[0] == key:
            record = cached[1]
        else:
            record = self._read(path)
            with self._parsed_lock:
                if len(self._parsed) >= 1024:
                    self._parsed.clear()
                self._parsed[path] = (key, record)
        return record is not None and record.is_live(self.clock())

    def discover(self, *, role: str | None = None, label: str | None = None) -> list[AgentRecord]:
        """Live records, sorted by id, optionally filtered by role or label."""
        now = self.clock()
        found = []
        for name in self._listing():
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

    def withdraw(self, actor_id: str, pid: int | None = None) -> bool:
        """Remove the record of ``actor_id``; returns whether one was removed.

        With ``pid``, only a record published by that process is removed, so a stale
        activation never withdraws its successor.

        Raises:
            StoreError: it cannot be removed.
        """
        path = self._path(actor_id)
        if pid is not None:
            record = self._read(path)
            if record is not None and record.pid != pid:
                return False
        return Rewriter(path, self.durability).remove()

    def gc(self) -> list[str]:
        """Remove expired and corrupt records; returns the removed ids.

        Raises:
            StoreError: the fabric cannot be listed, or a record cannot be removed.
        """
        now = self.clock()
        removed = []
        for name in self._listing():
            if is_foreign_temp(name):  # a crate publisher died mid-write
                self._sweep_temp(os.path.join(self.root, name), now)
            if name[0] == "." or not name.endswith(".json"):
                continue
            path = os.path.join(self.root, name)
            record = self._read(path)
            if record is not None and record.is_live(now):
                continue
            try:
                os.unlink(path)  # a symlink goes, not what it points to
                removed.append(name[: -len(".json")])
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StoreError(path, f"cannot remove the record: {exc.strerror or exc}") from exc
        return removed

    def _sweep_temp(self, path: str, now: float) -> None:
        try:
            if os.lstat(path).st_mtime < now - STALE_TEMP_AGE:
                os.unlink(path)
        except OSError:
            pass
