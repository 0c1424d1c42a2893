"""The wire format: ``InboxMessage`` and its parts.

JSON, wire-compatible with the original crate::

    {"id": "<uuid>", "from": {"session_id": "...", "role": null, "system_id": null},
     "kind": "task", "body": {...}, "created_at": "2026-11-21T05:22:26.123456Z",
     "correlation_id": null}

and, only when set (added with durable timers; older readers ignore them):
``"deliver_at": <unix seconds>`` (a delayed tell: the receiver keeps it until then)
and ``"reminder": {"name": ..., "due": <unix seconds>, "coalesced": <n>}`` (a tick of
a reminder, made by the actor's own worker).

Compatibility rules: unknown fields are ignored and every field added later has a
default, so older and newer processes read each other's files. ``kind`` stays a plain
string on the wire so a newer kind never makes an older reader fail to parse.

The classes carry dataclasses-json (``to_json`` / ``from_json`` / ``schema``) for
users and tools; its ``from_dict`` ignores unknown keys. (Its ``Undefined.EXCLUDE``
option is deliberately not used: it wraps ``__init__`` and costs ~5 µs per object.) The mailbox's hot path uses :meth:`InboxMessage.to_wire` and
:meth:`InboxMessage.from_wire`, a hand-written codec for the same JSON that is about
ten times faster; a test holds the two to the same output on generated messages.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Callable

from .errors import InvalidSpec
from .jsonable import JsonMixin, field_options
from .stamps import parse_ns

MsgId = str
"""A message id: a UUID string, the idempotency key of a message."""

#: A message document nests this deep at most: a sender's payload may nest 200 levels
#: (``actors._codec.MAX_NESTING``) inside a body inside the envelope. A deeper one is
#: damage or malice, refused before anything takes it apart with Python recursion.
MAX_WIRE_NESTING = 256

#: The longest ``traceparent`` a reader keeps (version 00 is 55 characters; later
#: versions may append fields).
MAX_TRACEPARENT = 512

#: Namespace for ids derived from other ids (outgoing messages of a handler).
_DERIVED_NS = uuid.UUID("6f1c2a34-7d0e-4b8e-9a52-3c1d2e4f5a60")
_DERIVED_NS_BYTES = _DERIVED_NS.bytes


def new_msg_id() -> MsgId:
    """A fresh random message id (a version-4 UUID string)."""
    # The same text as str(uuid.uuid4()), built without the UUID object (~5x cheaper),
    # from os.urandom taken 256 ids at a time: one system call per message was a third
    # of a tell's. list.pop is atomic, so threads never share an id.
    try:
        h = _RANDOM_HEX.pop()
    except IndexError:
        pool = os.urandom(16 * _RANDOM_IDS).hex()
        _RANDOM_HEX.extend(pool[i:i + 32] for i in range(32, len(pool), 32))
        h = pool[:32]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


#: Ids' worth of random bytes read at a time.
_RANDOM_IDS = 256
#: Random hex digits (32 per id) not used yet. A forked child starts without them: it
#: would otherwise hand out its parent's next ids.
_RANDOM_HEX: list[str] = []
os.register_at_fork(after_in_child=_RANDOM_HEX.clear)


#: The UUID variant bits (10xx) applied to a random hex digit.
_VARIANT = {d: format(0x8 | (int(d, 16) & 0x3), "x") for d in "0123456789abcdef"}


def derived_msg_id(parent: MsgId, counter: int) -> MsgId:
    """The id of the ``counter``-th message sent while handling ``parent``.

    Deterministic, so a handler re-run after a crash re-sends the same ids and the
    receivers drop the repeats.
    """
    # The same text as str(uuid.uuid5(_DERIVED_NS, name)), without the UUID object.
    digest = bytearray(hashlib.sha1(_DERIVED_NS_BYTES + f"{parent}/{counter}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class InboxKind(StrEnum):
    """Kinds of message the runtime knows. Others pass through as plain strings."""

    TASK = "task"
    ASK = "ask"
    REPLY = "reply"
    HANDOFF = "handoff"
    MCP_REQUEST = "mcp_request"
    MCP_REPLY = "mcp_reply"


class AskMode(StrEnum):
    """How an ask treats the state: ``query`` discards changes, ``steer`` keeps them."""

    QUERY = "query"
    STEER = "steer"


def check_mode(mode: object) -> str:
    """Return ``mode`` as an ask-mode string, or raise ``InvalidSpec``."""
    if mode == "query" or mode == "steer":
        return str(mode)
    raise InvalidSpec("ask mode", f"{mode!r} is not 'query' or 'steer'")


@dataclass(frozen=True)
class AgentRef(JsonMixin):
    """Who sent a message, i.e. where a reply goes.

    Attributes:
        session_id: the sender's id (an actor id, or the system id for the system).
        role: the sender's role, informational.
        system_id: the system whose session holds the sender; ``None`` for refs from
            processes that predate the field.
    """

    session_id: str
    role: str | None = None
    system_id: str | None = None


@dataclass
class AskBody(JsonMixin):
    """Body of an ``ask``."""

    question: Any = None
    mode: str = AskMode.QUERY.value

    def to_body(self) -> dict[str, Any]:
        """The wire body (same as ``to_dict``, without the per-field machinery)."""
        return {"question": self.question, "mode": self.mode}


@dataclass
class ReplyError(JsonMixin):
    """The error half of a reply: the remote exception as text."""

    type: str
    message: str
    traceback: str = ""


@dataclass
class ReplyBody(JsonMixin):
    """Body of a ``reply`` / ``mcp_reply``: an answer, or an error."""

    answer: Any = None
    error: ReplyError | None = None

    def to_body(self) -> dict[str, Any]:
        """The wire body (same as ``to_dict``, without the per-field machinery)."""
        error = self.error
        return {"answer": self.answer, "error": None if error is None else
                {"type": error.type, "message": error.message, "traceback": error.traceback}}


@dataclass(frozen=True)
class ReminderTick(JsonMixin):
    """What a reminder's tick carries (``msg.reminder``; ``None`` on other messages).

    Attributes:
        name: the reminder's name (as given to ``remind``).
        due_at: unix seconds of the due time this tick stands for (the first one
            missed, when several were coalesced); the JSON key is "due".
        coalesced: how many due times this one tick stands for: 1 when it fired on
            time, n when n due times of a periodic reminder passed before it could
            fire (the actor was down, or busy), which are delivered as one tick.
    """

    name: str
    due_at: float = field(metadata=field_options(name="due"))
    coalesced: int = 1

    @property
    def due(self) -> datetime:
        """The due time as an aware UTC ``datetime``."""
        return datetime.fromtimestamp(self.due_at, timezone.utc)

    def to_doc(self) -> dict[str, Any]:
        """The wire form (same as ``to_dict``)."""
        return {"name": self.name, "due": self.due_at, "coalesced": self.coalesced}

    @classmethod
    def from_doc(cls, doc: Any) -> "ReminderTick":
        """Read the wire form.

        Raises:
            ValueError: not an object with a string name, a finite due and a positive count.
        """
        if not isinstance(doc, dict):
            raise ValueError("message field reminder must be an object")
        name, due, coalesced = doc.get("name"), doc.get("due"), doc.get("coalesced", 1)
        if (not isinstance(name, str) or not _is_time(due) or not isinstance(coalesced, int)
                or isinstance(coalesced, bool) or coalesced < 1):
            raise ValueError("message field reminder has the wrong types")
        return cls(name, float(due), coalesced)  # type: ignore[arg-type]  # _is_time checked it


def _is_time(value: object) -> bool:
    """Whether ``value`` is a finite number of unix seconds (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_last_stamp_us = 0


def _next_stamp_us() -> int:
    """Now in whole microseconds, strictly increasing within this process.

    Names sort by this stamp, so one sender's messages are always delivered in the
    order it sent them, even within a microsecond or across a clock step backwards.
    """
    global _last_stamp_us
    stamp = max(time.time_ns() // 1000, _last_stamp_us + 1)
    _last_stamp_us = stamp
    return stamp


#: The last second formatted by ``_rfc3339_from_us``, and its text: a sender stamps
#: many messages within one second.
_last_second: tuple[int, str] = (-1, "")


def _rfc3339_from_us(stamp_us: int) -> str:
    global _last_second
    seconds, micros = divmod(stamp_us, 1_000_000)
    second, text = _last_second
    if second != seconds:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, text)  # one tuple: a thread never sees a half-updated pair
    return f"{text}.{micros:06d}Z"


def _us_from_rfc3339(text: str) -> int:
    # Any RFC 3339 form (the crate's has 0, 3, 6 or 9 fraction digits); 0 if unreadable.
    ns = parse_ns(text)
    return 0 if ns is None else ns // 1000


@dataclass
class InboxMessage(JsonMixin):
    """One message in a mailbox.

    Attributes:
        id: the idempotency key; a receiver applies a given id at most once.
        sender: the ``from`` field on the wire; where replies go.
        kind: see :class:`InboxKind`; unknown kinds are kept as strings.
        body: any JSON value.
        created_at: RFC 3339 UTC timestamp.
        correlation_id: for replies, the id of the message answered.
        created_ns: unix nanoseconds of ``created_at`` (whole microseconds, so the name
            survives the wire); names the mailbox file. Not on the wire as its own
            field: set by ``create``, derived from ``created_at`` only when a read
            message is named again (``file_name``).
        deliver_at: unix seconds before which the receiver does not handle it (a
            delayed tell); ``None`` for at once. On the wire only when set.
        reminder: the reminder a tick comes from (see :class:`ReminderTick`); ``None``
            for every other message. On the wire only when set.
        traceparent: the W3C trace context the message was sent in (``00-<trace
            id>-<span id>-<flags>``), or ``None``. On the wire only when set; a reader
            keeps it only if it is a string of at most ``MAX_TRACEPARENT`` characters
            (anything else is dropped, never refused: it is advisory). See
            ``runtime.tracing``.
    """

    id: MsgId
    sender: AgentRef = field(metadata=field_options(name="from"))
    kind: str
    body: Any = None
    created_at: str = ""
    correlation_id: MsgId | None = None
    created_ns: int = field(default=0, metadata=field_options(exclude=True), compare=False)
    deliver_at: float | None = field(default=None, metadata=field_options(omit_none=True))
    reminder: ReminderTick | None = field(default=None, metadata=field_options(omit_none=True))
    traceparent: str | None = field(default=None, metadata=field_options(omit_none=True))

    @classmethod
    def create(
        cls,
        sender: AgentRef,
        kind: str,
        body: Any = None,
        *,
        msg_id: MsgId | None = None,
        correlation_id: MsgId | None = None,
        deliver_at: float | None = None,
        traceparent: str | None = None,
    ) -> "InboxMessage":
        """A new message stamped now (fresh random id unless ``msg_id`` is given)."""
        stamp_us = _next_stamp_us()
        # Positional, in field order (id, sender, kind, body, created_at, correlation_id,
        # created_ns, deliver_at, reminder, traceparent): half the cost of keywords.
        return cls(msg_id or new_msg_id(), sender, str(kind), body, _rfc3339_from_us(stamp_us), correlation_id,
                   stamp_us * 1000, deliver_at, None, traceparent)

    # -- the hot-path codec ---------------------------------------------------------

    def to_wire(self) -> bytes:
        """Encode as the JSON above (the same document as ``to_json``; ``traceparent`` only when set).

        The bytes are those of ``wire_doc()`` encoded compactly. A message without
        timer fields (every tell, ask and reply) is written without building that
        document: the envelope is joined from its escaped strings and the sender's
        part, encoded once per sender (see ``_sender_json``), around the body.
        """
        msg_id, kind, created_at = self.id, self.kind, self.created_at
        correlation_id, traceparent = self.correlation_id, self.traceparent
        if (self.deliver_at is None and self.reminder is None and type(msg_id) is str and type(kind) is str
                and type(created_at) is str and (correlation_id is None or type(correlation_id) is str)
                and (traceparent is None or type(traceparent) is str)):
            try:
                body = "".join(_ENCODE_VALUE(self.body, 0))
            except RecursionError:
                pass  # circular, or too deep: the whole way below says which, as it always did
            else:
                text = (f'{{"id":{_ESCAPE(msg_id)},"from":{_sender_json(self.sender)},"kind":{_ESCAPE(kind)},'
                        f'"body":{body},"created_at":{_ESCAPE(created_at)},"correlation_id":'
                        f'{"null" if correlation_id is None else _ESCAPE(correlation_id)}')
                if traceparent is not None:
                    return f'{text},"traceparent":{_ESCAPE(traceparent)}}}'.encode()
                return f"{text}}}".encode()
        return _ENCODER.encode(self.wire_doc()).encode()

    def wire_doc(self) -> dict[str, Any]:
        """The message as the JSON document ``to_wire`` encodes (keys in wire order)."""
        sender = self.sender
        doc: dict[str, Any] = {
            "id": self.id,
            "from": {
                "session_id": sender.session_id,
                "role": sender.role,
                "system_id": sender.system_id,
            },
            "kind": self.kind,
            "body": self.body,
            "created_at": self.created_at,
            "correlation_id": self.correlation_id,
        }
        if self.deliver_at is not None:
            doc["deliver_at"] = self.deliver_at
        if self.reminder is not None:
            doc["reminder"] = self.reminder.to_doc()
        if self.traceparent is not None:
            doc["traceparent"] = self.traceparent
        return doc

    @classmethod
    def from_wire(cls, data: bytes | str) -> "InboxMessage":
        """Decode a message; unknown fields are ignored, missing optional ones defaulted.

        Whatever the input (it may come from a damaged file or a careless writer), the
        only error is ``ValueError``: a reader quarantines what this refuses and goes on.

        Raises:
            ValueError: not UTF-8 JSON (``UnicodeDecodeError`` is one), nested deeper than
                ``MAX_WIRE_NESTING``, holding NaN or Infinity, or not an object with the
                fields ``id``, ``from`` (with ``session_id``) and ``kind`` of the types above.
        """
        try:
            # As json.loads does (it would build a decoder per call for parse_constant).
            if isinstance(data, bytes):
                # A document that opens with "{" and no NUL after it is UTF-8 (the only case
                # json.detect_encoding would not call UTF-8 is a UTF-16/32 "{", a NUL next).
                utf8 = data[:1] == b"{" and data[1:2] != b"\0"
                text = data.decode("utf-8" if utf8 else json.detect_encoding(data), "surrogatepass")
            else:
                text = data
            doc = _decode_document(text)
        except RecursionError:
            raise ValueError(f"a message nests deeper than {MAX_WIRE_NESTING} levels") from None
        if not isinstance(doc, dict):
            raise ValueError("a message must be a JSON object")
        if _nests_deeper(data, doc, MAX_WIRE_NESTING):
            raise ValueError(f"a message nests deeper than {MAX_WIRE_NESTING} levels")
        try:
            msg_id, origin, kind = doc["id"], doc["from"], doc["kind"]
        except KeyError as exc:
            raise ValueError(f"message has no {exc.args[0]!r} field") from None
        if not isinstance(msg_id, str) or not isinstance(kind, str) or not isinstance(origin, dict):
            raise ValueError("message fields id, from, kind have the wrong types")
        session_id, role, system_id = origin.get("session_id"), origin.get("role"), origin.get("system_id")
        if not isinstance(session_id, str):
            raise ValueError("message 'from' has no session_id")
        created_at, correlation_id = doc.get("created_at") or "", doc.get("correlation_id")
        # Readers sort by created_at and route replies by these: a wrong type there
        # would fail far from here, in the middle of a merge or a reply.
        if not isinstance(created_at, str) or not _str_or_none(correlation_id, role, system_id):
            raise ValueError("message fields created_at, correlation_id, role, system_id have the wrong types")
        message = cls(msg_id, _sender(session_id, role, system_id), kind, doc.get("body"), created_at,
                      correlation_id)  # positional, in field order, as in ``create``
        if len(doc) > 6:  # fields added later (or unknown ones): an ordinary message has six
            traceparent = doc.get("traceparent")
            if isinstance(traceparent, str) and len(traceparent) <= MAX_TRACEPARENT:
                message.traceparent = traceparent  # advisory: a bad one is dropped, the message is not refused
            deliver_at, reminder = doc.get("deliver_at"), doc.get("reminder")
            if deliver_at is not None:
                if not _is_time(deliver_at):
                    raise ValueError("message field deliver_at must be a finite number of unix seconds")
                message.deliver_at = float(deliver_at)
            if reminder is not None:
                message.reminder = ReminderTick.from_doc(reminder)
        return message

    def file_name(self) -> str:
        """``<created_at unix nanos, 20 digits>-<id>.json``: sorting names is delivery order."""
        ns = self.created_ns or max(parse_ns(self.created_at) or 0, 0)  # the crate's nanoseconds kept
        return f"{ns:020d}-{self.id}.json"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


#: The wire's decoder: JSON proper, without the NaN and Infinity Python's json allows.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
#: Its C scanner: what ``decode`` calls after its Python layers (set by ``JSONDecoder``
#: itself; the type stubs do not name it).
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
#: The wire's encoder (``json.dumps`` with these separators builds one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"))
#: A JSON string's text, as the encoder writes it (``ensure_ascii``).
_ESCAPE: Callable[[str], str] = json.encoder.encode_basestring_ascii
#: The C encoder behind ``_ENCODER``, made once: ``_ENCODER.encode`` makes one per call.
#: It keeps no record of the containers it is in (``check_circular``'s markers would be
#: one dict shared by every thread): a circular value ends in ``RecursionError``, and
#: ``to_wire`` then takes the whole way, which names it as ``ValueError``.
_ENCODE_VALUE: Callable[[Any, int], list[str]] = (
    json.encoder.c_make_encoder(None, _ENCODER.default, _ESCAPE, None, ":", ",", False, False, True)  # type: ignore[attr-defined]
    if json.encoder.c_make_encoder is not None  # type: ignore[attr-defined]
    else lambda value, _level: [_ENCODER.encode(value)])
#: The ``"from"`` object of each sender seen by ``to_wire``, by the sender's identity
#: (the entry keeps the sender alive, so its id is not reused while it is here;
#: cleared when it grows).
_SENDER_JSON: dict[int, tuple[AgentRef, str]] = {}
#: Senders seen by ``from_wire``: a reader meets the same few again and again, and an
#: ``AgentRef`` is frozen, so one object can stand for each (cleared when it grows).
_SENDERS: dict[tuple[str, str | None, str | None], AgentRef] = {}
_SENDERS_MAX = 1024


def _decode_document(text: str) -> Any:
    """``_DECODER.decode(text)``; a document that is one object and nothing else (every
    message we write) goes to the scanner directly, anything else the whole way."""
    if text[:1] == "{":
        try:
            doc, end = _SCAN(text, 0)
        except StopIteration:
            end = -1
        if end == len(text):
            return doc
    return _DECODER.decode(text)  # its own errors for what the scanner refused, and whitespace


def _sender_json(sender: AgentRef) -> str:
    """The wire's ``"from"`` object of ``sender``, encoded once per sender object."""
    entry = _SENDER_JSON.get(id(sender))
    if entry is not None and entry[0] is sender:
        return entry[1]
    text = _ENCODER.encode({"session_id": sender.session_id, "role": sender.role, "system_id": sender.system_id})
    if len(_SENDER_JSON) >= _SENDERS_MAX:
        _SENDER_JSON.clear()
    _SENDER_JSON[id(sender)] = (sender, text)
    return text


def _sender(session_id: str, role: str | None, system_id: str | None) -> AgentRef:
    key = (session_id, role, system_id)
    sender = _SENDERS.get(key)
    if sender is None:
        if len(_SENDERS) >= _SENDERS_MAX:
            _SENDERS.clear()
        sender = _SENDERS[key] = AgentRef(session_id, role, system_id)
    return sender


def _str_or_none(*values: object) -> bool:
    for value in values:  # a loop, not all() over a generator: called for every message read
        if value is not None and not isinstance(value, str):
            return False
    return True


def _nests_deeper(text: bytes | str, doc: Any, limit: int) -> bool:
    """Whether ``doc`` (parsed from ``text``) nests deeper than ``limit`` levels.

    A text of no more than ``limit`` bytes, or with no more than ``limit`` brackets,
    cannot: that settles almost every message without a walk (most without a count);
    the walk is iterative, so depth costs it no stack.
    """
    if len(text) <= limit:
        return False
    brackets = (text.count(b"[") + text.count(b"{") if isinstance(text, bytes)
                else text.count("[") + text.count("{"))
    if brackets <= limit:
        return False
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def reply_error(exc: BaseException, traceback_text: str = "") -> ReplyError:
    """Describe ``exc`` for a reply."""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return ReplyError(type=name, message=str(exc), traceback=traceback_text)
