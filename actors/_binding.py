"""Which runtime a ref sends through: a system of this process, or the actor whose
worker this process is.

A ref built by a system is bound to it. A ref that arrives unbound (unpickled, built
with ``ActorRef.from_dict``, or decoded from a message) is bound on first use: inside
a worker to the actor the worker runs, in a parent to the newest open system of the
ref's project. This module owns that lookup; nothing else keeps process-wide state
about systems.
"""

from __future__ import annotations

import threading
from typing import Any

from actors_runtime.address import Address
from actors_runtime.errors import UnboundRef

_lock = threading.Lock()
_worker_side: Any = None  # set once per worker process, when its actor is bound
_systems: list[Any] = []  # open systems of this process, oldest first


def bind_worker(runtime: Any) -> None:
    """This process is a worker: unbound refs send as its actor (``runtime``)."""
    global _worker_side
    _worker_side = runtime


def worker_side() -> Any:
    """The worker-side runtime of this process, if it is a worker."""
    return _worker_side


def register_system(system: Any) -> None:
    with _lock:
        _systems.append(system)


def unregister_system(system: Any) -> None:
    with _lock:
        if system in _systems:
            _systems.remove(system)


def runtime_for(address: Address) -> Any:
    """The runtime that sends to ``address`` from this process.

    Raises:
        UnboundRef: no system of the address's project is open here, and this
            process is not a worker.
    """
    worker = _worker_side if _worker_side is not None and _worker_side.running else None
    if worker is not None and worker.serves(address):
        return worker
    with _lock:
        systems = list(reversed(_systems))
    for system in systems:
        if system.serves(address):
            return system
    if worker is not None:
        return worker  # it says why it cannot send there
    raise UnboundRef(address.name)
