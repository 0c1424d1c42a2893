"""No inode churn on the hot path: recycled mailbox files and in-place state commits."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal

import pytest

from conftest import wait_until
from runtime import durable, mailbox as mailbox_module
from runtime.durable import Rewriter, read_bytes
from runtime.mailbox import Mailbox
from runtime.messages import AgentRef, InboxMessage

SENDER = AgentRef("tester")


def _message(body):
    return InboxMessage.create(SENDER, "task", body)


@pytest.mark.parametrize("durability", ["process", "machine"])
def test_an_acked_file_is_reused_by_the_next_deliver_instead_of_a_new_inode(tmp_path, durability):
    box = Mailbox(tmp_path / "mb", durability=durability)
    box.deliver(_message({"text": "x" * 500}))
    (claimed,) = box.drain()
    freed_inode = os.stat(claimed.path).st_ino
    assert box.ack_delivered(claimed)
    assert os.listdir(box.free_dir) == [os.path.basename(claimed.path)]
    sender = Mailbox(tmp_path / "mb", durability=durability)  # one that never saw free/ empty
    path = sender.deliver(_message({"text": "short"}))  # shorter than the file it reuses
    assert os.stat(path).st_ino == freed_inode
    assert os.listdir(box.free_dir) == []
    (again,) = box.drain()
    assert again.message.body == {"text": "short"}
    assert not [n for n in os.listdir(box.new_dir) if n.startswith(".")]  # no temp left behind


def test_a_long_message_written_over_a_short_file_reads_back_whole(tmp_path):
    box = Mailbox(tmp_path / "mb", durability="process")
    box.deliver(_message("s"))
    (claimed,) = box.drain()
    box.ack_delivered(claimed)
    body = {"text": "y" * 100_000}
    box.deliver(_message(body))
    (again,) = box.drain()
    assert again.message.body == body


def test_a_large_file_rewritten_short_is_truncated_not_padded(tmp_path):
    box = Mailbox(tmp_path / "mb", durability="process")
    box.deliver(_message({"text": "z" * (durable.PAD_LIMIT * 2)}))
    (claimed,) = box.drain()
    box.ack_delivered(claimed)
    path = box.deliver(_message("tiny"))
    assert os.path.getsize(path) < 1000


def test_free_files_are_capped_and_acks_past_the_cap_unlink(tmp_path, monkeypatch):
    monkeypatch.setattr(mailbox_module, "FREE_LIMIT", 3)
    sender = Mailbox(tmp_path / "mb", durability="process")
    reader = Mailbox(tmp_path / "mb", durability="process")
    for n in range(6):
        sender.deliver(_message(n))
    for claimed in reader.drain():
        assert reader.ack_delivered(claimed)
        assert not reader.ack_delivered(claimed)  # idempotent
    assert len(os.listdir(reader.free_dir)) == 3


def test_concurrent_senders_racing_for_free_files_lose_nothing(tmp_path):
    import threading

    box_dir = tmp_path / "mb"
    reader = Mailbox(box_dir, durability="process")
    for n in range(200):  # fill free/ with spent files
        reader.deliver(_message(n))
    for claimed in reader.drain():
        reader.ack_delivered(claimed)
    sent: list[str] = []
    lock = threading.Lock()

    def send(worker):
        box = Mailbox(box_dir, durability="process")
        for n in range(100):
            message = _message({"worker": worker, "n": n})
            box.deliver(message)
            with lock:
                sent.append(message.id)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    received = [d.id for d in reader.drain()]
    assert sorted(received) == sorted(sent) and len(received) == 400


def test_rewriter_replaces_contents_by_swapping_two_inodes(tmp_path):
    path = str(tmp_path / "session.json")
    writer = Rewriter(path, "machine")
    writer.write(b'{"n": 0}')
    writer.write(b'{"n": 1, "pad": "' + b"p" * 100 + b'"}')
    inodes = {os.stat(path).st_ino, os.stat(writer.spare).st_ino}
    for n in range(2, 20):
        writer.write(json.dumps({"n": n}).encode())
        assert json.loads(read_bytes(path)) == {"n": n}
        assert {os.stat(path).st_ino, os.stat(writer.spare).st_ino} == inodes
    assert sorted(os.listdir(tmp_path)) == [".session.json.spare", "session.json"]


def test_rewriter_falls_back_to_atomic_write_without_renameat2(tmp_path, monkeypatch):
    monkeypatch.setattr(durable, "_renameat2", None)
    path = str(tmp_path / "session.json")
    writer = Rewriter(path, "process")
    for n in range(3):
        writer.write(json.dumps({"n": n}).encode())
    assert json.loads(read_bytes(path)) == {"n": 2}


def _rewrite_forever(path: str) -> None:
    writer = Rewriter(path, "process")
    n = 0
    while True:
        n += 1
        # Alternate lengths so padding and growth both happen.
        writer.write(json.dumps({"n": n, "pad": "x" * (n % 7) * 50}).encode())


def test_a_rewriter_killed_at_any_moment_leaves_a_whole_document(tmp_path):
    path = str(tmp_path / "session.json")
    Rewriter(path, "process").write(b'{"n": 0}')
    context = multiprocessing.get_context("forkserver")
    for _ in range(5):
        process = context.Process(target=_rewrite_forever, args=(path,))
        process.start()
        wait_until(lambda: json.loads(read_bytes(path))["n"] > 50)
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        assert isinstance(json.loads(read_bytes(path))["n"], int)


@pytest.mark.parametrize("durability", ["process", "machine"])
def test_deliver_many_flushes_once_for_the_whole_batch(tmp_path, monkeypatch, durability):
    flushes = []
    real = mailbox_module.sync_filesystem
    monkeypatch.setattr(mailbox_module, "sync_filesystem", lambda path: (flushes.append(path), real(path)))
    box = Mailbox(tmp_path / "mb", durability=durability)
    messages = [_message(n) for n in range(20)]
    paths = box.deliver_many(messages)
    assert len(paths) == 20 and flushes == ([box.new_dir] if durability == "machine" else [])
    assert [d.message.body for d in box.drain()] == list(range(20))
    assert box.deliver_many([]) == []
