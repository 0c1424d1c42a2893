"""Pipelined deliveries: ``deliver_async`` without a round trip per message.

::

    caller (any thread)   queue (mailbox, messages, reply handler); return
    sender thread         take everything queued; per mailbox ONE deliver_batch.lua
                          with every message of it, in order; write all of them at
                          once on a connection of its own; read the replies; hand
                          each to its handler (a Future gets the id, MailboxFull, ...)
    lost connection       connect again (for ``RETRY_FOR`` seconds, with backoff),
                          SCRIPT LOAD, then the same batch again

While one batch waits for its replies the next one gathers, so a loop of
``deliver_async`` costs one script per mailbox per round trip, not one per message:
this is the group commit of this backend (the batch also shares the server's AOF
flush). A handler hears of a message only once the server acknowledged its XADD, so
a Future resolved with the id holds what a blocking ``deliver`` promises. Until then
the message is in this process only: a crash of this process before the Future is
resolved can lose it (on maildir it is already written when ``deliver_async``
returns). A batch written again after a lost connection may have been applied the
first time: its messages are then twice in the stream under their ids, and the actor
applies each once (delivery is at least once). Batches run in the order queued, so
the messages of one thread keep their order.

Backpressure: ``has_room`` uses, per mailbox, the last reply's figure of what waits
and its limit, plus what this process has queued or in flight there; the backend
queues only while that leaves room, and otherwise delivers synchronously (which
raises ``MailboxFull`` or blocks, exactly). The figure counts handed-out entries as
waiting, so it errs towards the synchronous path. A mailbox filled since by other
senders refuses what no longer fits (each queued delivery all or none, and every
later one to that mailbox in the same batch too), and those Futures get ``MailboxFull``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Sequence

from ...errors import StoreError
from ...threads import start_thread
from .connection import BACKOFF_CAP, BACKOFF_FIRST, Server
from .keys import GROUP

try:
    import redis.exceptions
except ImportError:  # the extra is missing: Server refuses to start first
    pass

log = logging.getLogger(__name__)

#: The script every batch runs.
SCRIPT = "deliver_batch"
#: Most messages (and bytes of them) in one script call.
BATCH_MESSAGES, BATCH_BYTES = 2_000, 8 << 20

#: Called with (status, waiting, limit) for its messages, or with the StoreError the
#: batch ended in. status: 0 delivered, -1 no such mailbox, -2 full.
OnReply = Callable[[Any], None]


class _Job:
    __slots__ = ("base", "keys", "wires", "on_reply")

    def __init__(self, base: str, keys: list[str], wires: Sequence[bytes], on_reply: OnReply) -> None:
        self.base = base
        self.keys = keys
        self.wires = wires
        self.on_reply = on_reply


class Sender:
    """The pipelined deliveries of one backend (see the module docstring)."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._queued = threading.Condition(self._lock)  # a job queued, or closing
        self._answered = threading.Condition(self._lock)  # a batch answered
        self._jobs: collections.deque[_Job] = collections.deque()
        self._outstanding = 0  # jobs queued or in flight
        self._counts: collections.Counter[str] = collections.Counter()  # messages queued or in flight, per mailbox
        self._room: dict[str, tuple[int, int]] = {}
        self._conn: Any = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- backpressure ----------------------------------------------------------------------

    def note(self, base: str, waiting: int, limit: int) -> None:
        """Remember a delivery reply's figure of what waits in ``base`` and its limit."""
        self._room[base] = (int(waiting), int(limit))

    def has_room(self, base: str, count: int) -> bool:
        """Whether the last figure, with what is queued or in flight, leaves room for ``count``."""
        known = self._room.get(base)
        if known is None:
            return False
        waiting, limit = known
        return waiting + self._counts[base] + count <= limit

    @property
    def busy(self) -> bool:
        """Whether deliveries are queued or in flight (a blocking one then goes after
        them), seen from a thread other than the sender's own (a reply handler that
        delivers must not wait for the thread it runs on)."""
        return self._outstanding > 0 and threading.current_thread() is not self._thread

    # -- the callers' side ----------------------------------------------------------------

    def send(self, base: str, keys: list[str], wires: Sequence[bytes], on_reply: OnReply) -> None:
        """Queue ``wires`` (all or none) for the mailbox ``base``; ``on_reply`` is called
        later on the sender thread.

        Raises:
            StoreError: the sender is closed.
        """
        with self._lock:
            if self._closed:
                raise StoreError(self._server.where, "cannot deliver: the backend is closed")
            self._jobs.append(_Job(base, keys, wires, on_reply))
            self._outstanding += 1
            self._counts[base] += len(wires)
            if self._thread is None:
                self._thread = start_thread(self._run, "redis-sender")
            self._queued.notify()

    def flush(self, timeout: float) -> bool:
        """Wait until every queued delivery is answered; returns whether all were."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._outstanding:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._answered.wait(left)
        return True

    def close(self) -> None:
        """Deliver what is queued (for up to ``RETRY_FOR`` seconds; what is left then
        ends in a StoreError), then close the connection."""
        with self._lock:
            self._closed = True
            self._queued.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._server.retry_for + 5.0)
        with self._lock:
            left, self._jobs = list(self._jobs), collections.deque()
        _answer(left, StoreError(self._server.where, "cannot deliver: the backend was closed first"))
        if self._conn is not None:
            self._conn.disconnect()
            self._conn = None

    # -- the sender thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._jobs and not self._closed:
                    self._queued.wait()
                if not self._jobs:
                    return
                batch = self._take_locked()
            groups = _group(batch)
            try:
                replies = self._write_and_read(groups)
            except StoreError as exc:
                replies = [exc] * len(groups)
            with self._lock:
                self._outstanding -= len(batch)
                for job in batch:
                    self._counts[job.base] -= len(job.wires)
                    if self._counts[job.base] <= 0:
                        del self._counts[job.base]
                self._answered.notify_all()
            for jobs, reply in zip(groups, replies):
                self._hand(jobs, reply)

    def _take_locked(self) -> list[_Job]:
        batch: list[_Job] = []
        messages = size = 0
        while self._jobs and (not batch or (messages < BATCH_MESSAGES and size < BATCH_BYTES)):
            job = self._jobs.popleft()
            batch.append(job)
            messages += len(job.wires)
            size += sum(len(w) for w in job.wires)
        return batch

    def _hand(self, jobs: list[_Job], reply: Any) -> None:
        if isinstance(reply, BaseException):
            _answer(jobs, reply)
            return
        status, delivered, waiting, limit = (int(x) for x in reply)
        if status != -1:
            self.note(jobs[0].base, waiting, limit)
        for number, job in enumerate(jobs):
            _call(job, (0, waiting, limit) if number < delivered else (status, waiting, limit))

    def _write_and_read(self, groups: list[list[_Job]]) -> list[Any]:
        """One command per group, written at once; their replies (an exception for an
        error reply). A lost connection is retried, the whole batch written again.

        Raises:
            StoreError: the server could not be reached for ``RETRY_FOR`` seconds.
        """
        script = self._server.script(SCRIPT)
        commands = [_pack("EVALSHA", script.sha, 4, *jobs[0].keys, GROUP,
                          *(part for job in jobs for part in (len(job.wires), *job.wires))) for jobs in groups]
        deadline = time.monotonic() + self._server.retry_for
        pause = BACKOFF_FIRST
        while True:
            try:
                fresh = self._conn is None
                if fresh:
                    self._conn = self._server.new_connection()
                    self._conn.connect()
                self._conn.send_packed_command(([_pack("SCRIPT", "LOAD", script.script)] if fresh else []) + commands,
                                               check_health=False)
                if fresh:
                    self._conn.read_response()
                replies = []
                for _ in commands:
                    try:
                        replies.append(self._conn.read_response())
                    except redis.exceptions.ResponseError as exc:
                        if str(exc).startswith("NOSCRIPT"):
                            raise redis.exceptions.ConnectionError(str(exc)) from None
                        replies.append(StoreError(self._server.where, f"cannot deliver: {exc}"))
                return replies
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
                if self._conn is not None:
                    self._conn.disconnect()
                    self._conn = None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreError(self._server.where, f"cannot deliver: the server did not answer for "
                                                         f"{self._server.retry_for:g} s ({type(exc).__name__}: "
                                                         f"{exc})") from None
                log.warning("%s: lost the delivery connection (%s); writing the batch again", self._server.where, exc)
                time.sleep(min(pause, left))
                pause = min(pause * 2, BACKOFF_CAP)


def _group(batch: list[_Job]) -> list[list[_Job]]:
    """The batch's jobs per mailbox, each in the order queued."""
    groups: dict[str, list[_Job]] = {}
    for job in batch:
        groups.setdefault(job.base, []).append(job)
    return list(groups.values())


def _answer(jobs: list[_Job], error: BaseException) -> None:
    for job in jobs:
        _call(job, error)


def _call(job: _Job, reply: Any) -> None:
    try:
        job.on_reply(reply)
    except Exception:  # noqa: BLE001 - a handler's bug must not stop the replies of others
        log.exception("a delivery reply handler failed")


def _pack(*args: Any) -> bytes:
    """RESP for one command (bytes, str and int arguments)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class DirectLine:
    """A connection of its own for blocking deliveries: one EVALSHA of deliver.lua,
    packed here, without the pool's checkout (about a third of a blocking delivery's
    cost in the client). One caller at a time: ``call`` returns None when another
    thread holds the line or it failed, and the caller goes through the pool instead
    (``Server.run``, which retries a lost connection; a command whose reply was lost
    may then be applied twice, as any retried delivery: one id, applied once)."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._conn: Any = None

    def call(self, keys: list[str], args: list[Any]) -> list[int] | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            for hook in self._server.before_call:
                hook()
            script = self._server.script("deliver")
            command = _pack("EVALSHA", script.sha, len(keys), *keys, *args)
            fresh = self._conn is None
            try:
                if fresh:
                    self._conn = self._server.new_connection()
                    self._conn.connect()
                    command = _pack("SCRIPT", "LOAD", script.script) + command
                self._conn.send_packed_command([command], check_health=False)
                if fresh:
                    self._conn.read_response()
                return [int(x) for x in self._conn.read_response()]
            except Exception as exc:  # noqa: BLE001 - any failure: the pool's path, with its retries
                log.debug("%s: the direct delivery line failed (%s); using the pool", self._server.where, exc)
                self.close_locked()
                return None
        finally:
            self._lock.release()

    def close_locked(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.disconnect()

    def close(self) -> None:
        with self._lock:
            self.close_locked()
