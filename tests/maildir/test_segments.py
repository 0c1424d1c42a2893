"""The maildir segments through the mailbox: batches, torn tails, dead writers, sealing, fork."""

from __future__ import annotations

import os
import signal
import struct
import threading

import pytest
from actors_runtime.backends.maildir import (
    delivery,
    reading,
    segment_format,
    segment_reader,
    segment_repair,
    segment_writer,
)
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.errors import StoreError
from actors_runtime.messages import AgentRef, InboxMessage
from conftest import HeldFlush, wait_until

SENDER = AgentRef("tester")


def _message(body, msg_id=None):
    return InboxMessage.create(SENDER, "task", body, msg_id=msg_id)


def _segments(box):
    return sorted(n for n in os.listdir(box.paths.log) if segment_format.is_segment(n))


def _count_flushes(monkeypatch) -> list[int]:
    """Count every ``fdatasync`` of a segment: the writer's of its records and the
    reader's of its cursors (each half calls ``sync_data`` of its own module)."""
    flushes: list[int] = []
    for module in (segment_writer, segment_reader):
        real = module.sync_data
        monkeypatch.setattr(module, "sync_data", lambda fd, real=real: (flushes.append(fd), real(fd)))
    return flushes


def _sealed(path) -> bool:
    """Whether the segment at ``path`` ends with its seal (zeros may follow it)."""
    with open(path, "rb") as handle:
        data = handle.read()
    frames, stop = segment_repair.walk(data)
    return frames.get(stop) == 0


@pytest.fixture
def pair(tmp_path):
    """A sender handle and the reader handle of one mailbox."""
    reader = MaildirMailbox(tmp_path / "mb", durability="process")
    sender = MaildirMailbox(tmp_path / "mb", durability="process", create=False)
    yield sender, reader
    sender.close()
    reader.close()


@pytest.mark.parametrize("durability", ["process", "machine"])
def test_deliver_many_is_one_write_and_at_machine_one_flush(tmp_path, monkeypatch, durability):
    box = MaildirMailbox(tmp_path / "mb", durability=durability)
    box.deliver([_message("first")])  # the segment exists from here on
    flushes, writes = [], []
    real_sync, real_write = segment_writer.sync_data, os.pwrite
    monkeypatch.setattr(segment_writer, "sync_data", lambda fd: (flushes.append(fd), real_sync(fd)))
    monkeypatch.setattr(segment_writer.os, "pwrite",
                        lambda fd, data, at: (writes.append(any(data)), real_write(fd, data, at))[1])
    path = box._sender.deliver([_message(n) for n in range(20)], 0.0)
    monkeypatch.undo()
    # All twenty in the one segment with one write (and, crossing the zeros ahead, one more of zeros).
    assert path == box._sender._writer.path and writes.count(True) == 1 and len(writes) <= 2
    assert len(flushes) == (1 if durability == "machine" else 0)
    assert [d.message.body for d in box.drain()] == ["first", *range(20)]
    box.close()


def test_an_empty_batch_delivers_nothing_and_later_messages_still_arrive(pair):
    sender, reader = pair
    sender.deliver([_message("before")])
    size = os.path.getsize(sender._sender._writer.path)
    assert sender.deliver([]) is None
    assert os.path.getsize(sender._sender._writer.path) == size, "nothing written"
    sender.deliver([_message("after")])
    assert [d.message.body for d in reader.drain()] == ["before", "after"]
    assert reader.counts()["corrupt"] == 0


def test_a_failed_batch_write_delivers_none_of_the_batch(pair, monkeypatch):
    sender, reader = pair
    sender.deliver([_message("before")])
    real_write = os.pwrite

    def half_then_full_disk(fd, data, at):
        if len(data) > 200:  # the batch: half of it reaches the file, then ENOSPC
            real_write(fd, bytes(data[: len(data) // 2]), at)
            raise OSError(28, "No space left on device")
        return real_write(fd, data, at)

    monkeypatch.setattr(segment_writer.os, "pwrite", half_then_full_disk)
    with pytest.raises(StoreError, match="No space left"):
        sender.deliver([_message(n) for n in range(10)])
    monkeypatch.undo()
    sender.deliver([_message("after")])  # goes to a fresh segment
    # The failed writer let go of its segment, so its half record is known to be torn.
    got = wait_until(lambda: [d.message.body for d in reader.drain()] or None)
    got += [d.message.body for d in reader.drain()]
    assert got == ["before", "after"]
    (torn,) = os.listdir(reader.paths.corrupt)
    assert "@" in torn


def test_a_live_writers_incomplete_record_is_waited_for_not_judged_torn(pair):
    sender, reader = pair
    sender.deliver([_message("one")])
    record = segment_format.frame(_message("two").to_wire())
    at = sender._sender._writer._segment.size  # where the writer's next record goes
    fd = os.open(os.path.join(sender.paths.log, _segments(sender)[0]), os.O_WRONLY)
    try:
        os.pwrite(fd, record[:10], at)  # as if the writer were still copying it in
        assert [d.message.body for d in reader.drain()] == ["one"]
        assert reader.drain() == [] and os.listdir(reader.paths.corrupt) == []
        os.pwrite(fd, record[10:], at + 10)
    finally:
        os.close(fd)
    assert [d.message.body for d in reader.drain()] == ["two"]


def test_a_record_that_is_not_a_message_goes_to_corrupt_and_the_rest_pass(pair):
    sender, reader = pair
    sender.deliver([_message("one")])
    sender._sender._writer.append([b"{not json"])
    sender.deliver([_message("two")])
    assert [d.message.body for d in reader.drain()] == ["one", "two"]
    (name,) = os.listdir(reader.paths.corrupt)
    with open(os.path.join(reader.paths.corrupt, name), "rb") as handle:
        assert handle.read() == b"{not json"


def test_a_message_longer_than_a_read_chunk_is_read_whole(pair):
    sender, reader = pair
    big = "x" * (segment_reader.READ_CHUNK * 2)
    sender.deliver([_message(big)])
    sender.deliver([_message("small")])
    assert [d.message.body for d in reader.drain()] == [big, "small"]


def test_the_cursor_survives_a_new_reader(tmp_path):
    root = tmp_path / "mb"
    sender = MaildirMailbox(root, durability="process")
    first = MaildirMailbox(root, durability="process", create=False)
    for n in range(4):
        sender.deliver([_message(n)])
    first.ack(first.drain(limit=3))
    first.close()
    second = MaildirMailbox(root, durability="process", create=False)
    assert [d.message.body for d in second.recover()] == [3]
    second.close()
    sender.close()


def test_segments_are_sealed_at_their_limit_and_deleted_once_acked(pair, monkeypatch):
    sender, reader = pair
    monkeypatch.setattr(segment_writer, "SEGMENT_LIMIT", 400)
    for n in range(10):
        sender.deliver([_message(n)])
    assert len(_segments(sender)) > 2
    handed = reader.drain()
    assert [d.message.body for d in handed] == list(range(10))
    reader.ack(handed[:-1])
    assert len(_segments(sender)) == 1, "all but the open one are sealed, acked and gone"
    reader.ack(handed[-1:])
    sender.close()  # seals the last one
    assert reader.drain() == []
    assert _segments(sender) == []


def _deliver_then_die(root):
    box = MaildirMailbox(root, durability="process", create=False)
    for n in range(5):
        box.deliver([_message(n)])
    os.kill(os.getpid(), signal.SIGKILL)  # no seal, no atexit


def test_a_writer_killed_without_sealing_loses_nothing_and_its_segment_goes(tmp_path):
    root = str(tmp_path / "mb")
    reader = MaildirMailbox(root, durability="process")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            _deliver_then_die(root)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status)
    handed = reader.drain()
    assert [d.message.body for d in handed] == list(range(5))
    reader.ack(handed)
    reader.drain()  # finds the writer gone and the segment read to the end
    assert _segments(reader) == []
    reader.close()


def test_a_forked_child_never_appends_to_its_parents_segment(pair):
    sender, reader = pair
    sender.deliver([_message("parent-1")])
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            sender.deliver([_message("child")])
            sender.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    sender.deliver([_message("parent-2")])
    assert len(_segments(sender)) == 2
    assert sorted(d.message.body for d in reader.drain()) == ["child", "parent-1", "parent-2"]


def test_a_segment_header_names_its_format(pair):
    sender, _ = pair
    sender.deliver([_message("one")])
    with open(os.path.join(sender.paths.log, _segments(sender)[0]), "rb") as handle:
        magic, version = struct.unpack("<4sB", handle.read(5))
    assert (magic, version) == (b"DAML", 3)


# -- found in review ---------------------------------------------------------------------


def test_a_record_caught_mid_copy_is_read_again_once_its_writer_is_gone(pair, monkeypatch):
    sender, reader = pair
    sender.deliver([_message("whole")])
    end = sender._sender._writer._segment.size
    sender._sender._writer._abandon()  # the writer finished its write and went, unsealed
    real_read, calls = segment_reader.read_chunk, []

    def first_read_sees_half(fd, offset, size=segment_reader.READ_CHUNK):
        data = real_read(fd, offset, size)
        calls.append(offset)
        if len(calls) > 1:
            return data
        cut = end - offset - 5  # as if caught while copying: its last bytes still zeros
        return data[:cut] + bytes(len(data) - cut)

    monkeypatch.setattr(segment_reader, "read_chunk", first_read_sees_half)
    assert [d.message.body for d in reader.drain()] == ["whole"]
    assert os.listdir(reader.paths.corrupt) == []


def test_a_message_too_long_for_a_segment_is_refused_before_anything_is_written(pair, monkeypatch):
    from actors_runtime.errors import InvalidSpec

    sender, reader = pair
    monkeypatch.setattr(delivery, "MAX_MESSAGE", 1_000)
    with pytest.raises(InvalidSpec, match="more than the 1,000"):
        sender.deliver([_message("x" * 2_000)])
    with pytest.raises(InvalidSpec):
        sender.deliver([_message("fine"), _message("x" * 2_000)])
    assert reader.drain() == [] and _segments(reader) == []


def test_a_long_batch_is_split_into_records_the_admitted_set_can_cover(pair):
    sender, reader = pair
    count = 2 * segment_format.BATCH_LIMIT + 10
    sender.deliver([_message(n) for n in range(count)])
    records, _ = segment_reader.pending_records(os.path.join(sender.paths.log, _segments(sender)[0]))
    assert len(records) == count and len({r.offset for r in records}) == 3
    assert [d.message.body for d in reader.drain()] == list(range(count))


def test_a_chunk_ending_exactly_on_a_record_does_not_end_the_read(pair, monkeypatch):
    sender, reader = pair
    one = len(segment_format.frame(_message(0, msg_id="m00").to_wire()))
    monkeypatch.setattr(segment_reader, "READ_CHUNK", 2 * one)
    for n in range(10):
        sender.deliver([_message(n, msg_id=f"m{n:02d}")])  # all the same length
    assert [d.message.body for d in reader.drain(limit=8)] == list(range(8))
    assert reader.more_waiting
    assert [d.message.body for d in reader.drain()] == [8, 9]
    assert not reader.more_waiting


def test_one_senders_order_holds_across_its_segments_when_drained_in_small_batches(pair, monkeypatch):
    sender, reader = pair
    monkeypatch.setattr(segment_writer, "SEGMENT_LIMIT", 600)
    for n in range(30):
        sender.deliver([_message(n)])
    assert len(_segments(sender)) > 3
    got = []
    while True:
        batch = reader.drain(limit=5)
        if not batch:
            break
        got += [d.message.body for d in batch]
        reader.ack(batch)
    assert got == list(range(30))


def test_a_reader_keeps_few_descriptors_however_many_segments_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(reading, "OPEN_SEGMENTS", 8)
    root = tmp_path / "mb"
    reader = MaildirMailbox(root, durability="process")
    for n in range(40):  # forty one-shot senders, as CLI calls would be
        sender = MaildirMailbox(root, durability="process", create=False)
        sender.deliver([_message(n)])
        sender.close()
    got = []
    while len(got) < 40:
        batch = reader.drain(limit=5)
        assert sum(r.fd >= 0 for r in reader._reader._segments.values()) <= 8
        got += [d.message.body for d in batch]
        reader.ack(batch)
    assert sorted(got) == list(range(40))
    reader.drain()
    assert _segments(reader) == [], "sealed and acked: deleted"
    reader.close()


def test_at_machine_cursors_are_flushed_every_so_many_acks_and_before_a_delete(tmp_path, monkeypatch):
    monkeypatch.setattr(reading, "FLUSH_ACKS_EVERY", 4)
    root = tmp_path / "mb"
    sender = MaildirMailbox(root, durability="machine")
    reader = MaildirMailbox(root, durability="machine", create=False)
    for n in range(6):
        sender.deliver([_message(n)])
    flushes = _count_flushes(monkeypatch)
    handed = reader.drain()
    for delivered in handed[:3]:
        assert reader.ack([delivered]) == 1
    assert flushes == []
    assert reader.ack([handed[3]]) == 1
    assert len(flushes) == 1, "the fourth ack flushed the cursor"
    sender.close()  # sealed: the segment goes once the rest is acked
    reader.drain()
    reader.ack(handed[4:])
    assert len(flushes) == 2 and _segments(reader) == [], "flushed, then deleted"
    reader.close()


def test_zeros_after_the_last_record_of_a_version_2_segment_are_one_torn_tail_not_many_empty_records(pair):
    sender, reader = pair
    sender.deliver([_message("kept")])
    path = os.path.join(sender.paths.log, _segments(sender)[0])
    end = sender._sender._writer._segment.size
    sender._sender._writer._abandon()  # the writer is gone; a hole of zeros follows its record
    with open(path, "r+b") as handle:  # as an appending (version 2) writer leaves it
        handle.seek(4)
        handle.write(b"\x02")
        handle.truncate(end)
        handle.seek(end)
        handle.write(b"\0" * 800)
    assert [d.message.body for d in reader.drain()] == ["kept"]
    assert len(os.listdir(reader.paths.corrupt)) == 1


def test_a_segment_with_a_damaged_header_is_moved_to_corrupt(pair):
    sender, reader = pair
    with open(os.path.join(sender.paths.log, "00000000000000000001-1-dead-0.seg"), "wb") as handle:
        handle.write(b"\0" * 100)
    sender.deliver([_message("fine")])
    assert [d.message.body for d in reader.drain()] == ["fine"]
    assert os.listdir(reader.paths.corrupt) == ["00000000000000000001-1-dead-0.seg"]
    assert not reader.has_new()


# -- found in the second review ------------------------------------------------------------


def _deliver_in_child(root, bodies):
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            box = MaildirMailbox(root, durability="process", create=False)
            for body in bodies:
                box.deliver([_message(body)])
            box.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


def test_small_drains_over_several_senders_hand_out_every_message_once(pair):
    sender, reader = pair
    for n in range(10):
        sender.deliver([_message(f"a{n}")])
    _deliver_in_child(reader.root, [f"b{n}" for n in range(3)])
    got = []
    for _ in range(20):
        batch = reader.drain(limit=4)
        got += [d.message.body for d in batch]
        reader.ack(batch)
    assert sorted(got) == sorted([f"a{n}" for n in range(10)] + [f"b{n}" for n in range(3)])
    assert [b for b in got if b.startswith("a")] == [f"a{n}" for n in range(10)]
    assert reader.pending_count() == 0


def test_a_partly_acked_batch_comes_back_from_its_first_unacked_message(tmp_path):
    root = tmp_path / "mb"
    reader = MaildirMailbox(root, durability="process")
    # Four senders, three batch records each; the reader merges them by time, so
    # every segment ends up with a record only partly acked.
    senders = [MaildirMailbox(root, durability="process", create=False) for _ in range(4)]
    for round_ in range(3):
        for writer, box in enumerate(senders):
            box.deliver([_message(f"w{writer}-{round_}-{n}") for n in range(50)])
    handed = reader.recover()
    assert len(handed) == 600
    reader.ack(handed[:450])
    del reader  # crashed: cursors as written, never closed
    fresh = MaildirMailbox(root, durability="process", create=False)
    again = fresh.recover()
    assert [d.id for d in again] == [d.id for d in handed[450:]], "only the unacked come back"
    for box in senders:
        box.close()
    fresh.close()


def test_a_segment_acked_before_its_seal_is_flushed_before_it_is_deleted(tmp_path, monkeypatch):
    root = tmp_path / "mb"
    sender = MaildirMailbox(root, durability="machine")
    reader = MaildirMailbox(root, durability="machine", create=False)
    sender.deliver([_message("only")])
    reader.ack(reader.drain())  # all acked; no seal yet
    flushes = _count_flushes(monkeypatch)
    sender.close()  # the seal
    reader.drain()
    assert _segments(reader) == [] and len(flushes) == 1
    reader.close()


def test_a_segment_removed_from_outside_is_forgotten_not_fatal(pair):
    sender, reader = pair
    sender.deliver([_message("one")])
    reader.ack(reader.drain())
    reader.drain()  # the quiet segment's descriptor is closed now
    os.unlink(os.path.join(sender.paths.log, _segments(sender)[0]))
    assert not reader.has_new()
    assert reader.drain() == []
    assert reader._reader._segments == {}


def test_an_ack_leaves_a_message_that_was_read_but_not_handed_out(pair):
    # (Acks by id are gone: a reader acks what it was handed. take() reads the task
    # along with the reply; acking the reply must not retire the task.)
    sender, reader = pair
    sender.deliver([_message("task", msg_id="t1")])
    sender.deliver([InboxMessage.create(SENDER, "reply", {"answer": 1}, msg_id="r1", correlation_id="q")])
    sender.close()
    replies = reader.take({"reply"})
    assert [d.id for d in replies] == ["r1"]
    assert reader.ack(replies) == 1 and reader.ack(replies) == 0
    assert [m.id for m in reader.peek("new")] == ["t1"], "t1 is queued, not handed out"
    tasks = reader.drain()
    assert [d.id for d in tasks] == ["t1"]
    assert reader.ack(tasks) == 1
    reader.drain()
    assert _segments(reader) == []


# -- found in the third review -------------------------------------------------------------


def test_a_reader_resuming_inside_a_batch_keeps_the_senders_order_under_a_limit(tmp_path, monkeypatch):
    root = tmp_path / "mb"
    sender = MaildirMailbox(root, durability="process")
    first = MaildirMailbox(root, durability="process", create=False)
    sender.deliver([_message(f"b{n}") for n in range(50)])
    sender.deliver([_message("m1")])
    sender.deliver([_message("m2")])
    sender._sender._writer.close()  # its next message goes to a newer segment of the same process
    sender.deliver([_message("n1")])
    first.ack(first.drain(limit=48))
    del first  # crashed: the cursor points inside the batch record
    second = MaildirMailbox(root, durability="process", create=False)
    got = []
    while True:
        batch = second.drain(limit=4)
        if not batch:
            break
        assert len(batch) == 4 or not second.more_waiting
        got += [d.message.body for d in batch]
        second.ack(batch)
    assert got == ["b48", "b49", "m1", "m2", "n1"]
    second.close()
    sender.close()


def test_a_segment_of_another_format_version_is_kept_in_corrupt_not_read(pair):
    sender, reader = pair
    sender.deliver([_message("v2")])
    path = os.path.join(sender.paths.log, _segments(sender)[0])
    sender._sender._writer._abandon()
    with open(path, "r+b") as handle:
        handle.seek(4)
        handle.write(b"\x01")  # as written by a build whose cursors were byte offsets
    assert reader.drain() == []
    assert os.listdir(reader.paths.corrupt) == [os.path.basename(path)]


# -- group commit across threads ------------------------------------------------------


def _send_in_threads(box, bodies):
    """Deliver each body from its own thread; returns {body: path or the error}."""
    outcome = {}

    def send(body):
        try:
            outcome[body] = box._sender.deliver([_message(body)], 0.0)  # the segment it went to
        except StoreError as exc:
            outcome[body] = exc

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    return threads, outcome


def _wait_for_appends(box, count):
    """Wait until ``count`` records past the header are in the writer's segment."""
    path = box._sender._writer.path
    wait_until(lambda: len(segment_reader.pending_records(path)[0]) == count)


def test_threads_appending_during_a_flush_share_the_next_one(tmp_path, monkeypatch):
    box = MaildirMailbox(tmp_path / "mb", durability="machine")
    box.deliver([_message("opened")])  # the segment exists; its creation flushes nothing here
    held = HeldFlush()
    monkeypatch.setattr(segment_writer, "sync_data", held)
    first, outcome = _send_in_threads(box, ["first"])
    assert held.entered.wait(30)
    others, more = _send_in_threads(box, [f"t{n}" for n in range(6)])
    _wait_for_appends(box, 8)  # "opened", "first" and the six, all written, none returned
    assert not outcome and not more
    held.release.set()
    for thread in first + others:
        thread.join(30)
    assert held.calls == 2  # the held flush, then one for all six that waited
    assert all(isinstance(path, str) for path in {**outcome, **more}.values())
    assert sorted(d.message.body for d in box.drain()) == sorted(["opened", "first", *more])
    box.close()


def test_a_failed_shared_flush_fails_every_thread_it_covered_and_the_next_append_starts_afresh(
        tmp_path, monkeypatch):
    box = MaildirMailbox(tmp_path / "mb", durability="machine")
    box.deliver([_message("opened")])
    failed_segment = box._sender._writer.path
    held = HeldFlush(fail_after_first=True)
    monkeypatch.setattr(segment_writer, "sync_data", held)
    first, outcome = _send_in_threads(box, ["first"])
    assert held.entered.wait(30)
    others, more = _send_in_threads(box, ["a", "b", "c"])
    _wait_for_appends(box, 5)
    held.release.set()
    for thread in first + others:
        thread.join(30)
    assert outcome["first"] == failed_segment  # its own flush worked
    assert all(isinstance(error, StoreError) for error in more.values())  # theirs did not
    monkeypatch.undo()
    assert box._sender.deliver([_message("after")], 0.0) != failed_segment
    with open(failed_segment, "rb") as handle:  # let go unsealed: no seal record at its end
        assert not handle.read().endswith(segment_format.SEAL)
    box.close()


def test_a_segment_closed_while_another_thread_flushes_it_is_sealed_by_that_thread(tmp_path, monkeypatch):
    box = MaildirMailbox(tmp_path / "mb", durability="machine")
    box.deliver([_message("opened")])
    closed_segment = box._sender._writer.path
    held = HeldFlush()
    monkeypatch.setattr(segment_writer, "sync_data", held)
    first, outcome = _send_in_threads(box, ["first"])
    assert held.entered.wait(30)
    box._sender._writer.close()  # returns at once; the file stays open for the flush under way
    assert not _sealed(closed_segment)
    later, more = _send_in_threads(box, ["later"])
    later[0].join(30)
    assert held.calls == 2 and more["later"] != closed_segment  # a fresh segment, flushed apart
    held.release.set()
    first[0].join(30)
    assert outcome["first"] == closed_segment  # the flush it waited for was of its own file
    assert _sealed(closed_segment)
    box.close()


@pytest.mark.parametrize("let_go", ["close", "exit"])
def test_a_flush_interrupted_by_ctrl_c_still_lets_the_segment_be_sealed_and_closed(
        tmp_path, monkeypatch, let_go):
    box = MaildirMailbox(tmp_path / "mb", durability="machine")
    box.deliver([_message("opened")])
    path = box._sender._writer.path
    real_sync = segment_writer.sync_data

    def interrupted(fd):
        real_sync(fd)
        raise KeyboardInterrupt  # noticed as the flush returns

    monkeypatch.setattr(segment_writer, "sync_data", interrupted)
    with pytest.raises(KeyboardInterrupt):
        box.deliver([_message("interrupted")])
    monkeypatch.undo()
    assert box._sender._writer._segment.flushing is False  # later appends are not kept waiting
    if let_go == "close":
        box.close()
    else:
        segment_writer._seal_writers()  # what runs at interpreter exit
    assert _sealed(path)
    assert not [fd for fd in os.listdir("/proc/self/fd")
                if os.path.realpath(f"/proc/self/fd/{fd}").startswith(str(tmp_path))]


# -- writes flushed in the background (tell_async) -------------------------------------


def _flushing_in_the_background(tmp_path, monkeypatch, fail_after_first=False):
    """A writer at "machine" with its segment open, a Flusher, and the held flush."""
    writer = segment_writer.SegmentWriter(str(tmp_path / "log"), "machine")
    writer.append([b"opened"])
    held = HeldFlush(fail_after_first)
    monkeypatch.setattr(segment_writer, "sync_data", held)
    return writer, segment_writer.Flusher("test-flusher"), held


def test_the_flusher_resolves_each_write_once_flushed_and_writes_made_meanwhile_share_a_flush(
        tmp_path, monkeypatch):
    writer, flusher, held = _flushing_in_the_background(tmp_path, monkeypatch)
    first = flusher.submit(writer.write([b"first"]), "first")
    assert held.entered.wait(30)  # the flusher thread is in the first flush
    later = [flusher.submit(writer.write([f"m{n}".encode()]), n) for n in range(5)]
    assert not first.done() and not any(f.done() for f in later)
    held.release.set()
    assert first.result(30) == "first" and [f.result(30) for f in later] == list(range(5))
    assert held.calls == 2  # one more flush for the five
    flusher.close()
    writer.close()


def test_a_failed_background_flush_fails_the_futures_it_covered(tmp_path, monkeypatch):
    writer, flusher, held = _flushing_in_the_background(tmp_path, monkeypatch, fail_after_first=True)
    first = flusher.submit(writer.write([b"first"]), "first")
    assert held.entered.wait(30)
    later = flusher.submit(writer.write([b"later"]), "later")
    held.release.set()
    assert first.result(30) == "first"
    with pytest.raises(StoreError):
        later.result(30)
    flusher.close()
    writer.close()


def test_closing_the_flusher_resolves_what_waits_and_later_writes_are_flushed_at_once(tmp_path, monkeypatch):
    writer, flusher, held = _flushing_in_the_background(tmp_path, monkeypatch)
    waiting = flusher.submit(writer.write([b"waiting"]), "waiting")
    assert held.entered.wait(30)
    closing = threading.Thread(target=flusher.close)
    closing.start()
    held.release.set()
    closing.join(30)
    assert not closing.is_alive() and waiting.result(0) == "waiting"
    after = flusher.submit(writer.write([b"after"]), "after")
    assert after.done() and after.result() == "after" and held.calls == 2
    writer.close()
    assert writer.path == ""


def test_a_write_dropped_before_its_flush_lets_its_segment_be_sealed(tmp_path):
    writer = segment_writer.SegmentWriter(str(tmp_path / "log"), "machine")
    written = writer.write([b"never flushed"])  # e.g. Ctrl-C before a Flusher took it
    path = written.path
    del written
    writer.close()
    assert _sealed(path)


def test_with_no_thread_to_be_had_the_flusher_flushes_in_the_caller(tmp_path, monkeypatch):
    writer = segment_writer.SegmentWriter(str(tmp_path / "log"), "machine")
    flushes = _count_flushes(monkeypatch)

    def no_thread(*args):
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(segment_writer, "start_thread", no_thread)
    flusher = segment_writer.Flusher("test-flusher")
    future = flusher.submit(writer.write([b"late"]), "late")
    assert future.done() and future.result() == "late" and len(flushes) == 1
    flusher.close()
    writer.close()


def test_a_forked_child_has_a_flusher_of_its_own(tmp_path):
    writer = segment_writer.SegmentWriter(str(tmp_path / "log"), "machine")
    flusher = segment_writer.Flusher("test-flusher")
    assert flusher.submit(writer.write([b"parent"]), "parent").result(30) == "parent"
    pid = os.fork()
    if pid == 0:  # the child: the parent's flusher thread is not here
        signal.alarm(10)  # a hung child ends instead of hanging the test
        try:
            ok = flusher.submit(writer.write([b"child"]), "child").result(5) == "child"
            flusher.close()
            os._exit(0 if ok else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    flusher.close()
    writer.close()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
