"""The writing side of a segment (see ``segment_format`` for the format and its
guarantees): one writer per mailbox handle, group commit, background flushes."""

from __future__ import annotations

import atexit
import fcntl
import itertools
import logging
import os
import threading
import time
import weakref
from concurrent.futures import Future
from typing import Any, Callable

from ...durability import MACHINE, Durability
from ...errors import StoreError
from ...threads import reset_after_fork, start_thread
from .durable import FILE_MODE, NOFOLLOW, fsync_dir, make_dirs, sync_data, temp_name, unlink_quietly
from .segment_format import (
    CHUNK,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    SEAL,
    SEGMENT_LIMIT,
    START_SIZE,
    SUFFIX,
    VERSION,
    frame_batch,
)

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


class _Segment:
    """A segment a writer writes to: its descriptor, where its records end (the next
    one goes there), how far the file reaches (zeros past the records) and how much
    is flushed. Its descriptor is closed only when no flush of it is under way."""

    __slots__ = ("fd", "path", "generation", "size", "allocated", "flushed", "flushing", "owed", "error", "seal")

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path
        self.generation = _current_generation
        self.size = HEADER_SIZE
        self.allocated = START_SIZE
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
        self._lock = _new_condition()
        self._waiting: list[tuple[Unflushed, Future[Any], Any]] = []
        self._thread: threading.Thread | None = None
        reset_after_fork(self, _lock=_new_condition, _waiting=list, _thread=_nothing)
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
        self._lock = _new_condition()
        reset_after_fork(self, _lock=_new_condition)
        self._segment: _Segment | None = None  # where the next append goes
        with _writers_lock:
            _writers.add(self)

    @property
    def path(self) -> str:
        """The segment the next append goes to ("" when there is none yet)."""
        segment = self._segment
        return segment.path if segment is not None else ""

    def open_segment(self) -> None:
        """Open the segment the next append goes to, if none is open yet: the first
        append then only writes (a new segment is a file made, locked and renamed into
        place, and at "machine" a flush of the directory).

        Raises:
            StoreError: it cannot be made.
        """
        with self._lock:
            segment = self._segment
            if segment is None or segment.generation != _current_generation:
                self._open()

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
        end = segment.size + len(data)
        try:
            if segment.allocated < end < SEGMENT_LIMIT:
                # Zeros ahead to the next boundary, flushed with this record: the
                # records up to there are written in place, and their flushes write
                # no inode. Written first, so a failure leaves no record behind (the
                # record's own bytes fill the hole before them).
                step = min(segment.allocated, CHUNK)
                allocated = -(-end // step) * step
                _write_at(segment.fd, bytes(allocated - end), end)
                segment.allocated = allocated
            _write_at(segment.fd, data, segment.size)
        except OSError as exc:
            segment.seal = False
            self._retire(segment)
            self._let_go_if_done(segment)
            raise StoreError(self.log_dir, f"deliver failed: {exc.strerror or exc}") from exc
        segment.size = end
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
                    # No flush: a lost seal only delays the delete.
                    _write_at(segment.fd, SEAL, segment.size)
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
        tmp = temp_name(self.log_dir)
        final = os.path.join(self.log_dir,
                             f"{time.time_ns():020d}-{os.getpid()}-{_process_tag}-{next(_tags)}{SUFFIX}")
        try:
            make_dirs(self.log_dir)  # and refuse a symlink in its place: segments stay in the home
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | NOFOLLOW, FILE_MODE)
        except OSError as exc:
            raise StoreError(self.log_dir, f"deliver failed: {exc.strerror or exc}") from exc
        try:
            header = HEADER.pack(MAGIC, VERSION, HEADER_SIZE << 16, HEADER_SIZE << 16)
            _write_at(fd, header + bytes(START_SIZE - HEADER_SIZE), 0)  # the first records go over these zeros
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


def _write_at(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset``."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


#: Every writer of this process: their segments are sealed at interpreter exit.
_writers: "weakref.WeakSet[SegmentWriter]" = weakref.WeakSet()
_writers_lock = threading.Lock()  # threads make writers while atexit lists them


def _seal_writers() -> None:
    with _writers_lock:
        writers = list(_writers)
    for writer in writers:
        writer.close()


atexit.register(_seal_writers)
