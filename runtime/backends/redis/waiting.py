"""An idle reader's wait: a blocking pop on the mailbox's bell, ended by a delivery
or by ``wake`` from any thread or a signal handler.

::

    sender:   deliver.lua  XADD ... ; RPUSH bell (when empty)
    reader:   drain.lua    DEL bell ; XREADGROUP ...
              wait()       BLPOP bell <timeout>   on a connection of its own, while
                           select() watches that socket AND a local wake-up pipe
    wake():   ring the pipe (no lock, no I/O to Redis: signal-safe); the waiter then
              pushes to its own bell from the pool to end its BLPOP and reads the reply

Why this and not ``XREADGROUP BLOCK``: a blocked XREADGROUP would hand out entries
(the reader must choose what to take: ``take`` picks replies only), and a wake from
another process cannot end it without a delivery. The bell is a hint, never data: a
spurious ring costs one empty drain, and a ring that came between the drain and the
wait is still in the list, so it is never lost.
"""

from __future__ import annotations

import math
import select
import threading
import time
from typing import Any

from ...errors import StoreError
from ...spinning import PolledWait
from ...wakeup import WakeUp
from .connection import Server

#: Seconds past a BLPOP's own timeout before the connection is given up as hung.
HUNG_MARGIN = 5.0
#: The longest single BLPOP (a wait longer than this blocks again).
LONGEST_BLOCK = 300.0


class Bell:
    """The reader's side of one mailbox's bell (one waiter at a time)."""

    def __init__(self, server: Server, key: str, waiting: PolledWait | None = None) -> None:
        self._server = server
        self._key = key
        self._conn: Any = None
        self._wakeup = WakeUp()
        self._lock = threading.Lock()  # one waiter
        #: Polling for the BLPOP's reply before sleeping (the mailbox's ``poll_before_sleeping``).
        self.waiting = waiting or PolledWait()

    def wake(self) -> None:
        """End a ``wait`` (from any thread or a signal handler)."""
        self._wakeup.ring()

    def wait(self, timeout: float | None) -> bool:
        """Block until the bell rings, ``wake`` is called or ``timeout`` passes;
        returns whether it ended early. A lost connection ends it early too (the
        caller's next drain finds out what happened)."""
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
            while True:
                left = LONGEST_BLOCK if deadline is None else min(LONGEST_BLOCK, deadline - time.monotonic())
                if left <= 0:
                    return False
                result = self._block_once(left)
                if result is not None:
                    return result

    def _block_once(self, seconds: float) -> bool | None:
        """One BLPOP: True rung or woken, None its time ran out."""
        try:
            conn = self._connection()
            # BLPOP takes seconds with millisecond precision; 0 would mean for ever.
            conn.send_command("BLPOP", self._key, max(0.001, math.ceil(seconds * 1000) / 1000))
        except Exception:  # the connection is lost: say so as an early end
            self._drop()
            return True
        sock = conn._sock
        fds = [sock, self._wakeup.fd]
        ready = self.waiting.wait(lambda: select.select(fds, [], [], 0)[0],
                                  lambda left: select.select(fds, [], [], (left or 0.0) + HUNG_MARGIN)[0], seconds)
        if self._wakeup.fd in ready:
            self._wakeup.clear()
            if sock not in ready:
                # Our own ring ends our BLPOP; its reply is read so the connection stays usable.
                try:
                    self._server.call("ring a bell", lambda client: client.rpush(self._key, "1"), retry=False)
                except StoreError:
                    self._drop()
                    return True
            self._read(conn)
            return True
        if not ready:
            self._drop()  # hung: a fresh connection next time
            return True
        return self._read(conn) or None

    def _read(self, conn: Any) -> bool:
        try:
            return conn.read_response() is not None
        except Exception:
            self._drop()
            return True

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._server.new_connection()
            self._conn.connect()
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.disconnect()

    def close(self) -> None:
        with self._lock:
            self._drop()
        self._wakeup.close()
