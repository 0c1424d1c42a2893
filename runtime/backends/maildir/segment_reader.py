"""The reading side of a segment (see ``segment_format`` for the format and its
guarantees): what was read, what is acked, and whether its writer is gone."""

from __future__ import annotations

import collections
import errno
import fcntl
import mmap
import os
import threading
import zlib

from ...errors import StoreError
from .durable import sync_data
from .segment_format import (
    BATCH_FLAG,
    FIRST_READ,
    HEADER,
    HEADER_SIZE,
    IN_PLACE,
    MAGIC,
    MAX_RECORD,
    POSITIONS,
    POSITIONS_AT,
    READ_CHUNK,
    RECORD,
    SEAL,
    SEAL_LENGTH,
    VERSIONS_READ,
    WRITER_CHECK_INTERVAL,
    Record,
    unpack_record,
    writer_of,
)
from .segment_repair import FIRST_POSITION, Damage, frame_end, header_problem, only_zeros, read_all, resync

_buffers = threading.local()


def read_chunk(fd: int, offset: int, size: int = READ_CHUNK) -> bytes:
    """Up to ``size`` (at most ``READ_CHUNK``) bytes of ``fd`` at ``offset``.

    They are read into a buffer each thread keeps, and only what was read is copied
    out. ``os.pread(fd, READ_CHUNK, offset)`` would allocate ``READ_CHUNK`` bytes for
    every read, however little waits (an ask is some 250 bytes): glibc may serve an
    allocation that size with an ``mmap`` of its own, depending on what the process
    freed before (its dynamic threshold), and then each read of one message also
    costs an ``mremap``, a ``munmap`` and two page faults (some 25 us per ask in a
    worker, measured). The buffer is a private anonymous mapping: its pages are
    touched only as reads fill them (a ``bytearray`` would write all of them at
    once), and a forked child gets a copy, never the same pages.
    """
    buffer = getattr(_buffers, "buffer", None)
    if buffer is None or len(buffer) != READ_CHUNK:
        buffer = _buffers.buffer = mmap.mmap(-1, READ_CHUNK, flags=mmap.MAP_PRIVATE)
    with memoryview(buffer) as view:
        count = os.preadv(fd, [view[:size]], offset)
        return bytes(view[:count])


class SegmentReader:
    """The reader's view of one segment: what was read, what is acked.

    ``outstanding`` maps the position of each message read but not yet acked to its
    id, in order; the cursor written to disk is the first of them (or the read
    position when there is none), so a new reader starts at the first unacked message,
    even inside a batch record. ``unclaimed`` holds the positions read but not yet
    handed out, so the header can tell other processes (backpressure, ``actors
    inbox``) what still waits.

    The descriptor is opened on demand and may be closed between uses (``close_fd``),
    so a mailbox with many quiet segments does not hold a descriptor for each. A
    segment deleted from outside counts as ended (``vanished``).

    ``in_place`` (format version 3): the segment's records end at the first zero
    length word, not at the file's end.
    """

    def __init__(self, path: str, fd: int, cursor: int, claimed: int, version: int = IN_PLACE) -> None:
        self.path = path
        self.in_place = version >= IN_PLACE
        self._unwritten = False  # the last parse stopped at a zero length word
        self.writer = writer_of(os.path.basename(path))
        self.fd = fd
        self.cursor = cursor  # a position: record offset << 16 | index in a batch
        self.read_pos = cursor >> 16  # a new reader reads every unacked message again
        self._skip_below = cursor  # ... but not the acked part of the first record
        self.outstanding: dict[int, str] = {}
        self.unclaimed: collections.deque[int] = collections.deque()
        self.ended = False  # sealed, or the writer is gone and the rest was read
        self.vanished = False
        self._written = (cursor, claimed)
        self._flushed = cursor
        self._next_writer_check = 0.0
        self._gone = False
        #: When it was last read, and when a quiet one is next opened (the mailbox's
        #: bookkeeping for descriptors).
        self.last_read = 0.0
        self.next_idle_check = 0.0
        #: Why the header's positions were not trusted (the segment is then read from
        #: its first record), or None.
        self.distrusted: str | None = None
        #: Set when damaged bytes of it could not be kept in ``corrupt/``: once read,
        #: the segment is set aside rather than deleted (``segment_repair.retire``).
        self.keep_file = False

    @classmethod
    def open(cls, path: str) -> "SegmentReader | None":
        """Open a segment at its cursor; None if it vanished.

        A header whose positions fail ``segment_repair.header_problem`` is not trusted:
        the segment is read from its first record (``distrusted`` says why; messages
        already acked come again, for the AdmittedSet to drop: the trade-off is told in
        ``segment_repair``), rather than ended at a cursor that may point past them.

        Raises:
            StoreError: it cannot be read, or its header is not a segment's (a
                segment is renamed into ``log/`` only after its header was written,
                so this is damage, not a write in progress).
        """
        try:
            fd = _open_segment(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(path, f"cannot read: {exc.strerror or exc}") from exc
        header = os.pread(fd, HEADER_SIZE, 0)
        if len(header) < HEADER_SIZE or header[:4] != MAGIC:
            os.close(fd)
            raise StoreError(path, "not a segment (damaged header)")
        _, version, cursor, claimed = HEADER.unpack(header)
        if version not in VERSIONS_READ:
            os.close(fd)
            raise StoreError(path, f"segment format {version}, this version reads "
                                   f"{' and '.join(map(str, VERSIONS_READ))}")
        try:
            problem = header_problem(fd, cursor, claimed)
        except OSError as exc:
            os.close(fd)
            raise StoreError(path, f"cannot read: {exc.strerror or exc}") from exc
        if problem is not None:
            reader = cls(path, fd, FIRST_POSITION, FIRST_POSITION, version)
            reader.distrusted = problem
            reader._written = (cursor, claimed)  # rewritten at the first settle
            return reader
        cursor = max(cursor, FIRST_POSITION)
        return cls(path, fd, cursor, max(claimed, cursor), version)

    @property
    def claimed_until(self) -> int:
        """The position the reader has handed out up to (as written in the header)."""
        return self._written[1]

    def ensure_fd(self) -> bool:
        """Reopen the descriptor if ``close_fd`` closed it; False if the file is gone."""
        if self.fd < 0 and not self.vanished:
            try:
                self.fd = _open_segment(self.path)
            except FileNotFoundError:
                self.vanished = self.ended = self._gone = True
        return self.fd >= 0

    def close_fd(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def read(self, limit: int | None, now: float, *, judge: bool = True) -> tuple[list[Record], list[Damage]]:
        """Records after the read position (at most ``limit``), and damage found.

        Bytes that are not records but are followed by a whole frame are damage, and
        reading goes on past them (``segment_repair.resync``). An incomplete or damaged
        record at the end stops the read. While the writer lives it may be a write
        still being copied in, and is read again next time. Once the writer is gone
        (asked only when ``judge``) the segment is read once more, since the writer may
        have finished the record before it went; what still does not parse is torn: it
        is returned as damage and the segment has ended.

        In a segment written in place, a zero length word ends what was written. Once
        the writer is known to be gone, the segment has ended there if only zeros
        follow; anything else past it is read by the rules above.
        """
        if not self.ensure_fd():
            return [], []
        self.last_read = now
        records: list[Record] = []
        damaged: list[Damage] = []
        size = FIRST_READ if self.in_place else READ_CHUNK
        while not self.ended and (limit is None or len(records) < limit):
            data = read_chunk(self.fd, self.read_pos, size)
            self._unwritten = False
            pos, whole = self._parse(data, records, limit)
            self.read_pos += pos
            if self.ended or (limit is not None and len(records) >= limit):
                break
            if self._unwritten:
                if not judge or not self.writer_gone(now):
                    break  # nothing written past here yet
                if only_zeros(read_all(self.fd, self.read_pos), 0):
                    self.ended = True  # the writer is gone, and wrote nothing more
                    break
                # else bytes past the zeros: damage, or a torn record (below)
            elif len(data) == size < READ_CHUNK:
                size = READ_CHUNK  # more than a first read holds: read on in chunks
                continue
            elif pos > 0 and len(data) == READ_CHUNK:
                continue  # a full chunk: more may follow it
            elif whole:
                break  # the end of what was written
            if pos == 0 and self._read_long_record(data, records):
                continue
            skipped = self._skip_damage()
            if skipped is not None:
                if skipped.data:
                    damaged.append(skipped)
                    continue
                break  # the frame is whole now (written meanwhile): read it next time
            if not judge:
                break
            if self._gone:
                offset, rest = self.read_pos, self._read_rest()
                if self.in_place:
                    rest = rest.rstrip(b"\0")  # the zeros past it were never written over
                if rest:
                    damaged.append(Damage(offset, rest, "a torn record"))
                break
            if self.writer_gone(now):
                continue  # nothing can change now: read it once more, then judge
            break
        return self._passed_skip(records), damaged

    def _passed_skip(self, records: list[Record]) -> list[Record]:
        # Once past the record the cursor pointed into, nothing more is skipped.
        if self._skip_below and self.read_pos > self._skip_below >> 16:
            self._skip_below = 0
        return records

    def _parse(self, data: bytes, records: list[Record], limit: int | None) -> tuple[int, bool]:
        """Parse whole records from ``data``; returns the bytes used and whether they
        were all of ``data`` (or a seal, or ``limit``, stopped the parse)."""
        pos, size, base = 0, len(data), self.read_pos
        while limit is None or len(records) < limit:
            if pos == size:
                return pos, True
            if pos + RECORD.size > size:
                return pos, False
            length, crc = RECORD.unpack_from(data, pos)
            if length == 0 and self.in_place:
                self._unwritten = True  # a frame's length is never 0: nothing written yet
                return pos, True
            if length == SEAL_LENGTH:
                if crc != 0 or not self._only_zeros_after(base + pos + len(SEAL)):
                    return pos, False  # a seal is the last thing a writer writes
                self.ended = True
                return pos, True
            batch, length = length & BATCH_FLAG, length & ~BATCH_FLAG
            end = pos + RECORD.size + length
            if not 0 < length <= MAX_RECORD or end > size:
                return pos, False  # zero bytes (a hole) are never a record
            payload = data[pos + RECORD.size:end]
            if zlib.crc32(payload) != crc or not unpack_record(base + pos, batch, payload, records,
                                                                self._skip_below):
                return pos, False
            pos = end
        return pos, True

    def _only_zeros_after(self, offset: int) -> bool:
        # A version 2 segment ends at its seal; one written in place has zeros after it.
        return os.fstat(self.fd).st_size == offset or only_zeros(read_all(self.fd, offset), 0)

    def _read_long_record(self, data: bytes, records: list[Record]) -> bool:
        """A record longer than one chunk: read it whole. Returns whether it was there."""
        if len(data) < READ_CHUNK:
            return False
        length, crc = RECORD.unpack_from(data, 0)
        batch, length = length & BATCH_FLAG, length & ~BATCH_FLAG
        if not 0 < length <= MAX_RECORD:
            return False
        whole = os.pread(self.fd, RECORD.size + length, self.read_pos)
        payload = whole[RECORD.size:]
        if len(payload) != length or zlib.crc32(payload) != crc \
                or not unpack_record(self.read_pos, batch, payload, records, self._skip_below):
            return False
        self.read_pos += len(whole)
        return True

    def _skip_damage(self) -> Damage | None:
        """Step past damage at the read position if a whole frame follows it.

        Returns the bytes skipped (empty if the frame there has become whole since it
        was read), or None when nothing whole follows: a tail, for the caller to wait
        for or judge torn.
        """
        rest = read_all(self.fd, self.read_pos)
        if frame_end(rest, 0) is not None:
            return Damage(self.read_pos, b"", "")
        found = resync(rest, 0)
        if found is None:
            return None
        if self.in_place and not self._gone:
            # Written in place, the bytes of a record still being copied in are in the
            # file with zeros after them, not cut off by its size: one read can catch the
            # first page of a record before its copy ended and, pages later, the next
            # record whole. The writer finished the first before it began the next, so
            # a read made after this one finds it whole.
            rest = read_all(self.fd, self.read_pos)
            if frame_end(rest, 0) is not None:
                return Damage(self.read_pos, b"", "")
            found = resync(rest, 0)
            if found is None:  # cannot be: bytes written in place are never taken back
                return None
        skip, reason = found
        offset = self.read_pos
        self.read_pos += skip
        return Damage(offset, rest[:skip], reason)

    def _read_rest(self) -> bytes:
        rest = read_all(self.fd, self.read_pos)
        self.read_pos += len(rest)
        self.ended = True
        return rest

    def writer_gone(self, now: float, *, force: bool = False) -> bool:
        """Whether no process can append to this segment any more (checked at most
        once per ``WRITER_CHECK_INTERVAL`` unless ``force``)."""
        if self._gone:
            return True
        if not force and now < self._next_writer_check:
            return False
        self._next_writer_check = now + WRITER_CHECK_INTERVAL
        if not self.ensure_fd():
            return True
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return False
            raise
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        self._gone = True  # a writer never comes back to a segment
        return True

    def has_unread(self) -> bool:
        """Whether bytes past the read position wait (a cheap ``stat``, or in a segment
        written in place a ``pread`` of the length word there)."""
        if self.ended:
            return False
        if self.in_place:
            return self._written_at_read_pos()
        try:
            size = os.fstat(self.fd).st_size if self.fd >= 0 else os.stat(self.path).st_size
        except FileNotFoundError:
            self.vanished = self.ended = self._gone = True
            return False
        if size == self.read_pos + len(SEAL):  # just the seal, or a first short record
            return self.ensure_fd() and os.pread(self.fd, len(SEAL), self.read_pos) != SEAL
        return size > self.read_pos

    def _written_at_read_pos(self) -> bool:
        """Whether a length word other than 0 or the seal's is at the read position
        (the descriptor is opened for this alone if it is closed)."""
        try:
            fd = self.fd if self.fd >= 0 else _open_segment(self.path)
        except FileNotFoundError:
            self.vanished = self.ended = self._gone = True
            return False
        try:
            word = os.pread(fd, len(SEAL), self.read_pos)
        finally:
            if fd != self.fd:
                os.close(fd)
        return any(word[:4]) and word != SEAL

    def ack(self, position: int) -> bool:
        """Retire one handed-out message; returns whether it was outstanding."""
        return self.outstanding.pop(position, None) is not None

    def settle(self) -> None:
        """Write the cursor and the claimed position if they moved (see the module
        docstring for when they are flushed)."""
        self.cursor = next(iter(self.outstanding), self.read_pos << 16)
        claimed = self.unclaimed[0] if self.unclaimed else self.read_pos << 16
        positions = (self.cursor, claimed)
        if positions == self._written or not self.ensure_fd():
            return
        os.pwrite(self.fd, POSITIONS.pack(*positions), POSITIONS_AT)
        self._written = positions

    @property
    def unflushed(self) -> bool:
        """Whether the cursor on disk may be behind the one written."""
        return self._written[0] != self._flushed

    def flush(self) -> None:
        """Make the written cursor durable (at durability "machine")."""
        if self.ensure_fd():
            sync_data(self.fd)
            self._flushed = self._written[0]

    @property
    def finished(self) -> bool:
        """Ended and every record acked: the segment can be deleted."""
        return self.ended and not self.outstanding


def pending_records(path: str) -> tuple[list[Record], int] | None:
    """The whole records after a segment's cursor, and where its reader has claimed up
    to (records before that are being handled). For inspection and backpressure by any
    process; None if the segment is gone. Never judges a tail torn."""
    try:
        reader = SegmentReader.open(path)
    except StoreError:
        return None
    if reader is None:
        return None
    try:
        return reader.read(None, 0.0, judge=False)[0], reader.claimed_until if reader.distrusted is None \
            else FIRST_POSITION
    finally:
        reader.close_fd()


def _open_segment(path: str) -> int:
    """A descriptor for reading a segment and rewriting its header; read-only where
    the home cannot be written (an inspection of a read-only home still counts its
    messages; a reader that acks there fails at the header write, as a StoreError)."""
    try:
        return os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
