"""The maildir ``SessionStore``: sessions, supervision records and indices on disk."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ...durability import Durability
from ...errors import StoreError
from ...ids import check_id
from ...records import ChildEntry
from ..base import SessionDoc
from .durable import FILE_MODE, make_dirs
from .indices import Indices
from .json_docs import write_json
from .layout import SESSION, ProjectLayout
from .sessions import MaildirSession, load_session_doc

if TYPE_CHECKING:
    from filelock import FileLock


class _SystemLock:
    def __init__(self, lock: FileLock) -> None:
        self._lock = lock

    def release(self) -> None:
        self._lock.release()


class MaildirStore:
    """Sessions and indices of one project under its ``ProjectLayout``."""

    def __init__(self, layout: ProjectLayout, durability: Durability) -> None:
        self.layout = layout
        self.durability = durability
        self.indices = Indices(layout, durability)

    # -- the project ---------------------------------------------------------------------

    def exists(self) -> bool:
        return os.path.isdir(self.layout.sessions)

    def ensure_project(self, workspace: str) -> None:
        """Create the project's directories and ``project.json`` if missing.

        Raises:
            StoreError: the home cannot be written.
        """
        try:
            make_dirs(self.layout.fabric)
            make_dirs(self.layout.sessions)
        except OSError as exc:
            raise StoreError(self.layout.root, f"cannot create the project: {exc.strerror or exc}") from exc
        if not os.path.exists(self.layout.project_json):
            write_json(self.layout.project_json, {"workspace": workspace, "key": self.layout.key,
                                                  "created_at": time.time()}, self.durability)

    # -- systems -------------------------------------------------------------------------

    def lock_system(self, system_id: str) -> _SystemLock:
        from filelock import FileLock, Timeout  # not at import: a worker never locks a system (see ``indices``)

        system_dir = self.layout.system_dir(system_id)
        try:
            make_dirs(system_dir)
            # Not thread-local: whichever thread shuts the system down releases it.
            lock = FileLock(self.layout.system_lock(system_id), timeout=0, thread_local=False, mode=FILE_MODE)
            lock.acquire()
        except Timeout:
            raise StoreError(system_dir, f"system {system_id!r} of this project is already running "
                                         "in another process") from None
        except OSError as exc:
            raise StoreError(system_dir, f"cannot lock the system: {exc.strerror or exc}") from exc
        return _SystemLock(lock)

    def save_system(self, system_id: str, meta: dict[str, Any]) -> None:
        write_json(self.layout.actor_file(system_id, None, SESSION), {"meta": meta}, self.durability)

    def remove_system(self, system_id: str) -> None:
        shutil.rmtree(self.layout.system_dir(system_id), ignore_errors=True)

    def systems(self) -> list[str]:
        try:
            names = os.listdir(self.layout.sessions)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(self.layout.sessions, f"cannot list the systems: {exc.strerror or exc}") from exc
        return sorted(n for n in names if n[0] != "." and os.path.isdir(os.path.join(self.layout.sessions, n)))

    # -- sessions ------------------------------------------------------------------------

    def session(self, system_id: str, actor_id: str) -> MaildirSession:
        return MaildirSession(self.layout, system_id, actor_id, self.durability)

    def load_session(self, system_id: str, actor_id: str) -> SessionDoc | None:
        session = self.session(system_id, actor_id)
        found = load_session_doc(session.path, session.admitted_path)
        return None if found is None else found[0]

    # -- supervision and indices ---------------------------------------------------------

    def record_children(self, system_id: str, entries: Sequence[ChildEntry]) -> None:
        self.indices.record(system_id, entries)

    def list_children(self, system_id: str) -> list[ChildEntry]:
        return self.indices.list_children(system_id)

    def all_children(self) -> Iterator[tuple[str, ChildEntry]]:
        return self.indices.all_children()

    def resolve_child(self, actor_id: str) -> str | None:
        return self.indices.resolve(actor_id)

    def child_entry(self, actor_id: str) -> tuple[str, ChildEntry] | None:
        return self.indices.entry(actor_id)

    def remove_child(self, system_id: str, actor_id: str) -> bool:
        return self.indices.remove(system_id, actor_id)

    def rebuild_index(self) -> dict[str, Any]:
        return self.indices.rebuild()

    def locate(self, actor_id: str, prefer: Sequence[str] = ()) -> str | None:
        check_id(actor_id)
        for system_id in [*prefer, *self.systems()]:
            with contextlib.suppress(StoreError, ValueError):
                if os.path.isdir(self.layout.child_dir(system_id, actor_id)):
                    return system_id
        return None
