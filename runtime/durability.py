"""Durability levels: what a "sent" or "committed" promise survives.

Every backend honours both: at "machine" a write is on stable storage before the
call that made it returns (it survives a power loss); at "process" it survives any
process crash (kill -9), not a crash of the kernel or of the storage server.
"""

from __future__ import annotations

from typing import Literal

from .errors import InvalidSpec

Durability = Literal["machine", "process"]

#: Survives power loss: flushed to stable storage before the call returns.
MACHINE: Durability = "machine"
#: Survives any process crash (kill -9), not a kernel crash: no flush.
PROCESS: Durability = "process"
#: Both levels, for validation.
DURABILITY_LEVELS = (MACHINE, PROCESS)


def check_durability(value: object) -> Durability:
    """Return ``value`` if it names a durability level, else raise ``InvalidSpec``."""
    if value not in DURABILITY_LEVELS:
        raise InvalidSpec("durability", f"{value!r} is not one of {', '.join(DURABILITY_LEVELS)}")
    return value
