"""Actors' logs on a Redis server: a capped stream of lines per actor, and where a
worker on this machine keeps its log file.

::

    worker (any machine)  --XADD MAXLEN ~ LOG_LINES, pipelined-->  ...:a:<actor>:log
    actors logs ID        <--XREVRANGE (the last N) / XREAD BLOCK (--follow)--

Trimming is fine here, and only here: a log line is not a message (a mailbox stream
is never trimmed). ``MAXLEN ~`` trims whole macro nodes, so a little more than
``LOG_LINES`` may stay. Workers started with ``ACTORS_LOG_DIR`` set (an ``actors
host`` sets it for its own) also keep a rotated file under that directory, on their
own machine: ``<dir>/<project>/<system>/<actor>/actor.log``.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from ...address import Address
from .connection import Server, retrying

#: Lines kept per actor on the server (about; the oldest go first). Some 200 bytes
#: each: ~400 KB for an actor that logs a lot, nothing for one that does not.
LOG_LINES = 2000
#: Environment variable: the directory under which workers on this machine keep
#: their log files (unset: no file, the server's lines only).
LOG_DIR_ENV = "ACTORS_LOG_DIR"
#: The name of an actor's log file in its directory (as on maildir).
ACTOR_LOG = "actor.log"
#: Seconds an append is retried while the server is away (lines are best effort:
#: a worker does not wait long for its log).
APPEND_RETRY_FOR = 5.0
#: Lines read at a time by ``after``.
READ_COUNT = 1000


def log_file(project_key: str, address: Address) -> str | None:
    """The log file of a worker of ``address`` on this machine (None: no directory set)."""
    root = os.environ.get(LOG_DIR_ENV, "")
    if not root or address.actor_id is None:
        return None
    return os.path.join(os.path.abspath(root), project_key, address.system_id, address.actor_id, ACTOR_LOG)


class RedisActorLog:
    """One actor's log stream (``base.ActorLog``)."""

    def __init__(self, server: Server, key: str) -> None:
        self.server = server
        self.key = key

    def append(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        key = self.key

        def push() -> None:
            pipe = self.server.client.pipeline(transaction=False)
            for line in lines:
                pipe.xadd(key, {"line": line}, maxlen=LOG_LINES, approximate=True)
            pipe.execute()

        # Not ``Server.call``: its hooks are the worker's mailbox's, and this runs on
        # the log's own thread.
        retrying(self.server.where, f"append to the log {key}", push, APPEND_RETRY_FOR)

    def last(self, count: int | None) -> tuple[list[str], str]:
        key = self.key
        if count is None:
            raw = self.server.call(f"read the log {key}", lambda c: c.xrange(key))
        else:
            raw = list(reversed(self.server.call(f"read the log {key}",
                                                 lambda c: c.xrevrange(key, count=max(count, 1)))))
        cursor = _id(raw[-1][0]) if raw else "0-0"
        return ([] if count == 0 else _lines(raw)), cursor

    def after(self, cursor: str, timeout: float) -> tuple[list[str], str]:
        key = self.key
        block = max(1, int(timeout * 1000))  # 0 would block for ever
        got = self.server.call(f"follow the log {key}",
                               lambda c: c.xread({key: cursor}, count=READ_COUNT, block=block))
        entries = got[0][1] if got else []
        return _lines(entries), (_id(entries[-1][0]) if entries else cursor)


def _id(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _lines(entries: Any) -> list[str]:
    found = []
    for _, fields in entries:
        line = fields.get(b"line", b"")
        found.append(line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line))
    return found
