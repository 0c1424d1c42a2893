"""The worker on the in-process memory backend: each message's effect on the state
happens once (commit, then ack), repeats are dropped, queries change nothing and are
answered in the asker's mailbox, a raising handler is not a crash, and what a worker
that died held unacked is handed to the next activation. Workers run in this
process; each opens its own backend at the same ``memory://`` location, as
processes would open one maildir home."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
from actors_runtime.address import Address
from actors_runtime.backends import open_backend
from actors_runtime.backends.base import Backend
from actors_runtime.backends.memory import forget_all
from actors_runtime.errors import ActorNotFound
from actors_runtime.messages import AgentRef, AskBody, InboxMessage, ReplyBody, derived_msg_id
from actors_runtime.spec import Identity, ProvisionSpec
from actors_runtime.worker import Worker

KEY = "proj-12345678"
SYSTEM = AgentRef(session_id="main", system_id="main")


@pytest.fixture
def location() -> Iterator[str]:
    """A memory location of this test's own; every memory project is dropped after it."""
    yield f"memory://worker-{uuid.uuid4().hex}"
    forget_all()


@pytest.fixture
def open_memory(location: str, home: Path) -> Iterator[Callable[[], Backend]]:
    """Opens the project at ``location`` (another process's view of it, as often as a
    test needs); every one is closed at teardown."""
    opened: list[Backend] = []

    def opener() -> Backend:
        backend = open_backend(location, str(home), KEY, "process")
        opened.append(backend)
        return backend

    yield opener
    for backend in opened:
        backend.close()


@pytest.fixture
def new_worker(location: str, home: Path, open_memory: Callable[[], Backend]) -> Iterator[Callable[..., Worker]]:
    """Makes a Worker of actor "a" on a backend of its own; closes what is left at teardown."""
    made: list[Worker] = []

    def make(actor_class: str = "sample_actors:Counter") -> Worker:
        spec = ProvisionSpec(
            identity=Identity(child_id="a", system_id="main", project_key=KEY),
            actor_class=actor_class, home=str(home), backend=location, durability="process",
        ).validate()
        worker = Worker(spec, backend=open_memory())
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.close()  # idempotent after finish


def _tell(backend: Backend, body, msg_id: str | None = None) -> InboxMessage:
    message = InboxMessage.create(SYSTEM, "task", body, msg_id=msg_id)
    backend.deliver(backend.address("main", "a"), [message])
    return message


def _counts(backend: Backend) -> dict[str, int]:
    view = backend.view(backend.address("main", "a"))
    try:
        return view.counts()
    finally:
        view.close()


def test_a_tell_is_applied_committed_and_restored_by_the_next_activation(new_worker, open_memory):
    sender = open_memory()
    first = new_worker()
    assert first.activate() == []
    assert first.backend.location == sender.location and first.backend is not sender
    told = _tell(sender, {"n": 3})
    first.process(first.mailbox.drain())
    assert first.handler.state == {"count": 3}
    committed = sender.store.load_session("main", "a")
    assert committed is not None and committed.state == {"count": 3}
    assert told.id in committed.admitted
    assert _counts(sender) == {"new": 0, "cur": 0, "corrupt": 0, "dead": 0}  # acked
    first.finish()

    second = new_worker()
    assert second.activate() == []  # nothing to redeliver
    assert second.handler.state == {"count": 3}
    second.finish()


def test_a_repeat_of_a_message_id_is_dropped_in_this_activation_and_the_next(new_worker, open_memory):
    sender = open_memory()
    first = new_worker()
    first.activate()
    told = _tell(sender, {"n": 5})
    first.process(first.mailbox.drain())
    _tell(sender, {"n": 5}, msg_id=told.id)  # a sender that retried
    repeat = first.mailbox.drain()
    assert [d.id for d in repeat] == [told.id]
    first.process(repeat)
    assert first.handler.state == {"count": 5}
    assert _counts(sender)["new"] + _counts(sender)["cur"] == 0, "the repeat was not acked"
    first.finish()

    _tell(sender, {"n": 5}, msg_id=told.id)  # and once more, to the next activation
    second = new_worker()
    batch = second.activate()
    assert [d.id for d in batch] == [told.id]
    second.process(batch)
    assert second.handler.state == {"count": 5}
    assert sender.store.load_session("main", "a").state == {"count": 5}
    assert _counts(sender)["new"] + _counts(sender)["cur"] == 0
    second.finish()


def test_a_query_leaves_the_state_unchanged_and_replies_to_the_askers_mailbox(new_worker, open_memory):
    sender = open_memory()
    asker = sender.mailbox(sender.address("main", "asker"), create=True)
    asker.claim(0)
    worker = new_worker()
    worker.activate()
    _tell(sender, {"n": 3})
    worker.process(worker.mailbox.drain())
    # "bump" changes the state while answering: a query must not keep that change.
    ask = InboxMessage.create(AgentRef(session_id="asker", system_id="main"), "ask",
                              AskBody("bump", "query").to_body())
    sender.deliver(sender.address("main", "a"), [ask])
    worker.process(worker.mailbox.drain())
    assert worker.handler.state == {"count": 3}
    assert sender.store.load_session("main", "a").state == {"count": 3}
    assert _counts(sender)["new"] + _counts(sender)["cur"] == 0  # the ask was acked

    replies = asker.drain()
    assert len(replies) == 1
    reply = replies[0].message
    assert (reply.kind, reply.correlation_id, reply.id) == ("reply", ask.id, derived_msg_id(ask.id, -1))
    assert ReplyBody.from_dict(reply.body) == ReplyBody(answer=4)  # answered from the bumped state
    assert reply.sender.session_id == "a"
    asker.ack(replies)
    asker.close()
    worker.finish()

    again = new_worker()
    again.activate()
    assert again.handler.state == {"count": 3}
    again.finish()


def test_a_handler_that_raises_gets_on_failure_and_its_message_is_acked(new_worker, open_memory):
    sender = open_memory()
    worker = new_worker("memory_actors:Raiser")
    worker.activate()
    failing = _tell(sender, {"raise": "no good"})
    _tell(sender, {})
    batch = worker.mailbox.drain()
    assert len(batch) == 2
    worker.process(batch)  # does not raise: a failing handler is not a crash
    expected = {"n": 1, "failures": [{"id": failing.id, "error": "RuntimeError: no good"}]}
    assert worker.handler.state == expected
    assert sender.store.load_session("main", "a").state == expected  # committed
    counts = _counts(sender)
    assert (counts["new"], counts["cur"], counts["dead"]) == (0, 0, 0), counts  # acked, not buried
    worker.finish()

    again = new_worker("memory_actors:Raiser")
    assert again.activate() == []  # the failed message is not handed out again
    assert again.handler.state == expected
    again.finish()


def test_a_batch_drained_by_a_worker_that_died_is_redelivered_and_applied_once(new_worker, open_memory):
    sender = open_memory()
    first = new_worker()
    first.activate()
    told = [_tell(sender, {"n": n}) for n in (1, 10, 100)]
    drained = first.mailbox.drain()
    assert [d.id for d in drained] == [m.id for m in told]
    first.mailbox.close()  # the "crash": the reader lets go without acking or committing
    first.close()
    assert _counts(sender)["cur"] == 3  # handed out, not acked

    second = new_worker()
    batch = second.activate()
    assert [d.id for d in batch] == [m.id for m in told]
    second.process(batch)
    assert second.handler.state == {"count": 111}
    assert _counts(sender)["new"] + _counts(sender)["cur"] == 0
    second.finish()

    third = new_worker()
    assert third.activate() == []
    assert third.handler.state == {"count": 111}
    third.finish()


def test_a_worker_that_died_between_commit_and_ack_has_its_batch_dropped_as_repeats(new_worker, open_memory):
    sender = open_memory()
    first = new_worker()
    first.activate()
    told = [_tell(sender, {"n": n}) for n in (1, 10)]
    # The commit lands, then the worker dies before its ack does.
    first.mailbox.ack = lambda batch: 0
    first.process(first.mailbox.drain())
    assert sender.store.load_session("main", "a").state == {"count": 11}
    first.mailbox.close()
    first.close()

    second = new_worker()
    batch = second.activate()
    assert [d.id for d in batch] == [m.id for m in told]  # redelivered ...
    second.process(batch)
    assert second.handler.state == {"count": 11}  # ... and not applied again
    assert _counts(sender)["new"] + _counts(sender)["cur"] == 0
    second.finish()


def test_a_worker_on_a_memory_location_shares_nothing_with_another_location(new_worker, home):
    other = open_backend(f"memory://other-{uuid.uuid4().hex}", str(home), KEY, "process")
    try:
        worker = new_worker()
        worker.activate()
        _tell(worker.backend, {"n": 2})
        worker.process(worker.mailbox.drain())
        worker.finish()
        assert other.store.load_session("main", "a") is None
        assert other.fabric.read("a") is None
        with pytest.raises(ActorNotFound):
            other.view(Address(other.location, KEY, "main", "a"))
    finally:
        other.close()
