"""The maildir backend (default): everything in files under ``$ACTORS_HOME``.

Nothing to start and nothing to configure: mailboxes are per-sender append-only logs
plus Maildir directories (``mailbox``), the fabric is one leased file per live actor
(``fabric``), sessions and indices are JSON documents rewritten atomically
(``sessions``, ``indices``). ``layout`` has every path.

Everything under the home is its owner's only (directories 0700, files 0600), no
write follows a symlink out of it (``durable``), a home another user owns is refused,
and every failure of the disk is a ``StoreError`` naming the path and the cause.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Sequence

from ...address import Address
from ...durability import Durability
from ...errors import ActorNotFound, StoreError
from ...ids import check_id, is_valid_id
from ...messages import InboxMessage
from ..base import MailboxView
from .fabric import MaildirFabric
from .layout import MailboxPaths, ProjectLayout, check_home, read_max_pending, write_mailbox_config
from .mailbox import MaildirMailbox, make_mailbox_dirs
from .router import Router
from .segment_writer import Flusher
from .skeletons import claim_skeleton, make_skeleton, ready_skeletons, remove_unfinished
from .store import MaildirStore

__all__ = ["MaildirBackend", "MaildirMailbox"]

log = logging.getLogger(__name__)

#: The name of an actor's log file in its directory (``runtime.worker.logs`` writes it).
ACTOR_LOG = "actor.log"


class MaildirBackend:
    """One project's storage under ``home`` (see ``runtime.backends.base.Backend``).

    Args:
        home: the ``ACTORS_HOME`` directory.
        project_key: the project.
        durability: "machine" (fsync) or "process".
        clock: unix time for leases (a test's fake clock).
        new_future: makes the Futures of ``deliver_async`` (whose done-callbacks the
            caller may want run elsewhere than on the flusher thread).

    Raises:
        StoreError: the home belongs to another user (or cannot be looked at).
    """

    name = "maildir"

    def __init__(self, home: str, project_key: str, durability: Durability, *,
                 clock: Callable[[], float] = time.time,
                 new_future: Callable[[], "Future[Any]"] = Future) -> None:
        self.location = os.path.abspath(os.path.expanduser(home))
        self.layout = ProjectLayout(self.location, project_key)
        check_home(self.location)
        self.project_key = self.layout.key
        self.durability = durability
        self.fabric = MaildirFabric(self.layout.fabric, clock=clock)
        self.store = MaildirStore(self.layout, durability)
        self._flusher = Flusher(f"actors-flush-{project_key[-8:]}", new_future)
        self._router = Router(self.layout, durability, self._flusher)
        self._skeletons: list[str] | None = None  # ready ones, once prepare() looked
        self._skeletons_lock = threading.Lock()

    def exists(self) -> bool:
        return self.store.exists()

    def ensure_project(self, workspace: str) -> None:
        self.store.ensure_project(workspace)

    def address(self, system_id: str, actor_id: str | None = None) -> Address:
        return Address(self.location, self.project_key, check_id(system_id, "system id"),
                       None if actor_id is None else check_id(actor_id))

    def mailbox_root(self, address: Address) -> str:
        """The directory of a mailbox (for this backend's own tools and tests).

        Raises:
            ActorNotFound: the address belongs to another home or project.
        """
        self._check_ours(address)
        return self.layout.mailbox(address.system_id, address.actor_id)

    def endpoint_address(self, endpoint: str) -> Address | None:
        """The address of a mailbox directory of this project named by a fabric
        record's ``endpoint`` (a path, or a ``file://`` URL); ``None`` for anything
        else: another place, a URL of another kind, an id that is not an id."""
        path = endpoint[len("file://"):] if endpoint.startswith("file://") else endpoint
        if not path.startswith("/") or len(path) > 4096 or "\0" in path:
            return None
        try:
            parts = os.path.relpath(os.path.realpath(path), os.path.realpath(self.layout.sessions)).split(os.sep)
        except (OSError, ValueError):
            return None
        if len(parts) == 2 and parts[1] == "mailbox" and is_valid_id(parts[0]):
            return Address(self.location, self.project_key, parts[0], None)
        if len(parts) == 4 and parts[1] == "children" and parts[3] == "mailbox" \
                and is_valid_id(parts[0]) and is_valid_id(parts[2]):
            return Address(self.location, self.project_key, parts[0], parts[2])
        return None

    def log_path(self, address: Address) -> str | None:
        """``children/<actor id>/actor.log`` (rotated to ``actor.log.1``)."""
        self._check_ours(address)
        if address.actor_id is None:
            raise ActorNotFound(address.name, "a system's inbox has no log")
        return self.layout.actor_file(address.system_id, address.actor_id, ACTOR_LOG)

    def actor_log(self, address: Address) -> None:
        """None: the log file (``log_path``) is on the one machine there is."""
        self._check_ours(address)
        return None

    def _check_ours(self, address: Address) -> None:
        if address.home != self.location or address.project_key != self.project_key:
            raise ActorNotFound(address.name, f"project {self.project_key} under {self.location} "
                                f"(the address is of project {address.project_key} under {address.home})")

    def mailbox(self, address: Address, *, create: bool = False,
                max_pending: int | None = None) -> MaildirMailbox:
        root = self.mailbox_root(address)
        try:
            box = MaildirMailbox(root, durability=self.durability, create=create, flusher=self._flusher,
                                 max_pending=read_max_pending(root) if max_pending is None else max_pending)
        except StoreError:
            if create:
                raise
            raise ActorNotFound(address.name, f"project {address.project_key}") from None
        if create and max_pending is not None:
            box.set_max_pending(max_pending)
        return box

    def view(self, address: Address) -> MailboxView:
        return self.mailbox(address)

    def deliver(self, address: Address, messages: Sequence[InboxMessage], *,
                block_timeout: float | None = 0.0) -> None:
        self._check_ours(address)
        self._router.on(address, lambda box: box.deliver(messages, block_timeout=block_timeout))

    def reachable(self, address: Address) -> None:
        self._check_ours(address)
        self._router.on(address, lambda box: None)

    def deliver_async(self, address: Address, message: InboxMessage, *,
                      block_timeout: float | None = 0.0) -> "Future[str]":
        self._check_ours(address)
        return self._router.on(address, lambda box: box.deliver_async(message, block_timeout=block_timeout))

    def provision(self, address: Address, max_pending: int) -> bool:
        """Make the actor's directory (from a skeleton when one is ready) and mailbox,
        and record its limit; returns whether nothing was stored for it before."""
        assert address.actor_id is not None
        self._check_ours(address)
        child_dir = self.layout.child_dir(address.system_id, address.actor_id)
        fresh = not os.path.isdir(child_dir)
        try:
            if fresh:
                skeleton = self._take_skeleton()
                if skeleton is not None:
                    claim_skeleton(self.layout, skeleton, address.system_id, address.actor_id)
            root = self.mailbox_root(address)
            make_mailbox_dirs(MailboxPaths(root))
            if read_max_pending(root) != max_pending:
                write_mailbox_config(root, max_pending)
                self._router.forget(address)  # a cached handle holds the old limit
        except OSError as exc:
            raise StoreError(child_dir, f"cannot create the actor's files: {exc.strerror or exc}") from exc
        return fresh

    def set_mailbox_format(self, address: Address, mailbox_format: str) -> None:
        """Record how senders write this actor's mailbox ("log" or "maildir", see
        ``file_delivery``); made by ``provision`` first.

        Raises:
            StoreError: the setting cannot be written.
        """
        self._check_ours(address)
        root = self.mailbox_root(address)
        try:
            write_mailbox_config(root, read_max_pending(root), mailbox_format)
        except OSError as exc:
            raise StoreError(root, f"cannot record the mailbox format: {exc.strerror or exc}") from exc
        self._router.forget(address)  # a cached handle writes the old way

    def open_sender(self, address: Address) -> None:
        """``OpensSendersAhead``: open this process's sender handle for ``address``
        and its segment, so that the first message to an actor whose worker is
        starting only writes (its system calls this while it waits for the worker).
        An empty segment is what a sender leaves between opening a segment and its
        first append: readers skip it, and the handle seals it when it closes.

        Raises:
            ActorNotFound: no mailbox there. StoreError: the segment cannot be made.
        """
        self._check_ours(address)
        self._router.on(address, lambda box: box.open_segment())

    def _take_skeleton(self) -> str | None:
        with self._skeletons_lock:
            return self._skeletons.pop() if self._skeletons else None

    def prepare(self, system_id: str, count: int) -> None:
        """Keep ``count`` skeletons ready (adopting those an earlier run left).

        Never raises a ``StoreError``: skeletons only make spawns cheaper, and a spawn
        without one makes the actor's directory itself. A failure is logged.
        """
        try:
            with self._skeletons_lock:
                if self._skeletons is None:
                    remove_unfinished(self.layout, system_id)  # a crash mid-build left them; we hold the lock
                    self._skeletons = ready_skeletons(self.layout, system_id)[:count]
                missing = count - len(self._skeletons)
            for _ in range(missing):
                skeleton = make_skeleton(self.layout, system_id, self.durability)
                with self._skeletons_lock:
                    assert self._skeletons is not None
                    self._skeletons.append(skeleton)
        except StoreError as exc:
            log.error("system %s: could not prepare actors' storage ahead of spawns: %s", system_id, exc)

    def close(self) -> None:
        self._flusher.close()  # every deliver_async Future is resolved
        self._router.close()
