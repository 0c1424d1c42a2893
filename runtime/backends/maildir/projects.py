"""The projects under one home, as ``project.json`` and the systems' records say.

A project is keyed by its directory (``address.project_key``); nothing else lists
them, so ``actors projects`` reads ``<home>/projects/*/``: the directory each was
made for (``project.json``'s ``workspace``), and each system's ``session.json``
(the pid and start time of the process that last opened it). Whether a system runs
now is whether its lock is held: ``/proc/locks`` names the holder of the lock
file's ``flock`` without anyone taking it (taking it to look would make a system
starting at that moment fail as "already running"). Where ``/proc/locks`` cannot be
read, the recorded pid still existing is the answer. Reading only: nothing is
created, and a damaged entry is reported, not skipped silently.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from ...errors import InvalidSpec, StoreError
from ...ids import check_id
from .json_docs import read_json
from .layout import SESSION, ProjectLayout


@dataclasses.dataclass(frozen=True)
class SystemSeen:
    """A system of a project: who last opened it and when (its record), and whether
    it runs now (``running_pid``: the process holding its lock, else None)."""

    system_id: str
    pid: int | None
    started_at: float | None
    running_pid: int | None = None


@dataclasses.dataclass(frozen=True)
class ProjectSeen:
    """One project under the home.

    Attributes:
        key: the project key (its directory under ``<home>/projects``).
        workspace: the directory it belongs to ("" when ``project.json`` is missing).
        created_at: when it was made (unix seconds; None when unknown).
        systems: its systems, sorted by id.
        problem: why part of it could not be read ("" when all was read).
    """

    key: str
    workspace: str
    created_at: float | None
    systems: tuple[SystemSeen, ...]
    problem: str = ""


def list_projects(home: str) -> list[ProjectSeen]:
    """The projects under ``home``, sorted by key (empty when there is none).

    Raises:
        StoreError: ``<home>/projects`` exists but cannot be listed.
    """
    root = os.path.join(home, "projects")
    try:
        names = sorted(os.listdir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise StoreError(root, f"cannot list the projects: {exc.strerror or exc}") from exc
    found = []
    for name in names:
        if name.startswith(".") or not os.path.isdir(os.path.join(root, name)):
            continue
        try:
            layout = ProjectLayout(home, check_id(name, "project key"))
        except InvalidSpec:
            continue  # not a directory this library makes
        found.append(_project(layout))
    return found


def _project(layout: ProjectLayout) -> ProjectSeen:
    problems = []
    workspace, created_at = "", None
    try:
        doc = read_json(layout.project_json)
    except StoreError as exc:
        doc, problems = None, [f"project.json: {exc.reason}"]
    if isinstance(doc, dict):
        workspace = str(doc.get("workspace") or "")
        created_at = _number(doc.get("created_at"))
    elif doc is None and not problems:
        problems.append("no project.json")
    systems = []
    try:
        system_ids = sorted(n for n in os.listdir(layout.sessions)
                            if n[0] != "." and os.path.isdir(os.path.join(layout.sessions, n)))
    except FileNotFoundError:
        system_ids = []
    except OSError as exc:
        system_ids, problems = [], [*problems, f"sessions: {exc.strerror or exc}"]
    for system_id in system_ids:
        try:
            meta = read_json(layout.actor_file(check_id(system_id, "system id"), None, SESSION))
        except (InvalidSpec, StoreError):
            meta = None
        meta = meta.get("meta") if isinstance(meta, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        pid = meta.get("pid")
        pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None
        systems.append(SystemSeen(system_id, pid, _number(meta.get("started_at")),
                                  lock_holder(layout.system_lock(system_id), pid)))
    return ProjectSeen(layout.key, workspace, created_at, tuple(systems), "; ".join(problems))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def lock_holder(path: str, recorded_pid: int | None = None) -> int | None:
    """The pid of the process holding the ``flock`` on ``path`` (None: not held).

    Read from ``/proc/locks``; where that cannot be read, ``recorded_pid`` if that
    process exists (it may have ended its system and lived on: a guess, said so in
    the docs)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks", "rb") as handle:
            table = handle.read().decode(errors="replace")
    except OSError:
        return recorded_pid if recorded_pid is not None and _exists(recorded_pid) else None
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4711 fe:00:2187798 0 EOF"; a waiter's line has "->".
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device and fields[4].isdigit():
            return int(fields[4])
    return None


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
