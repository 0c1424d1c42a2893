"""A Redis mailbox handle: a stream with one consumer group (see ``runtime.backends.base``).

::

    senders    deliver.lua   check what waits (MailboxFull) + XADD ... + ring the bell
    reader     reading.Reader: claim / recover / drain / take / give_back / ack / bury,
               commit_and_ack (the session's commit and the ack in one script)
               waiting.Bell: wait / wake          inflight.RedisMarker
    anyone     look.lua: counts; XRANGE: peek; LRANGE dead: dead letters; requeue.lua

Delivery is at least once: a message is in the stream once ``deliver`` returns (and
on disk when the server's AOF says so: ``appendfsync always`` at every write,
``everysec`` within a second); it leaves only by an ack or a bury of the reader of
the current epoch. The stream is never trimmed.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Iterable, Iterator, Sequence

from ...address import Address
from ...errors import ActorNotFound, InvalidSpec, MailboxFull
from ...ids import check_id
from ...messages import InboxMessage
from ...spinning import PolledWait
from ...threads import done_future
from ..base import ActorSession, DeadLetter, Delivered
from .connection import Server
from .inflight import RedisMarker, forget, marked
from .keys import GROUP, MailboxKeys
from .reading import Reader
from .store import RedisSession
from .waiting import Bell

#: The longest message (encoded) a mailbox takes, as on maildir.
MAX_MESSAGE = (64 << 20) - 64
#: Default backpressure limit, as on every backend.
DEFAULT_MAX_PENDING = 50_000
#: Longest pause between two looks at a full mailbox by a blocked sender (seconds).
FULL_RECHECK_CAP = 0.05


def checked_wire(message: InboxMessage) -> bytes:
    """The message's wire bytes, if it may be delivered.

    Raises:
        InvalidSpec: a bad id, a body that is not JSON, or more than ``MAX_MESSAGE`` bytes.
    """
    check_id(message.id, "message id")
    try:
        data = message.to_wire()
    except (ValueError, RecursionError) as exc:
        raise InvalidSpec("message", f"it cannot be encoded as JSON: {exc}") from None
    if len(data) > MAX_MESSAGE:
        raise InvalidSpec("message", f"{len(data):,} bytes encoded is more than the {MAX_MESSAGE:,} a message may have")
    return data


def deliver_keys(keys: MailboxKeys) -> list[str]:
    """The KEYS of deliver.lua for a mailbox."""
    return [keys.cfg, keys.stream, keys.bell, keys.queued]


def deliver_wire(server: Server, keys: MailboxKeys, name: str, wires: Sequence[bytes],
                 block_timeout: float | None, first: Sequence[int] | None = None) -> tuple[int, int]:
    """Run deliver.lua until the messages fit or ``block_timeout`` passes; returns the
    last reply's figure of what waits and the limit.

    Args:
        first: the reply of a first try already made (pipelined), if any.

    Raises:
        ActorNotFound, MailboxFull, StoreError.
    """
    deadline = None if block_timeout is None else time.monotonic() + block_timeout
    pause = 0.002
    while True:
        if first is None:
            status, pending, limit = server.run(f"deliver to {name}", "deliver", deliver_keys(keys), [GROUP, *wires])
        else:
            (status, pending, limit), first = first, None
        if status == 0:
            return int(pending), int(limit)
        if status == -1:
            raise ActorNotFound(name, "this project (no mailbox)")
        left = None if deadline is None else deadline - time.monotonic()
        if len(wires) > limit or (left is not None and left <= 0):
            raise MailboxFull(name, int(pending), int(limit))
        time.sleep(pause if left is None else min(pause, left))
        pause = min(pause * 2, FULL_RECHECK_CAP)


def create_mailbox(server: Server, keys: MailboxKeys, max_pending: int | None) -> None:
    """Make the stream and its group (if missing) and record the limit."""
    def make(client: Any) -> None:
        pipe = client.pipeline(transaction=True)
        if max_pending is None:
            pipe.hsetnx(keys.cfg, "max_pending", DEFAULT_MAX_PENDING)
        else:
            pipe.hset(keys.cfg, "max_pending", max_pending)
        pipe.xgroup_create(keys.stream, GROUP, id="0", mkstream=True)
        results = pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise result

    server.call(f"create the mailbox {keys.base}", make)


class RedisMailbox:
    """A handle on one Redis mailbox (the ``Mailbox`` protocol).

    Args:
        server: the backend's connections.
        address: the mailbox's address.
        keys: its keys.
        location: the backend's location (for ``endpoint``).
        reader_lease: seconds of the reader lease.
        on_claim: told the epoch when this handle claims the mailbox.
    """

    def __init__(self, server: Server, address: Address, keys: MailboxKeys, location: str,
                 reader_lease: float, on_claim: Callable[[int], None]) -> None:
        self._server = server
        self._address = address
        self._keys = keys
        self._location = location
        self._name = address.name
        self._reader = Reader(server, keys, self._name, reader_lease, on_claim)
        self._claimed = False
        self._bell: Bell | None = None
        self._waiting = PolledWait()  # the bell's polling (the worker's loop thread)
        self._marker: RedisMarker | None = None
        self._closed = False

    @property
    def endpoint(self) -> str:
        return f"{self._location}#{self._keys.stream}"

    @property
    def more_waiting(self) -> bool:
        return self._reader.more_waiting

    # -- senders --------------------------------------------------------------------------

    def deliver(self, messages: Sequence[InboxMessage], *, block_timeout: float | None = 0.0) -> None:
        wires = [checked_wire(m) for m in messages]  # all checked before any is sent
        if wires:
            deliver_wire(self._server, self._keys, self._name, wires, block_timeout)

    def deliver_async(self, message: InboxMessage, *, block_timeout: float | None = 0.0) -> "Future[str]":
        self.deliver([message], block_timeout=block_timeout)
        return done_future(message.id)

    # -- the reader -----------------------------------------------------------------------

    def claim(self, timeout: float = 0.0) -> None:
        if not self._claimed:
            self._reader.claim(timeout)
            self._claimed = True

    def recover(self) -> list[Delivered]:
        return self._reader.recover()

    def drain(self, limit: int | None = None) -> list[Delivered]:
        return self._reader.drain(limit)

    def take(self, kinds: Iterable[str]) -> list[Delivered]:
        return self._reader.take(kinds)

    def give_back(self, batch: Sequence[Delivered]) -> None:
        self._reader.give_back(batch)

    def ack(self, batch: Iterable[Delivered]) -> int:
        return self._reader.ack(batch)

    def commit_and_ack(self, session: ActorSession, state_json: str, meta_json: str, new_ids: Sequence[str],
                       admitted: Iterable[str], outbox_json: str, batch: Sequence[Delivered]) -> int:
        if not isinstance(session, RedisSession) or not session.fenced_by(self._keys.epoch, self._reader.epoch):
            session.commit(state_json, meta_json, new_ids, admitted, outbox_json)
            return self.ack(batch)
        keys, args = session.commit_parts(state_json, meta_json, new_ids, outbox_json)
        return self._reader.commit_and_ack(keys, args, batch)

    def bury(self, delivered: Delivered, reason: str, attempts: int) -> None:
        self._reader.bury(delivered, reason, attempts)

    def has_new(self) -> bool:
        if self._reader.has_queued():
            return True
        exists, _, _, last, _, _, _ = self._look()
        if not exists:
            return False
        return bool(self._server.call("look for new messages",
                                      lambda c: c.xrange(self._keys.stream, f"({_text(last)}", "+", count=1)))

    def wait(self, timeout: float | None) -> bool:
        return self._ensure_bell().wait(timeout)

    def wake(self) -> None:
        bell = self._bell  # no lock: a signal handler may call this
        if bell is not None:
            bell.wake()

    def _ensure_bell(self) -> Bell:
        if self._bell is None:
            self._bell = Bell(self._server, self._keys.bell, self._waiting)
        return self._bell

    def poll_before_sleeping(self, seconds: float) -> None:
        """``PollsBeforeSleeping``: waits of the calling thread poll for the bell first."""
        self._waiting.poll_from(seconds, threading.get_ident())

    @property
    def inflight(self) -> RedisMarker:
        if self._marker is None:
            self._marker = RedisMarker(self._server, self._keys.inflight)
        return self._marker

    # -- any process ----------------------------------------------------------------------

    def _look(self) -> list[Any]:
        keys = self._keys
        return list(self._server.run(f"look at {self._name}", "look",
                                     [keys.cfg, keys.stream, keys.dead, keys.corrupt, keys.queued], [GROUP]))

    def exists(self) -> bool:
        return bool(self._look()[0])

    def counts(self) -> dict[str, int]:
        _, entries, handed, _, dead, corrupt, queued = self._look()
        cur = int(handed) - int(queued)
        return {"new": int(entries) - cur, "cur": cur, "corrupt": int(corrupt), "dead": int(dead)}

    def pending_count(self) -> int:
        found = self.counts()
        return found["new"] + found["cur"]

    def has_waiting(self) -> bool:
        return self.pending_count() > 0

    def peek(self, state: str = "new") -> Iterator[InboxMessage]:
        if state not in ("new", "cur"):
            raise ValueError(f"peek reads 'new' or 'cur', not {state!r}")
        keys = self._keys

        def read(client: Any) -> tuple[list[Any], list[Any]]:
            pipe = client.pipeline(transaction=True)
            pipe.lrange(keys.queued, 0, -1)
            pipe.xinfo_groups(keys.stream)
            queued, groups = pipe.execute()
            last = next((g["last-delivered-id"] for g in groups if _text(g["name"]) == GROUP), b"0-0")
            pipe = client.pipeline(transaction=True)
            for entry_id in queued:
                pipe.xrange(keys.stream, entry_id, entry_id)
            pipe.xrange(keys.stream, f"({_text(last)}", "+") if state == "new" else pipe.xrange(keys.stream, "-", last)
            *held, rest = pipe.execute()
            held_entries = [e for found in held for e in found]
            if state == "new":
                return held_entries, rest
            skip = {e[0] for e in held_entries}
            return [], [e for e in rest if e[0] not in skip]

        held, rest = self._server.call(f"read {self._name}", read)
        found = []
        for _, fields in held + rest:
            try:
                found.append(InboxMessage.from_wire(fields.get(b"m", b"")))
            except ValueError:
                continue
        return iter(found)

    def _raw_dead(self) -> list[bytes]:
        return list(self._server.call(f"read the dead letters of {self._name}",
                                      lambda c: c.lrange(self._keys.dead, 0, -1)))

    def dead_letters(self) -> list[DeadLetter]:
        letters = []
        for raw in self._raw_dead():
            letter = _letter(raw)
            if letter is not None:
                letters.append(letter)
        return letters

    def requeue(self, msg_id: str) -> bool:
        for raw in self._raw_dead():
            letter = _letter(raw)
            if letter is not None and letter.message.id == msg_id:
                keys = self._keys
                return bool(self._server.run(f"requeue in {self._name}", "requeue",
                                             [keys.dead, keys.stream, keys.bell], [raw, letter.message.to_wire()]))
        return False

    def forget_inflight(self) -> None:
        forget(self._server, self._keys.inflight)

    def inflight_id(self) -> str | None:
        return marked(self._server, self._keys.inflight)

    def close(self) -> None:
        """Let go: what the reader handed out and did not ack stays pending, for the
        next reader's ``recover`` (as after a crash)."""
        if self._closed:
            return
        self._closed = True
        if self._marker is not None:
            self._marker.close()  # first: a successor's marker page has the same name
        if self._claimed:
            self._reader.release()
        if self._bell is not None:
            self._bell.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _letter(raw: bytes) -> DeadLetter | None:
    try:
        doc = json.loads(raw)
        return DeadLetter(InboxMessage.from_wire(json.dumps(doc["message"])), str(doc["reason"]),
                          int(doc["attempts"]), float(doc["dead_at"]))
    except (ValueError, KeyError, TypeError):
        return None

