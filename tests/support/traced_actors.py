"""Actors whose worker processes record their spans (opentelemetry-sdk) in a file.

Turns run in worker processes, so spans cannot reach the test's in-memory exporter:
each worker installs an SDK tracer provider in ``on_start`` whose exporter appends
one JSON line per finished span to ``secrets["span_file"]``; the simple processor
exports a span as it ends, so a worker SIGKILLed later has lost none it finished.

``Relay`` forwards every task to the actor named in it; its first delivery of a task
with "die_once" SIGKILLs the worker in the middle of the turn (a marker file under
``secrets["plan_dir"]`` records that it did), so the task is redelivered.
``Sink`` keeps the ``traceparent`` of every task it handled.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any, Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from actors import Actor


class SpanFile(SpanExporter):
    """Appends each span as a JSON line: ids as hex, as in a traceparent."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            context, parent = span.get_span_context(), span.parent
            lines.append(json.dumps({
                "name": span.name, "kind": span.kind.name, "pid": os.getpid(),
                "trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}",
                "parent_id": None if parent is None else f"{parent.span_id:016x}",
                "attributes": dict(span.attributes or {}),
                "status": span.status.status_code.name,
            }) + "\n")
        with open(self.path, "a") as handle:
            handle.write("".join(lines))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def read_spans(path: str) -> list[dict[str, Any]]:
    """The spans the workers wrote to ``path`` (none if it does not exist yet)."""
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


class Traced(Actor):
    def on_start(self):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(SpanFile(self.secrets["span_file"])))
        trace.set_tracer_provider(provider)


class Relay(Traced):
    def on_task(self, body, msg):
        if body.get("die_once"):
            marker = os.path.join(self.secrets["plan_dir"], f"died-on-{msg.id}")
            if not os.path.exists(marker):
                with open(marker, "w") as handle:
                    handle.write(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
        self.tell(body["to"], {"via": self.name})

    def on_ask(self, question, msg):
        raise ValueError(f"relay cannot answer {question!r}")


class Sink(Traced):
    def on_start(self):
        super().on_start()
        self.state.setdefault("seen", [])

    def on_task(self, body, msg):
        self.state["seen"].append({"via": body.get("via"), "traceparent": msg.traceparent})

    def on_ask(self, question, msg):
        return self.state["seen"]
