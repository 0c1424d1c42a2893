"""The in-flight marker of a mailbox: a key naming the message its worker handles.

It is set and cleared around every message, so neither may cost a round trip: both
are written to a connection of their own without waiting for the reply. The replies
(``+OK`` / ``:1``, a few bytes each) are left in the socket and read in bulk once
``SETTLE_EVERY`` are unread, or before ``read`` and ``close``: reading each one
before the next command made every message wait for the server to be scheduled. Once ``set`` returns, the command is in the kernel's
socket buffer, which a SIGKILL of this process does not take back: the next
activation reads it. A marker that could not be written is logged; the cost is a
crash not counted against a message (poison detection), never a lost message.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .connection import Server

log = logging.getLogger(__name__)

#: Unread replies allowed on the marker's connection before they are read (in bulk).
SETTLE_EVERY = 512


class RedisMarker:
    """The marker at ``key`` (see the module docstring)."""

    def __init__(self, server: Server, key: str) -> None:
        self._server = server
        self._key = key
        self._conn: Any = None
        self._unread = 0
        self._lock = threading.Lock()

    def _send(self, *args: Any) -> None:
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._server.new_connection()
                if self._unread >= SETTLE_EVERY:
                    self._settle()
                self._conn.send_command(*args)
                self._unread += 1
            except Exception as exc:
                log.warning("%s: could not write the in-flight marker %s: %s", self._server.where, self._key, exc)
                self._drop()
                self._server.call("write the in-flight marker", lambda client: client.execute_command(*args))

    def _settle(self) -> None:
        while self._unread:
            self._unread -= 1
            self._conn.read_response()

    def _drop(self) -> None:
        self._unread = 0
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.disconnect()

    def read(self) -> str | None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._settle()
                except Exception:
                    self._drop()
        value = self._server.call("read the in-flight marker", lambda client: client.get(self._key))
        return None if value is None else value.decode()

    def set(self, msg_id: str) -> None:
        self._send("SET", self._key, msg_id)

    def clear(self) -> None:
        self._send("DEL", self._key)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._settle()
                except Exception:
                    pass
            self._drop()
