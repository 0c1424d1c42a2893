"""runtime.messages: the wire format, its fast codec and its dataclasses-json twin."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
from actors_runtime.errors import InvalidSpec
from actors_runtime.messages import (
    AgentRef,
    AskBody,
    InboxKind,
    InboxMessage,
    ReminderTick,
    ReplyBody,
    ReplyError,
    check_mode,
    derived_msg_id,
    new_msg_id,
    reply_error,
)
from hypothesis import given, settings
from hypothesis import strategies as st

HYPOTHESIS = settings(max_examples=150, deadline=None, database=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
msg_ids = st.uuids().map(str) | st.text(min_size=1, max_size=40)
kinds = st.sampled_from([kind.value for kind in InboxKind]) | st.text(max_size=20)
stamps = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)
).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
senders = st.builds(
    AgentRef,
    session_id=st.text(max_size=30),
    role=st.none() | st.text(max_size=10),
    system_id=st.none() | st.text(max_size=10),
)
messages = st.builds(
    InboxMessage,
    id=msg_ids,
    sender=senders,
    kind=kinds,
    body=json_values,
    created_at=stamps | st.just(""),
    correlation_id=st.none() | msg_ids,
    deliver_at=st.none() | st.floats(min_value=0, max_value=1e10),
    reminder=st.none() | st.builds(ReminderTick, name=st.text(max_size=20),
                                   due_at=st.floats(min_value=0, max_value=1e10),
                                   coalesced=st.integers(min_value=1, max_value=10**6)),
    traceparent=st.none() | st.text(max_size=60),
)


def wire_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "6b0f7c0e-3c59-4b0a-9d3c-1b2b3c4d5e6f",
        "from": {"session_id": "alice", "role": "planner", "system_id": "sys"},
        "kind": "task",
        "body": {"n": 1},
        "created_at": "2026-11-21T05:22:26.123456Z",
        "correlation_id": None,
    }
    doc.update(overrides)
    return doc


@HYPOTHESIS
@given(messages)
def test_the_fast_codec_and_dataclasses_json_agree(message: InboxMessage) -> None:
    wire = message.to_wire()
    assert json.loads(wire) == json.loads(message.to_json())
    assert InboxMessage.from_json(wire) == message
    assert InboxMessage.from_wire(message.to_json()) == message
    assert InboxMessage.from_wire(wire) == message


@HYPOTHESIS
@given(messages)
def test_to_wire_is_the_wire_document_encoded_compactly_byte_for_byte(message: InboxMessage) -> None:
    assert message.to_wire() == json.dumps(message.wire_doc(), separators=(",", ":")).encode()


def test_to_wire_encodes_each_sender_as_it_is_now_even_when_a_new_sender_takes_an_old_ones_place() -> None:
    # The sender's part is kept by the sender object's identity: a sender made after
    # another was collected may get its id, and must not get its text.
    for i in range(3000):
        sender = AgentRef(f"s{i}", None if i % 2 else f"r{i}", f"sys{i % 7}")
        message = InboxMessage.create(sender, InboxKind.TASK, {"i": i})
        assert json.loads(message.to_wire())["from"] == {"session_id": f"s{i}", "role": None if i % 2 else f"r{i}",
                                                         "system_id": f"sys{i % 7}"}
        del sender, message


def test_to_wire_of_fields_of_other_types_encodes_them_as_the_document_does() -> None:
    message = InboxMessage.create(AgentRef("a"), InboxKind.TASK, [1.5, "é", None, True])
    message.kind = InboxKind.ASK  # a str subclass: the document's way
    message.correlation_id = 7  # type: ignore[assignment]  # a careless caller
    assert message.to_wire() == json.dumps(message.wire_doc(), separators=(",", ":")).encode()
    assert json.loads(message.to_wire())["correlation_id"] == 7


def test_to_wire_refuses_a_circular_body_with_value_error_and_a_foreign_object_with_type_error() -> None:
    body: list[Any] = []
    body.append(body)
    message = InboxMessage.create(AgentRef("a"), InboxKind.TASK, body)
    with pytest.raises(ValueError, match="Circular"):
        message.to_wire()
    message.body = {"x": object()}
    with pytest.raises(TypeError, match="not JSON serializable"):
        message.to_wire()
    message.body = {"n": 1}
    assert json.loads(message.to_wire())["body"] == {"n": 1}


@HYPOTHESIS
@given(messages)
def test_file_name_is_the_same_after_a_wire_round_trip(message: InboxMessage) -> None:
    assert InboxMessage.from_wire(message.to_wire()).file_name() == message.file_name()


def test_the_wire_uses_the_key_from_and_omits_created_ns() -> None:
    message = InboxMessage.create(AgentRef("alice", "planner", "sys"), InboxKind.ASK, {"q": 1})
    for encoded in (message.to_wire(), message.to_json()):
        doc = json.loads(encoded)
        assert doc["from"] == {"session_id": "alice", "role": "planner", "system_id": "sys"}
        assert set(doc) == {"id", "from", "kind", "body", "created_at", "correlation_id"}
    assert json.loads(message.to_wire())["kind"] == "ask"


def test_unknown_fields_are_ignored_at_every_level() -> None:
    doc = wire_doc(priority=5, trace={"span": 1})
    doc["from"]["host"] = "elsewhere"
    raw = json.dumps(doc)
    for message in (InboxMessage.from_wire(raw), InboxMessage.from_json(raw)):
        assert message.id == doc["id"]
        assert message.sender == AgentRef("alice", "planner", "sys")
        assert message.body == {"n": 1}
        assert not hasattr(message, "priority")


def test_missing_optional_fields_are_defaulted() -> None:
    raw = json.dumps({"id": "m1", "from": {"session_id": "alice"}, "kind": "task"})
    for message in (InboxMessage.from_wire(raw), InboxMessage.from_json(raw)):
        assert message.sender == AgentRef("alice", None, None)
        assert message.body is None
        assert message.created_at == ""
        assert message.correlation_id is None
        assert message.created_ns == 0
    assert InboxMessage.from_wire(raw).file_name() == f"{0:020d}-m1.json"


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_traceparent_travels_and_a_message_without_one_reads_and_writes_as_before() -> None:
    traced = InboxMessage.create(AgentRef("alice"), InboxKind.TASK, {"n": 1}, traceparent=TRACEPARENT)
    assert json.loads(traced.to_wire())["traceparent"] == TRACEPARENT
    assert InboxMessage.from_wire(traced.to_wire()).traceparent == TRACEPARENT
    assert InboxMessage.from_json(traced.to_json()).traceparent == TRACEPARENT
    plain = InboxMessage.from_wire(json.dumps(wire_doc()))
    assert plain.traceparent is None
    assert "traceparent" not in json.loads(plain.to_wire())
    assert "traceparent" not in json.loads(plain.to_json())


@pytest.mark.parametrize("bad", [17, ["00-x"], {"tp": 1}, "0" * 513, True])
def test_a_malformed_traceparent_is_dropped_and_the_message_kept(bad: Any) -> None:
    message = InboxMessage.from_wire(json.dumps(wire_doc(traceparent=bad)))
    assert message.traceparent is None
    assert message.body == {"n": 1}


def test_unknown_kinds_pass_through_as_strings() -> None:
    message = InboxMessage.from_wire(json.dumps(wire_doc(kind="telepathy")))
    assert message.kind == "telepathy"
    assert json.loads(message.to_wire())["kind"] == "telepathy"


@pytest.mark.parametrize(
    "raw",
    [
        "[]", "null", "1", '"text"', "{}",
        json.dumps({k: v for k, v in wire_doc().items() if k != "id"}),
        json.dumps({k: v for k, v in wire_doc().items() if k != "from"}),
        json.dumps({k: v for k, v in wire_doc().items() if k != "kind"}),
        json.dumps(wire_doc(id=17)),
        json.dumps(wire_doc(id=None)),
        json.dumps(wire_doc(kind=["task"])),
        json.dumps(wire_doc(**{"from": "alice"})),
        json.dumps(wire_doc(**{"from": {"role": "x"}})),
        json.dumps(wire_doc(**{"from": {"session_id": 5}})),
        "not json", "", b"\xff\xfe\x00",
    ],
    ids=repr,
)
def test_from_wire_rejects_malformed_messages_with_value_error(raw: str | bytes) -> None:
    with pytest.raises(ValueError):
        InboxMessage.from_wire(raw)


def test_a_read_message_is_named_from_its_created_at() -> None:
    message = InboxMessage.from_wire(json.dumps(wire_doc(created_at="2026-11-21T05:22:26.123456Z")))
    expected = int(datetime(2026, 11, 21, 5, 22, 26, tzinfo=timezone.utc).timestamp()) * 10**9 + 123_456_000
    assert message.file_name() == f"{expected:020d}-{message.id}.json"
    # An offset form and a naive (taken as UTC) form mean the same instant.
    for variant in ("2026-11-21T05:22:26.123456+00:00", "2026-11-21T05:22:26.123456"):
        again = InboxMessage.from_wire(json.dumps(wire_doc(created_at=variant)))
        assert again.file_name() == message.file_name()
    assert InboxMessage.from_wire(json.dumps(wire_doc(created_at="yesterday"))).file_name().startswith("0" * 20)


def test_a_created_message_keeps_its_name_through_the_wire() -> None:
    message = InboxMessage.create(AgentRef("alice"), InboxKind.TASK, {"n": 1})
    assert InboxMessage.from_wire(message.to_wire()).file_name() == message.file_name()


def test_create_puts_each_argument_in_its_field() -> None:
    sender = AgentRef("alice", "planner", "sys")
    message = InboxMessage.create(sender, InboxKind.REPLY, {"n": 1}, msg_id="m-1", correlation_id="c-1",
                                  deliver_at=12.5, traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    assert (message.id, message.sender, message.kind, message.body) == ("m-1", sender, "reply", {"n": 1})
    assert (message.correlation_id, message.deliver_at, message.reminder) == ("c-1", 12.5, None)
    assert message.traceparent == "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    assert message.file_name() == InboxMessage.from_wire(message.to_wire()).file_name()  # created_ns and created_at agree
    assert type(message.kind) is str and message.created_at.endswith("Z")


def test_create_stamps_now_and_keeps_created_at_and_created_ns_consistent() -> None:
    before = time.time_ns() // 1000 * 1000
    message = InboxMessage.create(AgentRef("alice"), InboxKind.TASK, [1, 2])
    after = time.time_ns()
    # Whole microseconds, strictly increasing per process (may run ahead of the clock
    # by a few microseconds after a burst of sends).
    assert before <= message.created_ns <= after + 1_000_000 and message.created_ns % 1000 == 0
    assert uuid.UUID(message.id).version == 4
    assert message.kind == "task" and type(message.kind) is str
    # created_at carries exactly the same instant, so the file name survives the wire.
    parsed = InboxMessage.from_wire(message.to_wire())
    assert parsed.file_name() == message.file_name()
    stamps = [InboxMessage.create(AgentRef("alice"), "task").created_ns for _ in range(1000)]
    assert stamps == sorted(set(stamps))  # one sender's order is the delivery order
    fixed = InboxMessage.create(AgentRef("alice"), "reply", msg_id="given", correlation_id="asked")
    assert (fixed.id, fixed.correlation_id) == ("given", "asked")


def test_file_name_is_twenty_digit_nanos_then_id() -> None:
    message = InboxMessage.create(AgentRef("alice"), "task")
    name = message.file_name()
    stamp, _, rest = name.partition("-")
    assert len(stamp) == 20 and stamp.isdigit() and int(stamp) == message.created_ns
    assert rest == f"{message.id}.json"


@HYPOTHESIS
@given(st.lists(st.tuples(stamps, st.uuids().map(str)), min_size=2, max_size=8))
def test_file_names_sort_in_created_at_order_with_the_id_breaking_ties(
    pairs: list[tuple[str, str]],
) -> None:
    parsed = [
        InboxMessage.from_wire(json.dumps(wire_doc(id=msg_id, created_at=stamp))) for stamp, msg_id in pairs
    ]
    by_name = sorted(parsed, key=lambda m: m.file_name())
    by_time = sorted(parsed, key=lambda m: (datetime.fromisoformat(m.created_at.replace("Z", "+00:00")), m.id))
    assert [m.id for m in by_name] == [m.id for m in by_time]


def test_successively_created_messages_sort_in_creation_order() -> None:
    created = [InboxMessage.create(AgentRef("alice"), "task", n) for n in range(50)]
    assert sorted(created, key=lambda m: m.file_name()) == created


def test_derived_msg_id_is_deterministic_and_distinct() -> None:
    parent = "6b0f7c0e-3c59-4b0a-9d3c-1b2b3c4d5e6f"
    first = derived_msg_id(parent, 0)
    assert first == derived_msg_id(parent, 0)
    assert uuid.UUID(first).version == 5
    ids = {derived_msg_id(parent, n) for n in range(100)} | {derived_msg_id("other", n) for n in range(100)}
    assert len(ids) == 200
    assert parent not in ids


def test_derived_msg_ids_stay_the_uuid5_they_always_were() -> None:
    # A handler re-run after an upgrade must re-send the ids the old version sent.
    namespace = uuid.UUID("6f1c2a34-7d0e-4b8e-9a52-3c1d2e4f5a60")
    for n, parent in enumerate(["6b0f7c0e-3c59-4b0a-9d3c-1b2b3c4d5e6f", "x", "ünïcode/42"]):
        assert derived_msg_id(parent, n) == str(uuid.uuid5(namespace, f"{parent}/{n}"))


def test_new_msg_ids_are_fresh_uuid4s() -> None:
    ids = {new_msg_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)


def test_a_forked_child_never_hands_out_its_parents_next_ids() -> None:
    new_msg_id()  # random bytes for the next ids are now held in this process
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids, reported, then out without any cleanup of the parent's
        os.write(write_end, " ".join(new_msg_id() for _ in range(300)).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as handle:
        childs = set(handle.read().split())
    assert len(childs) == 300
    assert not childs & {new_msg_id() for _ in range(300)}


@pytest.mark.parametrize("mode", ["query", "steer"])
def test_check_mode_accepts_the_two_modes(mode: str) -> None:
    assert check_mode(mode) == mode


@pytest.mark.parametrize("mode", ["Query", "", None, "write"], ids=repr)
def test_check_mode_refuses_anything_else(mode: object) -> None:
    with pytest.raises(InvalidSpec, match="ask mode"):
        check_mode(mode)


def test_ask_and_reply_bodies_round_trip_and_default() -> None:
    assert AskBody.from_json(AskBody(question={"q": 1}, mode="steer").to_json()) == AskBody({"q": 1}, "steer")
    assert AskBody.from_dict({"question": "x", "extra": 1}) == AskBody("x", "query")
    failed = ReplyBody(error=ReplyError("ValueError", "bad", "Traceback ..."))
    assert ReplyBody.from_json(failed.to_json()) == failed
    assert ReplyBody.from_dict({"answer": 42}) == ReplyBody(answer=42, error=None)


class LocalError(Exception):
    pass


def test_reply_error_names_builtins_plainly_and_others_by_module() -> None:
    assert reply_error(ValueError("bad"), "tb") == ReplyError("ValueError", "bad", "tb")
    described = reply_error(LocalError("oops"))
    assert described.type == f"{__name__}.LocalError"
    assert described.message == "oops" and described.traceback == ""


@pytest.mark.parametrize("extra", [
    {"deliver_at": "soon"}, {"deliver_at": True}, {"deliver_at": 1e400},
    {"reminder": "r"}, {"reminder": {"name": 1, "due": 1.0}}, {"reminder": {"name": "r", "due": "x"}},
    {"reminder": {"name": "r", "due": 1.0, "coalesced": 0}}, {"reminder": {"name": "r", "due": 1.0, "coalesced": 1.5}},
])
def test_timer_fields_of_the_wrong_type_are_refused_with_value_error_only(extra) -> None:
    with pytest.raises(ValueError):
        InboxMessage.from_wire(json.dumps(wire_doc(**extra)))


def test_timer_fields_are_on_the_wire_only_when_set_and_read_back() -> None:
    message = InboxMessage.create(AgentRef("alice"), InboxKind.TASK, {"n": 1}, deliver_at=12.5)
    message.reminder = ReminderTick("beat", 10.0, 3)
    doc = json.loads(message.to_wire())
    assert doc["deliver_at"] == 12.5 and doc["reminder"] == {"name": "beat", "due": 10.0, "coalesced": 3}
    back = InboxMessage.from_wire(message.to_wire())
    assert (back.deliver_at, back.reminder) == (12.5, ReminderTick("beat", 10.0, 3))
    assert back.reminder.due == datetime(1970, 1, 1, 0, 0, 10, tzinfo=timezone.utc)
    assert "deliver_at" not in json.loads(InboxMessage.create(AgentRef("a"), "task").to_wire())


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("padding", ["", " \n", "\t"])
def test_from_wire_reads_what_json_loads_reads_in_any_json_encoding_with_whitespace_around(
        encoding: str, padding: str) -> None:
    wire = InboxMessage.create(AgentRef("a", "r", "s"), "ask", {"q": ["é", 1.5, None]}).to_wire()
    raw = (padding + wire.decode() + padding).encode(encoding)
    assert json.loads(raw) == json.loads(wire)
    assert InboxMessage.from_wire(raw) == InboxMessage.from_wire(wire)


@pytest.mark.parametrize("raw", [b'{"id":"x","from":{"session_id":"a"},"kind":"task"}{}',
                                 b'{"id":"x","from":{"session_id":"a"},"kind":"task"} x',
                                 b'{"id":"x","from":{"session_id":"a"},"kind":"task","n":NaN}',
                                 b'{"id":"x","from":{"session_id":"a"},"kind":"task"', b"{", b"{}}"])
def test_from_wire_refuses_what_follows_or_breaks_a_document_as_json_would(raw: bytes) -> None:
    with pytest.raises(ValueError):
        InboxMessage.from_wire(raw)


def test_messages_read_from_one_sender_share_its_frozen_ref_and_equal_a_fresh_one() -> None:
    wires = [InboxMessage.create(AgentRef("a", None, "s"), "task", {}).to_wire() for _ in range(2)]
    first, second = (InboxMessage.from_wire(w) for w in wires)
    assert first.sender is second.sender and first.sender == AgentRef("a", None, "s")
