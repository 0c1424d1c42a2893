"""Segments written in place (format version 3): zeros ahead of the records, a zero
length word read as "nothing written yet", the seal before a zero tail, writers
killed mid-stream, and version 2 segments still drained."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import time

import pytest
from actors_runtime.backends.maildir import reading, segment_reader, segment_repair, segment_writer
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.backends.maildir.segment_format import (
    CHUNK,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    RECORD,
    SEAL,
    START_SIZE,
    VERSION,
    frame,
    frame_batch,
    is_segment,
)
from actors_runtime.messages import AgentRef, InboxMessage

SENDER = AgentRef("in-place")
FIRST = HEADER_SIZE << 16


def _message(body, msg_id=None):
    return InboxMessage.create(SENDER, "task", body, msg_id=msg_id)


def _wire(body) -> bytes:
    return _message(body).to_wire()


def _segments(box) -> list[str]:
    return sorted(n for n in os.listdir(box.paths.log) if is_segment(n))


def _put(box, data: bytes, tag: str = "hand") -> str:
    """A segment put into ``log/`` as a writer does (hidden name, then renamed in)."""
    name = f"{time.time_ns():020d}-{os.getpid()}-{tag}-0.seg"
    hidden = os.path.join(box.paths.log, "." + name)
    with open(hidden, "wb") as handle:
        handle.write(data)
    os.rename(hidden, os.path.join(box.paths.log, name))
    return os.path.join(box.paths.log, name)


def _in_place(records: list[bytes], tail: bytes = b"", size: int = CHUNK) -> bytes:
    """A version 3 segment as its writer leaves it: header, records, zeros to ``size``."""
    data = HEADER.pack(MAGIC, VERSION, FIRST, FIRST) + b"".join(records) + tail
    return data + bytes(size - len(data))


def _drain_all(box) -> list:
    """Drain and ack until nothing is handed out; returns the bodies."""
    bodies = []
    while True:
        handed = box.drain()
        if not handed:
            return bodies
        bodies += [d.message.body for d in handed]
        box.ack(handed)


@pytest.fixture
def box(tmp_path):
    mailbox = MaildirMailbox(tmp_path / "mb", durability="process")
    yield mailbox
    mailbox.close()


@pytest.fixture
def writers_checked_at_once(monkeypatch):
    """The reader asks whether a writer is gone every time, not once a second."""
    monkeypatch.setattr(segment_reader, "WRITER_CHECK_INTERVAL", 0.0)
    monkeypatch.setattr(reading, "WRITER_CHECK_INTERVAL", 0.0)


# -- the writer ----------------------------------------------------------------------------


@pytest.mark.parametrize("durability", ["process", "machine"])
def test_records_are_written_over_zeros_the_file_already_holds(tmp_path, durability):
    box = MaildirMailbox(tmp_path / "mb", durability=durability)
    box.deliver([_message("first")])
    writer = box._sender._writer
    path = writer.path
    assert os.path.getsize(path) == START_SIZE, "a quiet sender's segment holds one block"
    with open(path, "rb") as handle:
        assert struct.unpack("<4sB", handle.read(5)) == (b"DAML", 3)
    grown, in_place = [], 0
    for n in range(400):
        before = os.stat(path)
        box.deliver([_message(n)])
        after = os.stat(path)
        if writer._segment.size <= before.st_size:  # it fit: neither size nor blocks moved
            assert (after.st_size, after.st_blocks) == (before.st_size, before.st_blocks)
            in_place += 1
        else:
            grown.append(after.st_size)
    # The zeros ahead double up to CHUNK, then grow by CHUNK; each growth is one record's.
    assert grown == [8192, 16384, 32768, 65536, 131072] and in_place == 400 - len(grown)
    assert [d.message.body for d in box.drain()] == ["first", *range(400)]
    box.close()


def _grown_as_written(size: int) -> bool:
    """A size the zeros ahead can end at: whole blocks."""
    return size % START_SIZE == 0


def test_a_record_crossing_the_zeros_end_extends_them_to_the_next_boundary(box):
    reader = MaildirMailbox(box.paths.root, durability="process", create=False)
    try:
        body = "x" * 9000
        sent = 0
        for n in range(40):  # ~360 KiB: several boundaries crossed, each drained at once
            box.deliver([_message(f"{n}{body}")])
            sent += 1
            size = os.path.getsize(box._sender._writer.path)
            assert _grown_as_written(size) and size >= box._sender._writer._segment.size
            handed = reader.drain()
            assert [d.message.body for d in handed] == [f"{n}{body}"]
            reader.ack(handed)
        big = "y" * (3 * CHUNK)  # one record longer than a chunk of zeros
        box.deliver([_message(big), _message("after")])
        assert [d.message.body for d in reader.drain()] == [big, "after"]
        assert os.listdir(box.paths.corrupt) == []
    finally:
        reader.close()


def test_a_record_ending_exactly_on_a_boundary_is_followed_by_the_next_one(box):
    writer = box._sender._writer
    box.deliver([_message("opened")])
    boundary = os.path.getsize(writer.path)
    room = boundary - writer._segment.size
    # One record that ends exactly at the boundary: no zeros are written past it.
    pad = room - len(frame(_wire("")))
    exact = "z" * pad
    assert len(frame(_wire(exact))) == room
    box.deliver([_message(exact)])
    assert writer._segment.size == boundary == os.path.getsize(writer.path)
    assert [d.message.body for d in box.drain()] == ["opened", exact]
    assert not box.has_new()
    box.deliver([_message("next")])
    assert [d.message.body for d in box.drain()] == ["next"]


# -- the reader: zeros, seals ----------------------------------------------------------------


def test_a_new_segments_zero_tail_is_nothing_yet_not_damage(box, monkeypatch):
    box.deliver([_message("one")])
    tails = []
    real_read_all = segment_reader.read_all
    monkeypatch.setattr(segment_reader, "read_all", lambda fd, at: (tails.append(at), real_read_all(fd, at))[1])
    assert [d.message.body for d in box.drain()] == ["one"]
    assert tails == [], "the zero length word ends the read: the zeros after it are not read"
    assert not box.has_new() and box.drain() == []
    assert os.listdir(box.paths.corrupt) == []
    box.deliver([_message("two")])
    assert box.has_new()
    assert [d.message.body for d in box.drain()] == ["two"]


def test_zeros_before_a_whole_record_of_a_live_writer_are_waited_for_not_skipped(box, writers_checked_at_once):
    # As a reader may see a record spanning two pages while its writer copies it in:
    # the second page already, the first not yet.
    path = _put(box, _in_place([frame(_wire("a")), bytes(100), frame(_wire("b"))]))
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # its writer still lives
        assert _drain_all(box) == ["a"]
        assert os.listdir(box.paths.corrupt) == []
    finally:
        os.close(fd)
    assert _drain_all(box) == ["b"]  # the writer went: what follows the zeros is read
    (kept,) = os.listdir(box.paths.corrupt)  # the zeros, as bytes that are not records
    assert _segments(box) == []


class _FinishedAfterFirstRead:
    """``read_all`` that lets the writer finish a record right after the first read of
    the segment's rest: what a reader sees when its read caught a record's first page
    before the copy ended and, pages later, the next record whole (the writer finished
    the first before it began the next)."""

    def __init__(self, module, path: str, record: bytes, at: int) -> None:
        self.original, self.path, self.record, self.at, self.reads = module.read_all, path, record, at, 0

    def __call__(self, fd: int, start: int) -> bytes:
        data = self.original(fd, start)
        self.reads += 1
        if self.reads == 1:
            with open(self.path, "r+b") as handle:
                handle.seek(self.at)
                handle.write(self.record)
        return data


def _caught_mid_copy(box) -> tuple[str, bytes, int, bytes]:
    """A live writer's segment as a read caught it: "a" whole, "b" half copied in
    (its first 1,500 bytes, then zeros), "n" after it whole."""
    first, record, last = frame(_wire("a")), frame(_wire("b" * 3000)), frame(_wire("n"))
    caught = record[:1500] + bytes(len(record) - 1500)
    path = _put(box, _in_place([first, caught, last]))
    return path, record, HEADER_SIZE + len(first), last


def test_a_record_caught_mid_copy_with_a_whole_one_after_it_is_read_not_skipped(box, monkeypatch,
                                                                                 writers_checked_at_once):
    path, record, at, _ = _caught_mid_copy(box)
    monkeypatch.setattr(segment_reader, "read_all", _FinishedAfterFirstRead(segment_reader, path, record, at))
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # its writer still lives
        assert _drain_all(box) == ["a", "b" * 3000, "n"]
        assert os.listdir(box.paths.corrupt) == []
    finally:
        os.close(fd)


def test_a_cursor_at_a_record_caught_mid_copy_is_trusted_once_a_second_read_finds_it_whole(box, monkeypatch):
    path, record, at, _ = _caught_mid_copy(box)
    fd = os.open(path, os.O_RDONLY)
    try:
        cursor = at << 16
        assert "not where a record starts" in str(segment_repair.header_problem(fd, cursor, cursor))
        monkeypatch.setattr(segment_repair, "read_all", _FinishedAfterFirstRead(segment_repair, path, record, at))
        assert segment_repair.header_problem(fd, cursor, cursor) is None
    finally:
        os.close(fd)


def test_a_seal_before_a_zero_tail_ends_the_segment_while_its_writer_holds_the_lock(box):
    path = _put(box, _in_place([frame(_wire("a")), frame_batch([_wire("b"), _wire("c")])], tail=SEAL))
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # its writer still lives
        assert _drain_all(box) == ["a", "b", "c"]
        assert _segments(box) == [], "sealed and all acked: deleted"
    finally:
        os.close(fd)
    assert os.listdir(box.paths.corrupt) == []


def test_a_seal_followed_by_more_than_zeros_is_damage_not_the_end(box, writers_checked_at_once):
    later = frame(_wire("later"))
    data = bytearray(_in_place([frame(_wire("a"))], tail=SEAL))
    at = len(data) - 4000
    data[at:at + len(later)] = later  # something written past the seal
    _put(box, bytes(data))
    assert _drain_all(box) == ["a", "later"]
    (kept,) = os.listdir(box.paths.corrupt)  # the false seal and the zeros up to the record
    assert _segments(box) == []


def test_the_writers_own_seal_at_close_ends_the_segment(tmp_path):
    root = tmp_path / "mb"
    reader = MaildirMailbox(root, durability="machine")
    sender = MaildirMailbox(root, durability="machine", create=False)
    sender.deliver([_message("only")])
    path = sender._sender._writer.path
    sender.close()
    with open(path, "rb") as handle:
        data = handle.read()
    end = HEADER_SIZE + len(frame(_wire("only")))
    assert data[end:end + len(SEAL)] == SEAL and not any(data[end + len(SEAL):])
    assert _drain_all(reader) == ["only"]
    assert _segments(reader) == []
    reader.close()


# -- writers that died ---------------------------------------------------------------------------


def test_zeros_after_a_dead_writers_last_record_are_not_corruption(box, writers_checked_at_once):
    _put(box, _in_place([frame(_wire(n)) for n in range(3)]))
    assert _drain_all(box) == [0, 1, 2]
    assert os.listdir(box.paths.corrupt) == [] and _segments(box) == []


def test_a_writer_killed_mid_record_leaves_one_torn_record_and_nothing_else_is_lost(box, writers_checked_at_once):
    records = [frame(_wire(n)) for n in range(3)]
    torn = frame(_wire("never sent"))[:11]  # the first bytes of its write, then the kill
    assert torn[-1] != 0
    _put(box, _in_place(records, tail=torn))
    assert _drain_all(box) == [0, 1, 2]
    assert _drain_all(box) == []
    (name,) = os.listdir(box.paths.corrupt)
    with open(os.path.join(box.paths.corrupt, name), "rb") as handle:
        assert handle.read() == torn, "the torn bytes kept, without the zeros after them"
    assert _segments(box) == []


def test_a_writer_killed_between_extending_and_its_record_left_only_zeros(box, writers_checked_at_once):
    # Zeros were written past the old end, the record before them never was: a hole.
    data = _in_place([frame(_wire("kept"))])
    _put(box, data + bytes(CHUNK))
    assert _drain_all(box) == ["kept"]
    assert os.listdir(box.paths.corrupt) == [] and _segments(box) == []


def _send_until_killed(root: str, report: int, body_size: int) -> None:  # pragma: no cover - a child
    """Deliver numbered messages for ever, telling ``report`` each number sent."""
    sender = MaildirMailbox(root, durability="process", create=False)
    n = 0
    while True:
        sender.deliver([_message({"n": n, "pad": "p" * (body_size + n % 97)})])
        os.write(report, struct.pack("<I", n))
        n += 1


@pytest.mark.parametrize("body_size", [150, 5000])
def test_a_sigkilled_writer_loses_no_message_it_sent_and_doubles_none(tmp_path, monkeypatch, body_size):
    monkeypatch.setattr(segment_writer, "SEGMENT_LIMIT", 4 * CHUNK)  # segments rotate too
    root = str(tmp_path / "mb")
    reader = MaildirMailbox(root, durability="process")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            _send_until_killed(root, write_end, body_size)
        finally:
            os._exit(1)
    os.close(write_end)
    sent = -1
    try:
        while sent < 300:  # some boundaries and a few segments
            sent = struct.unpack("<I", os.read(read_end, 4)[-4:])[0]
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        # Whatever the pipe still holds was sent before the kill.
        while chunk := os.read(read_end, 4096):
            sent = struct.unpack("<I", chunk[-4:])[0]
        os.close(read_end)
    monkeypatch.setattr(segment_reader, "WRITER_CHECK_INTERVAL", 0.0)
    monkeypatch.setattr(reading, "WRITER_CHECK_INTERVAL", 0.0)
    got = [body["n"] for body in _drain_all(reader)]
    assert got == list(range(len(got))), "in order, none lost in between, none twice"
    assert len(got) >= sent + 1, "every message whose deliver returned"
    for name in os.listdir(reader.paths.corrupt):  # only a record the kill cut short
        with open(os.path.join(reader.paths.corrupt, name), "rb") as handle:
            kept = handle.read()
        assert len(kept) < RECORD.size or RECORD.unpack_from(kept)[0] > len(kept) - RECORD.size
    assert len(os.listdir(reader.paths.corrupt)) <= 1
    assert _segments(reader) == []
    reader.close()


def test_a_reader_racing_a_live_writer_in_another_process_sees_every_record_once(tmp_path, monkeypatch):
    monkeypatch.setattr(segment_writer, "SEGMENT_LIMIT", 3 * CHUNK)
    root = str(tmp_path / "mb")
    reader = MaildirMailbox(root, durability="process")
    count = 3000
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            sender = MaildirMailbox(root, durability="process", create=False)
            for n in range(count):  # sizes that cross pages and boundaries at every offset
                sender.deliver([_message({"n": n, "pad": "q" * (n * 37 % 3000)})])
            sender.close()
            code = 0
        finally:
            os._exit(code)
    got: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(got) < count and time.monotonic() < deadline:
            handed = reader.drain(limit=50)
            got += [d.message.body["n"] for d in handed]
            reader.ack(handed)
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    got += [body["n"] for body in _drain_all(reader)]
    assert got == list(range(count))
    assert os.listdir(reader.paths.corrupt) == []
    reader.close()


# -- old segments ----------------------------------------------------------------------------


def _appended(records: list[bytes], seal: bool) -> bytes:
    """A version 2 segment as an appending writer left it: no zeros ahead."""
    return HEADER.pack(MAGIC, 2, FIRST, FIRST) + b"".join(records) + (SEAL if seal else b"")


def test_a_sealed_version_2_segment_is_still_read_and_deleted_once_acked(box):
    _put(box, _appended([frame(_wire("old-1")), frame_batch([_wire("old-2"), _wire("old-3")])], seal=True))
    box.deliver([_message("new")])
    assert sorted(_drain_all(box)) == ["new", "old-1", "old-2", "old-3"]
    assert os.listdir(box.paths.corrupt) == []
    assert _segments(box) == [os.path.basename(box._sender._writer.path)], "the old one read, acked, deleted"


def test_a_version_2_segment_whose_writer_still_appends_drains_and_ends_when_it_goes(box, writers_checked_at_once):
    path = _put(box, _appended([frame(_wire("old-1"))], seal=False))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # an old build's writer, still running
        assert _drain_all(box) == ["old-1"]
        assert not box.has_new()
        os.write(fd, frame(_wire("old-2")))
        assert box.has_new()  # a version 2 segment grows: its size says so
        assert _drain_all(box) == ["old-2"]
    finally:
        os.close(fd)  # it exits without sealing
    assert _drain_all(box) == []
    assert _segments(box) == [] and os.listdir(box.paths.corrupt) == []
