"""The worker's use of its mailbox: recovery, replies, commits of queries, backpressure,
the reader's claim. Workers run in this process (no system), on real files."""

from __future__ import annotations

import json
import threading

import pytest
from actors_runtime.backends.maildir import reading as reading_module
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.errors import MailboxFull, StoreError
from actors_runtime.messages import AgentRef, AskBody, InboxMessage, ReplyBody, derived_msg_id
from actors_runtime.spec import Identity, Limits, ProvisionSpec
from actors_runtime.worker import Worker
from conftest import mailbox_dir, open_project, sleeps_observed

SYSTEM = AgentRef(session_id="main")


def _worker(home, actor_class, name="a", **limits) -> Worker:
    spec = ProvisionSpec(
        identity=Identity(child_id=name, system_id="main", project_key="proj-12345678"),
        actor_class=f"recovery_actors:{actor_class}", home=str(home), durability="process",
        limits=Limits(**limits),
    ).validate()
    return Worker(spec)


def _session_file(worker: Worker) -> str:
    """The session document the worker's commits rewrite (maildir)."""
    return worker.backend.layout.actor_file("main", worker.actor_id, "session.json")


def _peer_with_an_answer(worker: Worker, question_of: InboxMessage, answer) -> None:
    """Make the actor "peer" exist and put in ``worker``'s mailbox the answer to the
    question the handler of ``question_of`` asks first (as a crashed run left it)."""
    peer = worker.backend.address("main", "peer")
    MaildirMailbox(mailbox_dir(peer), durability="process").close()
    asked = derived_msg_id(question_of.id, 0)
    reply = InboxMessage.create(AgentRef(session_id="peer"), "reply", ReplyBody(answer=answer).to_body(),
                                msg_id=derived_msg_id(asked, -1), correlation_id=asked)
    sender = MaildirMailbox(worker.mailbox.root, durability="process")
    sender.deliver([reply])
    sender.close()


def _drain_all(worker: Worker, batch) -> None:
    while batch:
        worker.process(batch)
        batch = worker.mailbox.drain(worker.spec.limits.batch_size)


def test_a_reply_behind_a_long_recovered_backlog_reaches_the_handler_waiting_for_it(home):
    worker = _worker(home, "PeerAsker")
    sender = MaildirMailbox(worker.mailbox.root, durability="process")
    first = InboxMessage.create(SYSTEM, "task", {"ask": True, "timeout": 5})
    sender.deliver([first])
    sender.deliver([InboxMessage.create(SYSTEM, "task", {}) for _ in range(300)])  # > one batch
    sender.close()
    _peer_with_an_answer(worker, first, 42)
    try:
        _drain_all(worker, worker.activate())
        assert worker.handler.state == {"answer": 42, "n": 300}
    finally:
        worker.finish()


def test_on_stop_changes_are_committed_after_a_batch_of_queries(home):
    worker = _worker(home, "StopCounter")
    session_file = _session_file(worker)
    worker.activate()
    sender = MaildirMailbox(worker.mailbox.root, durability="process")
    sender.deliver([InboxMessage.create(SYSTEM, "task", {})])
    worker.process(worker.mailbox.drain())
    sender.deliver([InboxMessage.create(SYSTEM, "ask", AskBody("stops?", "query").to_body())])
    worker.process(worker.mailbox.drain())  # a batch of one query: nothing committed
    sender.close()
    worker.finish()  # runs on_stop, commits
    with open(session_file, "rb") as handle:
        assert json.load(handle)["state"] == {"stops": 1, "tasks": 1}


def test_queries_in_a_row_answer_from_the_state_each_time_whatever_ran_between_them(home):
    spec = ProvisionSpec(identity=Identity(child_id="counter", system_id="main", project_key="proj-12345678"),
                         actor_class="sample_actors:Counter", home=str(home), durability="process").validate()
    worker = Worker(spec)
    worker.activate()
    sender = MaildirMailbox(worker.mailbox.root, durability="process")

    def bump() -> None:  # a query that changes the state while answering: the change is discarded
        sender.deliver([InboxMessage.create(SYSTEM, "ask", AskBody("bump", "query").to_body())])
        worker.process(worker.mailbox.drain())

    try:
        sender.deliver([InboxMessage.create(SYSTEM, "task", {"n": 3})])
        worker.process(worker.mailbox.drain())  # committed: the state's text is known
        for _ in range(3):  # each batch one query: the state it restores is the text saved before it
            bump()
            assert worker.handler.state == {"count": 3}
        sender.deliver([InboxMessage.create(SYSTEM, "task", {"n": 1})])
        worker.process(worker.mailbox.drain())
        bump()
        assert worker.handler.state == {"count": 4}
        sender.deliver([InboxMessage.create(SYSTEM, "ask", AskBody("bump", "steer").to_body())])
        worker.process(worker.mailbox.drain())  # a turn that keeps its change, between queries
        bump()
        assert worker.handler.state == {"count": 5}
    finally:
        sender.close()
        worker.finish()
    with open(_session_file(worker), "rb") as handle:
        assert json.load(handle)["state"] == {"count": 5}


def test_a_query_that_consumed_a_reply_is_committed(home):
    worker = _worker(home, "PeerAsker")
    worker.activate()
    query = InboxMessage.create(SYSTEM, "ask", AskBody("peer?", "query").to_body())
    _peer_with_an_answer(worker, query, "from peer")
    sender = MaildirMailbox(worker.mailbox.root, durability="process")
    sender.deliver([query])
    sender.close()
    try:
        worker.process(worker.mailbox.drain())  # the query, and the answer it waits for
        # As another process (the next activation) would read the session.
        other = open_project(worker.address)
        try:
            committed = other.store.load_session("main", worker.actor_id)
        finally:
            other.close()
        assert committed is not None and query.id in committed.admitted, "the query was not committed"
    finally:
        worker.finish()


def test_messages_recovered_but_not_yet_handled_count_against_max_pending(home):
    worker = _worker(home, "StopCounter", max_pending=1000)
    sender = MaildirMailbox(worker.mailbox.root, durability="process", max_pending=1000)
    sender.deliver([InboxMessage.create(SYSTEM, "task", {}) for _ in range(1000)])
    sender.close()
    batch = worker.activate()
    assert len(batch) == worker.spec.limits.batch_size
    late = MaildirMailbox(worker.mailbox.root, durability="process", max_pending=1000, create=False)
    accepted = 0
    with pytest.raises(MailboxFull):
        for _ in range(1000):
            late.deliver([InboxMessage.create(SYSTEM, "task", {})])
            accepted += 1
    assert accepted == len(batch), "only the batch taken for handling made room"
    late.close()
    worker.finish()


def test_a_claim_waits_for_the_previous_reader_to_let_go(tmp_path, monkeypatch):
    root = tmp_path / "mailbox"
    first = MaildirMailbox(root, durability="process")
    second = MaildirMailbox(root, durability="process", create=False)
    first.claim()
    outcome: list[object] = []
    refused_once = sleeps_observed(monkeypatch, reading_module)  # the claim was found held

    def claim() -> None:
        try:
            second.claim(timeout=30)
            outcome.append("claimed")
        except StoreError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=claim)
    waiter.start()
    assert refused_once.wait(10), "the second claim never found the first one held"
    first.close()
    waiter.join(30)
    assert outcome == ["claimed"]
    with pytest.raises(StoreError, match="another process is reading"):
        first.claim(timeout=0.05)
    second.close()
