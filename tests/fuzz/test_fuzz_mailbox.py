"""Fuzz: whatever bytes a message file or a segment holds, the maildir reader goes on.

Message bytes decode to a message or raise ``ValueError``, nothing else; a file of any
bytes in ``new/`` is delivered or kept in ``corrupt/``. Segment bytes of any kind never
make the reader raise. Valid records with damage (flipped bytes, truncation, bytes
inserted or written over) deliver every record the damage did not touch, in order,
exactly once per read cycle, and every byte that is not a delivered record is in
``corrupt/``. A damaged header loses no message, unless its cursor happens to name a
position the reader could really have left it at (nothing can tell that apart).

Every example is a real mailbox in a temporary directory; segments are written by
hand, and a held shared ``flock`` stands for a writer that is still alive.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import zlib
from dataclasses import dataclass
from typing import Any, Iterator
from unittest import mock

from actors_runtime.backends.maildir import reading, segment_reader
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.backends.maildir.segment_format import (
    BATCH_FLAG,
    CHUNK,
    HEADER,
    HEADER_SIZE,
    IN_PLACE,
    MAGIC,
    POSITIONS,
    POSITIONS_AT,
    RECORD,
    SEAL,
    VERSION,
    frame,
    frame_batch,
    is_segment,
)
from actors_runtime.messages import MAX_WIRE_NESTING, AgentRef, InboxMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FIRST = HEADER_SIZE << 16
SENDER = AgentRef("fuzz")

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                           max_leaves=16)
VALID = json.loads(InboxMessage.create(SENDER, "task", {"n": 1}, correlation_id="c").to_wire())


@contextlib.contextmanager
def _mailbox() -> Iterator[MaildirMailbox]:
    with tempfile.TemporaryDirectory() as root:
        box = MaildirMailbox(os.path.join(root, "mb"), durability="process")
        try:
            yield box
        finally:
            box.close()


@contextlib.contextmanager
def _writers_checked_at_once() -> Iterator[None]:
    """The reader asks whether a writer is gone every time, not once a second."""
    with mock.patch.object(segment_reader, "WRITER_CHECK_INTERVAL", 0.0), \
            mock.patch.object(reading, "WRITER_CHECK_INTERVAL", 0.0):
        yield


def _decode(data: bytes | str) -> InboxMessage | None:
    """The message, or None for ValueError; any other exception fails the test."""
    try:
        message = InboxMessage.from_wire(data)
    except ValueError:
        return None
    assert isinstance(message.id, str) and isinstance(message.kind, str)
    assert isinstance(message.created_at, str) and isinstance(message.sender.session_id, str)
    for optional in (message.correlation_id, message.sender.role, message.sender.system_id):
        assert optional is None or isinstance(optional, str)
    return message


def _put(directory: str, name: str, data: bytes) -> str:
    """A file written under a hidden name and renamed in, as writers do."""
    with open(os.path.join(directory, "." + name), "wb") as handle:
        handle.write(data)
    os.rename(os.path.join(directory, "." + name), os.path.join(directory, name))
    return os.path.join(directory, name)


def _read_cycle(box: MaildirMailbox) -> list[Any]:
    """One reader's lifetime: recover, then drain and ack until nothing is left."""
    bodies = []
    handed = box.recover()
    for _ in range(200):
        bodies += [d.message.body for d in handed]
        box.ack(handed)
        if not handed and not box.has_new():
            return bodies
        handed = box.drain(limit=7)
    raise AssertionError("the mailbox never ran dry")


def _corrupt(box: MaildirMailbox) -> dict[str, bytes]:
    found = {}
    for name in os.listdir(box.paths.corrupt):
        with open(os.path.join(box.paths.corrupt, name), "rb") as handle:
            found[name] = handle.read()
    return found


# -- message bytes ---------------------------------------------------------------------


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_are_a_message_or_value_error(data: bytes) -> None:
    _decode(data)


@SETTINGS
@given(json_values)
def test_any_json_document_is_a_message_or_value_error(doc: Any) -> None:
    _decode(json.dumps(doc))


@SETTINGS
@given(st.integers(min_value=1, max_value=200_000), st.sampled_from(["[", '{"a":']), st.booleans())
def test_a_body_nested_to_any_depth_is_a_message_or_value_error(depth: int, opener: str, as_bytes: bool) -> None:
    closer = "]" if opener == "[" else "}"
    body = opener * depth + "1" * (opener != "[") + closer * depth
    text = '{"id":"x","from":{"session_id":"s"},"kind":"task","body":' + body + "}"
    message = _decode(text.encode() if as_bytes else text)
    assert (message is None) == (depth + 1 > MAX_WIRE_NESTING), "refused exactly when nested past the limit"


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["id", "from", "kind", "body", "created_at", "correlation_id",
                                           "from.session_id", "from.role", "from.system_id"]), json_values),
                min_size=1, max_size=4))
def test_a_valid_message_with_fields_replaced_is_a_message_or_value_error(changes: list[tuple[str, Any]]) -> None:
    doc = json.loads(json.dumps(VALID))
    for path, value in changes:
        if path.startswith("from.") and isinstance(doc.get("from"), dict):
            doc["from"][path[5:]] = value
        elif not path.startswith("from."):
            doc[path] = value
    _decode(json.dumps(doc))


@SETTINGS
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda doc: json.dumps(doc).encode())))
def test_a_file_of_any_bytes_in_new_is_delivered_or_kept_in_corrupt_and_the_rest_pass(data: bytes) -> None:
    with _mailbox() as box:
        good = [InboxMessage.create(SENDER, "task", f"good-{n}") for n in range(2)]
        _put(box.paths.new, good[0].file_name(), good[0].to_wire())
        _put(box.paths.new, "00000000000000000002-x.json", data)  # its name sorts first
        _put(box.paths.new, good[1].file_name(), good[1].to_wire())
        bodies = _read_cycle(box)
        if _decode(data) is None:
            assert bodies == ["good-0", "good-1"] and list(_corrupt(box).values()) == [data]
        else:
            assert len(bodies) == 3 and bodies[1:] == ["good-0", "good-1"] and _corrupt(box) == {}


# -- segment bytes -----------------------------------------------------------------------


@dataclass
class Built:
    """A segment written whole: its bytes, each record's span and message bodies."""

    data: bytes
    spans: list[tuple[int, int]]
    bodies: list[list[str]]


def _build(sizes: list[int], seal: bool, version: int = VERSION) -> Built:
    """Records as a writer of ``version`` leaves them (in place: zeros to ``CHUNK``)."""
    data = bytearray(HEADER.pack(MAGIC, version, FIRST, FIRST))
    spans, bodies = [], []
    for n, size in enumerate(sizes):
        labels = [f"r{n}m{m}" for m in range(size)]
        payloads = [InboxMessage.create(SENDER, "task", label).to_wire() for label in labels]
        record = frame(payloads[0]) if size == 1 else frame_batch(payloads)
        spans.append((len(data), len(data) + len(record)))
        bodies.append(labels)
        data += record
    if seal:
        data += SEAL
    if version >= IN_PLACE:
        data += bytes(-len(data) % CHUNK)
    return Built(bytes(data), spans, bodies)


#: Damage: ("flip", at, mask) | ("insert", at, bytes) | ("overwrite", at, bytes) | ("truncate", at).
damage_ops = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.one_of(st.binary(min_size=1, max_size=40),
                                                            st.just(SEAL), st.just(b"\0" * 300))),
    st.tuples(st.just("overwrite"), st.floats(0, 1), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
)


def _damage(built: Built, ops: list[tuple[Any, ...]]) -> tuple[bytes, set[int]]:
    """Apply damage past the header; returns the bytes and the records it touched."""
    data = bytearray(built.data)
    spans = list(built.spans)
    touched: set[int] = set()
    for op in ops:
        if len(data) <= HEADER_SIZE:
            break
        at = HEADER_SIZE + int(op[1] * (len(data) - HEADER_SIZE - 1))
        if op[0] == "flip":
            data[at] ^= op[2]
            touched |= {n for n, (start, end) in enumerate(spans) if start <= at < end}
        elif op[0] == "overwrite":
            piece = op[2][:len(data) - at]
            data[at:at + len(piece)] = piece
            touched |= {n for n, (start, end) in enumerate(spans) if start < at + len(piece) and at < end}
        elif op[0] == "insert":
            data[at:at] = op[2]
            touched |= {n for n, (start, end) in enumerate(spans) if start < at < end}
            spans = [(s + len(op[2]), e + len(op[2])) if s >= at else (s, e) for s, e in spans]
        else:
            del data[at:]
            touched |= {n for n, (start, end) in enumerate(spans) if end > at}
    return bytes(data), touched


def _is_subsequence(part: list[Any], whole: list[Any]) -> bool:
    it = iter(whole)
    return all(item in it for item in part)


def _nonzero(data: bytes) -> int:
    return len(data) - data.count(0)


@settings(SETTINGS, max_examples=400)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=8), st.booleans(),
       st.lists(damage_ops, min_size=1, max_size=3), st.booleans(), st.sampled_from([2, 3]))
def test_damaged_records_never_cost_an_untouched_one_and_every_byte_is_delivered_or_kept(
        sizes: list[int], seal: bool, ops: list[tuple[Any, ...]], live: bool, version: int) -> None:
    """Version 2 (appended): every byte is a record, the seal or kept in corrupt/.
    Version 3 (in place): a zero length word is "not written yet" while the writer
    lives, and zeros at the end are the unwritten rest, neither kept nor lost: every
    byte that is not zero is a record, the seal or kept."""
    built = _build(sizes, seal, version)
    data, touched = _damage(built, ops)
    every = [label for labels in built.bodies for label in labels]
    untouched = [label for n, labels in enumerate(built.bodies) if n not in touched for label in labels]
    with _mailbox() as box, _writers_checked_at_once():
        path = _put(box.paths.log, f"{1:020d}-{os.getpid()}-fuzz-0.seg", data)
        got: list[Any] = []
        if live:  # the writer lives: a damaged tail may be a record still being copied in
            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                for _ in range(3):
                    handed = box.drain()
                    got += [d.message.body for d in handed]
                    box.ack(handed)
                assert _is_subsequence(got, every) and len(set(got)) == len(got)
                if version < IN_PLACE:  # in place, damage that reads as zeros waits for the writer
                    assert _is_subsequence(untouched, got), "damage before a whole record is skipped at once"
            finally:
                os.close(fd)  # the writer is gone: what still does not parse is torn
        got += _read_cycle(box)
        assert len(set(got)) == len(got), "a message came twice in one read cycle"
        assert _is_subsequence(got, every), "out of order"
        assert _is_subsequence(untouched, got), "an untouched record was lost"
        delivered = {n for n, labels in enumerate(built.bodies) if labels[0] in got}
        if version < IN_PLACE:
            kept = sum(len(piece) for piece in _corrupt(box).values())
            record_bytes = sum(built.spans[n][1] - built.spans[n][0] for n in delivered)
            sealed = len(SEAL) if data.endswith(SEAL) and len(data) > HEADER_SIZE else 0
            assert record_bytes + kept + sealed == len(data) - HEADER_SIZE, "bytes lost without a trace"
        else:
            kept = sum(_nonzero(piece) for piece in _corrupt(box).values())
            record_bytes = sum(_nonzero(built.data[slice(*built.spans[n])]) for n in delivered)
            written = data.rstrip(b"\0")
            sealed = 4 if written.endswith(SEAL[:4]) and len(data) - len(written) >= 4 \
                and len(written) - 4 >= HEADER_SIZE else 0
            assert record_bytes + kept + sealed == _nonzero(data[HEADER_SIZE:]), "bytes lost without a trace"
        assert not [n for n in os.listdir(box.paths.log) if is_segment(n)], "read to its end, so deleted"


@SETTINGS
@given(st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE), st.binary(max_size=400), st.booleans())
def test_a_segment_of_any_bytes_never_stops_the_reader_and_other_senders_pass(
        header: bytes, body: bytes, keep_magic: bool) -> None:
    if keep_magic:
        header = MAGIC + bytes([VERSION]) + header[5:]
    good = _build([1, 2, 1], seal=True)
    with _mailbox() as box, _writers_checked_at_once():
        _put(box.paths.log, f"{1:020d}-1-random-0.seg", header + body)
        _put(box.paths.log, f"{2:020d}-2-good-0.seg", good.data)
        got = _read_cycle(box)
        expected = [label for labels in good.bodies for label in labels]
        assert [b for b in got if b in expected] == expected


@SETTINGS
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=60)), max_size=6))
def test_records_of_any_payload_with_a_matching_checksum_never_stop_the_reader(
        records: list[tuple[bool, bytes]]) -> None:
    """What a careless writer frames: any payload, flagged a batch or not."""
    body = b"".join(RECORD.pack(len(payload) | (BATCH_FLAG if batch else 0), zlib.crc32(payload)) + payload
                    for batch, payload in records)
    good = _build([2, 1], seal=True)
    with _mailbox() as box, _writers_checked_at_once():
        _put(box.paths.log, f"{1:020d}-1-careless-0.seg", HEADER.pack(MAGIC, VERSION, FIRST, FIRST) + body)
        _put(box.paths.log, f"{2:020d}-2-good-0.seg", good.data)
        got = _read_cycle(box)
        expected = [label for labels in good.bodies for label in labels]
        assert [b for b in got if b in expected] == expected
        assert not [n for n in os.listdir(box.paths.log) if is_segment(n)], "both read to their end, so deleted"


def _positions(built: Built) -> tuple[list[int], set[int]]:
    """Each message's position in order, and every position a reader may leave."""
    positions = [start << 16 | m for (start, _), labels in zip(built.spans, built.bodies) for m in range(len(labels))]
    ends = {built.spans[-1][1] << 16, len(built.data) << 16}
    return positions, set(positions) | ends


header_values = st.one_of(
    st.integers(0, 2**64 - 1),
    st.tuples(st.integers(8, 23), st.integers(1, 255)),  # one flipped byte of the positions
    st.integers(0, 12),  # a real position: the n-th message's (or the end)
)


@settings(SETTINGS, max_examples=250)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=6), st.booleans(), header_values, header_values)
def test_a_damaged_header_loses_no_message_unless_its_cursor_is_a_real_position(
        sizes: list[int], seal: bool, cursor_value: Any, claimed_value: Any) -> None:
    built = _build(sizes, seal)
    positions, legal = _positions(built)
    ends = sorted(legal - set(positions))
    data = bytearray(built.data)
    for field, value in ((0, cursor_value), (1, claimed_value)):
        current = list(POSITIONS.unpack_from(data, POSITIONS_AT))
        if isinstance(value, tuple):
            data[value[0]] ^= value[1]
            continue
        if value <= 12:
            value = (positions + ends)[min(value, len(positions) + len(ends) - 1)]
        current[field] = value
        POSITIONS.pack_into(data, POSITIONS_AT, *current)
    cursor, claimed = POSITIONS.unpack_from(data, POSITIONS_AT)
    every = [label for labels in built.bodies for label in labels]
    with _mailbox() as box, _writers_checked_at_once():
        name = f"{1:020d}-1-header-0.seg"
        _put(box.paths.log, name, bytes(data))
        got = _read_cycle(box)
        copied = f"{name}@0" in _corrupt(box)
        if copied:
            assert got == every, "a distrusted header: every message, from the first"
            assert _corrupt(box)[f"{name}@0"] == bytes(data), "the copy is the segment as found"
        else:
            cursor, claimed = cursor or FIRST, claimed or cursor or FIRST
            assert cursor in legal | {FIRST} and claimed in legal | {FIRST} and cursor <= claimed, \
                "a header was trusted whose positions no reader could have left"
            assert got == every[sum(1 for p in positions if p < cursor):], "from the cursor on, in order"
