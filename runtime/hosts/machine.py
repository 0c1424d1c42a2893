"""What a host needs of its own machine: its default id, whether it can import an
actor's class, and one pool of warm workers for every system it serves."""

from __future__ import annotations

import importlib
import os
from typing import Any

from ..backends.redis.local_process import HOST
from ..parent.pool import Pool

#: Default warm workers a host keeps started (see ``HostPool``).
DEFAULT_WARM = 2


class HostPool(Pool):
    """One pool of warm workers for every system a host serves: a warm worker has
    no actor, and so no system, until a spec comes (and on Redis there is no storage
    to prepare ahead). Each supervisor starts and closes its pool: here only the
    first start counts, and only the host closes it (``close_for_good``)."""

    def start(self) -> None:
        if self._thread is None:
            super().start()

    def close(self) -> None:
        pass  # a supervisor's shutdown: the host's pool outlives it

    def close_for_good(self) -> None:
        super().close()


def default_host_id() -> str:
    """This machine's name and this process's pid, as an id."""
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in HOST)[:64] or "host"
    return f"{name}-{os.getpid()}"


def import_error(actor_class: str) -> str | None:
    """Why this process cannot import ``actor_class`` (``module:QualName``), or None.
    Imports the module (a host runs its actors' code anyway)."""
    module_name, _, qualname = actor_class.partition(":")
    if module_name in ("__main__", "__mp_main__"):
        return "a class of a script's __main__ cannot be placed: hosts import classes by module"
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            return f"module {module_name!r} has no {qualname!r}"
    return None
