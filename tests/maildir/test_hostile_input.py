"""Hostile or careless input in a maildir mailbox: whatever a file in ``new/`` or a
segment holds, the reader keeps going, every readable message is delivered in order,
and what cannot be read is kept in ``corrupt/`` with a logged reason.

Segments are written here byte by byte, as a damaged disk or a careless writer would
leave them; a segment nobody holds a lock on is one whose writer is gone.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import time
import zlib
from pathlib import Path

import pytest
from actors_runtime.backends.maildir import segment_format
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.backends.maildir.segment_format import (
    BATCH_FLAG,
    HEADER,
    HEADER_SIZE,
    INNER,
    MAGIC,
    POSITIONS,
    POSITIONS_AT,
    RECORD,
    SEAL,
    VERSION,
    frame,
    frame_batch,
)
from actors_runtime.messages import AgentRef, InboxMessage
from conftest import wait_until

SENDER = AgentRef("tester")
START = HEADER_SIZE << 16

#: A message nested far deeper than any JSON parser's recursion goes.
DEEP = (b'{"id":"deep","from":{"session_id":"s"},"kind":"task","body":'
        + b"[" * 100_000 + b"]" * 100_000 + b"}")

#: Input that is not a message, of every shape a reader must survive.
UNREADABLE = {
    "deep nesting": DEEP,
    "nesting just past the limit": (b'{"id":"d2","from":{"session_id":"s"},"kind":"task","body":'
                                    + b"[" * 300 + b"]" * 300 + b"}"),
    "bad JSON": b'{"id": "x", "from": ',
    "bad UTF-8": b'{"id":"\xff\xfe","from":{"session_id":"s"},"kind":"task"}',
    "not an object": b'[1, 2, 3]',
    "NaN": b'{"id":"n","from":{"session_id":"s"},"kind":"task","body":NaN}',
    "id of the wrong type": b'{"id":7,"from":{"session_id":"s"},"kind":"task"}',
    "created_at of the wrong type": b'{"id":"c","from":{"session_id":"s"},"kind":"task","created_at":5}',
    "role of the wrong type": b'{"id":"r","from":{"session_id":"s","role":[1]},"kind":"task"}',
    "empty": b"",
}


def _message(body: object) -> InboxMessage:
    return InboxMessage.create(SENDER, "task", body)


def _wire(body: object) -> bytes:
    return _message(body).to_wire()


def _write_segment(box: MaildirMailbox, data: bytes, tag: str = "hand") -> str:
    """Put a segment into ``log/`` as a writer does: made under a hidden name, then
    renamed in. Nobody holds its lock, so its writer counts as gone."""
    name = f"{time.time_ns():020d}-{os.getpid()}-{tag}-0.seg"
    hidden = os.path.join(box.paths.log, "." + name)
    with open(hidden, "wb") as handle:
        handle.write(data)
    path = os.path.join(box.paths.log, name)
    os.rename(hidden, path)
    return path


def _segment(records: list[bytes], cursor: int = START, claimed: int | None = None, seal: bool = True) -> bytes:
    claimed = cursor if claimed is None else claimed
    return HEADER.pack(MAGIC, VERSION, cursor, claimed) + b"".join(records) + (SEAL if seal else b"")


def _drop_file(box: MaildirMailbox, name: str, data: bytes) -> None:
    hidden = os.path.join(box.paths.new, "." + name)
    with open(hidden, "wb") as handle:
        handle.write(data)
    os.rename(hidden, os.path.join(box.paths.new, name))


def _bodies(handed) -> list[object]:
    return [d.message.body for d in handed]


def _corrupt(box: MaildirMailbox) -> dict[str, bytes]:
    return {name: Path(box.paths.corrupt, name).read_bytes() for name in sorted(os.listdir(box.paths.corrupt))}


def _segments(box: MaildirMailbox) -> list[str]:
    return sorted(n for n in os.listdir(box.paths.log) if segment_format.is_segment(n))


@pytest.fixture
def box(tmp_path: Path):
    mailbox = MaildirMailbox(tmp_path / "mb", durability="process")
    yield mailbox
    mailbox.close()


# -- messages that do not decode -------------------------------------------------------


@pytest.mark.parametrize("shape", sorted(UNREADABLE))
def test_an_unreadable_file_in_new_goes_to_corrupt_with_a_reason_and_the_rest_pass(box, caplog, shape):
    _drop_file(box, "00000000000000000001-a.json", _wire("first"))
    _drop_file(box, "00000000000000000002-bad.json", UNREADABLE[shape])
    _drop_file(box, "00000000000000000003-c.json", _wire("last"))
    with caplog.at_level(logging.WARNING):
        assert _bodies(box.drain()) == ["first", "last"]
    assert _corrupt(box) == {"00000000000000000002-bad.json": UNREADABLE[shape]}
    assert any("00000000000000000002-bad.json" in r.getMessage() for r in caplog.records), "a logged reason"


@pytest.mark.parametrize("shape", sorted(UNREADABLE))
def test_an_unreadable_record_of_another_sender_goes_to_corrupt_and_the_rest_pass(box, shape):
    path = _write_segment(box, _segment([frame(_wire("first")), frame(UNREADABLE[shape]), frame(_wire("last"))]))
    assert _bodies(box.drain()) == ["first", "last"]
    # An empty record is no frame at all (a hole reads as zeros): its frame goes.
    expected = UNREADABLE[shape] if UNREADABLE[shape] else frame(b"")
    (name,) = _corrupt(box)
    assert name.startswith(os.path.basename(path) + "@") and _corrupt(box)[name] == expected


def test_an_unreadable_message_inside_a_batch_goes_alone(box):
    _write_segment(box, _segment([frame_batch([_wire("a"), DEEP, _wire("b")]), frame(_wire("c"))]))
    assert _bodies(box.drain()) == ["a", "b", "c"]
    assert list(_corrupt(box).values()) == [DEEP]


def test_a_deep_file_left_in_cur_by_a_crashed_reader_is_quarantined_by_recover(tmp_path):
    root = tmp_path / "mb"
    box = MaildirMailbox(root, durability="process")
    Path(box.paths.cur, "00000000000000000001-deep.json").write_bytes(DEEP)
    box.deliver([_message("after")])
    assert _bodies(box.recover()) == ["after"]
    assert list(_corrupt(box)) == ["00000000000000000001-deep.json"]
    box.close()


def test_a_directory_in_new_whose_name_is_taken_in_cur_does_not_stop_the_mailbox(box):
    Path(box.paths.cur, "00000000000000000002-x.json").mkdir()
    Path(box.paths.cur, "00000000000000000002-x.json", "inside").write_bytes(b"{}")
    Path(box.paths.new, "00000000000000000002-x.json").mkdir()
    _drop_file(box, "00000000000000000003-y.json", _wire("fine"))
    assert _bodies(box.drain()) == ["fine"]
    assert os.listdir(box.paths.new) == []
    assert os.listdir(box.paths.corrupt) == ["00000000000000000002-x.json"]


def test_a_batch_record_whose_messages_do_not_fill_it_is_quarantined_not_fatal(box):
    body = INNER.pack(10_000) + b"{}"  # its one message claims more bytes than the record has
    broken = RECORD.pack(len(body) | BATCH_FLAG, zlib.crc32(body)) + body
    _write_segment(box, _segment([frame(_wire("a")), broken, frame(_wire("b"))]))
    assert _bodies(box.drain()) == ["a", "b"]
    assert list(_corrupt(box).values()) == [broken]


# -- damage inside a segment -----------------------------------------------------------


def _records(count: int) -> list[bytes]:
    return [frame(_wire(n)) for n in range(count)]


def _offset_of(records: list[bytes], index: int) -> int:
    return HEADER_SIZE + sum(len(r) for r in records[:index])


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1:]


def test_one_flipped_byte_inside_a_record_quarantines_that_record_alone(box):
    records = _records(6)
    data = _flip(_segment(records), _offset_of(records, 2) + RECORD.size + 5)
    path = _write_segment(box, data)
    handed = box.drain()
    assert _bodies(handed) == [0, 1, 3, 4, 5]
    assert _corrupt(box) == {f"{os.path.basename(path)}@{_offset_of(records, 2)}":
                             _flip(records[2], RECORD.size + 5)}
    box.ack(handed)
    box.drain()
    assert _segments(box) == [], "all delivered or kept: the segment goes"


def test_a_damaged_length_quarantines_the_bytes_up_to_the_next_record(box):
    records = _records(6)
    data = _flip(_segment(records), _offset_of(records, 2) + 3)  # the length's high byte
    path = _write_segment(box, data)
    assert _bodies(box.drain()) == [0, 1, 3, 4, 5]
    assert _corrupt(box) == {f"{os.path.basename(path)}@{_offset_of(records, 2)}": data[
        _offset_of(records, 2):_offset_of(records, 3)]}


def test_a_length_damaged_to_span_the_next_record_does_not_take_that_record_with_it(box):
    records = _records(4)
    data = bytearray(_segment(records))
    at = _offset_of(records, 1)
    spanning = len(records[1]) - RECORD.size + len(records[2])  # records 1 and 2 as one payload
    struct.pack_into("<I", data, at, spanning)
    _write_segment(box, bytes(data))
    assert _bodies(box.drain()) == [0, 2, 3]
    assert list(_corrupt(box).values()) == [bytes(data[at:_offset_of(records, 2)])]


@pytest.mark.parametrize("garbage", [b"\x07" * 40, b"\0" * 3000, SEAL, b"\xff\xff\xff\xff\x00\x00\x00\x00junk"],
                         ids=["bytes", "a hole", "a seal", "a seal and more"])
def test_bytes_written_between_records_are_quarantined_and_later_records_read(box, garbage):
    records = _records(4)
    at = _offset_of(records, 2)
    data = _segment(records)
    _write_segment(box, data[:at] + garbage + data[at:])
    assert _bodies(box.drain()) == [0, 1, 2, 3]
    assert list(_corrupt(box).values()) == [garbage]


def test_a_live_writers_damaged_record_is_skipped_but_its_damaged_last_record_is_waited_for(box):
    records = _records(4)
    data = _flip(_flip(_segment(records, seal=False), _offset_of(records, 1) + 12), _offset_of(records, 3) + 12)
    path = _write_segment(box, data)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # the writer lives: it may still be copying the last record
        assert _bodies(box.drain()) == [0, 2]
        assert box.drain() == []
        assert list(_corrupt(box)) == [f"{os.path.basename(path)}@{_offset_of(records, 1)}"]
    finally:
        os.close(fd)  # the writer is gone: the damaged tail is torn (once the reader asks again)
    wait_until(lambda: box.drain() == [] and len(_corrupt(box)) == 2)
    assert _corrupt(box)[f"{os.path.basename(path)}@{_offset_of(records, 3)}"] == _flip(records[3], 12)


def test_when_corrupt_cannot_take_damaged_bytes_the_segment_is_set_aside_not_deleted(tmp_path):
    root = tmp_path / "mb"
    box = MaildirMailbox(root, durability="process")
    records = _records(3)
    data = _flip(_segment(records), _offset_of(records, 1) + 12)
    path = _write_segment(box, data)
    os.rmdir(box.paths.corrupt)
    Path(box.paths.corrupt).write_bytes(b"")  # a file where corrupt/ should be
    handed = box.drain()
    assert _bodies(handed) == [0, 2]
    box.ack(handed)
    box.drain()
    box.close()
    aside = os.path.join(box.paths.log, ".damaged-" + os.path.basename(path))
    assert _segments(box) == [] and Path(aside).read_bytes()[HEADER_SIZE:] == data[HEADER_SIZE:], \
        "its damaged bytes exist nowhere else"
    fresh = MaildirMailbox(root, durability="process", create=False)
    assert fresh.recover() == [] and os.path.exists(aside), "no reader reads it, none removes it"
    fresh.close()


# -- a header whose positions cannot be trusted ----------------------------------------


def _set_positions(path: str, cursor: int, claimed: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(POSITIONS_AT)
        handle.write(POSITIONS.pack(cursor, claimed))


def _positions(path: str) -> tuple[int, int]:
    with open(path, "rb") as handle:
        return HEADER.unpack(handle.read(HEADER_SIZE))[2:]


def _acked_segment(tmp_path: Path, count: int, acked: int) -> tuple[Path, str]:
    """A sealed segment of ``count`` messages whose reader acked ``acked`` of them."""
    root = tmp_path / "mb"
    sender = MaildirMailbox(root, durability="process")
    for n in range(count):
        sender.deliver([_message(n)])
    (name,) = _segments(sender)
    sender.close()
    first = MaildirMailbox(root, durability="process", create=False)
    first.ack(first.drain(limit=acked))
    first.close()
    return root, os.path.join(sender.paths.log, name)


def _damage_cases(path: str) -> dict[str, tuple[int, int]]:
    cursor, claimed = _positions(path)
    size = os.path.getsize(path)
    high = cursor ^ (0x01 << 56)
    return {
        "cursor past the end": (high, high),
        "cursor inside a record": (cursor + (7 << 16), claimed + (7 << 16)),
        "claimed before the cursor": (cursor, START),
        "cursor at a message the record does not hold": (cursor | 3, claimed | 3),
        "cursor below the first record": (1 << 16, claimed),
        "claimed past the end": (cursor, (size + 1) << 16),
    }


@pytest.mark.parametrize("case", ["cursor past the end", "cursor inside a record", "claimed before the cursor",
                                  "cursor at a message the record does not hold", "cursor below the first record",
                                  "claimed past the end"])
def test_a_header_that_cannot_be_trusted_is_copied_and_the_segment_read_from_its_first_record(
        tmp_path, caplog, case):
    root, path = _acked_segment(tmp_path, count=5, acked=2)
    _set_positions(path, *_damage_cases(path)[case])
    original = Path(path).read_bytes()
    reader = MaildirMailbox(root, durability="process", create=False)
    with caplog.at_level(logging.WARNING):
        handed = reader.recover()
    assert _bodies(handed) == [0, 1, 2, 3, 4], "acked ones come again; none is lost"
    name = os.path.basename(path)
    assert _corrupt(reader) == {f"{name}@0": original}, "a copy as it was found"
    assert any(name in r.getMessage() and "cannot be trusted" in r.getMessage() for r in caplog.records)
    reader.ack(handed[:3])
    assert _segments(reader) == [name], "kept until every message in it is acked"
    reader.ack(handed[3:])
    reader.drain()
    assert _segments(reader) == []
    reader.close()


def test_a_rewritten_header_is_trusted_by_the_next_reader(tmp_path):
    root, path = _acked_segment(tmp_path, count=5, acked=2)
    _set_positions(path, START + (7 << 16), START + (7 << 16))
    second = MaildirMailbox(root, durability="process", create=False)
    second.ack(second.drain(limit=4))
    second.close()
    third = MaildirMailbox(root, durability="process", create=False)
    assert _bodies(third.recover()) == [4]
    assert len(_corrupt(third)) == 1, "one copy, made by the reader that found the damage"
    third.close()


def test_a_cursor_left_after_skipped_damage_is_trusted_by_the_next_reader(tmp_path):
    root = tmp_path / "mb"
    first = MaildirMailbox(root, durability="process")
    records = _records(5)
    data = _flip(_flip(_segment(records), _offset_of(records, 1) + 3), _offset_of(records, 2) + 12)
    path = _write_segment(first, data)
    handed = first.drain()
    assert _bodies(handed) == [0, 3, 4]
    first.ack(handed[:2])
    first.close()
    assert _positions(path)[0] == _offset_of(records, 4) << 16
    second = MaildirMailbox(root, durability="process", create=False)
    assert _bodies(second.recover()) == [4]
    assert not any(name.endswith("@0") for name in _corrupt(second)), "no copy: the header was trusted"
    second.close()


def test_observers_count_a_distrusted_segment_from_its_first_record(tmp_path):
    root, path = _acked_segment(tmp_path, count=5, acked=2)
    _set_positions(path, *_damage_cases(path)["cursor past the end"])
    observer = MaildirMailbox(root, durability="process", create=False)
    assert observer.counts()["new"] == 5
    assert _corrupt(observer) == {}, "an observer moves nothing"
    observer.close()


def test_a_segment_with_a_header_of_zeros_for_its_positions_is_read_whole(box):
    data = bytearray(_segment(_records(3)))
    struct.pack_into("<QQ", data, POSITIONS_AT, 0, 0)
    _write_segment(box, bytes(data))
    assert _bodies(box.drain()) == [0, 1, 2]
    assert _corrupt(box) == {}


def test_bytes_crafted_to_look_like_long_frames_end_the_search_within_its_budget(caplog):
    from actors_runtime.backends.maildir.segment_repair import CRC_BUDGET, next_frame

    # Every 4 bytes claim a 128 KiB record that fits in the file: checking each would
    # checksum ~30 GB. The search gives up within its budget, and says so.
    claimed = 1 << 17
    garbage = struct.pack("<I", claimed) * ((1 << 20) // 4)
    valid = segment_format.frame(b'{"id":"after"}')
    with caplog.at_level(logging.WARNING):
        assert next_frame(garbage + valid, 0) is None
    assert "no whole frame found" in caplog.text
    assert CRC_BUDGET * len(garbage) < (len(garbage) // 4) * claimed // 100  # the bound is far below the cost
    # Damage that is not crafted is still crossed: a few such words, then a record.
    assert next_frame(garbage[:64] + valid, 0) == 64
