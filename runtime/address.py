"""Where a message goes: ``Address`` and the ``Router`` that delivers to one.

An address names a mailbox without asking any process: home, project, system and
actor id. Mailboxes exist on disk whether or not their actor runs, which is what
makes them durable; the fabric is only asked who is alive.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from .durable import MACHINE, Durability, atomic_write
from .errors import ActorNotFound, InvalidSpec, StoreError
from .ids import check_id
from .mailbox import DEFAULT_MAX_PENDING, Mailbox
from .messages import AgentRef, InboxMessage
from .segments import Unflushed
from .store import SessionStore
from .threads import reset_after_fork

T = TypeVar("T")

#: Mailbox handles a router keeps open (each holds a doorbell descriptor).
ROUTER_CACHE_SIZE = 256
#: Per-mailbox settings written by the spawner, read by every sender.
MAILBOX_CONFIG = ".config.json"


@dataclass(frozen=True)
class Address:
    """A mailbox: an actor's (``agent_id`` set) or a system's inbox (``agent_id`` None)."""

    home: str
    project_key: str
    system_id: str
    agent_id: str | None = None

    @property
    def name(self) -> str:
        return self.agent_id if self.agent_id is not None else self.system_id

    def agent_ref(self, role: str | None = None) -> AgentRef:
        """The ``from`` field for messages sent by the owner of this address."""
        return AgentRef(session_id=self.name, role=role, system_id=self.system_id)

    def reply_address(self, sender: AgentRef) -> "Address":
        """Where a reply to a message from ``sender`` goes (same home and project)."""
        system_id = sender.system_id or self.system_id
        agent_id = None if sender.session_id == system_id else sender.session_id
        return Address(self.home, self.project_key, system_id, agent_id)

    def store(self, durability: Durability = MACHINE) -> SessionStore:
        return SessionStore(self.home, self.project_key, durability)

    def mailbox_dir(self) -> str:
        return self.store().mailbox_dir(self.system_id, self.agent_id)

    def fabric_path(self) -> str:
        """Where the actor's lease record lives (meaningless for a system inbox)."""
        return os.path.join(self.store().fabric_dir, f"{self.name}.json")

    def to_dict(self) -> dict[str, Any]:
        return {"home": self.home, "project": self.project_key, "system": self.system_id,
                "name": self.agent_id}

    @classmethod
    def from_dict(cls, doc: Any) -> "Address":
        """Rebuild from :meth:`to_dict`, validating every component.

        Raises:
            InvalidSpec: missing or unsafe components.
        """
        if not isinstance(doc, dict):
            raise InvalidSpec("address", f"{doc!r} is not an object")
        try:
            home, project, system = doc["home"], doc["project"], doc["system"]
        except KeyError as exc:
            raise InvalidSpec("address", f"missing {exc.args[0]!r}") from None
        name = doc.get("name")
        if not isinstance(home, str) or not home:
            raise InvalidSpec("address", "home must be a non-empty string")
        return cls(home, check_id(project, "project key"), check_id(system, "system id"),
                   None if name is None else check_id(name))


def write_mailbox_config(root: str, max_pending: int) -> None:
    """Record a mailbox's limit for senders in other processes (unless already in force;
    no file means the default)."""
    if _read_max_pending(root) == max_pending:
        return
    atomic_write(os.path.join(root, MAILBOX_CONFIG), json.dumps({"max_pending": max_pending}).encode(),
                 "process")


def _read_max_pending(root: str) -> int:
    try:
        with open(os.path.join(root, MAILBOX_CONFIG), "rb") as handle:
            value = json.load(handle).get("max_pending")
        return int(value) if isinstance(value, int) and value > 0 else DEFAULT_MAX_PENDING
    except (OSError, ValueError, AttributeError):
        return DEFAULT_MAX_PENDING


class _Handle:
    """A cached mailbox handle and how many deliveries are using it right now."""

    __slots__ = ("mailbox", "users", "evicted")

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.users = 0
        self.evicted = False


class Router:
    """Delivers messages to addresses, keeping a bounded cache of mailbox handles.

    Thread-safe, and threads do not wait for each other: deliveries to different
    mailboxes run at once, and those to one mailbox share its flushes (see
    ``SegmentWriter``). A handle pushed out of the cache is closed when the last
    delivery using it ends.
    """

    def __init__(self, durability: Durability = MACHINE) -> None:
        self.durability = durability
        self._handles: OrderedDict[Address, _Handle] = OrderedDict()
        reset_after_fork(self, _lock=threading.Lock)

    def mailbox(self, address: Address) -> Mailbox:
        """The cached handle on the mailbox of ``address`` (for inspection; it may
        be closed once pushed out of the cache).

        Raises:
            ActorNotFound: no mailbox exists there (never spawned, or another project).
        """
        handle = self._take(address)
        self._give(handle)
        return handle.mailbox

    def _take(self, address: Address) -> _Handle:
        """The handle for ``address``, counted as in use until ``_give``."""
        with self._lock:
            handle = self._handles.get(address)
            if handle is not None:
                self._handles.move_to_end(address)
                handle.users += 1
                return handle
        return self._open(address)

    def _give(self, handle: _Handle) -> None:
        with self._lock:
            handle.users -= 1
            close = handle.evicted and handle.users == 0
        if close:
            handle.mailbox.close()

    def _open(self, address: Address) -> _Handle:
        root = address.mailbox_dir()
        try:
            box = Mailbox(root, durability=self.durability, max_pending=_read_max_pending(root),
                          create=False)
        except StoreError:
            raise ActorNotFound(address.name, f"project {address.project_key}") from None
        evicted: list[Mailbox] = []
        with self._lock:
            handle = self._handles.get(address)
            if handle is None:  # else another thread opened it meanwhile: use that one
                handle = self._handles[address] = _Handle(box)
                while len(self._handles) > ROUTER_CACHE_SIZE:
                    _, old = self._handles.popitem(last=False)
                    old.evicted = True
                    if old.users == 0:
                        evicted.append(old.mailbox)
            else:
                evicted.append(box)
            handle.users += 1
        for unused in evicted:
            unused.close()
        return handle

    def deliver(self, address: Address, message: InboxMessage,
                block_timeout: float | None = 0.0) -> str:
        """Deliver durably (see ``Mailbox.deliver``); returns the file path."""
        return self._on(address, lambda box: box.deliver(message, block_timeout=block_timeout))

    def deliver_unflushed(self, address: Address, message: InboxMessage,
                          block_timeout: float | None = 0.0) -> Unflushed:
        """Deliver without waiting for the flush (see ``Mailbox.deliver_unflushed``)."""
        return self._on(address, lambda box: box.deliver_unflushed(message, block_timeout=block_timeout))

    def deliver_many(self, address: Address, messages: list[InboxMessage],
                     block_timeout: float | None = 0.0) -> list[str]:
        """Deliver a batch with one flush (see ``Mailbox.deliver_many``)."""
        return self._on(address, lambda box: box.deliver_many(messages, block_timeout=block_timeout))

    def _on(self, address: Address, send: Callable[[Mailbox], T]) -> T:
        handle = self._take(address)
        try:
            return send(handle.mailbox)
        finally:
            self._give(handle)

    def close(self) -> None:
        """Close every handle (one still in use when its delivery ends)."""
        with self._lock:
            handles = list(self._handles.values())
            self._handles.clear()
            for handle in handles:
                handle.evicted = True
            idle = [handle.mailbox for handle in handles if handle.users == 0]
        for box in idle:
            box.close()
