"""The parent <-> worker control protocol: every byte that crosses the pipe.

::

    parent -> worker   PRELOAD_PREFIX + JSON list of modules   (a pool worker, before its spec)
                       LEVELS_PREFIX + JSON {logger: level}    (just before the spec)
                       the spec: one line of JSON              (ProvisionSpec.to_wire)
                       STOP | CANCEL                           (then, any time)
    worker -> parent   an event: a JSON object {"event": ...}  (PRELOADED, READY, ERROR, EXIT)
                       REPLY_PREFIX + a reply's wire bytes     (answers to the parent's asks)
                       ANSWER_PREFIX + id length (one byte) + the ask's id + the answer's JSON
                                                               (the same, compact: ``answer_frame``)
                       LOG_PREFIX + a log record as JSON       (see ``worker.logs``)

EOF on the pipe, either way, means the other side is gone: a worker stops cleanly,
a parent sees the process sentinel. Seed-protocol workers (stdin spec, no pipe) get
control as signals instead: SIGTERM = stop, SIGUSR1 = cancel.

Host calls (a child asking its system to do something) travel as ``mcp_request``
messages to the system's inbox; the names of the system's own tools are here too.
"""

from __future__ import annotations

import json
import signal
from typing import Any, Callable, NamedTuple

#: Commands the parent sends.
STOP = b"stop"
CANCEL = b"cancel"
#: First byte of a message to an unprovisioned (pool) worker: a JSON list of modules
#: to import while it waits for its spec.
PRELOAD_PREFIX = b"I"
#: First byte of a reply sent to the parent over the pipe (events are JSON objects,
#: so they start with "{").
REPLY_PREFIX = b"R"
#: First byte of an answer to one of the parent's asks in the pipe's own form
#: (``answer_frame``): what the asker needs, without the message around it.
ANSWER_PREFIX = b"A"

#: First byte of the parent's logging levels, sent just before the spec: a JSON
#: object {logger name ("" = root): level}.
LEVELS_PREFIX = b"G"
#: First byte of a log record a worker forwards to its parent (JSON).
LOG_PREFIX = b"L"

#: Events the worker sends: booted in the pool (after each preload) ...
PRELOADED = "preloaded"
#: ... registered and serving ...
READY = "ready"
#: ... could not activate ("error" field: why) ...
ERROR = "error"
#: ... about to exit ("reason" field: "stop requested", "idle", "parent gone", ...;
#: "wake_at" field, when it has timers: unix seconds they are next due, so the parent
#: activates it again then).
EXIT = "exit"

#: Signals a seed-protocol worker takes as control.
STOP_SIGNAL = signal.SIGTERM
CANCEL_SIGNAL = signal.SIGUSR1

#: Exit codes of a worker process.
EXIT_OK = 0
EXIT_BAD_SPEC = 2
EXIT_ACTIVATION_FAILED = 3
EXIT_INTERNAL = 70

#: Host tools the system serves itself (users cannot register names under "actors.").
SPAWN_TOOL = "actors.spawn"
ACTIVATE_TOOL = "actors.activate"
RESTART_TOOL = "actors.restart"  # `actors restart`: bring back an actor marked failed
RESUME_TOOL = "actors.resume"  # `actors resume`: lift a pause (arguments: name, skip)
CONTROL_TOOL = "actors.control"
MANIFEST_TOOL = "actors.manifest"  # `self.host_tools()`: the tools the system exposes
RESERVED_TOOL_PREFIX = "actors."


class Event(NamedTuple):
    """An event from a worker: its kind (one of the names above, "" for none) and its
    fields ("error" for ``ERROR``, "reason" for ``EXIT``, "pid" for ``READY``)."""

    kind: str
    fields: dict[str, Any]

    def text(self, name: str) -> str:
        """A field as text ("" when it is missing)."""
        value = self.fields.get(name)
        return "" if value is None else str(value)


#: What a reply, garbage or an unknown message reads as.
NO_EVENT = Event("", {})


def event(kind: str, **fields: Any) -> bytes:
    """An event's bytes on the pipe."""
    return json.dumps({"event": kind, **fields}).encode()


def preload(modules: list[str]) -> bytes:
    """The preload message for a pool worker."""
    return PRELOAD_PREFIX + json.dumps(modules).encode()


def levels(mapping: dict[str, int]) -> bytes:
    """The logging-levels message for a worker."""
    return LEVELS_PREFIX + json.dumps(mapping).encode()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


#: Answers are JSON proper, both ways: no NaN or Infinity (as the wire's codec).
_ANSWER_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_ANSWER_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
#: Its C scanner (``decode`` adds two regular-expression matches for whitespace
#: around it, which a frame never has; the type stubs do not name it).
_ANSWER_SCAN: Callable[[str, int], tuple[Any, int]] = _ANSWER_DECODER.scan_once  # type: ignore[attr-defined]


def answer_frame(correlation_id: str, answer: Any) -> bytes | None:
    """The pipe frame of ``answer`` to the ask ``correlation_id``, or ``None`` if it
    has no such frame (the answer is not JSON, or the id is longer than 255 bytes):
    the reply then goes as a whole message (``REPLY_PREFIX``).

    A reply message is ~300 bytes of envelope the asker throws away (ids, sender,
    time, trace context); this is the one byte, the id and the answer."""
    asked = correlation_id.encode()
    if len(asked) > 255:
        return None
    try:
        text = _ANSWER_ENCODER.encode(answer)
    except (TypeError, ValueError, RecursionError):
        return None
    return b"".join((ANSWER_PREFIX, bytes((len(asked),)), asked, text.encode()))


def parse_answer(frame: bytes) -> tuple[str, Any]:
    """``(correlation id, answer)`` of an ``answer_frame``.

    Raises:
        ValueError: not such a frame, or its answer is not JSON (RecursionError: nested
            deeper than the interpreter allows).
    """
    if frame[:1] != ANSWER_PREFIX or len(frame) < 2:
        raise ValueError("not an answer frame")
    end = 2 + frame[1]
    if len(frame) <= end:
        raise ValueError("an answer frame cut short")
    text = frame[end:].decode()
    try:
        answer, stop = _ANSWER_SCAN(text, 0)
    except StopIteration:
        stop = -1
    if stop != len(text):  # not one JSON value and nothing else: the decoder says why
        answer = _ANSWER_DECODER.decode(text)
    return frame[2:end].decode(), answer


def parse_event(raw: bytes) -> Event:
    """An event from the pipe (``NO_EVENT`` if it is not one)."""
    if raw[:1] != b"{":
        return NO_EVENT
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return NO_EVENT
    if not isinstance(doc, dict) or not isinstance(doc.get("event"), str):
        return NO_EVENT
    kind = doc.pop("event")
    return Event(kind, doc)
