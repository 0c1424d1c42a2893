"""Group commit at durability "machine" (runtime/worker/group_commit.py): a commit with
nothing to release is staged without its flush, and its messages are acked only once
a later flush covers it. Workers killed between the two, output held for the flush,
acks ordered after it, and the exits that flush."""

from __future__ import annotations

import json

import group_commit_actors
import pytest
import sample_actors
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.backends.maildir.session_file import read_session
from actors_runtime.messages import AgentRef, AskBody, InboxMessage
from actors_runtime.spec import Identity, Limits, ProvisionSpec
from actors_runtime.worker import Worker
from conftest import mailbox_dir, wait_until
from kill_plans import stream_through_kills

from actors import ActorSystem

SYSTEM = AgentRef(session_id="main")
STREAM = 500
#: Kinds that leave at once, before their turn commits (a handler waits for their answer).
QUESTIONS = {"ask", "mcp_request"}


@pytest.mark.timeout(90)
def test_kills_after_a_staged_commit_and_after_its_flush_before_the_acks_lose_and_repeat_nothing(
        home, project, tmp_path):
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    with ActorSystem(home=home, project=project, durability="machine") as system:
        info = stream_through_kills(system, group_commit_actors.StagedKillable, plan_dir,
                                    {"staged": 100, "flushed": 300}, STREAM, ask_every=10)
        assert info.restarts == 2 and info.status == "running"


def _events(path) -> list[list]:
    with open(path) as handle:
        return [json.loads(line) for line in handle]


@pytest.mark.timeout(90)
def test_output_and_acks_never_go_before_the_flush_of_the_staged_commits_before_them(home, project, tmp_path):
    log = tmp_path / "events.jsonl"
    with ActorSystem(home=home, project=project, durability="machine") as system:
        sink = system.spawn(sample_actors.Counter, name="sink")
        recorder = system.spawn(group_commit_actors.FlushOrderRecorder, name="recorder", secrets={"log": str(log)})
        counted = forwarded = 0
        for i in range(400):
            if i % 10 == 9:
                recorder.tell({"forward": sink})  # a turn with output
                forwarded += 1
            else:
                recorder.tell({"n": 1})
                counted += 1
            if i % 50 == 49:
                assert recorder.ask("count", timeout=10) <= counted  # a query: its answer is output too
        wait_until(lambda: recorder.ask("count", timeout=10) == counted, timeout=60)
        wait_until(lambda: sink.ask("count", timeout=10) == forwarded, timeout=60)
    # Replay the worker's events: "staged" leaves a commit not yet on disk until an
    # fdatasync of the session's file. Power loss would take back every staged commit,
    # so an ack written meanwhile could cover a message whose effect is lost.
    dirty = False
    staged = forced = acks = 0
    staged_since_output = False
    for event in _events(log):
        kind = event[0]
        if kind == "staged":
            dirty = staged_since_output = True
            staged += 1
        elif kind == "sync" and "session.json" in event[1]:
            dirty = False
        elif kind == "ack":
            assert not dirty, "an ack was written while a commit it may cover was not flushed"
            acks += 1
        elif kind == "deliver" and set(event[1]) - QUESTIONS:
            assert not dirty, f"{event[1]} left before the staged commits before it were flushed"
            forced += staged_since_output
            staged_since_output = False
    assert staged > 10, "no commit was staged: nothing was grouped"
    assert forced > 0, "no output followed a staged commit"
    assert acks > 0


def _worker(home, name, **limits) -> Worker:
    spec = ProvisionSpec(
        identity=Identity(child_id=name, system_id="main", project_key="proj-12345678"),
        actor_class="recovery_actors:StopCounter", home=str(home), durability="machine",
        limits=Limits(**limits),
    ).validate()
    return Worker(spec)


def _deliver(worker: Worker, count: int) -> None:
    sender = MaildirMailbox(worker.mailbox.root, durability="machine")
    sender.deliver([InboxMessage.create(SYSTEM, "task", {}) for _ in range(count)])
    sender.close()


def _handled_not_acked(worker: Worker) -> int:
    """Messages handed out and not acked, as another process (``actors inbox``) sees them."""
    view = MaildirMailbox(mailbox_dir(worker.address), durability="machine", create=False)
    try:
        counts = view.counts()
        assert counts["new"] == 0
        return counts["cur"]
    finally:
        view.close()


def _session_path(worker: Worker) -> str:
    return worker.backend.layout.actor_file("main", worker.actor_id, "session.json")


@pytest.mark.parametrize("exit_by", ["idle", "stop"])
def test_the_loop_flushes_and_acks_everything_before_it_exits(home, exit_by):
    worker = _worker(home, "exiting", idle_timeout=0.001)
    worker.activate()
    try:
        _deliver(worker, 5)
        worker.process(worker.mailbox.drain())  # a batch with nothing to release: staged
        assert worker.group.pending and worker.state.session.unflushed
        assert _handled_not_acked(worker) == 5, "acked before the commit covering them was flushed"
        assert read_session(_session_path(worker))[0]["state"]["tasks"] == 5  # staged, in the spare
        if exit_by == "stop":
            worker.request_stop()
        assert worker.run([]) == ("idle" if exit_by == "idle" else "stop requested")
        # Before ``finish``: the loop's own exit flushed, then acked.
        assert not worker.state.session.unflushed and not worker.group.pending
        assert _handled_not_acked(worker) == 0
        doc, _, from_spare = read_session(_session_path(worker))
        assert doc["state"]["tasks"] == 5 and not from_spare
    finally:
        worker.finish()


def test_a_query_answer_leaves_only_after_the_staged_commit_it_read_was_flushed(home):
    worker = _worker(home, "answering")
    worker.activate()
    try:
        _deliver(worker, 2)
        worker.process(worker.mailbox.drain())
        assert worker.state.session.unflushed
        seen = []
        original = worker.backend.deliver

        def deliver(target, messages, **options):
            seen.append((messages[0].kind, worker.state.session.unflushed))
            return original(target, messages, **options)

        worker.backend.deliver = deliver
        peer = worker.backend.address("main", "peer")
        MaildirMailbox(mailbox_dir(peer), durability="machine").close()  # where the answer goes
        sender = MaildirMailbox(worker.mailbox.root, durability="machine")
        asker = AgentRef(session_id="peer", system_id="main")
        sender.deliver([InboxMessage.create(asker, "ask", AskBody("stops?", "query").to_body())])
        sender.close()
        worker.process(worker.mailbox.drain())  # a batch of one query: it commits nothing itself
        assert seen == [("reply", False)]
        assert _handled_not_acked(worker) == 0  # the flush acked the tells, and the query after it
    finally:
        worker.finish()


def test_a_staged_commit_left_by_a_dead_worker_is_read_by_the_next_activation_and_its_messages_dropped(home):
    worker = _worker(home, "crashed")
    worker.activate()
    _deliver(worker, 3)
    worker.process(worker.mailbox.drain())
    assert worker.state.session.unflushed and _handled_not_acked(worker) == 3
    worker.close()  # as a SIGKILL leaves it: no flush, no ack; the claim goes
    again = _worker(home, "crashed")
    try:
        batch = again.activate()
        assert again.handler.state["tasks"] == 3, "the staged commit was not read"
        assert [d.message.kind for d in batch] == ["task"] * 3  # unacked: they come again...
        again.process(batch)
        assert again.handler.state["tasks"] == 3  # ... and are dropped as repeats
        again.group.flush()
        assert _handled_not_acked(again) == 0
    finally:
        again.finish()
