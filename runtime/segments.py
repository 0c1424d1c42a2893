"""Per-sender append-only message logs ("segments") inside a mailbox's ``log/``.

Data flow::

    sender process (one writer per mailbox handle)        the mailbox's one reader
    ----------------------------------------------        ------------------------
    log/.tmp-X: header, flock(SH) --rename--> log/<ns>-<pid>-<tag>.seg
    append: [len][crc32][message JSON]  (one write; fdatasync at "machine")
                                         ... read from the cursor, handle, commit
                                         ack: cursor := first record not yet acked
                                              (written into the header with the
                                              read position, for observers)
    seal at 1 MiB, or on close: [0xFFFFFFFF][0]      sealed + all acked -> unlink

Why not a file per message: on this file system a message file costs a create or a
claim rename, a publish rename, an open and a close for the sender, and a claim
rename, an open, a read and an ack rename for the reader; an append costs one
``write``, and the reader reads many records with one ``pread``. At durability
"machine" an append needs one ``fdatasync`` and no directory fsync.

Guarantees:

- A record is delivered once its ``write`` returned (and, at "machine", its
  ``fdatasync``): it survives any process crash (a power loss too at "machine").
- One writer per segment, so records of one sender are read in the order sent; a
  process's segments are named so that the reader takes them oldest first.
- The cursor (a message's position, so it can point inside a batch record) only
  moves past messages that were acked, and it is written after the reader's commit;
  a crash before it reaches the disk redelivers acked messages, which the reader's
  AdmittedSet drops. That set holds 4,096 ids, so the mailbox bounds what can come
  again: at "machine" it flushes its cursors once ``FLUSH_ACKS_EVERY`` acks are not
  on disk, and before it deletes a segment.
- A writer holds a shared ``flock`` on its segment for as long as it may append. A
  reader that can take the lock exclusively knows the writer is gone for good: it
  never reopens a segment. Only then is an incomplete record at the end a torn
  write (moved to ``corrupt/``) rather than one still being copied in.
- A segment is created under a hidden temp name, locked, and only then renamed into
  ``log/``: a reader never sees an unlocked segment of a live writer.
"""

from __future__ import annotations

import atexit
import collections
import errno
import fcntl
import itertools
import logging
import os
import struct
import threading
import time
import weakref
import zlib
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

from .durable import MACHINE, Durability, fsync_dir, sync_data, temp_name, unlink_quietly
from .errors import StoreError
from .threads import reset_after_fork, start_thread

#: Segment file name suffix; everything else in ``log/`` is ignored.
SUFFIX = ".seg"
#: A writer seals its segment and starts a new one past this size (bytes).
SEGMENT_LIMIT = 1 << 20
#: Bytes read per ``pread`` when catching up.
READ_CHUNK = 1 << 18
#: A record longer than this is garbage (a torn length), not a message.
MAX_RECORD = 64 << 20
#: The longest message (encoded) a segment takes; ``deliver`` refuses longer ones.
MAX_MESSAGE = MAX_RECORD - 64
#: How often (seconds) a reader asks whether the writer of a quiet segment is gone.
WRITER_CHECK_INTERVAL = 1.0

_MAGIC = b"DAML"
_VERSION = 2  # 1: cursors were byte offsets (never released)
_HEADER = struct.Struct("<4sB3xQQ")  # magic, version, cursor, claimed (both positions)
_POSITIONS = struct.Struct("<QQ")
_POSITIONS_AT = 8
HEADER_SIZE = _HEADER.size
_RECORD = struct.Struct("<II")  # payload length (| _BATCH), crc32 of the payload
_SEAL_LENGTH = 0xFFFFFFFF
_SEAL = _RECORD.pack(_SEAL_LENGTH, 0)
#: Length flag of a batch record: its payload is records itself, all or none delivered.
_BATCH = 0x80000000
_INNER = struct.Struct("<I")
#: Messages in one batch record at most (an index must fit the low 16 bits of a
#: position); a longer batch is several records, each all or nothing.
BATCH_LIMIT = 1024

log = logging.getLogger(__name__)

_generation = itertools.count()
_current_generation = next(_generation)
#: Names this process in its segments' names (with the pid): a reader keeps the
#: segments of one process in order.
_process_tag = os.urandom(4).hex()


def _after_fork_in_child() -> None:
    # A forked child inherits its parent's writers; it must not append to them (two
    # writers on one segment could interleave a torn record into the middle).
    global _current_generation, _process_tag, _writers_lock
    _current_generation = next(_generation)
    _process_tag = os.urandom(4).hex()
    _writers_lock = threading.Lock()


def _new_condition() -> threading.Condition:
    return threading.Condition(threading.Lock())


os.register_at_fork(after_in_child=_after_fork_in_child)

_tags = itertools.count()


def frame(payload: bytes) -> bytes:
    """One record: length, CRC-32 and the payload."""
    return _RECORD.pack(len(payload), zlib.crc32(payload)) + payload


def frame_batch(payloads: list[bytes]) -> bytes:
    """Records holding ``payloads`` in order, each batch record all-or-nothing.

    A batch longer than ``BATCH_LIMIT`` messages or half of ``MAX_RECORD`` bytes is
    split into several batch records, each of them atomic.
    """
    if len(payloads) == 1:
        return frame(payloads[0])
    out, inner, size = [], [], 0
    for payload in payloads:
        if inner and (len(inner) == BATCH_LIMIT or size + len(payload) > MAX_RECORD // 2):
            out.append(_frame_inner(inner))
            inner, size = [], 0
        inner.append(_INNER.pack(len(payload)) + payload)
        size += _INNER.size + len(payload)
    out.append(_frame_inner(inner))
    return b"".join(out)


def _frame_inner(inner: list[bytes]) -> bytes:
    body = b"".join(inner)
    return _RECORD.pack(len(body) | _BATCH, zlib.crc32(body)) + body


def is_segment(name: str) -> bool:
    return name.endswith(SUFFIX) and name[0] != "."


def writer_of(name: str) -> str:
    """The process that wrote a segment (``<pid>-<tag>``), from its name."""
    parts = name.split("-")
    return "-".join(parts[1:3]) if len(parts) >= 4 else name


class _Segment:
    """A segment a writer appends to: its descriptor, and how much is written and
    flushed. Its descriptor is closed only when no flush of it is under way."""

    __slots__ = ("fd", "path", "generation", "size", "flushed", "flushing", "owed", "error", "seal")

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path
        self.generation = _current_generation
        self.size = HEADER_SIZE
        self.flushed = HEADER_SIZE
        self.flushing = False  # a thread is in fdatasync on it, without the writer's lock
        self.owed = 0  # writes whose flush is still to come or under way
        self.error: OSError | None = None  # a flush failed: what is not flushed never will be
        self.seal = True  # write the seal record when let go (not after a failed write)


class Unflushed:
    """Records ``SegmentWriter.write`` wrote and did not flush: call ``flush()`` once
    (or hand it to a ``Flusher``). One dropped unflushed gives up its claim on the
    segment, so the segment can still be sealed and closed."""

    __slots__ = ("_writer", "_segment", "_end")

    def __init__(self, writer: "SegmentWriter", segment: _Segment, end: int) -> None:
        self._writer, self._segment, self._end = writer, segment, end  # end -1: nothing owed

    @property
    def path(self) -> str:
        return self._segment.path

    def flush(self) -> str:
        """Return once the records are on disk (at once at "process"); returns the
        segment's path. Writes made by other threads meanwhile share the flush.

        Raises:
            StoreError: the flush failed (the records are readable but not on disk).
        """
        self._writer._flush_written([self])
        return self._segment.path

    def _take(self) -> int:
        end, self._end = self._end, -1  # a second call has nothing more to wait for
        return end

    def __del__(self) -> None:
        if self._take() >= 0:
            self._writer._forget_owed(self._segment)


class Flusher:
    """Flushes writes in the background and resolves a ``Future`` for each once it is
    on disk (group commit for senders that do not wait).

    One thread works in rounds: it takes every write waiting, flushes each segment
    among them once (up to its last write in the round), then resolves their Futures.
    The writes made while a round runs share the next round's flushes. The Futures
    come from ``new_future`` (their callbacks should not run on this thread: a
    callback that waited for another of its Futures would wait for ever) and cannot
    be cancelled.
    """

    def __init__(self, name: str, new_future: Callable[[], "Future[Any]"] = Future) -> None:
        self.name = name
        self._new_future = new_future
        # A forked child has no flusher thread and must not flush its parent's writes.
        reset_after_fork(self, _lock=_new_condition, _waiting=list, _thread=_nothing)
        self._waiting: list[tuple[Unflushed, Future[Any], Any]]
        self._thread: threading.Thread | None
        self._closed = False

    def submit(self, written: Unflushed, value: Any) -> "Future[Any]":
        """A ``Future`` that gets ``value`` once ``written`` is flushed, or the
        ``StoreError`` of the flush. Takes over ``written.flush()`` (done here, before
        returning, once the flusher is closed or no thread can be started)."""
        future = self._new_future()
        future.set_running_or_notify_cancel()  # the write is made: it cannot be called off
        with self._lock:
            if not self._closed and self._thread is None:
                try:
                    self._thread = start_thread(self._run, self.name)
                except RuntimeError:  # e.g. at interpreter exit: flush in the caller
                    pass
            if not self._closed and self._thread is not None:
                self._waiting.append((written, future, value))
                self._lock.notify()
                return future
        _flush_and_resolve([(written, future, value)])
        return future

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._lock.wait()
                if not self._waiting:
                    return
                batch, self._waiting = self._waiting, []
            _flush_and_resolve(batch)

    def close(self) -> None:
        """Flush what waits, resolve its Futures, and stop the thread."""
        with self._lock:
            self._closed = True
            self._lock.notify()
            thread = self._thread
        if thread is not None:
            thread.join()


def _nothing() -> None:
    return None


def _flush_and_resolve(batch: list[tuple[Unflushed, "Future[Any]", Any]]) -> None:
    """Flush each segment of ``batch`` once, then resolve the batch's Futures."""
    groups: dict[int, list[Unflushed]] = {}
    for written, _, _ in batch:
        groups.setdefault(id(written._segment), []).append(written)
    failed: dict[int, BaseException] = {}
    for key, group in groups.items():
        try:
            group[0]._writer._flush_written(group)
        except Exception as exc:  # the flush's StoreError goes to the Futures
            failed[key] = exc
    for written, future, value in batch:
        error = failed.get(id(written._segment))
        try:
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)
        except BaseException:  # a callback raised past the Future's own guard
            log.exception("a done-callback of a sent message raised")


class SegmentWriter:
    """Appends records to one mailbox, one segment at a time. Thread-safe.

    At durability "machine" threads appending at once share flushes (group commit):
    a thread whose record is written while another thread's ``fdatasync`` runs waits
    for that flush to end, and then one more ``fdatasync`` covers every record
    written meanwhile.

    Raises ``StoreError`` from every method that writes; after a failed write the
    segment is closed unsealed (so a reader can tell its tail is torn) and the next
    append goes to a fresh segment.
    """

    def __init__(self, log_dir: str, durability: Durability) -> None:
        self.log_dir = log_dir
        self.durability = durability
        reset_after_fork(self, _lock=_new_condition)
        self._segment: _Segment | None = None  # where the next append goes
        with _writers_lock:
            _writers.add(self)

    @property
    def path(self) -> str:
        """The segment the next append goes to ("" when there is none yet)."""
        segment = self._segment
        return segment.path if segment is not None else ""

    def append(self, payloads: list[bytes]) -> str:
        """Append messages in order with one write (and one flush at "machine").

        Returns the segment's path. The messages are delivered once this returns. If
        it raises, a batch that fits one record (at most ``BATCH_LIMIT`` messages and
        half of ``MAX_RECORD`` bytes) was not delivered at all, with one exception: a
        flush that failed after a whole write (the messages are then readable but not
        on disk). A longer batch is several records, each all or nothing.

        Raises:
            StoreError: the write or the flush failed.
        """
        data = frame_batch(payloads)
        with self._lock:  # one hold: nothing can come between the write and its flush
            segment, end = self._write_locked(data)
            if end >= 0:
                self._flush_owed(segment, end, 1)
            return segment.path

    def write(self, payloads: list[bytes]) -> Unflushed:
        """Append messages in order with one write, and return without flushing.

        Once this returns the messages are readable and survive any process crash; at
        "machine" they are on disk once the returned ``Unflushed.flush()`` returned
        (the segment is kept open until then).

        Raises:
            StoreError: the write failed (see ``append`` for what was delivered).
        """
        data = frame_batch(payloads)
        with self._lock:
            segment, end = self._write_locked(data)
            return Unflushed(self, segment, end)

    def _write_locked(self, data: bytes) -> tuple[_Segment, int]:
        """Write ``data`` to the current segment (hold the lock). Returns the segment
        and, at "machine", where the write ends, which it then owes a flush (else -1)."""
        segment = self._segment
        if segment is None or segment.generation != _current_generation:
            segment = self._open()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(segment.fd, view):]
        except OSError as exc:
            segment.seal = False
            self._retire(segment)
            self._let_go_if_done(segment)
            raise StoreError(self.log_dir, f"deliver failed: {exc.strerror or exc}") from exc
        segment.size += len(data)
        if segment.size >= SEGMENT_LIMIT:
            self._retire(segment)  # the next append starts a fresh segment
        if self.durability != MACHINE:
            self._let_go_if_done(segment)
            return segment, -1
        segment.owed += 1
        return segment, segment.size

    def _flush_written(self, written: list[Unflushed]) -> None:
        """Flush for these writes (of one segment) and let them go; takes the lock.
        They are taken over only once the lock is held: a write dropped before that
        (say, by Ctrl-C while waiting for the lock) lets go of the segment itself."""
        with self._lock:
            ends = [end for end in map(Unflushed._take, written) if end >= 0]
            if ends:
                self._flush_owed(written[0]._segment, max(ends), len(ends))

    def _flush_owed(self, segment: _Segment, end: int, count: int) -> None:
        """Flush ``segment`` up to ``end`` for ``count`` writes that owe it a flush,
        then let them go (hold the lock)."""
        try:
            self._flush_through(segment, end)
        finally:
            segment.owed -= count
            self._let_go_if_done(segment)

    def _forget_owed(self, segment: _Segment) -> None:
        """A write dropped without its flush no longer holds the segment open."""
        with self._lock:
            segment.owed -= 1
            self._let_go_if_done(segment)

    def _flush_through(self, segment: _Segment, end: int) -> None:
        """Return once ``segment`` is on disk up to ``end``. Hold the lock.

        One thread flushes a segment at a time, with the lock released. Its flush
        covers what was written when it began, so the threads that wrote while it ran
        need one flush more between them, not one each.
        """
        while segment.flushed < end:
            if segment.error is not None:
                raise StoreError(self.log_dir, f"deliver failed: {segment.error.strerror or segment.error}")
            if segment.flushing:
                self._lock.wait()
                continue
            segment.flushing, fd, target = True, segment.fd, segment.size
            self._lock.release()
            interrupted = None
            try:
                sync_data(fd)
            except OSError as exc:
                segment.error = exc
                segment.seal = False
            except BaseException as exc:  # e.g. KeyboardInterrupt: the lock first
                interrupted = exc
            interrupted = self._relock() or interrupted
            segment.flushing = False
            self._lock.notify_all()
            if interrupted is not None:
                raise interrupted
            if segment.error is None:
                segment.flushed = target
            else:
                self._retire(segment)

    def _relock(self) -> BaseException | None:
        """Take the lock back after a flush, whatever interrupts the wait for it;
        returns what did (to be raised once the segment's state is put right)."""
        interrupted = None
        while True:
            try:
                self._lock.acquire()
                return interrupted
            except BaseException as exc:
                interrupted = exc

    def _retire(self, segment: _Segment) -> None:
        """Send no more appends to ``segment``. Hold the lock."""
        if self._segment is segment:
            self._segment = None

    def _let_go_if_done(self, segment: _Segment) -> None:
        """Seal (or just close) a retired segment once no thread flushes it or waits
        for a flush of it. Hold the lock."""
        if segment is self._segment or segment.fd < 0:
            return
        if segment.generation == _current_generation:
            if segment.flushing or segment.owed:
                return
            if segment.seal:
                try:
                    os.write(segment.fd, _SEAL)  # no flush: a lost seal only delays the delete
                except OSError:
                    pass  # closing releases the lock, which tells the reader just as well
        # else: inherited across fork, the parent owns it (and no thread here flushes it)
        fd, segment.fd = segment.fd, -1
        try:
            os.close(fd)
        except OSError:
            pass

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """Seal the segment (the reader deletes it once all is acked) and let it go.

        A segment another thread is flushing is sealed when that thread is done."""
        with self._lock:
            segment = self._segment
            if segment is not None:
                self._retire(segment)
                self._let_go_if_done(segment)

    def _open(self) -> _Segment:
        old = self._segment
        if old is not None:  # inherited from the parent process: let it go
            self._retire(old)
            self._let_go_if_done(old)
        os.makedirs(self.log_dir, exist_ok=True)
        tmp = temp_name(self.log_dir)
        final = os.path.join(self.log_dir,
                             f"{time.time_ns():020d}-{os.getpid()}-{_process_tag}-{next(_tags)}{SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(self.log_dir, f"deliver failed: {exc.strerror or exc}") from exc
        try:
            os.write(fd, _HEADER.pack(_MAGIC, _VERSION, HEADER_SIZE << 16, HEADER_SIZE << 16))
            # Locked before it is visible: a reader that can lock it exclusively may
            # conclude this writer is gone and delete the segment.
            fcntl.flock(fd, fcntl.LOCK_SH)
            os.rename(tmp, final)
            if self.durability == MACHINE:
                fsync_dir(self.log_dir)
        except OSError as exc:
            os.close(fd)
            unlink_quietly(tmp)
            raise StoreError(self.log_dir, f"deliver failed: {exc.strerror or exc}") from exc
        self._segment = _Segment(fd, final)
        return self._segment

    def _abandon(self) -> None:
        """Close the current segment unsealed, as a writer that died would leave it."""
        with self._lock:
            segment = self._segment
            if segment is not None:
                segment.seal = False
                self._retire(segment)
                self._let_go_if_done(segment)


#: Every writer of this process: their segments are sealed at interpreter exit.
_writers: "weakref.WeakSet[SegmentWriter]" = weakref.WeakSet()
_writers_lock = threading.Lock()  # threads make writers while atexit lists them


@dataclass
class Record:
    """A message read from a segment: the record holding it, and its payload.

    ``position`` orders messages within a segment and names one for ``ack``: the
    record's offset shifted left 16 bits, plus the message's index in a batch record.
    """

    offset: int
    index: int
    payload: bytes

    @property
    def position(self) -> int:
        return self.offset << 16 | self.index


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
    """

    def __init__(self, path: str, fd: int, cursor: int, claimed: int) -> None:
        self.path = path
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

    @classmethod
    def open(cls, path: str) -> "SegmentReader | None":
        """Open a segment at its cursor; None if it vanished.

        Raises:
            StoreError: it cannot be read, or its header is not a segment's (a
                segment is renamed into ``log/`` only after its header was written,
                so this is damage, not a write in progress).
        """
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(path, f"cannot read: {exc.strerror or exc}") from exc
        header = os.pread(fd, HEADER_SIZE, 0)
        if len(header) < HEADER_SIZE or header[:4] != _MAGIC:
            os.close(fd)
            raise StoreError(path, "not a segment (damaged header)")
        _, version, cursor, claimed = _HEADER.unpack(header)
        if version != _VERSION:
            os.close(fd)
            raise StoreError(path, f"segment format {version}, this version reads {_VERSION}")
        cursor = max(cursor, HEADER_SIZE << 16)
        return cls(path, fd, cursor, max(claimed, cursor))

    @property
    def claimed_until(self) -> int:
        """The position the reader has handed out up to (as written in the header)."""
        return self._written[1]

    def ensure_fd(self) -> bool:
        """Reopen the descriptor if ``close_fd`` closed it; False if the file is gone."""
        if self.fd < 0 and not self.vanished:
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                self.vanished = self.ended = self._gone = True
        return self.fd >= 0

    def close_fd(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def read(self, limit: int | None, now: float, *, judge: bool = True) -> tuple[list[Record], bytes]:
        """Records after the read position (at most ``limit``), and torn bytes found.

        An incomplete or damaged record stops the read. While the writer lives it may
        be a write still being copied in, and is read again next time. Once the writer
        is gone (asked only when ``judge``) the segment is read once more, since the
        writer may have finished the record before it went; what still does not parse
        is torn: it is returned as such and the segment has ended.
        """
        if not self.ensure_fd():
            return [], b""
        self.last_read = now
        records: list[Record] = []
        while not self.ended and (limit is None or len(records) < limit):
            data = os.pread(self.fd, READ_CHUNK, self.read_pos)
            pos, whole = self._parse(data, records, limit)
            self.read_pos += pos
            if self.ended or (limit is not None and len(records) >= limit):
                break
            if pos > 0 and len(data) == READ_CHUNK:
                continue  # a full chunk: more may follow it
            if whole:
                break  # the end of what was written
            if pos == 0 and self._read_long_record(data, records):
                continue
            if not judge:
                break
            if self._gone:
                return self._passed_skip(records), self._read_rest()
            if self.writer_gone(now):
                continue  # nothing can change now: read it once more, then judge
            break
        return self._passed_skip(records), b""

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
            if pos + _RECORD.size > size:
                return pos, False
            length, crc = _RECORD.unpack_from(data, pos)
            if length == _SEAL_LENGTH:
                self.ended = True
                return pos, True
            batch, length = length & _BATCH, length & ~_BATCH
            end = pos + _RECORD.size + length
            if not 0 < length <= MAX_RECORD or end > size:
                return pos, False  # zero bytes (a hole) are never a record
            payload = data[pos + _RECORD.size:end]
            if zlib.crc32(payload) != crc:
                return pos, False
            _unpack(base + pos, batch, payload, records, self._skip_below)
            pos = end
        return pos, True

    def _read_long_record(self, data: bytes, records: list[Record]) -> bool:
        """A record longer than one chunk: read it whole. Returns whether it was there."""
        if len(data) < READ_CHUNK:
            return False
        length, crc = _RECORD.unpack_from(data, 0)
        batch, length = length & _BATCH, length & ~_BATCH
        if not 0 < length <= MAX_RECORD:
            return False
        whole = os.pread(self.fd, _RECORD.size + length, self.read_pos)
        payload = whole[_RECORD.size:]
        if len(payload) != length or zlib.crc32(payload) != crc:
            return False
        _unpack(self.read_pos, batch, payload, records, self._skip_below)
        self.read_pos += len(whole)
        return True

    def _read_rest(self) -> bytes:
        chunks = []
        while True:
            chunk = os.pread(self.fd, READ_CHUNK, self.read_pos)
            if not chunk:
                break
            chunks.append(chunk)
            self.read_pos += len(chunk)
        self.ended = True
        return b"".join(chunks)

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
        """Whether bytes past the read position wait (a cheap ``stat``)."""
        if self.ended:
            return False
        try:
            size = os.fstat(self.fd).st_size if self.fd >= 0 else os.stat(self.path).st_size
        except FileNotFoundError:
            self.vanished = self.ended = self._gone = True
            return False
        if size == self.read_pos + len(_SEAL):  # just the seal, or a first short record
            return self.ensure_fd() and os.pread(self.fd, len(_SEAL), self.read_pos) != _SEAL
        return size > self.read_pos

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
        os.pwrite(self.fd, _POSITIONS.pack(*positions), _POSITIONS_AT)
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


def _unpack(offset: int, batch: int, payload: bytes, records: list[Record], skip_below: int) -> None:
    """Add the messages of one record, leaving out those before ``skip_below`` (the
    acked part of the record a resumed cursor points into)."""
    if not batch:
        if offset << 16 >= skip_below:
            records.append(Record(offset, 0, payload))
        return
    pos, index = 0, 0
    while pos < len(payload):
        (length,) = _INNER.unpack_from(payload, pos)
        start = pos + _INNER.size
        if offset << 16 | index >= skip_below:
            records.append(Record(offset, index, payload[start:start + length]))
        pos, index = start + length, index + 1


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
        return reader.read(None, 0.0, judge=False)[0], reader.claimed_until
    finally:
        reader.close_fd()


def _seal_writers() -> None:
    with _writers_lock:
        writers = list(_writers)
    for writer in writers:
        writer.close()


atexit.register(_seal_writers)
