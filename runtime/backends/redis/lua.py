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


#: A line that stands for the whole text of ``scripts/<NAME>.lua`` (a ``lib_`` script
#: of local functions that several scripts share: Redis has no way to load one script
#: from another, so the text is inlined before the script is sent).
INCLUDE = "--#include "


@functools.cache
def source(name: str) -> str:
    """The text of ``scripts/<name>.lua``, its ``--#include`` lines replaced by the
    scripts they name (one level: a ``lib_`` script includes nothing)."""
    lines = []
    for line in _read(name).splitlines(keepends=True):
        if line.startswith(INCLUDE):
            included = line[len(INCLUDE):].strip()
            text = _read(included)
            if any(each.startswith(INCLUDE) for each in text.splitlines()):
                raise ValueError(f"scripts/{included}.lua, included by {name}.lua, includes another script")
            lines.append(text)
        else:
            lines.append(line)
    return "".join(lines)


def _read(name: str) -> str:
    with open(os.path.join(SCRIPTS_DIR, f"{name}.lua"), encoding="utf-8") as handle:
        return handle.read()
