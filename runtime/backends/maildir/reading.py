"""The one reader of a maildir mailbox: claim, recover, drain, take, give back, ack.

::

    claim: exclusive flock on the mailbox directory (the kernel drops it with the process)
    fill:  new/<name> --rename--> cur/<name>  (Maildir files dropped by other programs)
           log/*.seg: records past each segment's cursor      (the senders' logs)
           merged by creation time into the queue; unparsable input -> corrupt/
    drain: hand out the queue's head;  ack: move a segment's cursor / unlink cur/<name>

An acked message is never handed out again by this reader. A crash between the
commit of a batch and its acks redelivers the batch to the next reader, whose
AdmittedSet drops the repeats. Nothing but this module touches ``new/``, ``cur/``
and the cursors in ``log/``.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import heapq
import logging
import math
import os
import threading
import time
import weakref
from typing import Iterable, NamedTuple, Sequence

from ...durability import MACHINE, Durability
from ...errors import StoreError
from ...messages import InboxMessage
from ...stamps import order_key
from ...threads import reset_after_fork
from ..base import Delivered
from .durable import read_bytes
from .layout import MailboxPaths
from .quarantine import quarantine_file, sweep_temps
from .segment_format import WRITER_CHECK_INTERVAL, is_segment
from .segment_reader import SegmentReader
from .segment_repair import Damage, keep_copy, keep_damage, retire

log = logging.getLogger(__name__)

#: Segments a reader keeps a descriptor open for; quieter ones are reopened when needed.
OPEN_SEGMENTS = 64
#: At "machine", acks after which the segments' cursors are flushed: with the
#: worker's batch (256) this bounds what a power loss can redeliver well inside the
#: AdmittedSet's 4,096 ids.
FLUSH_ACKS_EVERY = 1024
#: Seconds a reader woken only by rings for segments it knows (see ``doorbell``) may
#: go without listing ``new/`` and ``log/``: files other programs drop without a ring
#: wait no longer than this under a steady stream of such rings.
LIST_AT_LEAST_EVERY = 1.0
#: A directory whose ctime is this recent (ns) may change again without its ctime
#: moving: the kernel stamps it from a clock that ticks every few milliseconds.
_CTIME_SETTLE_NS = 50_000_000


class Receipt(NamedTuple):
    """Where a handed-out message is: a segment and the message's position in it, or
    (position -1) its Maildir file in ``cur/``."""

    path: str
    position: int = -1


#: Readers holding a claim; a forked child closes its copies, so the claim ends with
#: the process that made it.
_claims: "weakref.WeakSet[Reader]" = weakref.WeakSet()


def _drop_claims_in_child() -> None:
    for reader in list(_claims):
        if reader._claim_fd >= 0:
            os.close(reader._claim_fd)
            reader._claim_fd = -1


os.register_at_fork(after_in_child=_drop_claims_in_child)


def _created(delivered: Delivered) -> str:
    # Compared as times: stamps of other writers (the crate's) differ in width and zone.
    return order_key(delivered.message.created_at)


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


class SegmentView(NamedTuple):
    """What the reader knows of one segment, for inspection by the same process."""

    read_pos: int
    outstanding: dict[int, str]
    queued: set[int]


class Reader:
    """The reading half of a mailbox handle (thread-safe; one per process at a time
    once ``claim`` is used)."""

    def __init__(self, paths: MailboxPaths, durability: Durability) -> None:
        self.paths = paths
        self.durability = durability
        #: Whether the last ``drain`` stopped at its limit with messages left.
        self.more_waiting = False
        # Segments by path (oldest first), messages read but not handed out yet, and
        # acks whose cursors may not be on disk yet.
        self._segments: dict[str, SegmentReader] = {}
        self._queue: collections.deque[Delivered] = collections.deque()
        self._new_listing = _Listing(paths.new)
        self._log_listing = _Listing(paths.log)
        self._claim_fd = -1
        self._unflushed_acks = 0
        self._listed_at = -math.inf  # monotonic time new/ and log/ were last listed
        self._lock = threading.Lock()
        reset_after_fork(self, _lock=threading.Lock)

    # -- the claim --------------------------------------------------------------------

    def claim(self, timeout: float = 0.0) -> None:
        """Become the mailbox's only reader, until ``release`` or the process ends.

        Two readers would both handle every logged message. The claim is an
        exclusive ``flock`` on the mailbox directory: nothing is created, the kernel
        drops it when the process dies however it dies, and forked children let go of
        their copy. A lock gives no notice when it is released, so waiting for one
        looks again at growing intervals (5 ms up to 100 ms) until ``timeout``.

        Raises:
            StoreError: another live process held the claim for ``timeout`` seconds.
        """
        if self._claim_fd >= 0:
            return
        fd = os.open(self.paths.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
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
                    raise StoreError(self.paths.root, "another process is reading this mailbox") from None
                raise StoreError(self.paths.root, f"cannot claim the mailbox: {exc.strerror or exc}") from exc
        self._claim_fd = fd
        _claims.add(self)

    def release(self) -> None:
        """Give up the claim and every descriptor. Messages read but not acked stay
        pending for the next reader."""
        fd, self._claim_fd = self._claim_fd, -1
        if fd >= 0:
            os.close(fd)
        _claims.discard(self)
        with self._lock:
            for reader in self._segments.values():
                reader.close_fd()
            self._segments.clear()
            self._queue.clear()

    # -- handing out ------------------------------------------------------------------

    def recover(self) -> list[Delivered]:
        """Everything delivered and not acked, in order: what a crashed reader left
        claimed in ``cur/``, then what waits. Also removes what crashed senders left."""
        sweep_temps(self.paths)
        recovered = []
        for name in sorted(n for n in os.listdir(self.paths.cur) if n[0] != "."):
            delivered = self._load(os.path.join(self.paths.cur, name))
            if delivered is not None:
                recovered.append(delivered)
        return recovered + self.drain()

    def drain(self, limit: int | None = None, known_only: bool = False) -> list[Delivered]:
        """Hand out waiting messages (at most ``limit``), each sender's in order.

        Maildir files are claimed by renaming them ``new/ -> cur/`` (a file another
        reader claimed first is skipped); unparsable input goes to ``corrupt/``.
        Handed-out messages stay pending until acked, so a crash loses none of them.
        With ``known_only`` (the doorbell said only known segments grew) ``new/`` and
        ``log/`` are not listed, unless ``LIST_AT_LEAST_EVERY`` has passed since they were.
        """
        with self._lock:
            cut = self._fill(limit, known_only)
            count = len(self._queue) if limit is None else min(limit, len(self._queue))
            batch = [self._queue.popleft() for _ in range(count)]
            handed = set()
            for delivered in batch:
                path, position = delivered.receipt
                if position >= 0:
                    self._segments[path].unclaimed.popleft()  # the queue keeps their order
                    handed.add(path)
            for path in handed:  # the header tells other processes these are taken
                self._settle(path, self._segments[path])
            self.more_waiting = cut or bool(self._queue)
        return batch

    def take(self, kinds: Iterable[str]) -> list[Delivered]:
        """Hand out every waiting message of these kinds now, leaving the rest queued."""
        wanted = set(kinds)
        with self._lock:
            self._fill(None)
            taken = [d for d in self._queue if d.message.kind in wanted]
            if taken:
                self._queue = collections.deque(d for d in self._queue if d.message.kind not in wanted)
                touched = set()
                for delivered in taken:
                    path, position = delivered.receipt
                    if position >= 0:
                        self._segments[path].unclaimed.remove(position)
                        touched.add(path)
                for path in touched:
                    self._settle(path, self._segments[path])
        return taken

    def give_back(self, handed: Sequence[Delivered]) -> None:
        """Put handed-out, unacked messages back at the front of the queue, in order."""
        with self._lock:
            self._queue.extendleft(reversed(handed))
            by_segment: dict[str, list[int]] = {}
            for delivered in handed:
                path, position = delivered.receipt
                if position >= 0:
                    by_segment.setdefault(path, []).append(position)
            for path, positions in by_segment.items():
                reader = self._segments[path]
                reader.unclaimed.extendleft(reversed(positions))  # handed out before the rest
                self._settle(path, reader)
            if handed:
                self.more_waiting = True

    def has_new(self) -> bool:
        """Whether anything arrived that ``drain`` has not handed out (cheaper than counting)."""
        with self._lock:
            if self._queue or any(reader.has_unread() for reader in self._segments.values()):
                return True
        with os.scandir(self.paths.new) as entries:
            if any(e.name[0] != "." for e in entries):
                return True
        try:
            return any(is_segment(n) and os.path.join(self.paths.log, n) not in self._segments
                       for n in os.listdir(self.paths.log))
        except FileNotFoundError:
            return False

    # -- acking -----------------------------------------------------------------------

    def ack(self, batch: Iterable[Delivered]) -> int:
        """Retire handed-out messages, writing each segment's cursor once; returns how
        many were retired. Idempotent.

        At "machine" the cursors are flushed once ``FLUSH_ACKS_EVERY`` acks since the
        last flush could otherwise be redelivered after a power loss.
        """
        touched: set[str] = set()
        queued: dict[str, set[int]] = {}  # per segment: read, not handed out (given back)
        with self._lock:
            retired = 0
            for delivered in batch:
                path, position = delivered.receipt
                if position < 0:
                    retired += _unlink_claimed(path)
                    continue
                reader = self._segments.get(path)
                if reader is None:
                    continue
                if reader.unclaimed:
                    if path not in queued:
                        queued[path] = set(reader.unclaimed)
                    if position in queued[path]:
                        continue  # queued again: only the reader it is handed to next may ack it
                if reader.ack(position):
                    retired += 1
                    touched.add(path)
            for path in touched:
                self._settle(path, self._segments[path])
            self._unflushed_acks += retired
            if self.durability == MACHINE and self._unflushed_acks >= FLUSH_ACKS_EVERY:
                for reader in self._segments.values():
                    if reader.unflushed:
                        reader.flush()
                self._unflushed_acks = 0
        return retired

    # -- inspection by the same process ------------------------------------------------

    def views(self) -> dict[str, SegmentView]:
        """What this reader knows of each segment it read (by file name)."""
        with self._lock:
            return {os.path.basename(path): SegmentView(reader.read_pos, dict(reader.outstanding),
                                                        set(reader.unclaimed))
                    for path, reader in self._segments.items()}

    # -- filling the queue ------------------------------------------------------------

    def _fill(self, limit: int | None, known_only: bool = False) -> bool:
        """Queue what waits: claimed Maildir files and new records of every segment,
        merged by creation time (each sender's messages stay in the order sent, and a
        message sent before another sender's is handled first).

        Returns whether ``limit`` may have left messages unread.
        """
        room = None if limit is None else limit - len(self._queue)
        if room is not None and room <= 0:
            return True
        now = time.monotonic()
        listing = not known_only or now - self._listed_at >= LIST_AT_LEAST_EVERY
        if listing:
            self._listed_at = now
        names = sorted(n for n in self._new_listing.names() if n[0] != ".") if listing else []
        cut = room is not None and len(names) > room
        files = []
        for name in names[:room] if cut else names:
            path, dropped = os.path.join(self.paths.cur, name), os.path.join(self.paths.new, name)
            try:
                os.rename(dropped, path)
            except FileNotFoundError:
                continue
            except OSError as exc:  # e.g. a directory, its name taken in cur/: it must not stop the mailbox
                quarantine_file(self.paths, dropped, f"cannot be claimed: {exc.strerror or exc}")
                continue
            delivered = self._load(path)
            if delivered is not None:
                files.append(delivered)
        sources = [files] if files else []
        if listing:
            self._open_new_segments()
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
            path = os.path.join(self.paths.log, name)
            if path in self._segments or not is_segment(name):
                continue
            try:
                reader = SegmentReader.open(path)
            except StoreError as exc:
                quarantine_file(self.paths, path, exc)  # its header was written before it appeared here
                continue
            if reader is not None:
                if reader.distrusted is not None:  # a copy as found, before its header is rewritten
                    # Without the copy, the segment itself is kept (set aside) once read.
                    reader.keep_file = not keep_copy(self.paths, self.durability, path, reader.distrusted)
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
        records, damaged = reader.read(room, now)
        if not records and not damaged and not reader.ended and not reader.outstanding \
                and reader.writer_gone(now):
            # Quiet, and its writer exited without sealing it: read what it wrote
            # last (judging a partial tail torn now), and then it has ended.
            records, damaged = reader.read(room, now)
            reader.ended = reader.ended or not records
        stopped = room is not None and len(records) >= room
        read = []
        name = os.path.basename(path)
        for record in records:
            try:
                message = InboxMessage.from_wire(record.payload)
            except ValueError as exc:  # whatever the bytes: from_wire raises nothing else
                damaged.append(Damage(f"{record.offset}.{record.index}", record.payload, str(exc)))
                continue
            reader.outstanding[record.position] = message.id
            reader.unclaimed.append(record.position)
            read.append(Delivered(message, Receipt(path, record.position)))
        if damaged and not keep_damage(self.paths, self.durability, name, damaged):
            reader.keep_file = True  # they are still in the segment: it must not be deleted
        self._settle(path, reader)
        if not read and not reader.outstanding:
            reader.close_fd()  # a quiet segment holds no descriptor
            reader.next_idle_check = now + WRITER_CHECK_INTERVAL
        self._limit_descriptors()
        return read, stopped

    def _settle(self, path: str, reader: SegmentReader) -> None:
        """Write a segment's cursor; retire the segment once it has ended and all is acked."""
        reader.settle()
        if reader.finished:
            if self.durability == MACHINE and reader.unflushed:
                # Should the delete not reach the disk, the segment must come back
                # with a cursor past everything in it.
                reader.flush()
            retire(self.paths, path, reader.keep_file)
            reader.close_fd()
            del self._segments[path]

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
            quarantine_file(self.paths, path, exc)
            return None
        return Delivered(message, Receipt(path))


def _unlink_claimed(path: str) -> int:
    """Retire a Maildir file from ``cur/``; returns 1 if it was there."""
    try:
        os.unlink(path)
        return 1
    except FileNotFoundError:
        return 0
