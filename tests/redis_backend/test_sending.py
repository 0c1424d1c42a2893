"""The Redis backend's pipelined deliveries (``sending``): order kept, MailboxFull
where the process can know it and on the Future where it cannot, everything resolved
by close, and a server killed with deliveries in flight loses none acknowledged."""

from __future__ import annotations

import pytest
from actors_runtime.backends import open_backend
from actors_runtime.backends.redis import RedisBackend
from actors_runtime.errors import MailboxFull
from actors_runtime.messages import AgentRef, InboxMessage
from redis_server import RedisServer

SENDER = AgentRef("sender", None, "main")


def _messages(count: int, start: int = 0) -> list[InboxMessage]:
    return [InboxMessage.create(SENDER, "task", {"i": i}) for i in range(start, start + count)]


def _stored(backend: RedisBackend, address) -> list[str]:
    reader = backend.mailbox(address)
    reader.claim(5)
    found = [d.id for d in reader.recover()]
    reader.close()
    return found


def test_async_and_blocking_deliveries_of_one_thread_keep_their_order(redis_server):
    backend = RedisBackend(redis_server.url, "sending-00000001", "process")
    address = backend.address("main", "actor")
    backend.mailbox(address, create=True).close()
    sent = _messages(3_000)
    futures = []
    for number, message in enumerate(sent):
        if number % 500 == 499:
            backend.deliver(address, [message])  # after every pipelined one before it
        else:
            futures.append(backend.deliver_async(address, message))
    assert [f.result(30) for f in futures] == [m.id for n, m in enumerate(sent) if n % 500 != 499]
    assert _stored(backend, address) == [m.id for m in sent]
    backend.close()


def test_a_mailbox_filled_by_another_sender_fails_the_future_with_mailbox_full(redis_server):
    ours = RedisBackend(redis_server.url, "sending-00000002", "process")
    other = RedisBackend(redis_server.url, "sending-00000002", "process")
    address = ours.address("main", "actor")
    ours.mailbox(address, create=True, max_pending=10).close()
    first = ours.deliver_async(address, _messages(1)[0])  # synchronous: no figure of the mailbox yet
    assert first.done() and first.result()
    other.deliver(address, _messages(9, 1))  # full now; this process still believes 9 more fit
    late = ours.deliver_async(address, _messages(1, 10)[0])
    with pytest.raises(MailboxFull):
        late.result(30)
    with pytest.raises(MailboxFull):  # the refusal taught it: now refused before anything is queued
        ours.deliver_async(address, _messages(1, 11)[0])
    assert len(_stored(ours, address)) == 10
    ours.close()
    other.close()


def test_close_resolves_every_future_it_was_given(redis_server):
    backend = RedisBackend(redis_server.url, "sending-00000003", "process")
    address = backend.address("main", "actor")
    backend.mailbox(address, create=True).close()
    backend.deliver(address, _messages(1))
    futures = [backend.deliver_async(address, m) for m in _messages(2_000, 1)]
    backend.close()
    assert all(f.done() and f.exception() is None for f in futures)
    again = RedisBackend(redis_server.url, "sending-00000003", "process")
    assert len(_stored(again, address)) == 2_001
    again.close()


def test_a_server_killed_with_deliveries_in_flight_keeps_every_acknowledged_one(tmp_path):
    server = RedisServer(tmp_path / "redis", appendfsync="always")
    server.start()
    backend = open_backend(server.url, str(tmp_path), "sending-00000004", "process")
    address = backend.address("main", "actor")
    backend.mailbox(address, create=True).close()
    backend.deliver(address, _messages(1))
    try:
        futures = [backend.deliver_async(address, m) for m in _messages(3_000, 1)]
        assert server.process is not None
        server.process.kill()  # no shutdown: only what the AOF holds survives
        server.process.wait(10)
        server.process = None
        futures += [backend.deliver_async(address, m) for m in _messages(1_000, 3_001)]
        server.start()  # same socket, same directory: the sender writes its batch again
        acknowledged = [f.result(60) for f in futures]
        found = _stored(backend, address)
        assert set(acknowledged) <= set(found), \
            f"{len(set(acknowledged) - set(found))} acknowledged messages were lost in the restart"
        first_seen = list(dict.fromkeys(found))
        assert first_seen[1:] == acknowledged, "the restart changed the order"
    finally:
        backend.close()
        server.stop()


@pytest.fixture(autouse=True)
def _needs_redis(request):
    if "redis_server" not in request.fixturenames:
        from redis_server import require_redis
        require_redis()


def test_the_direct_line_delivers_in_one_call_and_steps_aside_when_taken(redis_server):
    from actors_runtime.backends.redis.keys import GROUP
    from actors_runtime.backends.redis.mailbox import deliver_keys
    from actors_runtime.backends.redis.sending import DirectLine

    backend = RedisBackend(redis_server.url, "sending-00000005", "process")
    address = backend.address("main", "actor")
    backend.mailbox(address, create=True, max_pending=5).close()
    keys = deliver_keys(backend.keys.mailbox("main", "actor"))
    line = DirectLine(backend.server)
    assert line.call(keys, [GROUP, _messages(1)[0].to_wire()]) == [0, 1, 5]
    assert line.call(keys, [GROUP, *(m.to_wire() for m in _messages(5, 1))]) == [-2, 1, 5]
    with line._lock:  # another thread on the line: the caller is sent to the pool
        assert line.call(keys, [GROUP, _messages(1, 6)[0].to_wire()]) is None
    line.close()
    assert len(_stored(backend, address)) == 1
    backend.close()
