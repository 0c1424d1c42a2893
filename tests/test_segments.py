"""runtime.segments through the mailbox: batches, torn tails, dead writers, sealing, fork."""

from __future__ import annotations

import os
import signal
import struct

import pytest

from conftest import wait_until
from runtime import segments
from runtime.errors import StoreError
from runtime.mailbox import Mailbox
from runtime.messages import AgentRef, InboxMessage

SENDER = AgentRef("tester")


def _message(body, msg_id=None):
    return InboxMessage.create(SENDER, "task", body, msg_id=msg_id)


def _segments(box):
    return sorted(n for n in os.listdir(box.log_dir) if segments.is_segment(n))


@pytest.fixture
def pair(tmp_path):
    """A sender handle and the reader handle of one mailbox."""
    reader = Mailbox(tmp_path / "mb", durability="process")
    sender = Mailbox(tmp_path / "mb", durability="process", create=False)
    yield sender, reader
    sender.close()
    reader.close()


@pytest.mark.parametrize("durability", ["process", "machine"])
def test_deliver_many_is_one_write_and_at_machine_one_flush(tmp_path, monkeypatch, durability):
    box = Mailbox(tmp_path / "mb", durability=durability)
    box.deliver(_message("first"))  # the segment exists from here on
    flushes, writes = [], []
    real_sync, real_write = segments.sync_data, os.write
    monkeypatch.setattr(segments, "sync_data", lambda fd: (flushes.append(fd), real_sync(fd)))
    monkeypatch.setattr(segments.os, "write", lambda fd, data: (writes.append(len(data)), real_write(fd, data))[1])
    paths = box.deliver_many([_message(n) for n in range(20)])
    monkeypatch.undo()
    assert len(paths) == 20 and len(writes) == 1
    assert len(flushes) == (1 if durability == "machine" else 0)
    assert [d.message.body for d in box.drain()] == ["first", *range(20)]
    assert box.deliver_many([]) == []
    box.close()


def test_a_failed_batch_write_delivers_none_of_the_batch(pair, monkeypatch):
    sender, reader = pair
    sender.deliver(_message("before"))
    real_write = os.write

    def half_then_full_disk(fd, data):
        if len(data) > 200:  # the batch: half of it reaches the file, then ENOSPC
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(segments.os, "write", half_then_full_disk)
    with pytest.raises(StoreError, match="No space left"):
        sender.deliver_many([_message(n) for n in range(10)])
    monkeypatch.undo()
    sender.deliver(_message("after"))  # goes to a fresh segment
    # The failed writer let go of its segment, so its half record is known to be torn.
    got = wait_until(lambda: [d.message.body for d in reader.drain()] or None)
    got += [d.message.body for d in reader.drain()]
    assert got == ["before", "after"]
    (torn,) = os.listdir(reader.corrupt_dir)
    assert "@" in torn


def test_a_live_writers_incomplete_record_is_waited_for_not_judged_torn(pair):
    sender, reader = pair
    sender.deliver(_message("one"))
    record = segments.frame(_message("two").to_wire())
    fd = os.open(os.path.join(sender.log_dir, _segments(sender)[0]), os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, record[:10])  # as if the writer were still copying it in
        assert [d.message.body for d in reader.drain()] == ["one"]
        assert reader.drain() == [] and os.listdir(reader.corrupt_dir) == []
        os.write(fd, record[10:])
    finally:
        os.close(fd)
    assert [d.message.body for d in reader.drain()] == ["two"]


def test_a_record_that_is_not_a_message_goes_to_corrupt_and_the_rest_pass(pair):
    sender, reader = pair
    sender.deliver(_message("one"))
    sender._writer.append([b"{not json"])
    sender.deliver(_message("two"))
    assert [d.message.body for d in reader.drain()] == ["one", "two"]
    (name,) = os.listdir(reader.corrupt_dir)
    with open(os.path.join(reader.corrupt_dir, name), "rb") as handle:
        assert handle.read() == b"{not json"


def test_a_message_longer_than_a_read_chunk_is_read_whole(pair):
    sender, reader = pair
    big = "x" * (segments.READ_CHUNK * 2)
    sender.deliver(_message(big))
    sender.deliver(_message("small"))
    assert [d.message.body for d in reader.drain()] == [big, "small"]


def test_the_cursor_survives_a_new_reader(tmp_path):
    root = tmp_path / "mb"
    sender = Mailbox(root, durability="process")
    first = Mailbox(root, durability="process", create=False)
    for n in range(4):
        sender.deliver(_message(n))
    first.ack_all(first.drain(limit=3))
    first.close()
    second = Mailbox(root, durability="process", create=False)
    assert [d.message.body for d in second.recover()] == [3]
    second.close()
    sender.close()


def test_segments_are_sealed_at_their_limit_and_deleted_once_acked(pair, monkeypatch):
    sender, reader = pair
    monkeypatch.setattr(segments, "SEGMENT_LIMIT", 400)
    for n in range(10):
        sender.deliver(_message(n))
    assert len(_segments(sender)) > 2
    handed = reader.drain()
    assert [d.message.body for d in handed] == list(range(10))
    reader.ack_all(handed[:-1])
    assert len(_segments(sender)) == 1, "all but the open one are sealed, acked and gone"
    reader.ack_all(handed[-1:])
    sender.close()  # seals the last one
    assert reader.drain() == []
    assert _segments(sender) == []


def _deliver_then_die(root):
    box = Mailbox(root, durability="process", create=False)
    for n in range(5):
        box.deliver(_message(n))
    os.kill(os.getpid(), signal.SIGKILL)  # no seal, no atexit


def test_a_writer_killed_without_sealing_loses_nothing_and_its_segment_goes(tmp_path):
    root = str(tmp_path / "mb")
    reader = Mailbox(root, durability="process")
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
    reader.ack_all(handed)
    reader.drain()  # finds the writer gone and the segment read to the end
    assert _segments(reader) == []
    reader.close()


def test_a_forked_child_never_appends_to_its_parents_segment(pair):
    sender, reader = pair
    sender.deliver(_message("parent-1"))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            sender.deliver(_message("child"))
            sender.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    sender.deliver(_message("parent-2"))
    assert len(_segments(sender)) == 2
    assert sorted(d.message.body for d in reader.drain()) == ["child", "parent-1", "parent-2"]


def test_a_segment_header_names_its_format(pair):
    sender, _ = pair
    sender.deliver(_message("one"))
    with open(os.path.join(sender.log_dir, _segments(sender)[0]), "rb") as handle:
        magic, version = struct.unpack("<4sB", handle.read(5))
    assert (magic, version) == (b"DAML", 1)
