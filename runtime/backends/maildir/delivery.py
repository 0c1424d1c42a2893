"""The sending half of a maildir mailbox handle: append to this process's log, ring.

::

    deliver: reserve room (max_pending) -> append [len][crc][JSON] to log/<own>.seg
             (fdatasync at "machine", shared by threads appending at once) -> ring .bell

A message is *sent* once its record was appended (and at "machine" flushed): it
survives any process crash (a power loss too at "machine"). Messages delivered
through one handle are handled in the order delivered. Delivering the same message
again adds a second copy, which the receiver's AdmittedSet drops.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Sequence, TypeVar

from ...durability import MACHINE, Durability
from ...errors import InvalidSpec, MailboxFull
from ...ids import check_id
from ...messages import InboxMessage
from ...threads import reset_after_fork
from .doorbell import ANY, KNOWN_SEGMENT, Ringer
from .file_delivery import deliver_files, writes_files
from .inspection import waiting
from .layout import MailboxPaths
from .segment_format import MAX_MESSAGE
from .segment_writer import SegmentWriter, Unflushed

T = TypeVar("T")

#: How often a blocked deliver re-checks a full mailbox (no doorbell runs backwards).
_FULL_RECHECK = 0.05


def checked_wire(message: InboxMessage) -> bytes:
    """The message's wire bytes, if it may be delivered.

    Raises:
        InvalidSpec: the id is not a valid id (it names the file if the message dies),
            the message is longer than ``MAX_MESSAGE`` bytes encoded, or its body is
            not JSON (payloads are checked by the codec; this guards messages built
            below it).
    """
    check_id(message.id, "message id")
    try:
        data = message.to_wire()
    except (ValueError, RecursionError) as exc:  # built past the codec: circular, or too deep for JSON
        raise InvalidSpec("message", f"it cannot be encoded as JSON: {exc}") from None
    if len(data) > MAX_MESSAGE:
        raise InvalidSpec("message", f"{len(data):,} bytes encoded is more than the {MAX_MESSAGE:,} a message may have")
    return data


class Sender:
    """Appends to this handle's own segment log. Thread-safe: threads share flushes.

    ``max_pending`` is a soft limit: each handle counts the waiting messages once and
    then adds its own deliveries, re-counting only when its estimate reaches the
    limit, so several long-lived sender handles can together overshoot it (threads
    sharing one handle cannot).
    """

    def __init__(self, paths: MailboxPaths, durability: Durability, max_pending: int) -> None:
        self.paths = paths
        self.max_pending = max_pending
        self._writer = SegmentWriter(paths.log, durability)
        #: One Maildir file per message instead of the log (see ``file_delivery``).
        self.files = writes_files(paths)
        self._durability = durability
        self._ringer = Ringer(paths.bell)
        #: The segment this handle last rang for: a ring for it again is ``KNOWN_SEGMENT``.
        self._announced = ""
        # Upper bound of what waits, as far as this handle knows; only re-counted (a
        # scan) when it reaches max_pending. Messages reserved and not yet appended
        # are in it and in _in_flight (a scan cannot see them).
        self._pending_bound: int | None = None
        self._in_flight = 0
        self._lock = threading.Lock()
        reset_after_fork(self, _lock=threading.Lock)

    def deliver(self, messages: Sequence[InboxMessage], block_timeout: float | None) -> str:
        """Append in order with one write and one flush; returns the segment's path.

        At "machine" the reader is rung between the write and the flush: the records
        are readable from the write on (a reader woken by another ring could take them
        then anyway), so the reader handles them while the flush runs, and the caller
        still returns only once they are on disk.

        Raises:
            MailboxFull, InvalidSpec, StoreError: see ``Mailbox.deliver``; a write
                that fails after whole records were written delivered those.
        """
        data = [checked_wire(message) for message in messages]  # refuse bad ones before any is sent
        if not data:
            return self._writer.path  # nothing to write (an empty record would stop the reader)
        if self.files:
            return self._send(data, block_timeout,
                              lambda wires: deliver_files(self.paths, self._durability, messages, wires), None)
        if self._durability == MACHINE:
            return self._send(data, block_timeout, self._writer.write, _segment_of).flush()
        return self._send(data, block_timeout, self._writer.append, str)

    def deliver_unflushed(self, message: InboxMessage, block_timeout: float | None) -> Unflushed:
        """Append without the flush: readable and crash-safe at once, on disk once the
        returned ``Unflushed.flush()`` returned (call it once)."""
        return self._send([checked_wire(message)], block_timeout, self._writer.write, _segment_of)

    def _send(self, data: list[bytes], block_timeout: float | None, write: Callable[[list[bytes]], T],
              segment_of: Callable[[T], str] | None) -> T:
        """Reserve room, ``write`` (append, or write without the flush), ring
        (``segment_of``: the segment a write went to; None: not a segment)."""
        count = len(data)
        self._make_room(block_timeout, count)
        try:
            written = write(data)
        except BaseException:
            with self._lock:  # give the room back
                self._in_flight -= count
                if self._pending_bound is not None:
                    self._pending_bound -= count
            raise
        with self._lock:
            self._in_flight -= count  # now counted by a scan of the log
            segment = segment_of(written) if segment_of is not None else ""
            # Its file existed before the first ring for it, so the reader that took
            # that ring listed it: later rings for it can say so (see ``doorbell``).
            self._ringer.ring(KNOWN_SEGMENT if segment and segment == self._announced else ANY)
            self._announced = segment
        return written

    def _make_room(self, block_timeout: float | None, count: int) -> None:
        """Reserve room for ``count`` messages in this handle's estimate of what waits."""
        if count > self.max_pending:  # can never fit, however long we wait
            raise MailboxFull(self.paths.root, waiting(self.paths), self.max_pending)
        deadline = 0.0  # taken when the room is first found short: most sends never need it
        while True:
            with self._lock:
                if self._pending_bound is None or self._pending_bound + count > self.max_pending:
                    self._pending_bound = waiting(self.paths) + self._in_flight
                current = self._pending_bound
                if current + count <= self.max_pending:
                    self._pending_bound += count
                    self._in_flight += count
                    return
            now = time.monotonic()
            if not deadline:
                deadline = math.inf if block_timeout is None else now + block_timeout
            if deadline <= now:
                raise MailboxFull(self.paths.root, current, self.max_pending)
            time.sleep(min(_FULL_RECHECK, deadline - now))

    def open_segment(self) -> None:
        """Open the segment the next delivery appends to (see ``SegmentWriter.open_segment``);
        a mailbox written as files has none."""
        if not self.files:
            self._writer.open_segment()

    def ring(self) -> None:
        """Wake the reader, if one waits. Never blocks, never fails."""
        with self._lock:
            self._ringer.ring(ANY)

    def close(self) -> None:
        """Seal this handle's log (the reader deletes it once all is acked)."""
        with self._lock:
            self._ringer.close()
        self._writer.close()


def _segment_of(written: Unflushed) -> str:
    return written.path
