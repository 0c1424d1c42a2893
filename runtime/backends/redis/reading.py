"""The one reader of a Redis mailbox: claim (fenced by an epoch), recover, drain,
take, give back, ack, bury.

::

    claim     claim.lua: SET reader <holder> PX lease (free, ours, or its holder died
              on this host) + INCR epoch; a thread renews the lease every lease/3
    recover   recover.lua: XAUTOCLAIM every pending entry to consumer e<epoch>, oldest
              first (only the lease holder runs it: the last owner's lease expired)
    drain     drain.lua: DEL bell + XREADGROUP > COUNT n (what ``take`` or
              ``give_back`` left queued here comes first)
    ack       ack.lua: XACK + XDEL     bury: set_aside.lua (dead list, XACK, XDEL)
    commit    commit_ack.lua: the session's commit and the batch's ack in one step,
              then (nothing queued here) the next batch handed out, as drain.lua does

Every script checks that the mailbox's epoch is still this reader's and refuses
otherwise (``StoreError``): a reader paused past its lease (SIGSTOP, a long GC, a
network partition) whose successor claimed the mailbox can neither take nor retire
anything, and its commits are refused the same way (``store.RedisSession``).

Entries handed out or queued here stay pending in the stream's consumer group until
acked, so a reader that dies leaves all of them to the next one's ``recover``, in
order, with their ids. A receipt is ``(entry id, hand-out number)``: an ack of a
receipt from before a ``give_back`` retires nothing.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import threading
import time
from typing import Any, Callable, Iterable, Sequence

from ...errors import StoreError
from ...messages import InboxMessage
from ...threads import start_thread
from ..base import Delivered
from .connection import Server
from .keys import GROUP, MailboxKeys
from .local_process import describe, died_here, holder_value

log = logging.getLogger(__name__)

#: Seconds a reader's lease lasts without renewal (renewed every third of it).
DEFAULT_READER_LEASE = 10.0
#: Entry ids per ack script call.
ACK_CHUNK = 1000
#: ARGV of commit.lua before its new ids (after the epoch): state, meta, outbox,
#: capacity, actor id, system id.
COMMIT_FIXED_ARGS = 6

Entry = tuple[str, InboxMessage]


class Reader:
    """The reader role of one mailbox, once claimed (see the module docstring).

    Args:
        server: the connections.
        keys: the mailbox's keys.
        name: the mailbox's name, for errors.
        lease: seconds of the reader lease.
        on_claim: called with the epoch once claimed (the backend fences commits with it).
    """

    def __init__(self, server: Server, keys: MailboxKeys, name: str, lease: float,
                 on_claim: Callable[[int], None]) -> None:
        self._server = server
        self._keys = keys
        self._name = name
        self._lease = lease
        self._on_claim = on_claim
        self._holder = holder_value()
        self.epoch: int | None = None
        self._queue: collections.deque[Entry] = collections.deque()
        self._handed: dict[str, int] = {}
        self._serial = itertools.count(1)
        self.more_waiting = False
        #: Entries the last commit_and_ack handed out (the next drain's), and whether
        #: more waited past them; ``_limit``: the last limited drain's limit (None: no
        #: drain had one yet, and commit_and_ack hands out nothing).
        self._prefetched: list[Entry] = []
        self._prefetched_more = False
        self._limit: int | None = None
        self._ended = threading.Event()
        self.lost = False

    @property
    def _consumer(self) -> str:
        return f"e{self.epoch}"

    def _fenced(self, what: str, script: str, keys: list[str], args: list[Any]) -> Any:
        if self.epoch is None:
            raise StoreError(self._name, "this handle has not claimed the mailbox")
        return self._server.run(f"{what} ({self._name})", script, keys, [self.epoch, GROUP, *args])

    # -- the role ------------------------------------------------------------------------

    def claim(self, timeout: float) -> None:
        """Become the reader (see ``Mailbox.claim``).

        Raises:
            StoreError: another live reader holds the mailbox past ``timeout``.
        """
        deadline = time.monotonic() + timeout
        replaceable = ""
        pause = 0.02
        while True:
            epoch, holder = self._server.run(
                f"claim {self._name}", "claim", [self._keys.reader, self._keys.epoch],
                [self._holder, int(self._lease * 1000), replaceable])
            if epoch:
                break
            if died_here(holder):
                replaceable = holder.decode() if isinstance(holder, bytes) else str(holder)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreError(self._name, f"another reader holds this mailbox ({describe(holder)})")
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.25)
        self.epoch = int(epoch)
        self._on_claim(self.epoch)
        start_thread(self._renew_loop, f"reader-lease-{self._name}")

    def _renew_loop(self) -> None:
        while not self._ended.wait(self._lease / 3):
            try:
                kept = self._server.run(f"renew the reader lease of {self._name}", "renew",
                                        [self._keys.reader], [self._holder, int(self._lease * 1000)])
            except StoreError as exc:
                log.warning("mailbox %s: could not renew the reader lease: %s", self._name, exc)
                continue
            if not kept:
                self.lost = True
                log.error("mailbox %s: the reader lease was lost (this process was paused past it?); "
                          "a successor may hold the mailbox, and this reader's acks and commits are refused",
                          self._name)
                return

    def release(self) -> None:
        """Let go of the role (what was handed out stays pending for the next reader)."""
        self._ended.set()
        if self.epoch is not None:
            try:
                self._server.run(f"let go of {self._name}", "release", [self._keys.reader], [self._holder])
            except StoreError as exc:
                log.warning("mailbox %s: could not let go of the reader lease (it expires): %s", self._name, exc)

    # -- reading -------------------------------------------------------------------------

    def _parse(self, raw: Sequence[Any]) -> list[Entry]:
        pairs = []
        for entry in raw:
            fields = entry[1] or []
            pairs.append((entry[0], fields[1] if len(fields) >= 2 else b""))
        return self._parse_pairs(pairs)

    def _parse_flat(self, raw: Sequence[Any]) -> list[Entry]:
        """Entries as drain.lua and commit_ack.lua return them: id, message, id, ..."""
        return self._parse_pairs(zip(raw[::2], raw[1::2]))

    def _parse_pairs(self, pairs: Iterable[tuple[Any, Any]]) -> list[Entry]:
        found = []
        for raw_id, payload in pairs:
            entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            try:
                found.append((entry_id, InboxMessage.from_wire(payload)))
            except (ValueError, TypeError, RecursionError) as exc:
                log.error("mailbox %s: entry %s is not a message (%s); kept aside", self._name, entry_id, exc)
                self._fenced("keep an unreadable entry aside", "set_aside",
                             [self._keys.epoch, self._keys.stream, self._keys.corrupt], [entry_id, payload])
        return found

    def _hand_out(self, entries: Iterable[Entry]) -> list[Delivered]:
        batch = []
        for entry_id, message in entries:
            serial = next(self._serial)
            self._handed[entry_id] = serial
            batch.append(Delivered(message, (entry_id, serial)))
        return batch

    def _read_new(self, count: int, queue_changed: bool) -> tuple[list[Entry], bool]:
        """Read up to ``count`` new entries (0: all, -1: none) and, when the local queue
        changed, record what it holds now (views count it as waiting)."""
        queued = ([entry_id for entry_id, _ in self._queue] or ["-"]) if queue_changed else []
        keys = self._keys
        entries, more = self._fenced("drain", "drain", [keys.epoch, keys.stream, keys.bell, keys.queued],
                                     [self._consumer, count, *queued])
        return self._parse_flat(entries), bool(more)

    def recover(self) -> list[Delivered]:
        raw = self._fenced("recover", "recover", [self._keys.epoch, self._keys.stream, self._keys.queued],
                           [self._consumer])
        self._queue.clear()
        self._handed.clear()
        self._prefetched = []
        return self._hand_out(self._parse(raw)) + self.drain()

    def _unprefetch(self) -> bool:
        """Queue what commit_and_ack handed out, behind the queue (it came later)."""
        if not self._prefetched:
            return False
        self._queue.extend(self._prefetched)
        self._prefetched = []
        return True

    def drain(self, limit: int | None = None) -> list[Delivered]:
        if limit is not None:
            self._limit = limit
        if self._prefetched and not self._queue:
            # Handed out by the last commit_and_ack: no round trip.
            ready, self._prefetched = self._prefetched, []
            if limit is not None and len(ready) > limit:
                ready, self._prefetched = ready[:limit], ready[limit:]
            self.more_waiting = bool(self._prefetched) or self._prefetched_more
            return self._hand_out(ready)
        self._unprefetch()
        taken: list[Entry] = []
        while self._queue and (limit is None or len(taken) < limit):
            taken.append(self._queue.popleft())
        if limit is None or len(taken) < limit:
            new, more = self._read_new(0 if limit is None else limit - len(taken), bool(taken))
            taken += new
            self.more_waiting = bool(self._queue) or more
        else:
            self._read_new(-1, True)
            self.more_waiting = True  # not looked: the caller's next drain finds out
        return self._hand_out(taken)

    def take(self, kinds: Iterable[str]) -> list[Delivered]:
        wanted = set(kinds)
        moved = self._unprefetch()
        new, _ = self._read_new(0, moved)
        self._queue.extend(new)
        taken = [entry for entry in self._queue if entry[1].kind in wanted]
        if taken:
            self._queue = collections.deque(entry for entry in self._queue if entry[1].kind not in wanted)
        if new or taken:
            self._read_new(-1, True)
        return self._hand_out(taken)

    def give_back(self, batch: Sequence[Delivered]) -> None:
        self._unprefetch()
        for delivered in reversed(batch):
            entry_id, serial = delivered.receipt
            if self._handed.get(entry_id) == serial:
                del self._handed[entry_id]
                self._queue.appendleft((entry_id, delivered.message))
        if batch:
            self.more_waiting = True
            self._read_new(-1, True)

    def has_queued(self) -> bool:
        return bool(self._queue or self._prefetched)

    def _take_receipts(self, batch: Iterable[Delivered]) -> list[str]:
        ids = []
        for delivered in batch:
            entry_id, serial = delivered.receipt
            if self._handed.get(entry_id) == serial:
                ids.append(entry_id)
        return ids

    def ack(self, batch: Iterable[Delivered]) -> int:
        ids = self._take_receipts(batch)
        retired = 0
        for start in range(0, len(ids), ACK_CHUNK):
            chunk = ids[start:start + ACK_CHUNK]
            retired += int(self._fenced("ack", "ack", [self._keys.epoch, self._keys.stream], chunk))
            for entry_id in chunk:  # only once the server took them: a refused ack changes nothing here
                self._handed.pop(entry_id, None)
        return retired

    def commit_and_ack(self, commit_keys: list[str], commit_args: list[Any], batch: Iterable[Delivered]) -> int:
        """Run a session's commit (``RedisSession.commit_parts``) and the ack of ``batch``
        as one fenced script (commit_ack.lua): both or neither. With nothing queued
        here, the same script hands out the next batch (up to the last drain's limit;
        nothing before a drain with a limit),
        which the next ``drain`` returns without a round trip; ``more_waiting`` then
        says whether there is one."""
        ids = self._take_receipts(batch)
        keys = self._keys
        count = -1 if self._queue or self._prefetched or self._limit is None else self._limit
        retired, raw, more = self._fenced(
            "commit and ack", "commit_ack", [keys.epoch, *commit_keys, keys.stream, keys.bell],
            [self._consumer, count, *commit_args[:COMMIT_FIXED_ARGS], len(commit_args) - COMMIT_FIXED_ARGS,
             *commit_args[COMMIT_FIXED_ARGS:], *ids])
        for entry_id in ids:  # only once the server took them: a refused call changes nothing here
            self._handed.pop(entry_id, None)
        if count == -1:
            self.more_waiting = self.more_waiting or bool(more)  # the bell rang: drain again
        else:
            self._prefetched = self._parse_flat(raw)
            self._prefetched_more = bool(more)
            self.more_waiting = bool(self._prefetched) or bool(more)
        return int(retired)

    def bury(self, delivered: Delivered, reason: str, attempts: int) -> None:
        if not self._take_receipts([delivered]):
            return
        entry_id = delivered.receipt[0]
        letter = json.dumps({"message": json.loads(delivered.message.to_wire()), "reason": reason,
                             "attempts": attempts, "dead_at": time.time()}, separators=(",", ":"))
        self._fenced("bury", "set_aside", [self._keys.epoch, self._keys.stream, self._keys.dead], [entry_id, letter])
        self._handed.pop(entry_id, None)
