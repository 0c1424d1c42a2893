"""A memory mailbox handle: the ``Mailbox`` protocol over a ``Box``."""

from __future__ import annotations

import collections
import time
from concurrent.futures import Future
from typing import Iterable, Iterator, Sequence

from ...address import Address
from ...errors import InvalidSpec, MailboxFull, StoreError
from ...ids import check_id
from ...messages import InboxMessage
from ...threads import done_future
from ...wakeup import WakeUp, wait_readable
from ..base import DeadLetter, Delivered
from .project import MAX_MESSAGE, Box, Marker, Project


def _copy_message(message: InboxMessage) -> InboxMessage:
    """What a receiver gets: the message as the wire carries it, checked as every
    backend checks it (a valid id, JSON, not too long).

    A message the reader could not decode (nested too deep, NaN, fields of the wrong
    type) is refused here, at the sender: with nothing between the two ends there is
    no ``corrupt/`` for it to go to, and it must not reach the actor.

    Raises:
        InvalidSpec: any of the above.
    """
    check_id(message.id, "message id")
    try:
        data = message.to_wire()
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidSpec("message", f"it cannot be encoded as JSON: {exc}") from None
    if len(data) > MAX_MESSAGE:
        raise InvalidSpec("message", f"{len(data):,} bytes encoded is more than the {MAX_MESSAGE:,} a message may have")
    try:
        return InboxMessage.from_wire(data)
    except ValueError as exc:
        raise InvalidSpec("message", f"a reader could not decode it: {exc}") from None


def deliver_to(project: Project, address: Address, box: Box, messages: Sequence[InboxMessage],
             block_timeout: float | None) -> None:
    copies = [_copy_message(m) for m in messages]  # all checked before any is delivered
    deadline = None if block_timeout is None else time.monotonic() + block_timeout
    with project.lock:
        while len(box.waiting) + len(copies) > box.max_pending:
            remaining = None if deadline is None else deadline - time.monotonic()
            if len(copies) > box.max_pending or (remaining is not None and remaining <= 0):
                raise MailboxFull(address.name, len(box.waiting), box.max_pending)
            project.lock.wait(remaining)
        for message in copies:
            box.waiting.append((next(project.receipts), message))
        for bell in box.bells:
            bell.ring()


class MemoryMailbox:
    """A handle on one memory mailbox (see ``runtime.backends.base.Mailbox``)."""

    def __init__(self, project: Project, address: Address, box: Box) -> None:
        self._project = project
        self._address = address
        self._box = box
        self._bell: WakeUp | None = None  # rung by senders; the reader's
        self._wakeup: WakeUp | None = None  # rung by wake()
        self._more = False
        self._closed = False

    @property
    def endpoint(self) -> str:
        address = self._address
        return f"{address.home}/{address.project_key}/{address.system_id}/{address.actor_id or ''}"

    @property
    def max_pending(self) -> int:
        return self._box.max_pending

    @property
    def more_waiting(self) -> bool:
        return self._more

    # -- senders ------------------------------------------------------------------------

    def deliver(self, messages: Sequence[InboxMessage], *, block_timeout: float | None = 0.0) -> None:
        deliver_to(self._project, self._address, self._box, messages, block_timeout)

    def deliver_async(self, message: InboxMessage, *, block_timeout: float | None = 0.0) -> "Future[str]":
        self.deliver([message], block_timeout=block_timeout)
        return done_future(message.id)

    # -- the reader ---------------------------------------------------------------------

    def claim(self, timeout: float = 0.0) -> None:
        deadline = time.monotonic() + timeout
        with self._project.lock:
            while self._box.reader not in (None, self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreError(str(self._address.name), "another reader holds this mailbox")
                self._project.lock.wait(remaining)
            self._box.reader = self
            self._ensure_bell()

    def _ensure_bell(self) -> WakeUp:  # hold the lock
        if self._bell is None:
            self._bell = WakeUp()
            self._wakeup = WakeUp()
            self._box.bells.append(self._bell)
        return self._bell

    def recover(self) -> list[Delivered]:
        with self._project.lock:
            left = [Delivered(message, receipt) for receipt, message in self._box.handed.items()]
        return left + self.drain()

    def drain(self, limit: int | None = None) -> list[Delivered]:
        with self._project.lock:
            self._ensure_bell().clear()
            box = self._box
            count = len(box.waiting) if limit is None else min(limit, len(box.waiting))
            batch = []
            for _ in range(count):
                receipt, message = box.waiting.popleft()
                box.handed[receipt] = message
                batch.append(Delivered(message, receipt))
            self._more = bool(box.waiting)
            self._project.lock.notify_all()  # room for blocked senders
        return batch

    def take(self, kinds: Iterable[str]) -> list[Delivered]:
        wanted = set(kinds)
        with self._project.lock:
            self._ensure_bell().clear()
            box = self._box
            taken = [(r, m) for r, m in box.waiting if m.kind in wanted]
            if taken:
                box.waiting = collections.deque((r, m) for r, m in box.waiting if m.kind not in wanted)
                for receipt, message in taken:
                    box.handed[receipt] = message
                self._project.lock.notify_all()
        return [Delivered(message, receipt) for receipt, message in taken]

    def give_back(self, batch: Sequence[Delivered]) -> None:
        with self._project.lock:
            box = self._box
            for delivered in reversed(batch):
                message = box.handed.pop(delivered.receipt, None)
                if message is not None:
                    box.waiting.appendleft((delivered.receipt, message))
            if batch:
                self._more = True

    def ack(self, batch: Iterable[Delivered]) -> int:
        with self._project.lock:
            return sum(self._box.handed.pop(d.receipt, None) is not None for d in batch)

    def bury(self, delivered: Delivered, reason: str, attempts: int) -> None:
        with self._project.lock:
            if delivered.receipt in self._box.handed:
                self._box.dead.append(DeadLetter(delivered.message, reason, attempts, time.time()))
                del self._box.handed[delivered.receipt]

    def has_new(self) -> bool:
        with self._project.lock:
            return bool(self._box.waiting)

    def wait(self, timeout: float | None) -> bool:
        with self._project.lock:
            bell = self._ensure_bell()
        wakeup = self._wakeup
        assert wakeup is not None
        readable = wait_readable([bell.fd, wakeup.fd], timeout)
        if wakeup.fd in readable:
            wakeup.clear()
        return bool(readable)

    def wake(self) -> None:
        wakeup = self._wakeup  # no lock: a signal handler may call this
        if wakeup is not None:
            wakeup.ring()

    @property
    def inflight(self) -> Marker:
        return self._box.inflight

    # -- any process --------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self._project.lock:
            box = self._box
            return {"new": len(box.waiting), "cur": len(box.handed), "corrupt": 0, "dead": len(box.dead)}

    def pending_count(self) -> int:
        found = self.counts()
        return found["new"] + found["cur"]

    def has_waiting(self) -> bool:
        return self.pending_count() > 0

    def peek(self, state: str = "new") -> Iterator[InboxMessage]:
        if state not in ("new", "cur"):
            raise ValueError(f"peek reads 'new' or 'cur', not {state!r}")
        with self._project.lock:
            found = [m for _, m in self._box.waiting] if state == "new" else list(self._box.handed.values())
        return iter(found)

    def dead_letters(self) -> list[DeadLetter]:
        with self._project.lock:
            return list(self._box.dead)

    def requeue(self, msg_id: str) -> bool:
        with self._project.lock:
            for letter in self._box.dead:
                if letter.message.id == msg_id:
                    self._box.dead.remove(letter)
                    break
            else:
                return False
        self.deliver([letter.message], block_timeout=None)
        return True

    def forget_inflight(self) -> None:
        self._box.inflight.clear()

    def inflight_id(self) -> str | None:
        return self._box.inflight.read()

    def close(self) -> None:
        """Let go of the mailbox: what a reader handed out and did not ack stays
        handed out, for the next reader's ``recover`` (a reader that crashed)."""
        if self._closed:
            return
        self._closed = True
        with self._project.lock:
            if self._box.reader is self:
                self._box.reader = None
                self._project.lock.notify_all()
            if self._bell is not None:
                self._box.bells.remove(self._bell)
                self._bell.close()
        if self._wakeup is not None:
            self._wakeup.close()
