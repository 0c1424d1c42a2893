"""The Lua scripts of the Redis backend (``scripts/*.lua``), read once per process.

Each script is one atomic step of the protocol: a delivery with its backpressure
check, a fenced drain, ack, bury or commit, a lease taken, renewed or let go. They
run by EVALSHA; after a server restart empties its script cache the client loads
them again (redis-py's ``Script`` does that on NOSCRIPT).
"""

from __future__ import annotations

import functools
import os

#: The directory the scripts live in (package data).
SCRIPTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")


@functools.cache
def source(name: str) -> str:
    """The text of ``scripts/<name>.lua``."""
    with open(os.path.join(SCRIPTS_DIR, f"{name}.lua"), encoding="utf-8") as handle:
        return handle.read()
