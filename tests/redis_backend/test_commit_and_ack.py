"""The Redis mailbox commits a session and acks a batch in one script (``CommitsAndAcks``):
both happen or neither, a stale epoch refuses both, and a worker killed around it
loses nothing and applies nothing twice."""

from __future__ import annotations

import json

import crash_actors
import poison_actors
import pytest
from actors_runtime.admitted import AdmittedSet
from actors_runtime.backends.base import CommitsAndAcks
from actors_runtime.backends.redis import RedisBackend
from actors_runtime.messages import AgentRef, InboxMessage
from conftest import wait_until
from kill_plans import stream_through_kills
from paused_reader import paused_past_lease, paused_reader

from actors import ActorSystem

SENDER = AgentRef("sender", None, "main")


def _messages(count: int) -> list[InboxMessage]:
    return [InboxMessage.create(SENDER, "task", {"n": i}) for i in range(count)]


def test_commit_and_ack_writes_the_session_and_retires_the_batch_in_one_step(redis_server):
    backend = RedisBackend(redis_server.url, "combined-00000001", "process")
    address = backend.address("main", "actor")
    box = backend.mailbox(address, create=True)
    try:
        assert isinstance(box, CommitsAndAcks)
        sent = _messages(3)
        backend.deliver(address, sent)
        box.claim(5)
        batch = box.recover()
        assert [d.id for d in batch] == [m.id for m in sent]
        session = backend.store.session("main", "actor")
        retired = box.commit_and_ack(session, json.dumps({"sum": 3}), "{}", [d.id for d in batch[:2]],
                                     AdmittedSet(), "[]", batch[:2])
        assert retired == 2
        doc = backend.store.load_session("main", "actor")
        assert doc is not None and doc.state == {"sum": 3}
        assert doc.admitted == [m.id for m in sent[:2]]
        assert box.counts()["cur"] == 1, "the message left out of the ack was retired too"
        assert box.ack(batch[:2]) == 0, "an acked receipt was still handed out"
        assert not box.more_waiting
        backend.deliver(address, _messages(1))
        box.commit_and_ack(session, json.dumps({"sum": 3}), "{}", [batch[2].id], AdmittedSet(), "[]", batch[2:])
        assert box.more_waiting, "a delivery since the drain did not make the reader drain again"
        assert len(box.drain()) == 1
    finally:
        box.close()
        backend.close()


def test_commit_and_ack_of_another_actors_session_commits_it_then_acks_in_two_steps(redis_server):
    backend = RedisBackend(redis_server.url, "combined-00000002", "process")
    address = backend.address("main", "actor")
    backend.mailbox(backend.address("main", "other"), create=True).close()
    box = backend.mailbox(address, create=True)
    try:
        backend.deliver(address, _messages(1))
        box.claim(5)
        batch = box.recover()
        other = backend.store.session("main", "other")
        assert box.commit_and_ack(other, json.dumps({"by": "other"}), "{}", [], AdmittedSet(), "[]", batch) == 1
        doc = backend.store.load_session("main", "other")
        assert doc is not None and doc.state == {"by": "other"}
        assert box.counts() == {"new": 0, "cur": 0, "corrupt": 0, "dead": 0}
    finally:
        box.close()
        backend.close()


def test_the_next_batch_handed_out_by_the_commit_keeps_its_order_and_survives_its_reader(redis_server):
    backend = RedisBackend(redis_server.url, "combined-00000004", "process")
    address = backend.address("main", "actor")
    box = backend.mailbox(address, create=True)
    sent = _messages(4)
    try:
        backend.deliver(address, sent[:2])
        box.claim(5)
        batch = box.drain(10)
        backend.deliver(address, sent[2:3])
        session = backend.store.session("main", "actor")
        box.commit_and_ack(session, "{}", "{}", [batch[0].id], AdmittedSet(), "[]", batch[:1])
        assert box.more_waiting, "the message handed out with the commit is not announced"
        assert box.counts() == {"new": 0, "cur": 2, "corrupt": 0, "dead": 0}
        box.give_back(batch[1:])  # older than what the commit handed out: it goes first
        backend.deliver(address, sent[3:])
        assert [d.id for d in box.drain(10)] == [m.id for m in sent[1:]]
        box.commit_and_ack(session, "{}", "{}", [], AdmittedSet(), "[]", [])
    finally:
        box.close()  # nothing acked since: a successor finds all three, in order
    successor = backend.mailbox(address)
    try:
        successor.claim(5)
        assert [d.id for d in successor.recover()] == [m.id for m in sent[1:]]
    finally:
        successor.close()
        backend.close()


#: A reader that claims with a one-second lease, takes both messages, then waits for
#: the test before it tries to commit and ack them in one step.
PAUSED_READER = paused_reader("""
    try:
        retired = box.commit_and_ack(backend.store.session("main", "actor"), json.dumps({"by": "stale"}), "{}",
                                     [d.id for d in batch], AdmittedSet(), "[]", batch)
        outcome = {"retired": retired}
    except StoreError as exc:
        outcome = {"refused": str(exc)}
    print(json.dumps(outcome), flush=True)
""")

def test_a_stale_epoch_refuses_the_combined_commit_and_ack_and_acks_nothing(redis_server):
    backend = RedisBackend(redis_server.url, "combined-00000003", "process", reader_lease=1.0)
    address = backend.address("main", "actor")
    backend.mailbox(address, create=True).close()
    sent = _messages(2)
    backend.deliver(address, sent)
    successor = backend.mailbox(address)
    with paused_past_lease(PAUSED_READER, redis_server.url, "combined-00000003", handed=2) as first:
        successor.claim(30)
        again = successor.recover()
        assert [d.id for d in again] == [m.id for m in sent]
        # The successor commits the first message only: the second stays handed out.
        session = backend.store.session("main", "actor")
        assert successor.commit_and_ack(session, json.dumps({"by": "successor"}), "{}", [again[0].id],
                                        AdmittedSet(), "[]", again[:1]) == 1
        outcome, code = first.resume()
        assert code == 0
    try:
        assert "STALE epoch" in outcome.get("refused", ""), f"the stale commit+ack was not refused: {outcome}"
        doc = backend.store.load_session("main", "actor")
        assert doc is not None and doc.state == {"by": "successor"}, "a stale commit overwrote its successor's state"
        assert doc.admitted == [sent[0].id], "the stale commit added its ids"
        assert successor.counts()["cur"] == 1, "the stale reader's ack retired the successor's message"
        assert [d.id for d in successor.drain()] == [] and successor.ack(again[1:]) == 1
    finally:
        successor.close()
        backend.close()


STREAM = 300


@pytest.mark.timeout(90)
def test_kills_in_a_handler_before_and_after_the_combined_commit_and_ack_lose_nothing_and_repeat_nothing(
        redis_server, home, project, tmp_path):
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    kill_at = {"handle": 40, "before": 120, "after": 200}
    with ActorSystem(home=home, project=project, durability="process", backend=redis_server.url) as system:
        info = stream_through_kills(system, crash_actors.CommitAckKillable, plan_dir, kill_at, STREAM)
        assert info.restarts == 3 and info.status == "running"


@pytest.mark.timeout(90)
def test_a_message_that_kills_its_worker_mid_batch_is_the_one_counted_and_buried(redis_server, home, project,
                                                                                   caplog):
    # The in-flight marker lives in a page on this machine (no server write per
    # message): a SIGKILL in the middle of a batch still blames the message running.
    with ActorSystem(home=home, project=project, durability="process", backend=redis_server.url) as system:
        victim = system.spawn(poison_actors.SelfKiller, name="victim", max_attempts=2)
        ids = victim.tell_many([{}, {}, {"kill": True}, {}, {}])
        wait_until(lambda: len(system.dead_letters(victim)) == 1, timeout=60)
        [letter] = system.dead_letters(victim)
        assert letter.message.id == ids[2], "a message that did not kill the worker was buried"
        assert letter.attempts == 2
        assert victim.ask("count", timeout=30) == 4, "the messages around the poison one were not applied once each"
    # The supervisor read the same marker when each death came.
    deaths = [r.getMessage() for r in caplog.records
              if r.name.endswith("parent.monitor") and "worker died" in r.getMessage()]
    assert len(deaths) == 2 and all(f"while handling message {ids[2]}" in d for d in deaths), deaths
