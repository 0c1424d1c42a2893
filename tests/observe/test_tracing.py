"""Tracing: the traceparent in the envelope, and one trace across processes and crashes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest
from actors_runtime import tracing
from actors_runtime.messages import AgentRef, InboxKind, InboxMessage

# opentelemetry-sdk is in the test extra: `make test` installs it, and a missing one
# fails here rather than skipping the tracing tests.
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from traced_actors import Relay, Sink, read_spans

from actors import ActorSystem
from tests.conftest import wait_until

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Traced(NamedTuple):
    exporter: InMemorySpanExporter
    tracer: Any  # the test's own tracer, for the spans a user would make around a tell


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Traced:
    """This process traced by an SDK provider of the test's own: the API allows one
    global provider per process, so none is set; the runtime's bridge uses this one
    for the test (and goes back to what it was after)."""
    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bridge = tracing._Otel()
    bridge.tracer = provider.get_tracer(tracing.TRACER_NAME)
    monkeypatch.setattr(tracing, "_otel", bridge)
    return Traced(exporter, provider.get_tracer("test"))


def test_traceparents_are_parsed_and_written_as_w3c_says() -> None:
    assert tracing.parse_traceparent(TRACEPARENT) == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, 1)
    assert tracing.format_traceparent(*tracing.parse_traceparent(TRACEPARENT)) == TRACEPARENT
    for bad in (None, "", "00-" + "0" * 32 + "-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-"
                + "0" * 16 + "-01", "ff" + TRACEPARENT[2:], TRACEPARENT + "-extra", "zz" + TRACEPARENT[2:],
                TRACEPARENT.replace("0af7", "0xf7")):
        assert tracing.parse_traceparent(bad) is None, bad


def test_without_opentelemetry_a_send_inherits_the_handled_message_traceparent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_otel", None)
    message = InboxMessage.create(AgentRef("a"), InboxKind.TASK, {})
    assert tracing.outgoing(message, TRACEPARENT) == TRACEPARENT
    assert tracing.outgoing(message, None) is None
    assert tracing.begin_turn("a", message) is None
    tracing.end_turn(None)
    assert not tracing.enabled()


def test_tracing_can_be_turned_off_with_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_otel", tracing._UNRESOLVED)
    monkeypatch.setenv(tracing.TRACING_ENV, "off")
    assert not tracing.enabled()


def test_a_send_inside_a_span_carries_that_trace_and_makes_a_producer_span(traced: Traced) -> None:
    message = InboxMessage.create(AgentRef("a"), InboxKind.TASK, {})
    with traced.tracer.start_as_current_span("outer") as outer:
        sent = tracing.outgoing(message, None)
    parsed = tracing.parse_traceparent(sent)
    assert parsed is not None and parsed[0] == outer.get_span_context().trace_id
    (send,) = [s for s in traced.exporter.get_finished_spans() if s.name == "send task"]
    assert send.parent.span_id == outer.get_span_context().span_id
    assert parsed[1] == send.get_span_context().span_id
    assert send.attributes["messaging.message.id"] == message.id


@pytest.mark.chaos
def test_one_trace_from_the_first_tell_through_a_relay_that_was_killed_mid_turn(
        traced: Traced, home: Path, project: Path, tmp_path: Path) -> None:
    span_file = str(tmp_path / "spans.jsonl")
    secrets = {"span_file": span_file, "plan_dir": str(tmp_path)}
    with ActorSystem(home=home, project=project, durability="process") as system:
        sink = system.spawn(Sink, name="sink", secrets=secrets)
        relay = system.spawn(Relay, name="relay", secrets=secrets)
        first_pid = system.pid_of(relay)
        with traced.tracer.start_as_current_span("request") as root:
            msg_id = relay.tell({"to": "sink", "die_once": True})
        trace_id = f"{root.get_span_context().trace_id:032x}"
        assert wait_until(lambda: sink.ask("seen?", timeout=5), timeout=30)
        assert system.pid_of(relay) != first_pid  # the relay's worker was killed and restarted
        assert (tmp_path / f"died-on-{msg_id}").exists()
        (seen,) = sink.ask("seen?", timeout=5)
    assert seen["via"] == "relay"
    assert seen["traceparent"][3:35] == trace_id

    # This process: the user's span and the send span of the tell inside it.
    (send,) = [s for s in traced.exporter.get_finished_spans()
               if s.attributes.get("messaging.message.id") == msg_id]
    assert f"{send.get_span_context().trace_id:032x}" == trace_id
    # The workers: the relay's turn (the run after the kill; the killed one never
    # ended), its send, and the sink's turn, each a child of the one before.
    spans = wait_until(lambda: [s for s in read_spans(span_file) if s["trace_id"] == trace_id
                                and s["name"] != "handle ask"], timeout=10)
    by_name = {(s["name"], s["attributes"].get("actors.actor_id")): s for s in spans}
    relay_turn = by_name[("handle task", "relay")]
    relay_send = by_name[("send task", None)]
    sink_turn = by_name[("handle task", "sink")]
    assert relay_turn["attributes"]["messaging.message.id"] == msg_id
    assert relay_turn["kind"] == "CONSUMER" and relay_send["kind"] == "PRODUCER"
    assert relay_turn["parent_id"] == f"{send.get_span_context().span_id:016x}"
    assert relay_send["parent_id"] == relay_turn["span_id"]
    assert sink_turn["parent_id"] == relay_send["span_id"]
    assert relay_turn["pid"] != first_pid
    assert len(spans) == 3
    # The test's asks made traces of their own; no task was handled outside this one.
    assert {s["trace_id"] for s in read_spans(span_file) if s["name"] == "handle task"} == {trace_id}


def test_a_handler_that_raised_marks_its_turn_span_as_an_error(
        traced: Traced, home: Path, project: Path, tmp_path: Path) -> None:
    span_file = str(tmp_path / "spans.jsonl")
    with ActorSystem(home=home, project=project, durability="process") as system:
        relay = system.spawn(Relay, name="relay", secrets={"span_file": span_file, "plan_dir": str(tmp_path)})
        with pytest.raises(Exception, match="relay cannot answer"):
            relay.ask("anything", timeout=10)
    (turn,) = wait_until(lambda: [s for s in read_spans(span_file) if s["name"] == "handle ask"], timeout=10)
    assert turn["status"] == "ERROR"


def test_with_the_api_and_no_provider_the_fast_path_passes_on_what_the_no_op_tracer_would(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import context, trace

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)  # this process: no provider set
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    fast, slow = tracing._Otel(), tracing._Otel()
    slow.provided = True  # through the API's no-op tracer, span by span
    assert fast._noop() and not slow._noop()
    later = "01-" + TRACEPARENT[3:] + "-more"
    outer = trace.NonRecordingSpan(trace.SpanContext(0x1234, 0x5678, is_remote=False,
                                                     trace_flags=trace.TraceFlags(1)))
    for inherited in (None, TRACEPARENT, later, "not a traceparent"):
        # Nothing current; a span; a context that holds something, but no span.
        for current, attached in ((None, None), (outer, trace.set_span_in_context(outer)),
                                  (None, context.set_value("not-a-span", 1))):
            token = None if attached is None else context.attach(attached)
            try:
                message = InboxMessage.create(AgentRef("a"), InboxKind.TASK, {}, traceparent=inherited)
                assert fast.send(message, inherited) == slow.send(message, inherited), (inherited, current)
                seen = []
                for bridge in (fast, slow):
                    turn = bridge.begin_turn("a", message)
                    seen.append(trace.get_current_span().get_span_context())
                    if turn is not None:
                        bridge.end_turn(turn)
                assert seen[0] == seen[1], (inherited, current)
                assert trace.get_current_span() is (current or trace.INVALID_SPAN)
            finally:
                if token is not None:
                    context.detach(token)
    provider = sdk_trace.TracerProvider()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)  # as set_tracer_provider would
    assert not fast._noop()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    assert not fast._noop()  # once a provider was seen, the spans are made
