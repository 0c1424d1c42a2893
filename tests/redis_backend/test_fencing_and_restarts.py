"""Redis-only promises: a reader paused past its lease is fenced out by its
successor's epoch, and a server restarted mid-stream loses nothing acknowledged."""

from __future__ import annotations

import json
import threading

import pytest
from actors_runtime.admitted import AdmittedSet
from actors_runtime.backends import open_backend
from actors_runtime.backends.redis import RedisBackend
from actors_runtime.errors import StoreError
from actors_runtime.messages import AgentRef, InboxMessage
from conftest import wait_until
from paused_reader import paused_past_lease, paused_reader
from redis_server import RedisServer

SENDER = AgentRef("sender", None, "main")

#: The paused reader: claims with a one-second lease, takes the message, then waits
#: for the test before it tries to commit and ack.
PAUSED_READER = paused_reader("""
    outcome = {}
    try:
        backend.store.session("main", "actor").commit(json.dumps({"by": "stale"}), "{}", [batch[0].id],
                                                      AdmittedSet())
        outcome["commit"] = "written"
    except StoreError as exc:
        outcome["commit"] = str(exc)
    try:
        outcome["ack"] = box.ack(batch)
    except StoreError as exc:
        outcome["ack"] = str(exc)
    print(json.dumps(outcome), flush=True)
    sys.exit(3 if "STALE" in outcome["commit"] else 0)
""")

def test_a_reader_paused_past_its_lease_cannot_commit_or_ack_after_its_successor_claimed(redis_server, project):
    backend = RedisBackend(redis_server.url, "fencing-00000001", "process", reader_lease=1.0)
    address = backend.address("main", "actor")
    backend.mailbox(address, create=True).close()
    message = InboxMessage.create(SENDER, "task", {"n": 1})
    backend.deliver(address, [message])
    successor = backend.mailbox(address)
    try:
        with paused_past_lease(PAUSED_READER, redis_server.url, "fencing-00000001", handed=1) as first:
            successor.claim(30)  # once the paused reader's lease has run out
            [again] = successor.recover()
            assert again.id == message.id, "the successor did not take over the paused reader's message"
            backend.store.session("main", "actor").commit(json.dumps({"by": "successor"}), "{}", [again.id],
                                                          AdmittedSet())
            assert successor.ack([again]) == 1
            outcome, code = first.resume()
            assert code == 3
    finally:
        successor.close()
    assert "STALE epoch" in outcome["commit"], f"the stale commit was not refused: {outcome}"
    assert "STALE epoch" in str(outcome["ack"]), f"the stale ack was not refused: {outcome}"
    doc = backend.store.load_session("main", "actor")
    assert doc is not None and doc.state == {"by": "successor"}, "a stale commit overwrote its successor's state"
    backend.close()


def test_a_server_killed_and_restarted_mid_stream_keeps_every_acknowledged_message(tmp_path):
    server = RedisServer(tmp_path / "redis", appendfsync="always")
    server.start()
    backend = open_backend(server.url, str(tmp_path), "restart-00000001", "process")
    address = backend.address("main", "actor")
    backend.mailbox(address, create=True).close()
    acknowledged: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def send() -> None:
        i = 0
        while not stop.is_set():
            message = InboxMessage.create(SENDER, "task", {"i": i})
            try:
                backend.deliver(address, [message])
            except StoreError as exc:  # the retries ran out: reported, not hung
                failures.append(exc)
                return
            acknowledged.append(message.id)
            i += 1

    sender = threading.Thread(target=send)
    sender.start()
    try:
        wait_until(lambda: len(acknowledged) >= 200, timeout=30)
        assert server.process is not None
        server.process.kill()  # no shutdown: only what the AOF holds survives
        server.process.wait(10)
        server.process = None
        before_restart = len(acknowledged)
        server.start()  # same socket, same directory
        wait_until(lambda: len(acknowledged) >= before_restart + 200, timeout=60)  # the client reconnected
    finally:
        stop.set()
        sender.join(60)
    try:
        assert failures == []
        reader = backend.mailbox(address)
        reader.claim(5)
        found = [d.id for d in reader.recover()]
        reader.close()
        assert set(acknowledged) <= set(found), \
            f"{len(set(acknowledged) - set(found))} acknowledged messages were lost in the restart"
        # A delivery whose reply the kill swallowed is sent again: at least once, and
        # the receiver's AdmittedSet drops the repeat (same id).
        first_seen = list(dict.fromkeys(found))
        assert first_seen[:len(acknowledged)] == acknowledged, "the restart changed the order"
    finally:
        backend.close()
        server.stop()


@pytest.fixture(autouse=True)
def _needs_redis(request):
    if "redis_server" not in request.fixturenames:
        from redis_server import require_redis
        require_redis()
