"""Senders' mailbox handles, cached: how the maildir backend delivers by address.

A handle holds a doorbell descriptor and its own segment, so opening one per message
would cost files and descriptors; the router keeps a bounded cache of them. It is
thread-safe, and threads do not wait for each other: deliveries to different
mailboxes run at once, and those to one mailbox share its flushes (group commit).
A handle pushed out of the cache is closed when the last delivery using it ends.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, TypeVar

from ...address import Address
from ...durability import Durability
from ...errors import ActorNotFound, StoreError
from ...threads import reset_after_fork
from .layout import ProjectLayout, read_max_pending
from .mailbox import MaildirMailbox
from .segment_writer import Flusher

T = TypeVar("T")

#: Mailbox handles a router keeps open (each holds a doorbell descriptor).
ROUTER_CACHE_SIZE = 256


class _Handle:
    """A cached mailbox handle and how many deliveries are using it right now."""

    __slots__ = ("mailbox", "users", "evicted")

    def __init__(self, mailbox: MaildirMailbox) -> None:
        self.mailbox = mailbox
        self.users = 0
        self.evicted = False


class Router:
    """Delivers to addresses of one project through cached sender handles."""

    def __init__(self, layout: ProjectLayout, durability: Durability, flusher: Flusher | None = None) -> None:
        self.layout = layout
        self.durability = durability
        self.flusher = flusher
        self._handles: OrderedDict[Address, _Handle] = OrderedDict()
        self._lock = threading.Lock()
        reset_after_fork(self, _lock=threading.Lock)

    def on(self, address: Address, send: Callable[[MaildirMailbox], T]) -> T:
        """Run ``send`` with the sender handle of ``address``.

        Raises:
            ActorNotFound: no mailbox exists there (never spawned, or another project).
        """
        handle = self._take(address)
        try:
            return send(handle.mailbox)
        finally:
            self._give(handle)

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
        root = self.layout.mailbox(address.system_id, address.actor_id)
        try:
            box = MaildirMailbox(root, durability=self.durability, max_pending=read_max_pending(root),
                                 create=False, flusher=self.flusher)
        except StoreError:
            raise ActorNotFound(address.name, f"project {address.project_key}") from None
        evicted: list[MaildirMailbox] = []
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

    def forget(self, address: Address) -> None:
        """Drop the cached handle of ``address`` (its limit or its files changed)."""
        with self._lock:
            handle = self._handles.pop(address, None)
            if handle is None:
                return
            handle.evicted = True
            close = handle.users == 0
        if close:
            handle.mailbox.close()

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
