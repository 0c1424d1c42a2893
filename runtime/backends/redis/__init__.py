"""The Redis backend: mailboxes as streams, the fabric and sessions as keys, for
fleets that span machines (``redis://HOST:PORT/DB`` or ``unix:///PATH/redis.sock``).

::

    connection   the URL, the server checks (noeviction, AOF), retries -> StoreError
    keys         every key, from validated ids, under actors:<project>:
    mailbox      deliver (XLEN check + XADD), views, dead letters
    sending      deliver_async pipelined on a connection of its own (group commit)
    reading      claim (epoch) / recover (XAUTOCLAIM) / drain / take / ack / bury,
                 commit_and_ack (commit + ack + the next batch, one script)
    waiting      wait (BLPOP on the bell) and wake
    inflight     the marker: a page on the worker's machine, named in a key
    fabric       leased records (SET PX + owner-checked renew and withdraw)
    logs         each actor's log lines (a capped stream), and its log file's place
    store        sessions (fenced commit), journal, children, index, system locks
    scripts/     the Lua scripts: each step of the protocol is one atomic script

Fencing: claiming a mailbox takes the next epoch (INCR), and every script of the
reader and every commit of its actor's session refuses an older epoch. The epochs
this process claimed are kept here (``epochs``), which is how a session knows which
epoch to present. The server's durability is its AOF: what ``deliver`` and
``commit`` promise holds as far as the server's ``appendfsync`` does.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Sequence

from ...address import Address
from ...durability import Durability
from ...errors import ActorNotFound, MailboxFull
from ...ids import check_id
from ...messages import InboxMessage
from .connection import Server, parse_url
from .fabric import RedisFabric
from .keys import GROUP, Keys
from .logs import RedisActorLog, log_file
from .mailbox import RedisMailbox, checked_wire, create_mailbox, deliver_keys, deliver_wire
from .reading import DEFAULT_READER_LEASE
from .sending import DirectLine, Sender
from .store import Epochs, RedisStore

__all__ = ["RedisBackend", "RedisMailbox"]

log = logging.getLogger(__name__)


class RedisBackend:
    """One project's storage on a Redis server (see the module docstring).

    Args:
        url: ``redis://HOST:PORT/DB`` or ``unix:///PATH/redis.sock[?db=N]``.
        project_key: the project.
        durability: recorded for callers; the server's AOF settings decide.
        clock: unix time for leases (a test's fake clock).
        new_future: makes the Futures of ``deliver_async``.
        reader_lease: seconds a mailbox reader's lease lasts unrenewed.

    Raises:
        InvalidSpec: not a Redis URL, or the ``redis`` client is not installed.
        StoreError: the server cannot be reached, or evicts keys.
    """

    name = "redis"

    def __init__(self, url: str, project_key: str, durability: Durability, *,
                 clock: Callable[[], float] = time.time,
                 new_future: Callable[[], "Future[Any]"] = Future,
                 reader_lease: float = DEFAULT_READER_LEASE) -> None:
        parsed = parse_url(url)
        self.location = parsed.location
        self.project_key = check_id(project_key, "project key")
        self.durability = durability
        self.keys = Keys(self.project_key)
        self.server = Server(parsed)
        self.epochs: Epochs = {}
        self._epochs_lock = threading.Lock()
        self.fabric = RedisFabric(self.server, self.keys, clock)
        self.store = RedisStore(self.server, self.keys, self.epochs)
        self._new_future = new_future
        self._reader_lease = reader_lease
        self._sender = Sender(self.server)
        self._line = DirectLine(self.server)

    def exists(self) -> bool:
        return bool(self.server.call("look for the project", lambda c: c.exists(self.keys.project)))

    def ensure_project(self, workspace: str) -> None:
        self.server.call("create the project", lambda c: c.hsetnx(self.keys.project, "workspace", workspace))

    def address(self, system_id: str, actor_id: str | None = None) -> Address:
        return Address(self.location, self.project_key, check_id(system_id, "system id"),
                       None if actor_id is None else check_id(actor_id))

    def _check_ours(self, address: Address) -> None:
        if address.home != self.location or address.project_key != self.project_key:
            raise ActorNotFound(address.name, f"project {self.project_key} at {self.location} "
                                f"(the address is of project {address.project_key} at {address.home})")
        check_id(address.system_id, "system id")
        if address.actor_id is not None:
            check_id(address.actor_id)

    def _claimed(self, address: Address) -> Callable[[int], None]:
        def record(epoch: int) -> None:
            with self._epochs_lock:
                self.epochs[(address.system_id, address.actor_id)] = epoch
        return record

    def mailbox(self, address: Address, *, create: bool = False,
                max_pending: int | None = None) -> RedisMailbox:
        self._check_ours(address)
        keys = self.keys.mailbox(address.system_id, address.actor_id)
        box = RedisMailbox(self.server, address, keys, self.location, self._reader_lease, self._claimed(address))
        if create:
            create_mailbox(self.server, keys, max_pending)
        elif not box.exists():
            raise ActorNotFound(address.name, f"project {address.project_key}")
        return box

    def view(self, address: Address) -> RedisMailbox:
        return self.mailbox(address)

    def deliver(self, address: Address, messages: Sequence[InboxMessage], *,
                block_timeout: float | None = 0.0) -> None:
        """One round trip (deliver.lua), on the direct line when it is free (else
        through the pool). While this process has deliveries queued or in flight
        (``deliver_async``), this one is queued after them and waited for, so that a
        thread's messages keep their order; a full mailbox is then waited on (or
        refused) as always."""
        self._check_ours(address)
        wires = [checked_wire(m) for m in messages]
        if not wires:
            return
        keys = self.keys.mailbox(address.system_id, address.actor_id)
        first = None
        if self._sender.busy:
            answered: Future[Any] = Future()
            self._sender.send(keys.base, deliver_keys(keys), wires, _settle_into(answered))
            first = answered.result()
        else:
            first = self._line.call(deliver_keys(keys), [GROUP, *wires])
        waiting, limit = deliver_wire(self.server, keys, address.name, wires, block_timeout, first)
        self._sender.note(keys.base, waiting, limit)

    def log_path(self, address: Address) -> str | None:
        """The file a worker keeps its log in on its own machine, under
        ``ACTORS_LOG_DIR`` (an ``actors host`` sets it for its workers); None when
        that is unset: the lines are on the server (``actor_log``) all the same."""
        self._check_ours(address)
        if address.actor_id is None:
            raise ActorNotFound(address.name, "a system's inbox has no log")
        return log_file(self.project_key, address)

    def actor_log(self, address: Address) -> RedisActorLog:
        """The actor's log lines on the server (see ``logs``), readable from any machine."""
        self._check_ours(address)
        if address.actor_id is None:
            raise ActorNotFound(address.name, "a system's inbox has no log")
        return RedisActorLog(self.server, self.keys.log(address.system_id, address.actor_id))

    def reachable(self, address: Address) -> None:
        self._check_ours(address)
        cfg = self.keys.mailbox(address.system_id, address.actor_id).cfg
        if not self.server.call(f"look for {address.name}", lambda c: c.exists(cfg)):
            raise ActorNotFound(address.name, f"project {address.project_key}")

    def deliver_async(self, address: Address, message: InboxMessage, *,
                      block_timeout: float | None = 0.0) -> "Future[str]":
        """Queued for the sender thread (see ``sending``), which delivers what is
        queued per mailbox in one script; the Future gets the id once the server
        acknowledged the XADD (a crash of this process before then can lose the
        message). Delivered synchronously instead (so that ``MailboxFull`` is raised, or room
        waited for, here) when ``block_timeout`` is not 0 or this process's figure of
        the mailbox leaves no room (its first delivery there included)."""
        self._check_ours(address)
        wire = checked_wire(message)
        keys = self.keys.mailbox(address.system_id, address.actor_id)
        future: Future[str] = self._new_future()
        if block_timeout != 0.0 or not self._sender.has_room(keys.base, 1):
            self.deliver(address, [message], block_timeout=block_timeout)
            future.set_result(message.id)
            return future
        name, msg_id = address.name, message.id

        def settle(reply: Any) -> None:
            if isinstance(reply, BaseException):
                future.set_exception(reply)
                return
            status, waiting, limit = reply
            if status == 0:
                future.set_result(msg_id)
            elif status == -1:
                future.set_exception(ActorNotFound(name, "this project (no mailbox)"))
            else:
                future.set_exception(MailboxFull(name, waiting, limit))

        self._sender.send(keys.base, deliver_keys(keys), [wire], settle)
        return future

    def provision(self, address: Address, max_pending: int) -> bool:
        assert address.actor_id is not None
        self._check_ours(address)
        keys = self.keys.mailbox(address.system_id, address.actor_id)
        session = self.keys.session(address.system_id, address.actor_id).session
        fresh = not self.server.call(f"look for {address.name}", lambda c: c.exists(keys.cfg, session))
        create_mailbox(self.server, keys, max_pending)
        return fresh

    def prepare(self, system_id: str, count: int) -> None:
        pass  # a mailbox is three keys made at provision: nothing to build ahead

    def close(self) -> None:
        self._sender.close()  # every deliver_async Future is resolved first
        self._line.close()
        self.server.close()


def _settle_into(answered: "Future[Any]") -> Callable[[Any], None]:
    def settle(reply: Any) -> None:
        if isinstance(reply, BaseException):
            answered.set_exception(reply)
        else:
            answered.set_result(reply)
    return settle

