"""The memory backend: every promise of the seam, kept in this process's memory.

It is the reference the contract suite is written against, and the fastest way to
test code that drives the runtime in one process (a ``Worker`` on a thread). It keeps
nothing past the process, so its durability levels mean "survives the handle that
wrote it": a reader handle closed without acking is a crashed reader, and what it
held comes back through the next reader's ``recover``.

Backends opened with the same location share their data (``memory://NAME``), as
processes share a maildir home: a test opens one backend for the sender and another
for the reader and sees what each would see.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any, Callable, Sequence

from ...address import Address
from ...durability import Durability
from ...errors import ActorNotFound
from ...ids import check_id
from ...messages import InboxMessage
from .mailbox import MemoryMailbox, deliver_to
from .project import Box, forget_all, project
from .records import MemoryFabric, MemoryStore

__all__ = ["MemoryBackend", "MemoryMailbox", "forget_all"]


class MemoryBackend:
    """One project in this process's memory (see the module docstring)."""

    name = "memory"

    def __init__(self, location: str, project_key: str, durability: Durability, *,
                 clock: Callable[[], float] = time.time,
                 new_future: Callable[[], "Future[Any]"] = Future) -> None:
        self.location = location
        self.project_key = check_id(project_key, "project key")
        self.durability = durability
        self._project = project(location, self.project_key)
        self.fabric = MemoryFabric(self._project, clock)
        self.store = MemoryStore(self._project)
        self._new_future = new_future

    def exists(self) -> bool:
        with self._project.lock:
            return self._project.created

    def ensure_project(self, workspace: str) -> None:
        with self._project.lock:
            self._project.created = True

    def address(self, system_id: str, actor_id: str | None = None) -> Address:
        return Address(self.location, self.project_key, check_id(system_id, "system id"),
                       None if actor_id is None else check_id(actor_id))

    def log_path(self, address: Address) -> str | None:
        """None: the memory backend keeps no logs (its workers are threads of one process)."""
        return None

    def actor_log(self, address: Address) -> None:
        """None: no logs (see ``log_path``)."""
        return None

    def _box(self, address: Address, create: bool) -> Box:
        if address.home != self.location or address.project_key != self.project_key:
            raise ActorNotFound(address.name, f"project {self.project_key} of {self.location}")
        if create:  # an address made elsewhere must name a mailbox safely
            check_id(address.system_id, "system id")
            if address.actor_id is not None:
                check_id(address.actor_id)
        with self._project.lock:
            box = self._project.boxes.get(address)
            if box is None:
                if not create:
                    raise ActorNotFound(address.name, f"project {address.project_key}")
                box = self._project.boxes[address] = Box()
            return box

    def mailbox(self, address: Address, *, create: bool = False,
                max_pending: int | None = None) -> MemoryMailbox:
        box = self._box(address, create)
        if create and max_pending is not None:
            box.max_pending = max_pending
        return MemoryMailbox(self._project, address, box)

    def view(self, address: Address) -> MemoryMailbox:
        return self.mailbox(address)

    def deliver(self, address: Address, messages: Sequence[InboxMessage], *,
                block_timeout: float | None = 0.0) -> None:
        deliver_to(self._project, address, self._box(address, False), messages, block_timeout)

    def reachable(self, address: Address) -> None:
        self._box(address, False)

    def deliver_async(self, address: Address, message: InboxMessage, *,
                      block_timeout: float | None = 0.0) -> "Future[str]":
        self.deliver(address, [message], block_timeout=block_timeout)
        future: Future[str] = self._new_future()
        future.set_result(message.id)
        return future

    def provision(self, address: Address, max_pending: int) -> bool:
        with self._project.lock:
            fresh = address not in self._project.boxes and \
                (address.system_id, address.actor_id) not in self._project.sessions
        self.mailbox(address, create=True, max_pending=max_pending).close()
        return fresh

    def prepare(self, system_id: str, count: int) -> None:
        pass  # nothing to build ahead of time

    def close(self) -> None:
        pass
