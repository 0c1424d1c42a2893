"""An answer to the parent's ask travels on the worker's pipe as a compact frame
(``control.answer_frame``: the ask's id and the answer's JSON), and its reply
message is built only when it must go another way.

These tests hold it to what the whole message promised: the frame resolves the
asker's future and writes nothing to the system's inbox; a pipe that breaks sends
the reply through the system's inbox, the same message the turn would have built;
a commit that lists the reply (an ask that changed the state) lists that message;
a query whose worker is killed after its answer left and before its ack is answered
again by the next worker; frames and log records share the pipe in order.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
from concurrent.futures import Future

import answer_actors
import lane_actors
import pytest
from actors_runtime import control, tracing
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.messages import AskBody, InboxKind, InboxMessage, derived_msg_id
from actors_runtime.parent.inbox import Inbox
from actors_runtime.spec import Identity, ProvisionSpec
from actors_runtime.worker import Worker, loop
from actors_runtime.worker.pipe_entry import ParentLane, pipe_main
from asking import ask_from_threads
from conftest import wait_until

from actors._codec import type_tag

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_an_answer_frame_carries_the_id_and_the_answer_and_refuses_what_is_not_json():
    frame = control.answer_frame("ask-1", {"count": [1, 2.5, None, "é"]})
    assert frame is not None and frame[:1] == control.ANSWER_PREFIX
    assert control.parse_answer(frame) == ("ask-1", {"count": [1, 2.5, None, "é"]})
    assert control.parse_answer(control.answer_frame("ask-2", 0)) == ("ask-2", 0)
    assert control.answer_frame("ask", {1, 2}) is None  # not JSON: the whole reply says so
    assert control.answer_frame("ask", float("nan")) is None  # nor is NaN
    assert control.answer_frame("x" * 256, 1) is None  # an id too long for its length byte
    assert control.parse_answer(control.answer_frame("x" * 255, 1)) == ("x" * 255, 1)
    for bad in (b"", b"A", b"A\x05abc", b"R{}", b"A\x01xNaN", b"A\x01x[1", b"A\x01x1 2", b"A\x01x\"a"):
        with pytest.raises(ValueError):
            control.parse_answer(bad)


@pytest.fixture(params=["tracing off", "no provider"])
def worker(home, monkeypatch, request):
    """An in-process worker of ``sample_actors:Counter``, whose parent lane is set by
    each test; tracing off, or the OpenTelemetry API without a provider (no spans):
    either way a reply's traceparent is the ask's."""
    if request.param == "tracing off":
        monkeypatch.setattr(tracing, "_otel", None)
    else:
        from opentelemetry import trace

        monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
        monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
        monkeypatch.setattr(tracing, "_otel", tracing._Otel())
        assert not tracing.makes_spans()
    worker = _worker(home)
    try:
        yield worker
    finally:
        worker.finish()


def _worker(home) -> Worker:
    spec = ProvisionSpec(identity=Identity(child_id="counter", system_id="main", project_key="proj-12345678"),
                         actor_class="sample_actors:Counter", home=str(home), durability="process").validate()
    worker = Worker(spec)
    worker.activate()
    worker.backend.mailbox(worker.address.system_inbox, create=True).close()  # as the system makes it
    return worker


def _ask(worker, question, mode="query") -> InboxMessage:
    """Deliver an ask of the worker's own system (as ``ActorSystem.ask`` sends it) and run its turn."""
    sender = worker.address.system_inbox.agent_ref("system")
    message = InboxMessage.create(sender, InboxKind.ASK, AskBody(question, mode).to_body(),
                                  traceparent=TRACEPARENT)
    worker.backend.deliver(worker.address, [message])
    loop.process(worker, worker.mailbox.drain(10))
    return message


def _system_inbox(worker) -> list[InboxMessage]:
    mailbox = worker.backend.mailbox(worker.address.system_inbox, create=True)
    try:
        mailbox.claim(0.0)
        return [delivered.message for delivered in mailbox.drain(100)]
    finally:
        mailbox.close()


def _resolved(worker, asked: str, resolve) -> object:
    """What the parent's asker of ``asked`` gets once ``resolve(inbox)`` has run."""
    inbox, future = Inbox(worker.backend, worker.address.system_inbox, lambda answer: answer, lambda m: None), Future()
    try:
        inbox.expect(asked, future, "counter")
        resolve(inbox)
        return future.result(0)
    finally:
        inbox.close(RuntimeError, 1.0)


def test_an_answer_on_the_pipe_is_a_frame_that_resolves_the_asker_and_writes_no_message(worker):
    parent_end, worker_end = multiprocessing.Pipe(duplex=True)
    try:
        worker.outbox.gate.parent_lane = ParentLane(worker_end).reply
        asked = _ask(worker, "count")
        frame = parent_end.recv_bytes()
        assert frame[:1] == control.ANSWER_PREFIX
        assert control.parse_answer(frame) == (asked.id, 0)
        assert _system_inbox(worker) == []
        assert _resolved(worker, asked.id, lambda inbox: inbox.resolve_frame(frame)) == 0
    finally:
        parent_end.close()
        worker_end.close()


def test_an_answer_whose_pipe_broke_reaches_the_asker_through_the_system_inbox(worker):
    parent_end, worker_end = multiprocessing.Pipe(duplex=True)
    parent_end.close()  # the parent's end is gone: the worker's send fails
    try:
        worker.outbox.gate.parent_lane = ParentLane(worker_end).reply
        asked = _ask(worker, "count")
        [reply] = _system_inbox(worker)
    finally:
        worker_end.close()
    # The message the turn would have built: its derived id, the answer, the ask's context.
    assert reply.kind == InboxKind.REPLY and reply.correlation_id == asked.id
    assert reply.id == derived_msg_id(asked.id, -1)
    assert reply.body == {"answer": 0, "error": None}
    assert reply.sender == worker.outbox.sender and reply.traceparent == TRACEPARENT
    assert _resolved(worker, asked.id, lambda inbox: inbox.resolve(reply)) == 0


def test_a_commit_that_lists_an_answer_lists_its_whole_reply_message(worker):
    frames: list[bytes] = []
    worker.outbox.gate.parent_lane = lambda frame: frames.append(frame) is None
    asked = _ask(worker, "bump", mode="update")  # changes the state: the batch commits
    [entry] = worker.state.session.load().outbox
    assert entry["to"] == worker.address.system_inbox.to_dict()
    reply = InboxMessage.from_wire(json.dumps(entry["message"]).encode())
    assert (reply.kind, reply.correlation_id, reply.id) == (InboxKind.REPLY, asked.id, derived_msg_id(asked.id, -1))
    assert reply.body == {"answer": 1, "error": None} and reply.traceparent == TRACEPARENT
    assert [control.parse_answer(frame) for frame in frames] == [(asked.id, 1)]  # and the pipe had the frame


def test_an_answer_that_is_not_json_goes_as_an_error_reply(worker):
    frames: list[bytes] = []
    worker.outbox.gate.parent_lane = lambda frame: frames.append(frame) is None
    worker.outbox.answer(_ask(worker, "count"), {1, 2})  # as a handler's turn would
    worker.outbox.gate.pass_replies()
    worker.outbox.release()
    [frame] = frames[1:]
    assert frame[:1] == control.REPLY_PREFIX
    body = InboxMessage.from_wire(frame[1:]).body
    assert body["error"]["type"] == "TypeError" and "not JSON-serialisable" in body["error"]["message"]


def test_with_a_tracer_provider_an_answer_is_a_whole_reply_sent_in_its_own_span(home, monkeypatch):
    from opentelemetry.sdk import trace as sdk_trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter, provider = InMemorySpanExporter(), sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bridge = tracing._Otel()
    bridge.tracer = provider.get_tracer(tracing.TRACER_NAME)
    monkeypatch.setattr(tracing, "_otel", bridge)
    worker = _worker(home)
    try:
        frames: list[bytes] = []
        worker.outbox.gate.parent_lane = lambda frame: frames.append(frame) is None
        asked = _ask(worker, "count")
    finally:
        worker.finish()
    [frame] = frames
    reply = InboxMessage.from_wire(frame[1:])
    assert frame[:1] == control.REPLY_PREFIX and reply.correlation_id == asked.id
    spans = {span.name: span for span in exporter.get_finished_spans()}
    send, turn = spans["send reply"], spans["handle ask"]
    assert send.parent.span_id == turn.context.span_id  # made in the turn, as any send
    assert reply.traceparent == tracing.format_traceparent(send.context.trace_id, send.context.span_id, 1)


# -- a real worker, killed after its answer left and before its ack ---------------------


def _start(context):
    parent, child = context.Pipe(duplex=True)
    process = context.Process(target=pipe_main, args=(child,), daemon=True)
    process.start()
    child.close()
    return process, parent


def _next_frame(conn, timeout: float = 30.0) -> bytes:
    """The next reply frame on a worker's pipe (events and log records passed over)."""
    while True:
        assert conn.poll(timeout), "no reply on the pipe"
        raw = conn.recv_bytes()
        if raw[:1] in (control.ANSWER_PREFIX, control.REPLY_PREFIX):
            return raw


def test_a_query_whose_worker_died_after_answering_and_before_its_ack_is_answered_again(tmp_path):
    context = multiprocessing.get_context("forkserver")
    backend = open_backend("maildir", str(tmp_path / "home"), project_key(tmp_path), "process")
    processes = []
    try:
        backend.ensure_project(str(tmp_path))
        MaildirMailbox(backend.layout.mailbox("main", "holder"), durability="process").close()
        spec = ProvisionSpec(identity=Identity(child_id="holder", system_id="main", project_key=backend.project_key),
                             actor_class=type_tag(answer_actors.HoldsAck), home=backend.location,
                             project_dir=str(tmp_path), durability="process")
        address = backend.address("main", "holder")
        asked = InboxMessage.create(address.system_inbox.agent_ref("system"), InboxKind.ASK,
                                    AskBody({"hold_ack": str(tmp_path)}).to_body())
        backend.deliver(address, [asked])
        frames = []
        for _ in range(2):  # the first worker, killed at the bad point; then the next one
            process, conn = _start(context)
            processes.append((process, conn))
            conn.send_bytes(spec.to_wire())
            frames.append(_next_frame(conn))
            wait_until(lambda: os.path.exists(tmp_path / "holding"))  # its ack waits for good
            os.kill(process.pid, signal.SIGKILL)  # the answer left; the question is not acked
            process.join(10)
            os.unlink(tmp_path / "holding")
        # The next worker found the question again (a query's id rides with a later
        # commit, and there was none) and answered it again: the same frame.
        assert [control.parse_answer(frame) for frame in frames] == [(asked.id, "held")] * 2
        assert frames[0] == frames[1]
    finally:
        for process, conn in processes:
            conn.close()
            process.join(10)
            if process.exitcode is None:
                process.kill()
                process.join(10)
        backend.close()


# -- frames and log records on one pipe ----------------------------------------------------


def test_answer_frames_interleaved_with_log_records_each_reach_their_reader(system, caplog):
    gated = system.spawn(lane_actors.Gated, name="gated")
    with caplog.at_level(logging.WARNING, logger="lanes"):
        answers = ask_from_threads(gated, lambda n: [{"log": f"{n}-{i}"} if i % 2 else {"echo": [n, i]}
                                                     for i in range(40)], threads=3)
        logged = {record.getMessage() for record in caplog.records if record.name == "lanes"}
    for n in range(3):
        assert answers[n] == [f"{n}-{i}" if i % 2 else [n, i] for i in range(40)]
        # each record went on the pipe before its answer: handled by the time the answer was
        assert {f"asked about {n}-{i}" for i in range(1, 40, 2)} <= logged
