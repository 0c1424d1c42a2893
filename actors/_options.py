"""What users pass to ``ActorSystem`` and ``spawn``, checked: where a system runs, on
which backend, and the spec of each actor it spawns."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from actors_runtime.backend_url import parse_backend
from actors_runtime.errors import InvalidSpec
from actors_runtime.ids import check_id
from actors_runtime.spec import RESTART_POLICIES, Identity, Limits, ProvisionSpec

from ._codec import type_tag

if TYPE_CHECKING:
    from ._system import ActorSystem

#: Default root of all projects' actors.
DEFAULT_HOME = os.path.join("~", ".actors")


def system_place(home: str | os.PathLike[str] | None, project: str | os.PathLike[str] | None,
                 pool_size: object, max_pending: object) -> tuple[str, str]:
    """The absolute home and project directories of a system (checking its counts too).

    Raises:
        InvalidSpec: a count that is not one, or a project that is not a directory.
    """
    if not isinstance(pool_size, int) or pool_size < 0:
        raise InvalidSpec("pool_size", f"{pool_size!r} is not a count")
    if not isinstance(max_pending, int) or max_pending < 1:
        raise InvalidSpec("max_pending", f"{max_pending!r} must be a positive count")
    home = home or os.environ.get("ACTORS_HOME") or DEFAULT_HOME
    home_dir = os.path.abspath(os.path.expanduser(os.fspath(home)))
    project_dir = os.path.abspath(os.fspath(project or os.getcwd()))
    if not os.path.isdir(project_dir):
        raise InvalidSpec("project", f"{project_dir} is not a directory")
    return home_dir, project_dir


def check_max_active(max_active: object) -> int | None:
    """``max_active`` as given: a positive count, or None for no limit.

    Raises:
        InvalidSpec: anything else (a bool, zero, a negative or fractional number).
    """
    if max_active is None:
        return None
    if isinstance(max_active, bool) or not isinstance(max_active, int) or max_active < 1:
        raise InvalidSpec("max_active", f"{max_active!r} must be a positive count of actors, or None for no limit")
    return max_active


def check_system_backend(backend: str) -> None:
    """Refuse a backend an ``ActorSystem`` cannot run on (and an unknown one).

    Raises:
        InvalidSpec: names the backends available, or why this one does not serve.
    """
    if parse_backend(backend)[0] == "memory":
        raise InvalidSpec("backend", "the memory backend keeps everything in one process, and an "
                          "ActorSystem runs each actor in a process of its own: use 'maildir' (the "
                          "memory backend serves tests that drive the runtime in one process)")


def spawn_spec(system: "ActorSystem", actor_class: type | str, name: str | None, *, role: str | None,
               labels: tuple[str, ...] | list[str], restart: str, secrets: dict[str, Any] | None,
               parent_id: str | None, depth: int, limits: Limits, on_poison: str = "dead-letter",
               mailbox: str = "log") -> ProvisionSpec:
    """The spec ``system.spawn`` starts an actor with.

    Raises:
        InvalidSpec: a bad name (or the system's own), restart policy, ``on_poison``
            or option.
    """
    class_path = actor_class if isinstance(actor_class, str) else type_tag(actor_class)
    if name is None:
        base = class_path.rpartition(":")[2].rpartition(".")[2].lower() or "actor"
        name = f"{base}-{os.urandom(4).hex()}"
    check_id(name)
    if name == system.name:
        raise InvalidSpec("actor id", f"{name!r} is the system's own name")
    if restart not in RESTART_POLICIES:
        raise InvalidSpec("restart", f"{restart!r} is not one of {', '.join(RESTART_POLICIES)}")
    spec = ProvisionSpec(
        identity=Identity(child_id=name, parent_id=parent_id, system_id=system.name,
                          project_key=system.project_key, role=role, labels=list(labels), depth=depth),
        actor_class=class_path, home=system.home, project_dir=system.project_dir, backend=system.backend_name,
        durability=system.durability, restart=restart, on_poison=on_poison, secrets=dict(secrets or {}),
        limits=limits, mailbox=mailbox,
    )
    spec.validate()
    if mailbox != "log" and system.backend_name.partition(":")[0] != "maildir":
        raise InvalidSpec("mailbox", f"{mailbox!r} needs the maildir backend (this system uses {system.backend_name})")
    return spec


def exception_names(types: Any) -> list[str]:
    """``retry_on`` as the qualified names the worker matches (exception classes, or
    their names as ``module.QualName``).

    Raises:
        InvalidSpec: not a sequence of exception classes or names.
    """
    if isinstance(types, (str, type)):
        types = (types,)
    if not isinstance(types, (tuple, list, set, frozenset)):
        raise InvalidSpec("retry_on", f"{types!r} is not a tuple of exception types")
    names = []
    for kind in types:
        if isinstance(kind, type) and issubclass(kind, BaseException):
            names.append(f"{kind.__module__}.{kind.__qualname__}")
        elif isinstance(kind, str) and kind.strip():
            names.append(kind.strip())
        else:
            raise InvalidSpec("retry_on", f"{kind!r} is not an exception type")
    return names
