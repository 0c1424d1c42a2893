"""Who a process is on this machine, so a lease left by a dead local process can be
taken over at once instead of after its lease runs out.

A holder is ``{"host", "pid", "start"}`` (``start``: the process's start time in
clock ticks since boot, from ``/proc``, so a reused pid is not mistaken for the
holder). Only a holder on this host is ever judged; one elsewhere is judged by its
lease alone.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from typing import Any

#: This machine's name, as holders and lease records carry it.
HOST = socket.gethostname()
#: Set by an ``actors host`` for the workers it starts: its id, which their lease
#: records name after the machine's (``machine/host-id``).
HOST_ID_ENV = "ACTORS_HOST_ID"


def record_host() -> str:
    """What a lease record published by this process names as its host."""
    host_id = os.environ.get(HOST_ID_ENV)
    return f"{HOST}/{host_id}" if host_id else HOST


def start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def holder_value() -> str:
    """A new holder value for this process (unique per call)."""
    pid = os.getpid()
    return json.dumps({"host": HOST, "pid": pid, "start": start_ticks(pid), "token": uuid.uuid4().hex},
                      separators=(",", ":"))


def parse_holder(value: Any) -> dict[str, Any]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        doc = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def died_here(value: Any) -> bool:
    """Whether ``value`` names a process of this host that is no longer running."""
    doc = parse_holder(value)
    if doc.get("host") != HOST or not isinstance(doc.get("pid"), int):
        return False
    if doc["pid"] == os.getpid():
        return False
    return start_ticks(doc["pid"]) != doc.get("start")


def describe(value: Any) -> str:
    doc = parse_holder(value)
    return f"pid {doc.get('pid')} on {doc.get('host')}" if doc else "another process"
