"""The maildir mailbox: deliver / drain / ack / recover, dead letters, backpressure, doorbell.

Some of these are promises every backend makes (the contract suite states them for
all); here they are held to the maildir mailbox, with its files in view.

The writer processes of the concurrency test are started with "spawn" and run a
module-level target, so this module imports nothing heavier than the runtime.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
import types
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any, Iterator

import pytest
from actors_runtime.backends.base import Delivered
from actors_runtime.backends.maildir import delivery, reading, segment_writer
from actors_runtime.backends.maildir.dead_letters import read_dead_letters
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.backends.maildir.quarantine import STALE_TEMP_AGE
from actors_runtime.backends.maildir.reading import Receipt
from actors_runtime.errors import ActorError, MailboxFull, StoreError
from actors_runtime.messages import AgentRef, InboxMessage
from conftest import sleeps_observed

ALICE = AgentRef("alice", "tester", "sys")


def message(msg_id: str, body: Any = None, *, ns: int | None = None) -> InboxMessage:
    """A message with a chosen id (and, if given, a chosen creation time)."""
    if ns is None:
        return InboxMessage.create(ALICE, "task", body, msg_id=msg_id)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9 // 1000:06d}Z"
    return InboxMessage(id=msg_id, sender=ALICE, kind="task", body=body, created_at=stamp, created_ns=ns)


def names(directory: str) -> list[str]:
    return sorted(os.listdir(directory))


def is_empty(box: MaildirMailbox) -> bool:
    """Nothing waiting or handed out."""
    return box.pending_count() == 0


def waiting(box: MaildirMailbox) -> list[str]:
    """Ids of the messages waiting (delivered, not handed out), in the order they would be."""
    return [m.id for m in box.peek("new")]


def claimed(box: MaildirMailbox) -> list[str]:
    """Ids of the messages handed out and not acked."""
    return [m.id for m in box.peek("cur")]


def drop_file(box: MaildirMailbox, msg: InboxMessage | bytes, name: str | None = None) -> str:
    """Deliver as another program would, by the Maildir discipline: temp, then rename."""
    data = msg if isinstance(msg, bytes) else msg.to_wire()
    name = name or (msg.file_name() if isinstance(msg, InboxMessage) else "bad.json")
    tmp = os.path.join(box.paths.new, f".tmp-by-hand-{name}")
    with open(tmp, "wb") as handle:
        handle.write(data)
    final = os.path.join(box.paths.new, name)
    os.rename(tmp, final)
    return final


@pytest.fixture
def box(tmp_path: Path) -> Iterator[MaildirMailbox]:
    handle = MaildirMailbox(tmp_path / "mailbox", durability="process")
    yield handle
    handle.close()


@pytest.fixture(scope="module", autouse=True)
def resource_tracker_running() -> None:
    """Start multiprocessing's resource tracker (a long-lived helper process that
    "spawn" starts on first use) before the leak check takes its snapshot."""
    resource_tracker.ensure_running()


# -- the basic cycle ------------------------------------------------------------------------

@pytest.mark.parametrize("level", ["machine", "process"])
def test_deliver_drain_ack_empties_the_mailbox(tmp_path: Path, level: str) -> None:
    box = MaildirMailbox(tmp_path / "mailbox", durability=level)  # type: ignore[arg-type]
    try:
        sent = [message(f"m{n}", {"n": n}) for n in range(3)]
        for m in sent:
            assert box.deliver([m]) is None
        assert names(box.paths.new) == [], "a delivery is logged, not a Maildir file"
        (segment,) = os.listdir(box.paths.log)  # this handle's own log
        assert segment.endswith(".seg")
        assert box.pending_count() == 3 and box.has_new() and not is_empty(box)
        assert waiting(box) == ["m0", "m1", "m2"]
        handed = box.drain()
        assert [d.message for d in handed] == sent
        assert not box.has_new()
        assert box.pending_count() == 3, "handed-out but unacked messages are still pending"
        assert box.counts() == {"new": 0, "cur": 3, "corrupt": 0, "dead": 0}
        for delivered in handed:
            assert box.ack([delivered]) == 1
        assert is_empty(box)
        assert box.counts() == {"new": 0, "cur": 0, "corrupt": 0, "dead": 0}
        assert box.drain() == []
    finally:
        box.close()


def test_an_observer_sees_what_the_reader_has_claimed(tmp_path: Path) -> None:
    root = tmp_path / "mailbox"
    reader = MaildirMailbox(root, durability="process")
    sender = MaildirMailbox(root, durability="process", create=False)
    try:
        for n in range(3):
            sender.deliver([message(f"m{n}")])
        reader.drain(limit=1)
        observer = MaildirMailbox(root, create=False)
        assert observer.counts() == {"new": 2, "cur": 1, "corrupt": 0, "dead": 0}
        assert [m.id for m in observer.peek("cur")] == ["m0"]
    finally:
        reader.close()
        sender.close()


def test_ack_retires_the_handed_out_message(box: MaildirMailbox) -> None:
    # (Acks by id are gone: the reader acks the Delivered it was handed.)
    box.deliver([message("m1")])
    box.deliver([message("m2")])
    first, _ = box.drain()
    assert box.ack([first]) == 1
    assert box.ack([first]) == 0
    assert claimed(box) == ["m2"]


def test_ack_does_not_touch_messages_not_handed_out(box: MaildirMailbox) -> None:
    # A message given back is queued again, not handed out: an ack of it (a stale
    # Delivered) must leave it waiting, as an ack by its id did.
    box.deliver([message("m1")])
    handed = box.drain()
    box.give_back(handed)
    assert box.ack(handed) == 0
    assert waiting(box) == ["m1"]
    again = box.drain()
    assert [d.id for d in again] == ["m1"]
    assert box.ack(again) == 1


def test_one_senders_messages_come_in_the_order_sent_whatever_their_stamps(box: MaildirMailbox) -> None:
    base = 1_763_702_546_000_000_000
    for msg_id, offset in {"c": 3_000, "a": 1_000, "b": 2_000}.items():
        box.deliver([message(msg_id, ns=base + offset)])
    assert [d.id for d in box.drain()] == ["c", "a", "b"]


def test_messages_of_different_senders_are_merged_by_creation_time(tmp_path: Path) -> None:
    root = tmp_path / "mailbox"
    reader = MaildirMailbox(root, durability="process")
    first = MaildirMailbox(root, durability="process", create=False)
    second = MaildirMailbox(root, durability="process", create=False)
    base = 1_763_702_546_000_000_000
    try:
        first.deliver([message("a", ns=base + 1_000_000)])
        second.deliver([message("b", ns=base + 2_000_000)])
        first.deliver([message("c", ns=base + 3_000_000)])
        drop_file(reader, message("d", ns=base + 2_500_000))
        second.deliver([message("e", ns=base + 4_000_000)])
        assert [d.id for d in reader.drain()] == ["a", "b", "d", "c", "e"]
    finally:
        for handle in (reader, first, second):
            handle.close()


def test_drain_limit_hands_out_the_oldest_first(box: MaildirMailbox) -> None:
    for n in range(5):
        box.deliver([message(f"m{n}")])
    assert [d.id for d in box.drain(limit=2)] == ["m0", "m1"]
    assert box.more_waiting
    assert waiting(box) == ["m2", "m3", "m4"]
    assert [d.id for d in box.drain()] == ["m2", "m3", "m4"]
    assert not box.more_waiting


def test_peek_reads_without_handing_out(box: MaildirMailbox) -> None:
    box.deliver([message("m1")])
    box.deliver([message("m2")])
    assert waiting(box) == ["m1", "m2"]
    assert waiting(box) == ["m1", "m2"]
    box.drain(limit=1)
    assert claimed(box) == ["m1"]
    assert waiting(box) == ["m2"]
    with pytest.raises(ValueError):
        list(box.peek("dead"))


def test_take_hands_out_one_kind_and_leaves_the_rest_in_order(box: MaildirMailbox) -> None:
    box.deliver([message("t1")])
    box.deliver([InboxMessage.create(ALICE, "reply", {"answer": 1}, msg_id="r1", correlation_id="q")])
    box.deliver([message("t2")])
    assert [d.id for d in box.take({"reply"})] == ["r1"]
    assert [d.id for d in box.drain()] == ["t1", "t2"]


def test_recover_yields_unacked_leftovers_from_a_fresh_handle(tmp_path: Path) -> None:
    root = tmp_path / "mailbox"
    sender = MaildirMailbox(root, durability="process")
    first = MaildirMailbox(root, durability="process", create=False)
    for n in range(5):
        sender.deliver([message(f"m{n}", {"n": n})])
    handed = first.drain(limit=4)
    first.ack([handed[0], handed[2]])
    del first  # the activation "crashed" holding m1 and m3 (never closed)

    second = MaildirMailbox(root, durability="process", create=False)
    try:
        recovered = second.recover()
        # m0 is gone for good; m2 comes again, held back by m1 (see the next test).
        assert [d.id for d in recovered] == ["m1", "m2", "m3", "m4"]
        assert [d.message.body for d in recovered] == [{"n": n} for n in range(1, 5)]
        assert second.drain() == [], "each is handed out once per handle"
        second.ack(recovered)
        assert is_empty(second)
    finally:
        second.close()
        sender.close()


def test_acks_held_back_by_an_earlier_unacked_message_are_redelivered_once(tmp_path: Path) -> None:
    """The cursor stops at the first unacked message; a new reader sees the acked ones
    after it again (the worker's AdmittedSet drops them), and nothing else."""
    root = tmp_path / "mailbox"
    sender = MaildirMailbox(root, durability="process")
    reader = MaildirMailbox(root, durability="process", create=False)
    for n in range(3):
        sender.deliver([message(f"m{n}")])
    handed = reader.drain()
    reader.ack([handed[1], handed[2]])
    assert reader.counts()["cur"] == 1 and reader.pending_count() == 1
    fresh = MaildirMailbox(root, durability="process", create=False)
    try:
        assert [d.id for d in fresh.recover()] == ["m0", "m1", "m2"]
    finally:
        fresh.close()
        reader.close()
        sender.close()


def test_recover_sweeps_only_stale_temp_files(box: MaildirMailbox) -> None:
    stale = os.path.join(box.paths.new, ".tmp-stale")
    fresh = os.path.join(box.paths.new, ".tmp-fresh")
    for path in (stale, fresh):
        with open(path, "wb") as handle:
            handle.write(b"half a message")
    old = time.time() - STALE_TEMP_AGE - 60
    os.utime(stale, (old, old))
    assert box.pending_count() == 0 and not box.has_new(), "temp files are not messages"
    assert box.drain() == []
    box.recover()
    assert not os.path.exists(stale)
    assert os.path.exists(fresh), "a sender may still be writing a fresh temp file"


# -- Maildir files from other writers -------------------------------------------------------

@pytest.mark.parametrize(
    "bad", [b"not json", b"[]", b'{"id": 1}', b"\xff\xfe garbage", b""], ids=repr
)
def test_unparsable_files_go_to_corrupt_and_good_ones_pass(box: MaildirMailbox, bad: bytes) -> None:
    drop_file(box, message("good1", ns=10**18))
    bad_name = f"{10**18 + 1:020d}-bad.json"
    drop_file(box, bad, bad_name)
    drop_file(box, message("good2", ns=10**18 + 2))
    assert [d.id for d in box.drain()] == ["good1", "good2"]
    assert names(box.paths.corrupt) == [bad_name]
    assert names(box.paths.new) == []
    assert claimed(box) == ["good1", "good2"]
    with open(os.path.join(box.paths.corrupt, bad_name), "rb") as handle:
        assert handle.read() == bad, "quarantine keeps the bytes for inspection"


def test_a_file_corrupted_in_cur_is_quarantined_by_recover(box: MaildirMailbox) -> None:
    drop_file(box, message("m1", ns=10**18))
    drop_file(box, message("m2", ns=10**18 + 1))
    handed = box.drain()
    with open(handed[0].receipt.path, "wb") as handle:
        handle.write(b"{torn")
    assert [d.id for d in box.recover()] == ["m2"]
    assert names(box.paths.corrupt) == [os.path.basename(handed[0].receipt.path)]


def test_ack_is_idempotent(box: MaildirMailbox) -> None:
    box.deliver([message("m1")])
    drop_file(box, message("f1"))
    logged, dropped = box.drain()
    for delivered in (logged, dropped):
        assert box.ack([delivered]) == 1
        assert box.ack([delivered]) == 0
    # An ack naming only its file (a Delivered made afresh from the receipt's path):
    assert box.ack([Delivered(dropped.message, Receipt(dropped.receipt.path))]) == 0
    assert is_empty(box)


def test_acking_one_of_two_copies_with_the_same_id_leaves_the_other(box: MaildirMailbox) -> None:
    box.deliver([message("same", {"copy": 1})])
    box.deliver([message("same", {"copy": 2})])
    handed = box.drain()
    assert [d.message.body for d in handed] == [{"copy": 1}, {"copy": 2}]
    assert box.ack([handed[0]]) == 1
    assert [m.body for m in box.peek("cur")] == [{"copy": 2}]
    assert box.ack([handed[1]]) == 1
    assert is_empty(box)


def test_a_message_id_that_is_not_one_path_component_is_refused(tmp_path: Path) -> None:
    box = MaildirMailbox(tmp_path / "mailbox", durability="process")
    try:
        evil = message("x/../../../escaped")
        with pytest.raises(ActorError):
            box.deliver([evil])
        with pytest.raises(ActorError):
            box.deliver([message("fine"), evil])
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mailbox"]
        assert box.counts() == {"new": 0, "cur": 0, "corrupt": 0, "dead": 0}
    finally:
        box.close()


def test_a_logged_message_with_an_unsafe_id_is_buried_under_a_safe_name(box: MaildirMailbox) -> None:
    evil = message("x/../../escaped")
    box._sender._writer.append([evil.to_wire()])  # another program's writer, which did not check
    (handed,) = box.drain()
    assert box.bury(handed, "poison", 3) is None
    ((_, path),) = read_dead_letters(box.paths)
    assert os.path.dirname(path) == box.paths.dead
    assert "escaped" not in os.path.basename(path)
    assert [letter.message.id for letter in box.dead_letters()] == ["x/../../escaped"]


def test_opening_a_missing_mailbox_without_create_raises_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no mailbox here"):
        MaildirMailbox(tmp_path / "absent", create=False)
    assert not (tmp_path / "absent").exists()


# -- backpressure -------------------------------------------------------------------------

def test_deliver_refuses_with_mailbox_full_above_max_pending(tmp_path: Path) -> None:
    box = MaildirMailbox(tmp_path / "mailbox", durability="process", max_pending=3)
    try:
        for n in range(3):
            box.deliver([message(f"m{n}")])
        with pytest.raises(MailboxFull) as info:
            box.deliver([message("overflow")])
        assert (info.value.pending, info.value.limit) == (3, 3)
        assert waiting(box) == ["m0", "m1", "m2"]
        # Claiming makes room: the limit is on what waits to be handed out.
        box.drain(limit=1)
        box.deliver([message("fits")])
        assert waiting(box) == ["m1", "m2", "fits"]
    finally:
        box.close()


def test_a_fresh_handle_also_sees_the_mailbox_full(tmp_path: Path) -> None:
    root = tmp_path / "mailbox"
    filler = MaildirMailbox(root, durability="process", max_pending=2)
    other = MaildirMailbox(root, durability="process", max_pending=2, create=False)
    try:
        filler.deliver([message("m1")])
        filler.deliver([message("m2")])
        with pytest.raises(MailboxFull):
            other.deliver([message("m3")])
    finally:
        filler.close()
        other.close()


def test_a_blocking_deliver_succeeds_once_a_reader_drains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "mailbox"
    sender = MaildirMailbox(root, durability="process", max_pending=2)
    reader = MaildirMailbox(root, durability="process", max_pending=2, create=False)
    sender.deliver([message("m1")])
    sender.deliver([message("m2")])

    waits = sleeps_observed(monkeypatch, delivery)  # deliver found the box full
    outcome: dict[str, Any] = {}

    def blocked_send() -> None:
        try:
            outcome["result"] = sender.deliver([message("m3")], block_timeout=30.0)
            outcome["path"] = sender._sender._writer.path  # where it went
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=blocked_send)
    thread.start()
    try:
        assert waits.wait(10), "deliver never waited for room"
        assert thread.is_alive() and not outcome, "deliver returned while the mailbox was full"
        assert [d.id for d in reader.drain(limit=1)] == ["m1"]
    finally:
        thread.join(30)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert os.path.dirname(outcome["path"]) == sender.paths.log
    assert waiting(reader) == ["m2", "m3"]
    sender.close()
    reader.close()


def test_a_blocking_deliver_times_out_with_mailbox_full(tmp_path: Path) -> None:
    box = MaildirMailbox(tmp_path / "mailbox", durability="process", max_pending=1)
    try:
        box.deliver([message("m1")])
        started = time.monotonic()
        with pytest.raises(MailboxFull):
            box.deliver([message("m2")], block_timeout=0.2)
        elapsed = time.monotonic() - started
        assert 0.2 <= elapsed < 5.0
        assert waiting(box) == ["m1"]
    finally:
        box.close()


# -- dead letters -------------------------------------------------------------------------

def test_bury_then_dead_letters_then_requeue(box: MaildirMailbox) -> None:
    poison = message("poison", {"boom": True}, ns=10**18)
    box.deliver([poison])
    box.deliver([message("next", ns=10**18 + 1)])
    handed = box.drain(limit=1)
    before = time.time()
    assert box.bury(handed[0], "killed the worker 3 times", attempts=3) is None
    (dead_name,) = names(box.paths.dead)
    dead_path = os.path.join(box.paths.dead, dead_name)
    assert claimed(box) == []

    (letter,) = box.dead_letters()
    assert letter.message == poison
    assert letter.reason == "killed the worker 3 times"
    assert letter.attempts == 3
    assert before <= letter.dead_at <= time.time()
    assert [path for _, path in read_dead_letters(box.paths)] == [dead_path]

    assert box.requeue("poison") is True
    assert box.dead_letters() == []
    assert names(box.paths.dead) == []
    assert waiting(box) == ["next", "poison"], "requeued at the back of the queue"
    drained = box.drain()
    assert [d.id for d in drained] == ["next", "poison"]
    assert drained[1].message == poison


def test_requeue_of_an_unknown_id_returns_false(box: MaildirMailbox) -> None:
    assert box.requeue("nobody") is False


def test_unreadable_dead_letters_are_skipped(box: MaildirMailbox) -> None:
    box.deliver([message("poison")])
    (claimed,) = box.drain()
    box.bury(claimed, "reason", 1)
    with open(os.path.join(box.paths.dead, f"{0:020d}-junk.json"), "wb") as handle:
        handle.write(b"[not an envelope")
    with open(os.path.join(box.paths.dead, f"{1:020d}-nomsg.json"), "wb") as handle:
        handle.write(json.dumps({"reason": "no message"}).encode())
    assert [letter.message.id for letter in box.dead_letters()] == ["poison"]


# -- the doorbell -------------------------------------------------------------------------

def test_a_delivery_rings_the_doorbell(tmp_path: Path) -> None:
    root = tmp_path / "mailbox"
    reader = MaildirMailbox(root, durability="process")
    reader.claim()  # the reader's doorbell is open from here on
    sender = MaildirMailbox(root, durability="process", create=False)
    try:
        woke: list[bool] = []
        waiter = threading.Thread(target=lambda: woke.append(reader.wait(10.0)))
        waiter.start()
        sender.deliver([message("m1")])
        waiter.join(15)
        assert woke == [True]
        assert [d.id for d in reader.drain()] == ["m1"]  # drain clears the bell first
        assert reader.wait(0.05) is False, "the drain swallowed the ring"
    finally:
        sender.close()
        reader.close()


def test_at_machine_a_delivery_rings_before_its_flush_and_returns_after_it(tmp_path: Path, monkeypatch) -> None:
    """The reader can take the records while the sender's flush runs; the sender still
    returns only once they are on disk."""
    root = tmp_path / "mailbox"
    reader = MaildirMailbox(root, durability="machine")
    reader.claim()
    sender = MaildirMailbox(root, durability="machine", create=False)
    seen_at_flush: list[tuple[bool, list[str]]] = []
    original = segment_writer.sync_data

    def flush(fd: int) -> None:
        seen_at_flush.append((reader.wait(0), [d.id for d in reader.drain()]))  # rung, and readable
        original(fd)

    try:
        sender.deliver([message("m0")])  # the segment exists (its first flush: the directory too)
        reader.ack(reader.drain())
        monkeypatch.setattr(segment_writer, "sync_data", flush)
        assert reader.wait(0) is False
        sender.deliver([message("m1"), message("m2")])
        assert seen_at_flush == [(True, ["m1", "m2"])]
    finally:
        sender.close()
        reader.close()


def test_a_ring_makes_wait_return_true(box: MaildirMailbox) -> None:
    box.claim()
    box.ring()
    assert box.wait(5.0) is True
    assert box.wait(0) is True, "a ring stays until the reader looks"
    box.drain()
    assert box.wait(0) is False


def test_wake_from_another_thread_ends_a_wait_once(box: MaildirMailbox) -> None:
    box.claim()
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(box.wait(10.0)))
    waiter.start()
    box.wake()
    waiter.join(15)
    assert woke == [True]
    assert box.wait(0) is False, "a wake-up is consumed by the wait it ended"


def test_wait_returns_false_after_its_timeout_when_nobody_rang(box: MaildirMailbox) -> None:
    started = time.monotonic()
    assert box.wait(0.1) is False
    assert time.monotonic() - started >= 0.1


def test_ring_without_a_reader_does_not_raise(box: MaildirMailbox) -> None:
    box.ring()
    box.deliver([message("m1")])
    # A reader that came and went: the sender's descriptor now meets EPIPE.
    reader = MaildirMailbox(box.root, durability="process", create=False)
    reader.claim()
    box.ring()
    reader.close()
    box.ring()
    box.deliver([message("m2")])
    assert waiting(box) == ["m1", "m2"]


def test_ring_with_a_full_pipe_does_not_block_or_raise(box: MaildirMailbox) -> None:
    box.claim()
    for _ in range(70_000):  # more than a 64 KiB pipe holds
        box.ring()
    assert box.wait(0) is True
    box.drain()  # clears the bell
    assert box.wait(0) is False
    box.ring()
    assert box.wait(0) is True


def test_ring_on_a_mailbox_without_a_bell_does_not_raise(box: MaildirMailbox) -> None:
    os.unlink(box.paths.bell)
    box.ring()
    box.deliver([message("m1")])
    assert waiting(box) == ["m1"]


# -- concurrency ----------------------------------------------------------------------------

def test_fifty_concurrent_writer_threads_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "mailbox"
    reader = MaildirMailbox(root, durability="process")
    reader.claim()
    writers, per_writer = 50, 20
    expected = {f"t{w}-{n}" for w in range(writers) for n in range(per_writer)}
    start = threading.Barrier(writers, timeout=30)
    failures: list[BaseException] = []

    def write(writer: int) -> None:
        box = MaildirMailbox(root, durability="process", create=False)
        try:
            start.wait()
            for n in range(per_writer):
                box.deliver([message(f"t{writer}-{n}", {"w": writer, "n": n})])
        except BaseException as exc:
            failures.append(exc)
        finally:
            box.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    seen: list[str] = []
    deadline = time.monotonic() + 30
    try:
        # Drain while they write, as the actor would: drain (which clears the bell
        # before it lists), wait.
        while len(seen) < len(expected) and time.monotonic() < deadline and not failures:
            batch = reader.drain()
            for delivered in batch:
                seen.append(delivered.id)
                reader.ack([delivered])
            if not batch:
                reader.wait(1.0)
    finally:
        for thread in threads:
            thread.join(30)
    assert not failures, failures
    assert not any(t.is_alive() for t in threads)
    assert len(seen) == len(set(seen)), "a message was claimed twice"
    assert set(seen) == expected
    assert is_empty(reader)
    reader.close()


def deliver_from_a_process(root: str, writer: int, count: int, start: Any) -> None:
    """Target of the writer processes (module level, so "spawn" can import it)."""
    box = MaildirMailbox(root, durability="process", create=False)
    start.wait(60)
    for n in range(count):
        box.deliver([message(f"p{writer}-{n}", {"w": writer, "n": n})])
    box.close()


def run_processes(ctx: Any, target: Any, arg_lists: list[tuple[Any, ...]], timeout: float = 60.0) -> list[int | None]:
    """Start one process per argument tuple, wait for all (one deadline); kill stragglers."""
    started = []
    try:
        for args in arg_lists:
            process = ctx.Process(target=target, args=args)
            process.start()
            started.append(process)
        deadline = time.monotonic() + timeout
        for process in started:
            process.join(max(0.0, deadline - time.monotonic()))
        return [process.exitcode for process in started]
    finally:
        for process in started:
            if process.is_alive():
                process.kill()
            process.join()


def test_four_writer_processes_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "mailbox"
    reader = MaildirMailbox(root, durability="process")
    ctx = multiprocessing.get_context("spawn")
    writers, per_writer = 4, 250
    start = ctx.Barrier(writers)
    exit_codes = run_processes(
        ctx, deliver_from_a_process, [(str(root), w, per_writer, start) for w in range(writers)]
    )
    assert exit_codes == [0] * writers
    claimed = reader.drain()
    ids = [d.id for d in claimed]
    assert len(ids) == len(set(ids)) == writers * per_writer
    assert set(ids) == {f"p{w}-{n}" for w in range(writers) for n in range(per_writer)}
    assert all(d.message.body == {"w": int(d.id[1:].split("-")[0]), "n": int(d.id.split("-")[1])}
               for d in claimed)
    assert reader.counts()["corrupt"] == 0
    assert [n for n in os.listdir(reader.paths.log) if n.startswith(".")] == [], "no temp debris"
    for writer in range(writers):  # each process's messages in the order it sent them
        assert [int(i.split("-")[1]) for i in ids if i.startswith(f"p{writer}-")] == list(range(per_writer))
    reader.ack(claimed)
    assert os.listdir(reader.paths.log) == [], "sealed at exit, all acked: every segment deleted"
    reader.close()


def test_delivered_wraps_a_message_and_where_it_came_from(box: MaildirMailbox) -> None:
    box.deliver([message("m1")])
    (delivered,) = box.drain()
    assert isinstance(delivered, Delivered) and isinstance(delivered.receipt, Receipt)
    assert delivered.id == delivered.message.id == "m1"
    assert os.path.exists(delivered.receipt.path) and delivered.receipt.position >= 0


def test_only_one_handle_at_a_time_can_claim_to_be_the_reader(tmp_path: Path) -> None:
    root = tmp_path / "mailbox"
    first = MaildirMailbox(root, durability="process")
    second = MaildirMailbox(root, durability="process", create=False)
    try:
        first.claim()
        first.claim()  # again: a no-op
        with pytest.raises(StoreError, match="another process is reading"):
            second.claim()
        first.close()
        second.claim()  # free once the first let go
    finally:
        first.close()
        second.close()


def test_a_forked_child_does_not_keep_the_readers_claim(tmp_path: Path) -> None:
    root = tmp_path / "mailbox"
    reader = MaildirMailbox(root, durability="process")
    reader.claim()
    read_w = os.pipe()
    ready = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child outlives the claim's owner a moment
        os.close(read_w[1])
        os.write(ready[1], b"r")  # running: its fork hooks are done
        os.read(read_w[0], 1)  # until the parent has let go
        os._exit(0)
    os.close(read_w[0])
    assert os.read(ready[0], 1) == b"r"
    os.close(ready[0])
    os.close(ready[1])
    try:
        reader.close()
        other = MaildirMailbox(root, durability="process", create=False)
        other.claim()  # the child still runs, and does not hold it
        other.close()
    finally:
        os.write(read_w[1], b"x")
        os.close(read_w[1])
        os.waitpid(pid, 0)


def _frozen_ctime(monkeypatch: pytest.MonkeyPatch, directory: Path, ctime_ns: int) -> list[str]:
    """Make ``directory``'s ctime read as ``ctime_ns`` whatever changes in it (a clock
    tick that has not moved on); returns a list recording each listing of it."""
    real_stat, real_listdir, listings = os.stat, os.listdir, []

    def stat(path, *args, **kwargs):
        if os.fspath(path) == str(directory):
            return types.SimpleNamespace(st_ctime_ns=ctime_ns)
        return real_stat(path, *args, **kwargs)

    def listdir(path="."):
        if os.fspath(path) == str(directory):
            listings.append(path)
        return real_listdir(path)

    monkeypatch.setattr(reading.os, "stat", stat)
    monkeypatch.setattr(reading.os, "listdir", listdir)
    return listings


def test_a_directory_changed_twice_in_one_clock_tick_is_listed_again(tmp_path, monkeypatch):
    listing = reading._Listing(str(tmp_path))
    listings = _frozen_ctime(monkeypatch, tmp_path, time.time_ns())  # changed just now
    assert listing.names() == []
    (tmp_path / "a").touch()  # same ctime as before: only a fresh listing shows it
    assert listing.names() == ["a"]
    assert len(listings) == 2


def test_a_directory_unchanged_since_a_settled_listing_is_not_listed_again(tmp_path, monkeypatch):
    (tmp_path / "a").touch()
    listing = reading._Listing(str(tmp_path))
    listings = _frozen_ctime(monkeypatch, tmp_path, time.time_ns() - 10**9)  # a second ago
    assert listing.names() == ["a"]
    assert listing.names() == ["a"] and len(listings) == 1  # its ctime has not moved
    monkeypatch.undo()
    (tmp_path / "b").touch()  # moves the real ctime
    assert sorted(listing.names()) == ["a", "b"]


def test_a_new_senders_segment_made_right_after_a_drain_is_read_by_the_next(tmp_path: Path) -> None:
    root = tmp_path / "mailbox"
    reader = MaildirMailbox(root, durability="process")
    first = MaildirMailbox(root, durability="process", create=False)
    first.deliver([message("m1")])
    assert [d.id for d in reader.drain()] == ["m1"]
    second = MaildirMailbox(root, durability="process", create=False)
    second.deliver([message("m2")])  # a new segment, very likely in the same clock tick
    assert [d.id for d in reader.drain()] == ["m2"]


# -- rings for known segments ---------------------------------------------------------------

def _count_listings(monkeypatch) -> list[str]:
    listed: list[str] = []
    real = reading._Listing.names

    def names(self):
        listed.append(os.path.basename(self.path))
        return real(self)

    monkeypatch.setattr(reading._Listing, "names", names)
    return listed


@pytest.fixture
def reader_and_sender(tmp_path: Path) -> Iterator[tuple[MaildirMailbox, MaildirMailbox]]:
    """A mailbox's claimed reader and a sender to it (both closed afterwards)."""
    root = tmp_path / "mailbox"
    reader = MaildirMailbox(root, durability="process")
    reader.claim()
    sender = MaildirMailbox(root, durability="process", create=False)
    try:
        yield reader, sender
    finally:
        sender.close()
        reader.close()


def test_a_drain_woken_only_by_rings_for_known_segments_lists_nothing(reader_and_sender, monkeypatch) -> None:
    reader, sender = reader_and_sender
    root = reader.root
    listed = _count_listings(monkeypatch)
    sender.deliver([message("m1")])  # its segment's first ring: the reader lists log/
    assert [d.id for d in reader.drain()] == ["m1"]
    assert sorted(listed) == ["log", "new"]
    sender.deliver([message("m2")])
    sender.deliver([message("m3")])
    assert [d.id for d in reader.drain()] == ["m2", "m3"]
    assert sorted(listed) == ["log", "new"]  # no listing for rings that name a known segment
    newcomer = MaildirMailbox(root, durability="process", create=False)
    newcomer.deliver([message("n1")])  # a new segment: its ring makes the reader list again
    sender.deliver([message("m4")])
    assert sorted(d.id for d in reader.drain()) == ["m4", "n1"]
    assert sorted(listed) == ["log", "log", "new", "new"]
    newcomer.close()


def test_a_file_dropped_without_a_ring_is_found_within_the_listing_interval(reader_and_sender, monkeypatch) -> None:
    reader, sender = reader_and_sender
    sender.deliver([message("m1")])
    assert [d.id for d in reader.drain()] == ["m1"]
    drop_file(reader, message("dropped"))  # by another program, which does not ring
    sender.deliver([message("m2")])
    assert [d.id for d in reader.drain()] == ["m2"]  # rings for a known segment only
    monkeypatch.setattr(reading, "LIST_AT_LEAST_EVERY", 0.0)  # the interval has passed
    sender.deliver([message("m3")])
    assert sorted(d.id for d in reader.drain()) == ["dropped", "m3"]


def test_a_bell_found_full_makes_the_reader_list_again(reader_and_sender, monkeypatch) -> None:
    reader, sender = reader_and_sender
    sender.deliver([message("m1")])
    assert [d.id for d in reader.drain()] == ["m1"]
    listed = _count_listings(monkeypatch)
    fd = os.open(reader.paths.bell, os.O_WRONLY | os.O_NONBLOCK)
    try:  # a pipe full of "known segment" rings: a ring for a new one may have been dropped
        while True:
            os.write(fd, b"\x01" * 4096)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    assert reader.drain() == []
    assert sorted(listed) == ["log", "new"]
    assert reader.wait(0) is False  # and the bell is empty again


def test_a_ring_from_another_program_makes_the_reader_list_again(tmp_path: Path) -> None:
    root = tmp_path / "mailbox"
    reader = MaildirMailbox(root, durability="process")
    reader.claim()
    try:
        assert reader.drain() == []  # listed just now
        drop_file(reader, message("dropped"))
        fd = os.open(reader.paths.bell, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"\x01x")  # not all "known segment": list
        os.close(fd)
        assert [d.id for d in reader.drain()] == ["dropped"]
    finally:
        reader.close()


def test_a_page_of_rings_read_at_once_makes_the_reader_list_again(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "mailbox"
    reader = MaildirMailbox(root, durability="process")
    reader.claim()
    try:
        assert reader.drain() == []  # listed just now
        listed = _count_listings(monkeypatch)
        fd = os.open(reader.paths.bell, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"\x01" * 4096)  # all a pipe holds once its user has too many pipes
        os.close(fd)
        assert reader.drain() == []
        assert sorted(listed) == ["log", "new"]
    finally:
        reader.close()
