"""Tracing: the W3C ``traceparent`` in the envelope, and OpenTelemetry spans when installed.

::

    ref.tell (inside the user's span, or none)  --> send span (producer) -> message.traceparent
                  ... the message waits on disk; a crash redelivers it as it was ...
    worker: a turn                              --> turn span (consumer), parent = message.traceparent
            a send from the handler             --> send span, child of the turn -> its traceparent
            the reply to an ask                 --> the same

Without ``opentelemetry-api`` (or with ``ACTORS_TRACING=off`` in the environment) no
span exists: a handler's sends copy the ``traceparent`` of the message being handled
(``Outbox.current``), so a trace context that came in goes on unchanged, and every
hook here is one ``is None`` test. The API is imported once, on the first hook that
runs, never at import time. With the API and no tracer provider set (the API's no-op
tracer) spans record nothing, and the context still travels.

Span context lives where OpenTelemetry keeps it (its ``contextvars`` context): a turn
attaches its span there while the handler runs, and detaches it when the turn ends.
Nothing here raises into the runtime: a tracer that fails is logged once and then
left alone.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from typing import Any

from .messages import InboxMessage

log = logging.getLogger(__name__)

#: Environment variable that turns tracing off even when OpenTelemetry is installed.
TRACING_ENV = "ACTORS_TRACING"
#: Values of ``TRACING_ENV`` that turn tracing off.
_OFF = ("0", "off", "false", "no")
#: The instrumentation scope the spans are created under.
TRACER_NAME = "durable-actors"


class _Unresolved:
    """The API has not been looked for yet (the first hook looks)."""


#: ``None``: no tracing (absent, or turned off); else the ``_Otel`` bridge, or
#: ``_UNRESOLVED`` before the first hook.
_UNRESOLVED: Any = _Unresolved()
_otel: Any = _UNRESOLVED


def _resolve() -> "_Otel | None":
    global _otel
    if os.environ.get(TRACING_ENV, "").strip().lower() in _OFF:
        _otel = None
        return None
    try:
        _otel = _Otel()
    except ImportError:
        _otel = None
    return _otel  # type: ignore[no-any-return]


def preload_modules() -> list[str]:
    """Modules of the OpenTelemetry API for a fork server to import ahead: a worker's
    first hook imports them (~5-7 ms, most of a cold worker's first reply), so a
    worker forked with them loaded skips that. Empty when tracing is off here (the
    workers inherit the environment) or the API is not installed."""
    if os.environ.get(TRACING_ENV, "").strip().lower() in _OFF:
        return []
    try:
        found = importlib.util.find_spec("opentelemetry") is not None
    except (ImportError, ValueError):
        found = False
    return ["opentelemetry.context", "opentelemetry.trace"] if found else []


def enabled() -> bool:
    """Whether spans are made (the OpenTelemetry API is importable and not turned off)."""
    otel = _resolve() if _otel is _UNRESOLVED else _otel
    return otel is not None


def outgoing(message: InboxMessage, inherited: str | None) -> str | None:
    """The ``traceparent`` for ``message``, about to be sent.

    Without OpenTelemetry: ``inherited`` (the context of the message being handled,
    or ``None`` outside a handler). With it: a send span (kind producer) is made, a
    child of the current span (a turn, or the user's own span around ``tell``), or of
    ``inherited`` when no span is current; its context is returned.
    """
    otel = _otel
    if otel is None:
        return inherited
    if otel is _UNRESOLVED:
        otel = _resolve()
        if otel is None:
            return inherited
    return otel.send(message, inherited)  # type: ignore[no-any-return]


def makes_spans() -> bool:
    """Whether ``outgoing`` makes a span per message (OpenTelemetry with a tracer
    provider set). When it does not, ``passed_on`` gives what it returns for a
    message sent from a turn, without the message: a sender may then leave the
    message unbuilt until it is needed, outside the turn."""
    otel = _resolve() if _otel is _UNRESOLVED else _otel
    return otel is not None and not otel._noop()


def passed_on(inherited: str | None) -> str | None:
    """What ``outgoing`` returns, when it makes no span (``makes_spans`` is false),
    for a message sent from the turn on a message carrying ``inherited``: that
    context, which the turn made the current one (written anew when it parses)."""
    otel = _resolve() if _otel is _UNRESOLVED else _otel
    if otel is None:
        return inherited
    parsed = parse_traceparent(inherited)
    return inherited if parsed is None else format_traceparent(*parsed)


def begin_turn(actor_id: str, message: InboxMessage) -> Any:
    """Start the span of a turn (kind consumer) on ``message`` and make it current;
    returns what ``end_turn`` takes (``None`` without OpenTelemetry)."""
    otel = _otel
    if otel is None:
        return None
    if otel is _UNRESOLVED:
        otel = _resolve()
        if otel is None:
            return None
    return otel.begin_turn(actor_id, message)


def end_turn(turn: Any) -> None:
    """End a turn's span (from ``begin_turn``) and restore the context before it."""
    if turn is not None:
        _otel.end_turn(turn)


def record_error(exc: BaseException) -> None:
    """Mark the current span (a turn) as failed with ``exc`` (a handler raised)."""
    otel = _otel
    if otel is not None and otel is not _UNRESOLVED:
        otel.record_error(exc)


def parse_traceparent(text: str | None) -> tuple[int, int, int] | None:
    """``(trace id, span id, flags)`` of a W3C ``traceparent``, or ``None`` if it is not
    one (wrong shape, upper-case hex, version ff, version 00 with more fields, an
    all-zero id)."""
    if not text:
        return None
    match = _TRACEPARENT.match(text)
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return trace_id, span_id, int(flags_hex, 16)


#: version-traceid-spanid-flags, lower-case hex; later versions may add "-..." fields.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\Z", re.DOTALL)


def format_traceparent(trace_id: int, span_id: int, flags: int) -> str:
    """A version-00 W3C ``traceparent``."""
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


#: Stands for an OpenTelemetry API without the ``_TRACER_PROVIDER`` global.
_NO_GLOBAL = object()


class _Otel:
    """The bridge to the OpenTelemetry API (built only if it imports)."""

    def __init__(self) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace import (
            NonRecordingSpan,
            ProxyTracer,
            ProxyTracerProvider,
            SpanContext,
            SpanKind,
            Status,
            StatusCode,
            TraceFlags,
        )

        self.context, self.trace = context, trace
        self.ProxyTracer, self.ProxyTracerProvider = ProxyTracer, ProxyTracerProvider
        self.NonRecordingSpan, self.SpanContext, self.TraceFlags = NonRecordingSpan, SpanContext, TraceFlags
        self.PRODUCER, self.CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER
        self.Status, self.ERROR = Status, StatusCode.ERROR
        # A proxy until the user sets a provider, then theirs: fetched once.
        self.tracer = trace.get_tracer(TRACER_NAME)
        self.failed = False
        self.provided = False  # a provider was seen: spans may record (never unset once set)
        self.provider_from_env = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ

    def _noop(self) -> bool:
        """Whether the tracer is still the API's proxy with no provider set: its spans
        are the parent's own, so the hooks pass the context on without making any
        (the same traceparents and current spans, at a fraction of the cost)."""
        if self.provided:
            return False
        # The API's own global, read as its proxies read it: get_tracer_provider()
        # would look the environment up on every call. Should a later API drop the
        # name, the public call decides.
        provider = getattr(self.trace, "_TRACER_PROVIDER", _NO_GLOBAL)
        if provider is _NO_GLOBAL or self.provider_from_env:
            provider = self.trace.get_tracer_provider()
            if isinstance(provider, self.ProxyTracerProvider):
                provider = None
        if provider is not None or not isinstance(self.tracer, self.ProxyTracer):
            self.provided = True  # a provider is never unset
            return False
        return True

    def _remote(self, traceparent: str | None) -> Any:
        """A context whose current span is the remote one ``traceparent`` names."""
        parsed = parse_traceparent(traceparent)
        if parsed is None:
            return None
        trace_id, span_id, flags = parsed
        remote = self.SpanContext(trace_id, span_id, is_remote=True, trace_flags=self.TraceFlags(flags & 0xFF))
        return self.trace.set_span_in_context(self.NonRecordingSpan(remote))

    def _failed(self, what: str, exc: Exception) -> None:
        if not self.failed:
            self.failed = True
            log.warning("tracing: %s failed (spans may be missing): %s: %s", what, type(exc).__name__, exc)

    def send(self, message: InboxMessage, inherited: str | None) -> str | None:
        try:
            if self._noop():  # the no-op tracer's "span" is the current one, or the remote parent
                if self.context.get_current():  # an empty context (most sends) has no span to look up
                    current = self.trace.get_current_span().get_span_context()
                    if current.is_valid:
                        return format_traceparent(current.trace_id, current.span_id, int(current.trace_flags))
                parsed = parse_traceparent(inherited)
                return inherited if parsed is None else format_traceparent(*parsed)
            current = self.trace.get_current_span().get_span_context()
            parent = None if current.is_valid else self._remote(inherited)
            span = self.tracer.start_span(
                f"send {message.kind}", context=parent, kind=self.PRODUCER,
                attributes={"messaging.system": "durable-actors", "messaging.message.id": message.id,
                            "messaging.operation.type": "send", "actors.kind": message.kind},
            )
            made = span.get_span_context()
            span.end()
        except Exception as exc:  # a tracer's failure never costs a message
            self._failed("a send span", exc)
            return inherited
        if not made.is_valid:
            return inherited
        return format_traceparent(made.trace_id, made.span_id, int(made.trace_flags))

    def begin_turn(self, actor_id: str, message: InboxMessage) -> Any:
        try:
            if self._noop():
                # No span to make: the message's remote context becomes current for the
                # turn (its sends and the handler's own spans see it), or nothing changes.
                remote = self._remote(message.traceparent)
                return None if remote is None else (None, self.context.attach(remote))
            span = self.tracer.start_span(
                f"handle {message.kind}", context=self._remote(message.traceparent), kind=self.CONSUMER,
                attributes={"messaging.system": "durable-actors", "messaging.message.id": message.id,
                            "messaging.operation.type": "process", "actors.actor_id": actor_id,
                            "actors.kind": message.kind},
            )
            token = self.context.attach(self.trace.set_span_in_context(span))
        except Exception as exc:
            self._failed("a turn span", exc)
            return None
        return span, token

    def end_turn(self, turn: Any) -> None:
        span, token = turn
        try:
            self.context.detach(token)
            if span is not None:
                span.end()
        except Exception as exc:
            self._failed("ending a turn span", exc)

    def record_error(self, exc: BaseException) -> None:
        try:
            span = self.trace.get_current_span()
            span.record_exception(exc)
            span.set_status(self.Status(self.ERROR, f"{type(exc).__name__}: {exc}"))
        except Exception as failure:
            self._failed("recording an error", failure)
