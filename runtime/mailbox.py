"""A durable mailbox: per-sender append-only logs, Maildir files, a doorbell (DESIGN §4).

Data flow::

    sender (any process)                         reader (the one actor process)
    --------------------                         ------------------------------
    deliver: append [len][crc][JSON] to its own     drain: read records past each
             log/<ns>-<pid>-<n>.seg   --ring .bell-->      segment's cursor; claim
                                                           new/ files into cur/
    (a hand-dropped Maildir file:                   handle, commit
     new/.tmp-X --rename--> new/<ns>-<id>.json)     ack: move the segment's cursor /
                                                         delete the file in cur/
                                                    unparsable -> corrupt/
                                                    poison     -> dead/ (envelope + reason)

Guarantees: a message is *sent* once its record was appended (and, at durability
"machine", flushed with ``fdatasync``); see :mod:`runtime.segments` for the log format
and why it is safe against a crash at any point. Messages of one sender are handled in
the order sent. Acked messages are never handed out again by this handle; a crash
between a commit and the acks redelivers them, and the reader's AdmittedSet drops the
repeats. Nothing but the verbs here touches ``log/``, ``new/`` and ``cur/``.

Why logs rather than a file per message: creating, renaming, opening and unlinking
files cost 7-30 µs each on this file system (and a create up to ~0.8 ms while others
churn inodes); a message file costs the sender four such steps and the reader four
more. An append is one ``write``, and the reader takes many records with one
``pread``. Maildir files in ``new/`` are still read, so messages dropped by hand or by
other programs (``new/.tmp-*`` then a rename) are delivered too.

The doorbell is a FIFO (``.bell``) rung by senders after the append, non-blocking: no
reader, or a full pipe, means a wake-up is not needed or already pending. Readers wait
on it with ``select`` and sweep now and then as a safety net, so an idle actor costs
no CPU. (inotify would do too, but it is capped at 128 instances per user here.)
"""

from __future__ import annotations

import collections
import errno
import fcntl
import hashlib
import heapq
import json
import logging
import os
import select
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, TypeVar

from .durable import Durability, MACHINE, atomic_write, read_bytes, temp_owner_alive, unlink_quietly
from .errors import InvalidSpec, MailboxFull, StoreError
from .ids import check_id, is_valid_id
from .messages import InboxMessage
from .segments import (
    MAX_MESSAGE,
    WRITER_CHECK_INTERVAL,
    Record,
    SegmentReader,
    SegmentWriter,
    Unflushed,
    is_segment,
    pending_records,
)
from .threads import reset_after_fork

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Default backpressure limit: messages waiting (delivered, not yet acked).
DEFAULT_MAX_PENDING = 50_000
#: Sub-directories holding Maildir files, by state.
MESSAGE_DIRS = ("new", "cur", "corrupt", "dead")
#: All sub-directories of a mailbox (``log/`` holds the senders' segments).
SUBDIRS = (*MESSAGE_DIRS, "log")
#: Name of the doorbell FIFO inside the mailbox directory.
BELL = ".bell"
#: Name of the in-flight marker (which message a worker is handling; see runtime.worker).
INFLIGHT = ".inflight"
#: Temp files older than this (seconds) are debris of a crashed sender.
STALE_TEMP_AGE = 600.0
#: Segments a reader keeps a descriptor open for; quieter ones are reopened when needed.
OPEN_SEGMENTS = 64
#: At "machine", acks after which the segments' cursors are flushed: with the
#: worker's batch (256) this bounds what a power loss can redeliver well inside the
#: AdmittedSet's 4,096 ids.
FLUSH_ACKS_EVERY = 1024
#: How often a blocked deliver re-checks a full mailbox (no doorbell runs backwards).
_FULL_RECHECK = 0.05
#: Bytes a pipe holds on Linux: one read of this size empties the doorbell.
_PIPE_CAPACITY = 65536


@dataclass(frozen=True)
class Delivered:
    """A message handed to the reader, and where it came from.

    ``path`` is the claimed file in ``cur/`` for a Maildir message, or the segment for
    a logged one (then ``position`` is its place there, see ``segments.Record``; else -1).
    """

    message: InboxMessage
    path: str
    position: int = -1

    @property
    def id(self) -> str:
        return self.message.id


@dataclass(frozen=True)
class DeadLetter:
    """A message moved to ``dead/``, with why."""

    message: InboxMessage
    reason: str
    attempts: int
    dead_at: float
    path: str


def drain_fd(fd: int) -> None:
    """Read a non-blocking pipe empty (doorbells and wake-up pipes carry no data)."""
    try:
        while len(os.read(fd, _PIPE_CAPACITY)) == _PIPE_CAPACITY:
            pass  # one read takes everything written; a full one means there may be more
    except BlockingIOError:
        pass


#: Handles holding a reader's claim; a forked child closes its copies, so the claim
#: ends with the process that made it.
_claims: "weakref.WeakSet[Mailbox]" = weakref.WeakSet()


def _drop_claims_in_child() -> None:
    for box in list(_claims):
        if box._reader_fd >= 0:
            os.close(box._reader_fd)
            box._reader_fd = -1


os.register_at_fork(after_in_child=_drop_claims_in_child)


def _checked_wire(message: InboxMessage) -> bytes:
    """The message's wire bytes, if it may be delivered (else ``InvalidSpec``)."""
    check_id(message.id, "message id")  # it names the file if the message dies
    data = message.to_wire()
    if len(data) > MAX_MESSAGE:
        raise InvalidSpec("message", f"{len(data):,} bytes encoded is more than the {MAX_MESSAGE:,} a message may have")
    return data


def _unlink_claimed(path: str) -> int:
    """Retire a Maildir file from ``cur/``; returns 1 if it was there."""
    try:
        os.unlink(path)
        return 1
    except FileNotFoundError:
        return 0


def _created(delivered: Delivered) -> str:
    # RFC 3339 UTC stamps of one fixed width sort as the times they name.
    return delivered.message.created_at


class Doorbell:
    """The reader side of a mailbox's FIFO: a file descriptor to ``select`` on."""

    def __init__(self, fifo_path: str) -> None:
        # O_RDWR keeps a writer open ourselves, so the FIFO never reports EOF (which
        # would make select() spin) when senders come and go.
        self.fd = os.open(fifo_path, os.O_RDWR | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))

    def fileno(self) -> int:
        return self.fd

    def clear(self) -> None:
        """Swallow pending rings. Call *before* listing, so a later ring is not lost."""
        drain_fd(self.fd)

    def wait(self, timeout: float | None) -> bool:
        """Block until rung or ``timeout`` passes. Returns whether it was rung."""
        readable, _, _ = select.select([self.fd], [], [], timeout)
        return bool(readable)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


#: A directory whose ctime is this recent (ns) may change again without its ctime
#: moving: the kernel stamps it from a clock that ticks every few milliseconds.
_CTIME_SETTLE_NS = 50_000_000


class _Listing:
    """A directory's entries, listed again only when its ctime says they may have
    changed (every create, rename and unlink in it moves the ctime). A ``stat`` costs
    a few microseconds; a listing ~0.5 us per entry it ever held (ext4 directories do
    not shrink), and the reader looks at two directories every time it drains."""

    __slots__ = ("path", "_ctime", "_names")

    def __init__(self, path: str) -> None:
        self.path = path
        self._ctime: int | None = None  # of the directory when _names was listed, if settled
        self._names: list[str] = []

    def names(self) -> list[str]:
        """The entries (do not modify the list).

        Raises:
            FileNotFoundError: the directory is gone.
        """
        ctime = os.stat(self.path).st_ctime_ns
        if ctime == self._ctime:
            return self._names
        names = os.listdir(self.path)
        # A change made in the same clock tick as the last one would leave the ctime
        # as it is: trust this listing next time only if that tick is long past.
        self._ctime = ctime if time.time_ns() - ctime > _CTIME_SETTLE_NS else None
        self._names = names
        return names


class Mailbox:
    """One actor's durable mailbox under ``root``.

    A handle is a sender (``deliver``), the reader (``drain``, ``ack_delivered``), or
    an observer (``counts``, ``peek``). One process reads a mailbox at a time: a reader
    that may run alongside others (an actor's worker) says so with ``claim_reader``.

    Args:
        root: the mailbox directory (``.../mailbox``); created with its sub-directories
            and doorbell when ``create`` is true.
        durability: "machine" flushes each delivery to disk; "process" does not.
        max_pending: ``deliver`` refuses with ``MailboxFull`` above this many waiting.
        create: make the directories if missing.

    Raises:
        StoreError: ``create`` is false and the mailbox does not exist.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        durability: Durability = MACHINE,
        max_pending: int = DEFAULT_MAX_PENDING,
        create: bool = True,
    ) -> None:
        self.root = os.fspath(root)
        self.durability = durability
        self.max_pending = max_pending
        self.new_dir = os.path.join(self.root, "new")
        self.cur_dir = os.path.join(self.root, "cur")
        self.corrupt_dir = os.path.join(self.root, "corrupt")
        self.dead_dir = os.path.join(self.root, "dead")
        self.log_dir = os.path.join(self.root, "log")
        self.bell_path = os.path.join(self.root, BELL)
        if create and not (os.path.isdir(self.log_dir) and os.path.exists(self.bell_path)):
            for sub in SUBDIRS:  # log/ last: its presence means the rest exists
                os.makedirs(os.path.join(self.root, sub), exist_ok=True)
            try:
                os.mkfifo(self.bell_path, 0o600)
            except FileExistsError:
                pass
        elif not os.path.isdir(self.new_dir):
            raise StoreError(self.root, "no mailbox here")
        self._bell_fd = -1
        self._writer = SegmentWriter(self.log_dir, durability)
        # Upper bound of what waits, as far as this handle knows; only re-counted
        # (a scan) when it reaches max_pending. Messages reserved and not yet
        # appended are in it and in _in_flight (a scan cannot see them).
        self._pending_bound: int | None = None
        self._in_flight = 0
        #: Whether the last ``drain`` stopped at its limit with messages left.
        self.more_waiting = False
        # Reader side: segments by path (oldest first), messages read but not handed
        # out yet, and acks whose cursors may not be on disk yet.
        self._segments: dict[str, SegmentReader] = {}
        self._queue: collections.deque[Delivered] = collections.deque()
        self._new_listing = _Listing(self.new_dir)
        self._log_listing = _Listing(self.log_dir)
        # _send_lock: the bell and the estimate above, for threads sending at once.
        reset_after_fork(self, _send_lock=threading.Lock, _read_lock=threading.Lock)
        self._reader_fd = -1  # see claim_reader
        self._unflushed_acks = 0

    # -- sending ----------------------------------------------------------------------

    def deliver(self, message: InboxMessage, *, block_timeout: float | None = 0.0) -> str:
        """Append ``message`` to this handle's log; returns the segment's path.

        The message is sent, and survives a crash of any process (and at durability
        "machine" a power loss), once this returns. Messages delivered through one
        handle are handled in the order delivered. Delivering the same message again
        adds a second copy, which the receiver's AdmittedSet drops.

        ``max_pending`` is a soft limit: each handle counts the waiting messages once
        and then adds its own deliveries, re-counting only when its estimate reaches
        the limit, so several long-lived sender handles can together overshoot it
        (threads sharing one handle cannot).

        Args:
            message: what to send.
            block_timeout: when the mailbox is full, wait up to this many seconds for
                room (``None`` = forever; 0 = refuse at once).

        Raises:
            MailboxFull: ``max_pending`` messages are waiting and no room came in time.
            StoreError: the write failed (the message was not delivered).
            InvalidSpec: the message id is not a valid id (see ``runtime.ids``), or
                the message is longer than ``segments.MAX_MESSAGE`` bytes encoded.
        """
        return self._send([_checked_wire(message)], block_timeout, self._writer.append)

    def deliver_many(self, messages: list[InboxMessage], *,
                     block_timeout: float | None = 0.0) -> list[str]:
        """Deliver several messages, in order, with one write and one flush (group commit).

        Each message has :meth:`deliver`'s guarantee once this returns. At durability
        "machine" the batch is flushed by one ``fdatasync`` instead of one per message.

        Raises:
            MailboxFull: the batch does not fit under ``max_pending`` in time (nothing
                was sent). StoreError: the write failed; whole records written before
                the failure are delivered, the rest are not.
        """
        if not messages:
            return []
        data = [_checked_wire(message) for message in messages]  # refuse bad ones before any is sent
        return [self._send(data, block_timeout, self._writer.append)] * len(messages)

    def deliver_unflushed(self, message: InboxMessage, *, block_timeout: float | None = 0.0) -> Unflushed:
        """Like :meth:`deliver`, but return once the message is written, before it is
        flushed: it is readable and survives any process crash, and at durability
        "machine" it is on disk once the returned ``Unflushed.flush()`` returned. Call
        that once (the segment is kept open until then, or until the result is
        dropped unflushed). Deliveries made meanwhile,
        flushed or not, share the flush (group commit).

        Raises:
            MailboxFull, StoreError, InvalidSpec: as for :meth:`deliver`.
        """
        return self._send([_checked_wire(message)], block_timeout, self._writer.write)

    def _send(self, data: list[bytes], block_timeout: float | None, write: Callable[[list[bytes]], T]) -> T:
        """Reserve room, ``write`` (append, or write without the flush), ring."""
        count = len(data)
        self._make_room(block_timeout, count)
        try:
            written = write(data)
        except BaseException:
            with self._send_lock:  # give the room back
                self._in_flight -= count
                if self._pending_bound is not None:
                    self._pending_bound -= count
            raise
        with self._send_lock:
            self._in_flight -= count  # now counted by a scan of the log
            self._ring()
        return written

    def _make_room(self, block_timeout: float | None, count: int) -> None:
        """Reserve room for ``count`` messages in this handle's estimate of what waits.

        The estimate starts from a scan, adds what this handle sends (and what its
        threads are sending), and is counted again when it reaches the limit.
        """
        if count > self.max_pending:  # can never fit, however long we wait
            raise MailboxFull(self.root, self._waiting(), self.max_pending)
        deadline = None if block_timeout is None else time.monotonic() + block_timeout
        while True:
            with self._send_lock:
                if self._pending_bound is None or self._pending_bound + count > self.max_pending:
                    self._pending_bound = self._waiting() + self._in_flight
                waiting = self._pending_bound
                if waiting + count <= self.max_pending:
                    self._pending_bound += count
                    self._in_flight += count
                    return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise MailboxFull(self.root, waiting, self.max_pending)
            time.sleep(_FULL_RECHECK if remaining is None else min(_FULL_RECHECK, remaining))

    def _waiting(self) -> int:
        """Messages delivered and not yet claimed by the reader (a scan: for
        backpressure only)."""
        return self._count(self.new_dir) + sum(
            sum(1 for r in records if r.position >= claimed) for _, records, claimed in self._segment_backlogs())

    def ring(self) -> None:
        """Wake the reader, if one waits. Never blocks, never fails."""
        with self._send_lock:
            self._ring()

    def _ring(self) -> None:
        for _ in range(2):
            if self._bell_fd < 0:
                try:
                    self._bell_fd = os.open(
                        self.bell_path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
                    )
                except OSError:  # ENXIO: no reader; ENOENT: no bell (foreign mailbox)
                    return
            try:
                os.write(self._bell_fd, b"\0")
                return
            except BlockingIOError:  # pipe full: a wake-up is already pending
                return
            except OSError as exc:  # EPIPE: the reader went away; reopen once
                self._close_bell()
                if exc.errno != errno.EPIPE:
                    return

    def _close_bell(self) -> None:  # hold _send_lock
        if self._bell_fd >= 0:
            os.close(self._bell_fd)
            self._bell_fd = -1

    def release_reader(self) -> None:
        """Give up the claim of ``claim_reader`` (``close`` does too)."""
        fd, self._reader_fd = self._reader_fd, -1
        if fd >= 0:
            os.close(fd)
        _claims.discard(self)

    def close(self) -> None:
        """Seal this handle's log, give up a reader's claim, release its descriptors.

        Messages read but not acked stay pending for the next reader.
        """
        with self._send_lock:
            self._close_bell()
        self._writer.close()
        self.release_reader()
        with self._read_lock:
            for reader in self._segments.values():
                reader.close_fd()
            self._segments.clear()
            self._queue.clear()

    # -- reading (the single reader) -----------------------------------------------------

    def claim_reader(self, timeout: float = 0.0) -> None:
        """Become this mailbox's only reader, until ``close`` or the process ends.

        Two readers would both handle every logged message. The claim is an
        exclusive ``flock`` on the mailbox directory: nothing is created, the kernel
        drops it when the process dies however it dies, and forked children let go of
        their copy. A lock gives no notice when it is released, so waiting for one
        looks again at growing intervals (5 ms up to 100 ms) until ``timeout``.

        Raises:
            StoreError: another live process held the claim for ``timeout`` seconds.
        """
        if self._reader_fd >= 0:
            return
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        deadline, pause = time.monotonic() + timeout, 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                remaining = deadline - time.monotonic()
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK) and remaining > 0:
                    time.sleep(min(pause, remaining))
                    pause = min(pause * 2, 0.1)
                    continue
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise StoreError(self.root, "another process is reading this mailbox") from None
                raise StoreError(self.root, f"cannot claim the mailbox: {exc.strerror or exc}") from exc
        self._reader_fd = fd
        _claims.add(self)

    def doorbell(self) -> Doorbell:
        """Open the reader side of the doorbell (the reader process owns it)."""
        return Doorbell(self.bell_path)

    def drain(self, limit: int | None = None) -> list[Delivered]:
        """Hand out waiting messages (at most ``limit``), each sender's in order.

        Maildir files are claimed by renaming them ``new/ -> cur/`` (a file another
        reader claimed first is skipped); an unparsable message is moved to
        ``corrupt/`` and not returned. Handed-out messages stay pending until acked,
        so a crash loses none of them. Afterwards ``more_waiting`` says whether
        ``limit`` left messages behind.
        """
        with self._read_lock:
            cut = self._fill(limit)
            count = len(self._queue) if limit is None else min(limit, len(self._queue))
            batch = [self._queue.popleft() for _ in range(count)]
            handed = set()
            for delivered in batch:
                if delivered.position >= 0:
                    self._segments[delivered.path].unclaimed.popleft()  # the queue keeps their order
                    handed.add(delivered.path)
            for path in handed:  # the header tells other processes these are taken
                self._settle(path, self._segments[path])
            self.more_waiting = cut or bool(self._queue)
        with self._send_lock:
            if self._pending_bound is not None:
                self._pending_bound = max(0, self._pending_bound - len(batch))
        return batch

    def take(self, kinds: Iterable[str]) -> list[Delivered]:
        """Hand out every waiting message of these kinds now, leaving the rest queued.

        For a handler that waits for a reply while other messages wait their turn.
        """
        wanted = set(kinds)
        with self._read_lock:
            self._fill(None)
            taken = [d for d in self._queue if d.message.kind in wanted]
            if taken:
                self._queue = collections.deque(d for d in self._queue if d.message.kind not in wanted)
                for delivered in taken:
                    if delivered.position >= 0:
                        self._segments[delivered.path].unclaimed.remove(delivered.position)
                for path in {d.path for d in taken if d.position >= 0}:
                    self._settle(path, self._segments[path])
        return taken

    def give_back(self, handed: list[Delivered]) -> None:
        """Put handed-out, unacked messages back at the front of the queue, in order.

        For a reader that took more than it will handle now (a long recovered
        backlog): the next ``drain`` hands them out again, ``take`` finds replies
        among them, and other processes count them as waiting again.
        """
        with self._read_lock:
            self._queue.extendleft(reversed(handed))
            by_segment: dict[str, list[int]] = {}
            for delivered in handed:
                if delivered.position >= 0:
                    by_segment.setdefault(delivered.path, []).append(delivered.position)
            for path, positions in by_segment.items():
                reader = self._segments[path]
                reader.unclaimed.extendleft(reversed(positions))  # handed out before the rest
                self._settle(path, reader)
            if handed:
                self.more_waiting = True

    def recover(self) -> list[Delivered]:
        """Everything delivered and not acked, in order: what a crashed activation left
        claimed, and what waits. For the first read of an activation.

        Also removes temp files that crashed senders left behind.
        """
        self._sweep_temps()
        recovered = []
        for name in sorted(n for n in os.listdir(self.cur_dir) if n[0] != "."):
            delivered = self._load(os.path.join(self.cur_dir, name))
            if delivered is not None:
                recovered.append(delivered)
        return recovered + self.drain()

    def _fill(self, limit: int | None) -> bool:
        """Queue what waits: claimed Maildir files and new records of every segment,
        merged by creation time (each sender's messages stay in the order sent, and a
        message sent before another sender's is handled first).

        Returns whether ``limit`` may have left messages unread.
        """
        room = None if limit is None else limit - len(self._queue)
        if room is not None and room <= 0:
            return True
        names = sorted(n for n in self._new_listing.names() if n[0] != ".")
        cut = room is not None and len(names) > room
        files = []
        for name in names[:room] if cut else names:
            path = os.path.join(self.cur_dir, name)
            try:
                os.rename(os.path.join(self.new_dir, name), path)
            except FileNotFoundError:
                continue
            delivered = self._load(path)
            if delivered is not None:
                files.append(delivered)
        sources = [files] if files else []
        self._open_new_segments()
        now = time.monotonic()
        held: set[str] = set()  # processes whose older segment still has unread messages
        for path, reader in list(self._segments.items()):
            if reader.writer in held:
                continue  # its newer segment waits until the older one is read
            room = None if limit is None else limit - len(self._queue) - sum(map(len, sources))
            if room is not None and room <= 0:
                cut = True
                break
            read, stopped = self._read_segment(path, reader, room, now)
            if stopped:
                cut = True
                held.add(reader.writer)
            if read:
                sources.append(read)
        if len(sources) == 1:
            self._queue.extend(sources[0])
        elif sources:
            self._queue.extend(heapq.merge(*sources, key=_created))
        return cut

    def _open_new_segments(self) -> None:
        try:
            listed = self._log_listing.names()
        except FileNotFoundError:  # a mailbox made before logs existed
            return
        for name in sorted(listed):  # oldest first: a process's segments are read in order
            path = os.path.join(self.log_dir, name)
            if path in self._segments or not is_segment(name):
                continue
            try:
                reader = SegmentReader.open(path)
            except StoreError as exc:
                self._quarantine(path, exc)  # its header was written before it appeared here
                continue
            if reader is not None:
                reader.close_fd()  # opened again when there is something to read
                self._segments[path] = reader

    def _read_segment(self, path: str, reader: SegmentReader, room: int | None,
                      now: float) -> tuple[list[Delivered], bool]:
        """Read up to ``room`` new messages of one segment; quarantine what is torn.

        Returns the messages and whether ``room`` stopped the read.
        """
        if reader.fd < 0 and not reader.outstanding and not reader.has_unread() \
                and now < reader.next_idle_check and not reader.vanished:
            return [], False  # quiet: not even opened, until its writer is due a check
        records, torn = reader.read(room, now)
        if not records and not torn and not reader.ended and not reader.outstanding \
                and reader.writer_gone(now):
            # Quiet, and its writer exited without sealing it: read what it wrote
            # last (judging a partial tail torn now), and then it has ended.
            records, torn = reader.read(room, now)
            reader.ended = reader.ended or not records
        stopped = room is not None and len(records) >= room
        read = []
        name = os.path.basename(path)
        for record in records:
            try:
                message = InboxMessage.from_wire(record.payload)
            except (ValueError, UnicodeDecodeError) as exc:
                self._quarantine_bytes(name, f"{record.offset}.{record.index}", record.payload, exc)
                continue
            reader.outstanding[record.position] = message.id
            reader.unclaimed.append(record.position)
            read.append(Delivered(message, path, record.position))
        if torn:
            self._quarantine_bytes(name, reader.read_pos - len(torn), torn, "a torn record")
        self._settle(path, reader)
        if not read and not reader.outstanding:
            reader.close_fd()  # a quiet segment holds no descriptor
            reader.next_idle_check = now + WRITER_CHECK_INTERVAL
        self._limit_descriptors()
        return read, stopped

    def _settle(self, path: str, reader: SegmentReader) -> None:
        """Write a segment's cursor; delete the segment once it has ended and all is acked."""
        if reader.finished:
            reader.settle()
            if self.durability == MACHINE and reader.unflushed:
                # Should the delete not reach the disk, the segment must come back
                # with a cursor past everything in it.
                reader.flush()
            unlink_quietly(path)
            reader.close_fd()
            del self._segments[path]
        else:
            reader.settle()

    def _limit_descriptors(self) -> None:
        """Close the least recently read segments past ``OPEN_SEGMENTS`` descriptors."""
        if len(self._segments) <= OPEN_SEGMENTS:
            return
        opened = [(reader.last_read, reader) for reader in self._segments.values() if reader.fd >= 0]
        if len(opened) > OPEN_SEGMENTS:
            opened.sort(key=lambda pair: pair[0])
            for _, reader in opened[:len(opened) - OPEN_SEGMENTS]:
                reader.close_fd()

    def _load(self, path: str) -> Delivered | None:
        try:
            message = InboxMessage.from_wire(read_bytes(path))
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            self._quarantine(path, exc)
            return None
        return Delivered(message, path)

    def _quarantine(self, path: str, exc: BaseException) -> None:
        log.warning("mailbox %s: moving unparsable %s to corrupt/: %s", self.root, os.path.basename(path), exc)
        try:
            os.rename(path, os.path.join(self.corrupt_dir, os.path.basename(path)))
        except OSError:
            pass

    def _quarantine_bytes(self, segment: str, offset: object, data: bytes, why: object) -> None:
        name = f"{segment}@{offset}"
        log.warning("mailbox %s: moving %s (%d bytes) to corrupt/: %s", self.root, name, len(data), why)
        try:
            atomic_write(os.path.join(self.corrupt_dir, name), data, self.durability)
        except StoreError as exc:
            log.error("mailbox %s: could not keep %s: %s", self.root, name, exc)

    def _sweep_temps(self) -> None:
        cutoff = time.time() - STALE_TEMP_AGE
        for sub in (self.new_dir, self.dead_dir, self.log_dir):
            try:
                listed = os.listdir(sub)
            except FileNotFoundError:
                continue
            for name in listed:
                if name.startswith(".tmp-"):
                    path = os.path.join(sub, name)
                    if temp_owner_alive(name):
                        continue
                    try:
                        if sub == self.log_dir or os.stat(path).st_mtime < cutoff:
                            os.unlink(path)  # a segment's temp holds no message yet
                    except OSError:
                        pass

    def ack_delivered(self, delivered: Delivered | str) -> bool:
        """Retire one handed-out message. Idempotent: returns whether it retired one.

        Once this returns the message is not handed out again by this mailbox. A
        crash (or at "machine" a power loss) before a logged message's cursor reaches
        the disk redelivers it, and the reader's AdmittedSet drops it.
        """
        return self.ack_all([delivered]) == 1

    def ack_all(self, batch: Iterable[Delivered | str]) -> int:
        """Retire many handed-out messages, writing each segment's cursor once.

        Returns how many were retired (see :meth:`ack_delivered`). At durability
        "machine" the cursors are flushed once ``FLUSH_ACKS_EVERY`` acks since the
        last flush could otherwise be redelivered after a power loss.
        """
        touched: set[str] = set()
        with self._read_lock:
            retired = 0
            for delivered in batch:
                if isinstance(delivered, str) or delivered.position < 0:
                    retired += _unlink_claimed(delivered if isinstance(delivered, str) else delivered.path)
                    continue
                reader = self._segments.get(delivered.path)
                if reader is not None and reader.ack(delivered.position):
                    retired += 1
                    touched.add(delivered.path)
            self._settle_all(touched, retired)
        return retired

    def ack(self, msg_id: str) -> bool:
        """Retire every handed-out message with this id; returns whether any was."""
        suffix = f"-{msg_id}.json"
        touched: set[str] = set()
        with self._read_lock:
            retired = sum(_unlink_claimed(os.path.join(self.cur_dir, n))
                          for n in os.listdir(self.cur_dir) if n.endswith(suffix))
            for path, reader in self._segments.items():
                queued = set(reader.unclaimed)  # read but not handed out: not ackable
                matching = [position for position, ident in reader.outstanding.items()
                            if ident == msg_id and position not in queued]
                for position in matching:
                    reader.ack(position)
                    touched.add(path)
                retired += len(matching)
            self._settle_all(touched, retired)
        return retired > 0

    def _settle_all(self, paths: Iterable[str], acked: int) -> None:
        for path in paths:
            self._settle(path, self._segments[path])
        self._unflushed_acks += acked
        if self.durability == MACHINE and self._unflushed_acks >= FLUSH_ACKS_EVERY:
            for reader in self._segments.values():
                if reader.unflushed:
                    reader.flush()
            self._unflushed_acks = 0

    # -- dead letters --------------------------------------------------------------------

    def bury(self, delivered: Delivered, reason: str, attempts: int) -> str:
        """Move a claimed message to ``dead/`` with a reason record; returns its path.

        The envelope is written durably before the claim is removed, so a crash in
        between leaves the message in both places, never in neither.
        """
        if delivered.position < 0:
            name = os.path.basename(delivered.path)
        elif is_valid_id(delivered.message.id):
            name = delivered.message.file_name()
        else:  # written by another program: its id must not become a path
            name = f"{hashlib.sha1(delivered.message.id.encode()).hexdigest()}.json"
        dead_path = os.path.join(self.dead_dir, name)
        envelope = {
            "message": json.loads(delivered.message.to_wire()),
            "reason": reason,
            "attempts": attempts,
            "dead_at": time.time(),
        }
        atomic_write(dead_path, json.dumps(envelope, indent=1).encode(), self.durability)
        self.ack_delivered(delivered)
        return dead_path

    def dead_letters(self) -> list[DeadLetter]:
        """The messages in ``dead/``, oldest first. Unreadable envelopes are skipped."""
        letters = []
        for name in sorted(n for n in os.listdir(self.dead_dir) if n[0] != "."):
            path = os.path.join(self.dead_dir, name)
            try:
                doc = json.loads(read_bytes(path))
                message = InboxMessage.from_wire(json.dumps(doc["message"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("mailbox %s: unreadable dead letter %s: %s", self.root, name, exc)
                continue
            letters.append(
                DeadLetter(message, str(doc.get("reason", "")), int(doc.get("attempts", 0)),
                           float(doc.get("dead_at", 0.0)), path)
            )
        return letters

    def requeue(self, msg_id: str) -> bool:
        """Deliver the dead letter ``msg_id`` again (same id, at the back of the queue).

        Returns whether a dead letter of that id existed.
        """
        for letter in self.dead_letters():
            if letter.message.id == msg_id:
                self.deliver(letter.message, block_timeout=None)
                unlink_quietly(letter.path)
                return True
        return False

    # -- inspection ---------------------------------------------------------------------

    @staticmethod
    def _count(directory: str) -> int:
        return sum(1 for n in os.listdir(directory) if n[0] != ".")

    def _segment_backlogs(self) -> Iterator[tuple[str, list[Record], int]]:
        """Each segment's records from its cursor on disk (acked by nobody yet), and
        where its reader has claimed up to."""
        try:
            listed = sorted(n for n in os.listdir(self.log_dir) if is_segment(n))
        except FileNotFoundError:
            return
        for name in listed:
            found = pending_records(os.path.join(self.log_dir, name))
            if found is not None and found[0]:
                yield name, *found

    def _logged(self) -> Iterator[tuple[str, Record]]:
        """Logged messages not yet acked, as ("new" | "cur", record).

        "cur" is a message handed out and not acked: by this handle, as it knows, or
        by the reader, as far as its segment's header says.
        """
        with self._read_lock:
            views = {os.path.basename(path): (reader.read_pos, dict(reader.outstanding), set(reader.unclaimed))
                     for path, reader in self._segments.items()}
        for name, records, claimed in self._segment_backlogs():
            if name not in views:
                for record in records:
                    yield ("cur" if record.position < claimed else "new"), record
                continue
            read_pos, outstanding, queued = views[name]
            for record in records:
                if record.position in outstanding:
                    yield ("new" if record.position in queued else "cur"), record
                elif record.offset >= read_pos:
                    yield "new", record
                # else: acked by this handle, its cursor held back by an earlier one

    def counts(self) -> dict[str, int]:
        """Messages per state: ``new`` (waiting), ``cur`` (handed out, not acked),
        ``corrupt`` and ``dead``."""
        result = {sub: self._count(os.path.join(self.root, sub)) for sub in MESSAGE_DIRS}
        for state, _ in self._logged():
            result[state] += 1
        return result

    def pending_count(self) -> int:
        """Messages not yet acked: waiting, plus handed out."""
        counts = self.counts()
        return counts["new"] + counts["cur"]

    def has_waiting(self) -> bool:
        """Whether any message waits to be handled (or was left unacked by a reader)."""
        for directory in (self.new_dir, self.cur_dir):
            with os.scandir(directory) as entries:
                if any(e.name[0] != "." for e in entries):
                    return True
        return any(True for _ in self._segment_backlogs())

    def has_new(self) -> bool:
        """For the reader: whether anything arrived that ``drain`` has not handed out
        (cheaper than counting)."""
        with self._read_lock:
            if self._queue or any(reader.has_unread() for reader in self._segments.values()):
                return True
        with os.scandir(self.new_dir) as entries:
            if any(e.name[0] != "." for e in entries):
                return True
        try:
            return any(is_segment(n) and os.path.join(self.log_dir, n) not in self._segments
                       for n in os.listdir(self.log_dir))
        except FileNotFoundError:
            return False

    def is_empty(self) -> bool:
        """Whether nothing is waiting or handed out."""
        return self.pending_count() == 0

    def peek(self, sub: str = "new") -> Iterator[InboxMessage]:
        """Read, without handing out, the parsable messages that are waiting ("new") or
        handed out and not acked ("cur"): Maildir files first, then each log in order."""
        if sub not in ("new", "cur"):
            raise ValueError(f"peek reads 'new' or 'cur', not {sub!r}")
        directory = os.path.join(self.root, sub)
        for name in sorted(n for n in os.listdir(directory) if n[0] != "."):
            try:
                yield InboxMessage.from_wire(read_bytes(os.path.join(directory, name)))
            except (OSError, ValueError, UnicodeDecodeError):
                continue
        for state, record in self._logged():
            if state == sub:
                try:
                    yield InboxMessage.from_wire(record.payload)
                except (ValueError, UnicodeDecodeError):
                    continue
