"""What one memory project holds, and the registry that lets backends share it."""

from __future__ import annotations

import collections
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from ...address import Address
from ...messages import InboxMessage
from ...wakeup import WakeUp
from ..base import DeadLetter

#: Default backpressure limit, as on every backend.
DEFAULT_MAX_PENDING = 50_000
#: The longest message (encoded) a mailbox takes, as on maildir.
MAX_MESSAGE = (64 << 20) - 64


class Marker:
    def __init__(self) -> None:
        self.value: str | None = None

    def read(self) -> str | None:
        return self.value

    def set(self, msg_id: str) -> None:
        self.value = msg_id

    def clear(self) -> None:
        self.value = None

    def close(self) -> None:
        pass


@dataclass
class Box:
    """One mailbox's contents. ``lock`` is the project's (see ``Project``)."""

    max_pending: int = DEFAULT_MAX_PENDING
    waiting: collections.deque[tuple[int, InboxMessage]] = field(default_factory=collections.deque)
    handed: dict[int, InboxMessage] = field(default_factory=dict)  # receipt -> message, in order
    dead: list[DeadLetter] = field(default_factory=list)
    reader: "Any" = None
    bells: list[WakeUp] = field(default_factory=list)  # readers' doorbells
    inflight: Marker = field(default_factory=Marker)


@dataclass
class SessionData:
    state_json: str = "{}"
    meta_json: str = "{}"
    admitted: list[str] = field(default_factory=list)
    outbox_json: str = "[]"
    journal: list[str] = field(default_factory=list)


class Project:
    """Everything one project holds; one lock guards it all (tests, not throughput)."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.receipts = itertools.count(1)
        self.boxes: dict[Address, Box] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.sessions: dict[tuple[str, str], SessionData] = {}
        self.system_sessions: dict[str, dict[str, Any]] = {}
        self.supervision: dict[tuple[str, str], dict[str, Any]] = {}  # authority
        self.children: dict[str, dict[str, dict[str, Any]]] = {}  # cache
        self.index: dict[str, str] = {}  # cache: actor_id -> system_id
        self.locked_systems: set[str] = set()
        self.created = False


_projects: dict[tuple[str, str], Project] = {}
_projects_lock = threading.Lock()


def project(location: str, key: str) -> Project:
    with _projects_lock:
        return _projects.setdefault((location, key), Project())


def forget_all() -> None:
    """Drop every memory project of this process (between tests)."""
    with _projects_lock:
        _projects.clear()
