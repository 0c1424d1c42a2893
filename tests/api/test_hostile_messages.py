"""An actor whose mailbox receives input that is not a message keeps running: a real
worker process, real files dropped into its mailbox as a careless program or a
damaged disk would leave them."""

from __future__ import annotations

import os
import time

import sample_actors
from actors_runtime.backends.maildir.segment_format import HEADER, HEADER_SIZE, MAGIC, SEAL, VERSION, frame
from actors_runtime.errors import InvalidSpec
from actors_runtime.messages import AgentRef, InboxMessage
from conftest import mailbox_dir, wait_until

#: Nested far deeper than a JSON parser's recursion goes.
DEEP_BODY = b"[" * 100_000 + b"]" * 100_000


def _deep(msg_id: str) -> bytes:
    return b'{"id":"' + msg_id.encode() + b'","from":{"session_id":"s"},"kind":"task","body":' + DEEP_BODY + b"}"


def _task(n: int) -> bytes:
    return InboxMessage.create(AgentRef("by-hand"), "task", {"n": n}).to_wire()


def _drop_file(box: str, data: bytes) -> str:
    """A Maildir file in ``new/``, written under a hidden name and renamed in."""
    name = f"{time.time_ns():020d}-by-hand.json"
    hidden = os.path.join(box, "new", "." + name)
    with open(hidden, "wb") as handle:
        handle.write(data)
    os.rename(hidden, os.path.join(box, "new", name))
    return name


def _drop_segment(box: str, payloads: list[bytes]) -> str:
    """Another sender's sealed segment holding these records (its writer is gone)."""
    name = f"{time.time_ns():020d}-{os.getpid()}-byhand-0.seg"
    data = HEADER.pack(MAGIC, VERSION, HEADER_SIZE << 16, HEADER_SIZE << 16)
    data += b"".join(frame(payload) for payload in payloads) + SEAL
    hidden = os.path.join(box, "log", "." + name)
    with open(hidden, "wb") as handle:
        handle.write(data)
    os.rename(hidden, os.path.join(box, "log", name))
    return name


def test_an_actor_given_deep_input_keeps_running_and_counts_exactly_the_good_messages(system):
    counter = system.spawn(sample_actors.Counter, name="counter")
    counter.tell({"n": 1})
    assert counter.ask("count", timeout=30) == 1
    pid = system.pid_of(counter)
    box = mailbox_dir(counter.address)

    # While it runs: a deep file in new/, and a deep record between two good ones.
    deep_file = _drop_file(box, _deep("deep-file-1"))
    deep_segment = _drop_segment(box, [_task(10), _deep("deep-record-1"), _task(100)])
    counter.tell({"n": 1000})  # rings the doorbell the hand-made input did not
    wait_until(lambda: counter.ask("count", timeout=30) == 1111, timeout=30)
    assert system.pid_of(counter) == pid, "the same worker: it never died"

    # Stopped, then resumed: the worker's recover() meets the same input.
    counter.stop()
    second_file = _drop_file(box, _deep("deep-file-2"))
    second_segment = _drop_segment(box, [_deep("deep-record-2"), _task(10_000)])
    counter = system.spawn(sample_actors.Counter, name="counter")
    wait_until(lambda: counter.ask("count", timeout=30) == 11111, timeout=30)
    info = system.inspect(counter)
    assert (info.status, info.restarts) == ("running", 0)
    assert counter.ask("count", timeout=30) == 11111, "each good message counted once, no bad one"

    kept = sorted(os.listdir(os.path.join(box, "corrupt")))
    assert len(kept) == 4, kept
    assert deep_file in kept and second_file in kept
    assert any(name.startswith(deep_segment + "@") for name in kept)
    assert any(name.startswith(second_segment + "@") for name in kept)


def _nested(depth: int) -> object:
    body: object = []
    for _ in range(depth - 1):
        body = [body]
    return body


def test_a_message_no_reader_could_decode_never_reaches_the_reader_on_any_backend(backend):
    """Memory refuses it at the sender (it has no corrupt/); maildir keeps it in corrupt/."""
    address = backend.address("main", "actor")
    sender, reader = backend.mailbox(address, create=True), backend.mailbox(address)
    reader.claim(0)
    sender_ref = AgentRef("sender", None, "main")
    good = [InboxMessage.create(sender_ref, "task", n) for n in range(2)]
    sender.deliver([good[0]])
    for body in (_nested(300), {"n": float("nan")}):
        try:
            sender.deliver([InboxMessage.create(sender_ref, "task", body)])
        except InvalidSpec:
            pass
    sender.deliver([good[1]])
    assert [d.id for d in reader.drain()] == [m.id for m in good]
    assert reader.counts()["new"] == 0
    sender.close()
    reader.close()
