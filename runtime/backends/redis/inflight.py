"""The in-flight marker of a mailbox: a key naming the message its worker handles.

It is set and cleared around every message, so neither may cost a round trip: both
are written to a connection of their own without waiting for the reply. The replies
(``+OK`` / ``:1``, a few bytes each) are left in the socket and read in bulk once
``SETTLE_EVERY`` are unread, or before ``read`` and ``close``: reading each one
before the next command made every message wait for the server to be scheduled.

Each write wakes the server, which on a busy machine costs more than the message's
turn, so ``clear`` is owed rather than written: the next ``set`` overwrites the key
(one write per message instead of two), and any other command of this process
(``Server.before_call``: the batch's commit or ack, a drain), ``read`` and ``close``
write the DEL first. A process killed between a turn's end and the next message's
``set`` (the loop's admission of the next message, microseconds) leaves the
finished message named, and the next activation counts one attempt against it if
it is redelivered; the same window existed between a turn's end and its DEL. Once ``set`` returns, the command is in the kernel's
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
        self._owed = False  # a clear not yet written
        self._lock = threading.Lock()
        server.before_call.append(self._pay)

    def _write(self, *args: Any) -> None:
        """Write one command (the lock held)."""
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

    def _pay(self) -> None:
        if self._owed:
            with self._lock:
                if self._owed:
                    self._owed = False
                    self._write("DEL", self._key)

    def read(self) -> str | None:
        self._pay()
        with self._lock:
            if self._conn is not None:
                try:
                    self._settle()
                except Exception:
                    self._drop()
        value = self._server.call("read the in-flight marker", lambda client: client.get(self._key))
        return None if value is None else value.decode()

    def set(self, msg_id: str) -> None:
        with self._lock:
            self._owed = False  # overwritten: the DEL is not needed
            self._write("SET", self._key, msg_id)

    def clear(self) -> None:
        self._owed = True

    def close(self) -> None:
        self._pay()
        try:
            self._server.before_call.remove(self._pay)
        except ValueError:
            pass
        with self._lock:
            if self._conn is not None:
                try:
                    self._settle()
                except Exception:
                    pass
            self._drop()
