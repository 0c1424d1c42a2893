"""``ProvisionSpec``: everything a worker needs to become a given actor.

Sent by the parent as the first message on the pipe, or written as one line of JSON
on a seed-protocol worker's stdin. Versioned and tolerant both ways: unknown fields
are ignored and every field has a default, so a newer parent can start an older
worker and the reverse. ``secrets`` lives in memory only: it is never put in argv,
the environment, a log line, a record or a file, and ``repr`` hides it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import select
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable

from . import crate_spec
from .backend_url import parse_backend
from .durability import DURABILITY_LEVELS
from .errors import InvalidSpec
from .ids import check_id, is_valid_id
from .jsonable import JsonMixin

#: Current spec format version.
SPEC_VERSION = 1
#: Largest spec accepted on a stream.
MAX_SPEC_BYTES = 8 * 1024 * 1024
#: Default seconds to wait for a spec on a stream.
SPEC_READ_TIMEOUT = 30.0
#: Default cap on nested spawning.
DEFAULT_MAX_DEPTH = 4
#: The longest timeout a spec takes (seconds; a year).
MAX_SECONDS = 365 * 24 * 3600.0
#: Restart policies.
RESTART_POLICIES = ("never", "on-failure", "always")
#: What happens to a message that killed the worker ``max_attempts`` times: moved to
#: the dead letters and the actor goes on, or kept first in line with the actor paused.
ON_POISON = ("dead-letter", "pause")
#: How senders write an actor's mailbox: "log" (default: each sender appends to its own
#: segment log) or "maildir" (one file per message in ``new/``, which the original
#: crate's reader drains; see ``runtime.backends.maildir.file_delivery``).
MAILBOX_FORMATS = ("log", "maildir")


@dataclass
class Identity(JsonMixin):
    """Who the actor is and where it sits in its system."""

    child_id: str = ""
    parent_id: str | None = None
    system_id: str = ""
    project_key: str = ""
    role: str | None = None
    labels: list[str] = field(default_factory=list)
    depth: int = 1


@dataclass
class Limits(JsonMixin):
    """Limits the worker enforces. ``None`` means no limit."""

    idle_timeout: float | None = None
    handler_timeout: float | None = None
    max_attempts: int = 3
    retries: int = 0
    #: Seconds before the first retry of a handler; doubled each retry (see
    #: ``runtime.worker.turns.backoff``).
    retry_backoff: float = 0.1
    #: Qualified names of the exception types a retry is for (empty: any exception).
    retry_on: list[str] = field(default_factory=list)
    max_pending: int = 50_000
    max_depth: int = DEFAULT_MAX_DEPTH
    lease: float = 60.0
    sweep_interval: float = 1.0
    batch_size: int = 256


@dataclass
class ProvisionSpec(JsonMixin):
    """The provisioning message.

    Attributes:
        version: format version of the sender.
        identity: ids, role, labels, depth.
        actor_class: ``module:qualname`` of the actor class to import.
        home: the ``ACTORS_HOME`` root.
        project_dir: the project directory the key was derived from (informational).
        backend: mailbox/fabric backend name.
        durability: "machine" or "process".
        limits: see :class:`Limits`.
        restart: supervision policy (the parent's business; recorded for reactivation).
        on_poison: "dead-letter" (default) or "pause" (see ``ON_POISON``; recorded with
            the spec, so a reactivation keeps it).
        secrets: memory-only values handed to the actor (``self.secrets``).
        mailbox: how senders write the actor's mailbox (see ``MAILBOX_FORMATS``; the
            spawner sets it up, the worker reads either).
        placement: ``"pool:NAME"`` for an actor placed on a host of a pool (``actors
            host``; its worker answers through the backend, never a pipe), else None.
    """

    version: int = SPEC_VERSION
    identity: Identity = field(default_factory=Identity)
    actor_class: str = ""
    home: str = ""
    project_dir: str = ""
    backend: str = "maildir"
    durability: str = "machine"
    limits: Limits = field(default_factory=Limits)
    restart: str = "on-failure"
    on_poison: str = "dead-letter"
    secrets: dict[str, Any] = field(default_factory=dict, repr=False)
    mailbox: str = "log"
    placement: str | None = None

    def validate(self) -> "ProvisionSpec":
        """Check the spec before it is sent; returns it.

        Raises:
            InvalidSpec: naming the first bad field (or any field of the wrong type).
        """
        try:
            self._check()
        except (TypeError, AttributeError) as exc:
            # dataclasses-json does not check types: a null or mistyped field from the
            # wire surfaces here, and must still be InvalidSpec for the worker.
            raise InvalidSpec("spec", f"a field has the wrong type: {exc}") from None
        return self

    def _check(self) -> None:
        ident = self.identity
        check_id(ident.child_id, "child_id")
        check_id(ident.system_id, "system_id")
        if ident.parent_id is not None and not is_valid_id(ident.parent_id):
            raise InvalidSpec("parent_id", f"{ident.parent_id!r} is not a valid id")
        if not ident.project_key:
            raise InvalidSpec("project_key", "it is empty")
        check_id(ident.project_key, "project_key")
        module, _, qualname = self.actor_class.partition(":")
        if not module or not qualname:
            raise InvalidSpec("actor_class", f"{self.actor_class!r} is not 'module:qualname'")
        if not self.home:
            raise InvalidSpec("home", "it is empty")
        parse_backend(self.backend)
        if self.durability not in DURABILITY_LEVELS:
            raise InvalidSpec("durability", f"{self.durability!r} is not one of {DURABILITY_LEVELS}")
        if self.restart not in RESTART_POLICIES:
            raise InvalidSpec("restart", f"{self.restart!r} is not one of {RESTART_POLICIES}")
        if self.on_poison not in ON_POISON:
            raise InvalidSpec("on_poison", f"{self.on_poison!r} is not one of {', '.join(map(repr, ON_POISON))}")
        if self.mailbox not in MAILBOX_FORMATS:
            raise InvalidSpec("mailbox", f"{self.mailbox!r} is not one of {', '.join(map(repr, MAILBOX_FORMATS))}")
        if self.placement is not None:
            kind, _, pool = self.placement.partition(":")
            if kind != "pool" or not is_valid_id(pool):
                raise InvalidSpec("placement", f"{self.placement!r} is not 'pool:NAME'")
        limits = self.limits
        for name, low, high in _LIMIT_RANGES:
            _check_range(name, getattr(limits, name), low, high)
        if not isinstance(limits.retry_on, list) or not all(
                isinstance(name, str) and name.strip() for name in limits.retry_on):
            raise InvalidSpec("retry_on", f"{limits.retry_on!r} is not a list of exception type names")
        if not 1 <= ident.depth <= limits.max_depth:
            raise InvalidSpec("depth", f"{ident.depth} is outside 1..{limits.max_depth}")

    # The codec below is plain dataclasses + json: the dataclasses-json API (to_json,
    # from_dict, schema) stays available, but its per-field machinery costs ~2 ms per
    # spec, which is most of a warm spawn.

    def to_wire(self) -> bytes:
        """One line of JSON (secrets included: for the pipe or stdin only)."""
        return json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode() + b"\n"

    def public_dict(self) -> dict[str, Any]:
        """The spec as a dict without ``secrets`` (safe to record or log)."""
        doc = dataclasses.asdict(self)
        doc.pop("secrets", None)
        return doc

    @classmethod
    def from_wire(cls, data: bytes | str) -> "ProvisionSpec":
        """Parse a spec; unknown fields ignored, missing ones defaulted.

        Raises:
            InvalidSpec: not JSON or not an object of the right shape.
        """
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidSpec("spec", f"not JSON: {exc}") from None
        except RecursionError:
            raise InvalidSpec("spec", "nested too deeply to be a spec") from None
        return cls.from_doc(doc)

    @classmethod
    def from_doc(cls, doc: Any) -> "ProvisionSpec":
        """Build a spec from a parsed JSON object (see :meth:`from_wire`).

        Raises:
            InvalidSpec: not an object, or a nested part that is not one.
        """
        fields = _known_fields(cls, doc, "spec")
        for name, part in (("identity", Identity), ("limits", Limits)):
            if name in fields:
                fields[name] = part(**_known_fields(part, fields[name], name))
        return cls(**fields)


#: The range of each limit, ends included (``None`` for a timeout means no limit).
#: Every number must be finite: a lease of Infinity would never expire.
_LIMIT_RANGES: tuple[tuple[str, float, float], ...] = (
    ("idle_timeout", 1e-3, MAX_SECONDS),
    ("handler_timeout", 1e-3, MAX_SECONDS),
    ("max_attempts", 1, 1_000),
    ("retries", 0, 1_000),
    ("retry_backoff", 0, 3_600),
    ("max_pending", 1, 1_000_000_000),
    ("max_depth", 1, 64),
    ("lease", 0.05, 86_400),
    ("sweep_interval", 1e-3, 3_600),
    ("batch_size", 1, 1_000_000),
)


def _check_range(name: str, value: Any, low: float, high: float) -> None:
    if value is None and name.endswith("_timeout"):
        return
    if not _is_number(value) or not math.isfinite(value) or not low <= value <= high:
        raise InvalidSpec(name, f"{value!r} is outside {low:g}..{high:g}")


def _known_fields(cls: type, doc: Any, what: str) -> dict[str, Any]:
    """The fields of ``cls`` found in ``doc``, each checked against its declared type."""
    if not isinstance(doc, dict):
        raise InvalidSpec("spec", f"{what} is not a JSON object")
    fields = {}
    for declared in dataclasses.fields(cls):
        if declared.name in doc:
            value = doc[declared.name]
            kind = str(declared.type)
            if value is None and not kind.endswith("| None"):
                continue  # another writer's "no value": the default (as dataclasses-json read it)
            if kind == "int" and isinstance(value, float) and value.is_integer():
                value = int(value)  # 50000.0 from a writer that has only floats
            check = _TYPE_CHECKS.get(kind)
            if check is not None and not check(value):
                raise InvalidSpec("spec", f"{what}.{declared.name} should be {declared.type}, "
                                          f"not {value!r:.40}")
            fields[declared.name] = value
    return fields


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Checks for the declared field types (annotations are strings here).
_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": _is_int,
    "float": _is_number,
    "float | None": lambda v: v is None or _is_number(v),
    "str": lambda v: isinstance(v, str),
    "str | None": lambda v: v is None or isinstance(v, str),
    "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "dict[str, Any]": lambda v: isinstance(v, dict),
    "Identity": lambda v: isinstance(v, dict),
    "Limits": lambda v: isinstance(v, dict),
}


def read_spec(stream: BinaryIO | int, *, cap: int = MAX_SPEC_BYTES,
              timeout: float | None = SPEC_READ_TIMEOUT, actor_class: str | None = None) -> ProvisionSpec:
    """Read one spec (a line of JSON, or one JSON document up to EOF) from a stream.

    The original crate's ``ProvisionSpec`` is read too (see ``crate_spec``).

    Args:
        stream: a binary file or a file descriptor (stdin for seed-protocol workers).
        cap: refuse a spec longer than this many bytes.
        timeout: seconds to wait for the whole spec.
        actor_class: the class of a crate spec that names none (``--actor-class``).

    Raises:
        InvalidSpec: too big, timed out, empty, not JSON, or invalid.
    """
    fd = stream if isinstance(stream, int) else stream.fileno()
    deadline = None if timeout is None else time.monotonic() + timeout
    buffer = bytearray()
    ended = _read_into(fd, buffer, cap, deadline, timeout, until_newline=True)
    line = bytes(buffer).split(b"\n", 1)[0]
    if len(line) > cap:
        raise InvalidSpec("spec", f"larger than {cap} bytes")
    if not line.strip():
        raise InvalidSpec("spec", "empty input")
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as exc:
        # One document over several lines (pretty-printed) ends its first line unfinished:
        # read it all. Anything else is refused at once.
        if ended or exc.pos < len(exc.doc.rstrip()):
            raise InvalidSpec("spec", f"not JSON: {exc}") from None
        _read_into(fd, buffer, cap, deadline, timeout, until_newline=False)
        doc = _parse(bytes(buffer))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSpec("spec", f"not JSON: {exc}") from None
    except RecursionError:
        raise InvalidSpec("spec", "nested too deeply to be a spec") from None
    if crate_spec.is_crate_spec(doc):
        doc = crate_spec.to_project_doc(doc, actor_class)
    return ProvisionSpec.from_doc(doc).validate()


def _parse(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSpec("spec", f"not JSON: {exc}") from None
    except RecursionError:
        raise InvalidSpec("spec", "nested too deeply to be a spec") from None


def _read_into(fd: int, buffer: bytearray, cap: int, deadline: float | None, timeout: float | None, *,
               until_newline: bool) -> bool:
    """Read from ``fd`` into ``buffer`` until a newline (or EOF); returns whether EOF came.

    Raises:
        InvalidSpec: more than ``cap`` bytes, or the deadline passed.
    """
    while not (until_newline and b"\n" in buffer):
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise InvalidSpec("spec", f"none arrived within {timeout} s")
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return True
        buffer += chunk
        if len(buffer) > cap + 1:
            raise InvalidSpec("spec", f"larger than {cap} bytes")
    return False
