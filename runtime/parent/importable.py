"""Whether this process can start an actor: can its workers import the actor's class?

Workers import what their parent can: they start with its ``sys.path``, and with its
main script imported as ``__main__`` (multiprocessing runs it as ``__mp_main__``).
So an actor whose class lives in the ``__main__`` of another program, or in a module
that is not on this program's path, cannot be started from here. A message for it
must wait for a process that can (its owner's next run), rather than have this one
start a worker that fails and mark the actor failed for everyone.

The check never imports user code: a module already imported is looked up, any
other is only found on the path.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import sys
import threading
from typing import Any

log = logging.getLogger(__name__)

_warned: set[Any] = set()  # (address, reason) said once per process
_warned_lock = threading.Lock()


def unavailable_here(actor_class: str) -> str | None:
    """Why this process's workers cannot import ``actor_class`` (``module:QualName``),
    or None if they can, as far as can be told without importing anything new."""
    module_name, _, qualname = actor_class.partition(":")
    if module_name in ("__main__", "__mp_main__"):
        main = sys.modules.get("__main__")
        if _lookup(main, qualname) is None:
            where = getattr(main, "__file__", None) or "this program"
            return (f"its class {actor_class} is defined in the main script of another program "
                    f"(not in {where}); only a program that defines it can start it")
        return None
    module = sys.modules.get(module_name)
    if module is not None:
        if _lookup(module, qualname) is None:
            return f"module {module_name!r} as imported here has no {qualname!r}"
        return None
    if not _findable(module_name):
        return f"module {module_name!r} of its class {actor_class} is not on this program's path"
    return None


def _lookup(module: Any, qualname: str) -> Any:
    target = module
    for part in qualname.split("."):
        if target is None:
            return None
        target = getattr(target, part, None)
    return target


def _findable(module_name: str) -> bool:
    """Whether ``module_name`` can be found on the path without importing it (nor its
    packages). Anything unexpected counts as findable: the worker then says why not."""
    parts = module_name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
        for depth in range(1, len(parts)):
            if spec is None:
                break
            locations = spec.submodule_search_locations
            if locations is None:  # a plain module has no submodules
                return False
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: depth + 1]), list(locations))
    except (ImportError, ValueError, AttributeError):
        return True
    return spec is not None


def say_once(actor_id: str, key: Any, reason: str) -> None:
    """Warn that the actor cannot be started here, once per actor and reason per process."""
    with _warned_lock:
        if (key, reason) in _warned:
            return
        _warned.add((key, reason))
    log.warning("actor %s: not started by this process: %s. Its messages wait in its mailbox "
                "for its next activation by a program that can import the class", actor_id, reason)
