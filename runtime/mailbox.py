"""A Maildir-style durable mailbox with a doorbell (DESIGN §4).

Data flow::

    sender (any process)                 reader (the one actor process)
    --------------------                 ------------------------------
    deliver: new/.tmp-X  --rename-->  new/<ns>-<id>.json   --ring .bell-->  wait()
                                           |  drain: rename (claim)
                                           v
                                      cur/<ns>-<id>.json   -- handle, commit -->
                                             |  ack: rename
                                           v
                                      free/<name>  -- a sender claims it and writes in place
                                                    unparsable -> corrupt/
                                                    poison     -> dead/ (envelope + reason)

Guarantees: a message is *sent* once its rename into ``new/`` succeeded (and, at
durability "machine", the file and ``new/`` were fsynced). ``drain`` claims by rename,
so two readers never both claim one file; a reader that crashes leaves its claims in
``cur/``, and ``recover`` hands them back to the next activation. Nothing but the verbs
here touches ``new/`` and ``cur/``.

Spent files are recycled through ``free/`` instead of being unlinked: on this file
system (ext4, no journal, mounted ``discard``) creating a file costs up to ~0.8 ms
while other processes churn inodes, and unlinking a file whose data reached the disk
costs ~1 ms of synchronous discard; renaming and overwriting in place cost ~10 µs.
``free/`` is capped; past the cap an ack unlinks.

The doorbell is a FIFO (``.bell``) rung by senders after the rename, non-blocking: no
reader, or a full pipe, means a wake-up is not needed or already pending. Readers wait
on it with ``select`` and sweep now and then as a safety net, so an idle actor costs
no CPU. (inotify would do too, but it is capped at 128 instances per user here.)
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import select
import time
from dataclasses import dataclass
from typing import Iterator

from .durable import (
    MACHINE,
    Durability,
    atomic_write,
    fsync_dir,
    overwrite,
    read_bytes,
    sync_data,
    sync_filesystem,
    temp_name,
    temp_owner_alive,
    unlink_quietly,
    write_file,
)
from .errors import MailboxFull, StoreError
from .messages import InboxMessage

log = logging.getLogger(__name__)

#: Default backpressure limit: messages waiting in ``new/``.
DEFAULT_MAX_PENDING = 50_000
#: Sub-directories holding messages, by state.
MESSAGE_DIRS = ("new", "cur", "corrupt", "dead")
#: All sub-directories of a mailbox (``free/`` holds spent files for reuse).
SUBDIRS = (*MESSAGE_DIRS, "free")
#: Spent files kept for reuse; an ack past this unlinks instead.
FREE_LIMIT = 1024
#: After finding free/ full, this many acks unlink before the reader counts it again.
FREE_RECOUNT_AFTER = 256
#: After finding ``free/`` empty, a sender creates files rather than look again, for
#: one delivery per this many µs the empty listing took, at most ``FREE_RELIST_MAX``:
#: a small directory lists in ~5 µs and is looked at again next time, while one that
#: once held 100,000 entries still takes ~0.4 ms to list when empty.
FREE_RELIST_US_PER_SKIP = 10.0
FREE_RELIST_MAX = 64
#: Name of the doorbell FIFO inside the mailbox directory.
BELL = ".bell"
#: Name of the in-flight marker (which message a worker is handling; see runtime.worker).
INFLIGHT = ".inflight"
#: Temp files older than this (seconds) are debris of a crashed sender.
STALE_TEMP_AGE = 600.0
#: How often a blocked deliver re-checks a full mailbox (no doorbell runs backwards).
_FULL_RECHECK = 0.05
#: Bytes a pipe holds on Linux: one read of this size empties the doorbell.
_PIPE_CAPACITY = 65536


@dataclass(frozen=True)
class Delivered:
    """A message claimed from a mailbox, with the file that holds it in ``cur/``."""

    message: InboxMessage
    path: str

    @property
    def id(self) -> str:
        return self.message.id


@dataclass(frozen=True)
class DeadLetter:
    """A message moved to ``dead/``, with why."""

    message: InboxMessage
    reason: str
    attempts: int
    dead_at: float
    path: str


def drain_fd(fd: int) -> None:
    """Read a non-blocking pipe empty (doorbells and wake-up pipes carry no data)."""
    try:
        while len(os.read(fd, _PIPE_CAPACITY)) == _PIPE_CAPACITY:
            pass  # one read takes everything written; a full one means there may be more
    except BlockingIOError:
        pass


class Doorbell:
    """The reader side of a mailbox's FIFO: a file descriptor to ``select`` on."""

    def __init__(self, fifo_path: str) -> None:
        # O_RDWR keeps a writer open ourselves, so the FIFO never reports EOF (which
        # would make select() spin) when senders come and go.
        self.fd = os.open(fifo_path, os.O_RDWR | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))

    def fileno(self) -> int:
        return self.fd

    def clear(self) -> None:
        """Swallow pending rings. Call *before* listing, so a later ring is not lost."""
        drain_fd(self.fd)

    def wait(self, timeout: float | None) -> bool:
        """Block until rung or ``timeout`` passes. Returns whether it was rung."""
        readable, _, _ = select.select([self.fd], [], [], timeout)
        return bool(readable)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Mailbox:
    """One actor's durable mailbox under ``root``.

    Args:
        root: the mailbox directory (``.../mailbox``); created with its sub-directories
            and doorbell when ``create`` is true.
        durability: "machine" fsyncs each delivered file and ``new/``; "process" does not.
        max_pending: ``deliver`` refuses with ``MailboxFull`` above this many waiting.
        create: make the directories if missing.

    Raises:
        StoreError: ``create`` is false and the mailbox does not exist.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        durability: Durability = MACHINE,
        max_pending: int = DEFAULT_MAX_PENDING,
        create: bool = True,
    ) -> None:
        self.root = os.fspath(root)
        self.durability = durability
        self.max_pending = max_pending
        self.new_dir = os.path.join(self.root, "new")
        self.cur_dir = os.path.join(self.root, "cur")
        self.corrupt_dir = os.path.join(self.root, "corrupt")
        self.dead_dir = os.path.join(self.root, "dead")
        self.free_dir = os.path.join(self.root, "free")
        self.bell_path = os.path.join(self.root, BELL)
        if create and not (os.path.isdir(self.free_dir) and os.path.exists(self.bell_path)):
            for sub in SUBDIRS:  # free/ last: its presence means the rest exists
                os.makedirs(os.path.join(self.root, sub), exist_ok=True)
            try:
                os.mkfifo(self.bell_path, 0o600)
            except FileExistsError:
                pass
        elif not os.path.isdir(self.new_dir):
            raise StoreError(self.root, "no mailbox here")
        self._bell_fd = -1
        # Upper bound of what waits in new/, as far as this handle knows; only
        # re-counted (a directory listing) when it reaches max_pending.
        self._pending_bound: int | None = None
        #: Whether the last ``drain`` stopped at its limit with messages left in new/.
        self.more_waiting = False
        # Sender side of recycling: names seen in free/, and how many delivers to go
        # before looking again after free/ was found empty.
        self._free_names: list[str] = []
        self._free_skip = 0
        # Reader side: how many files free/ holds, as far as this handle knows, and
        # how many more acks unlink before looking again after finding it full.
        self._free_estimate: int | None = None
        self._free_full_for = 0

    # -- sending ----------------------------------------------------------------------

    def deliver(self, message: InboxMessage, *, block_timeout: float | None = 0.0) -> str:
        """Put ``message`` into ``new/``; returns the file's path.

        The message is sent, and survives a crash of any process (and at durability
        "machine" a power loss), once this returns. Delivering the same message again
        either replaces the waiting file (same name) or, once the first was claimed,
        adds a second that the receiver's AdmittedSet drops.

        ``max_pending`` is a soft limit: each handle counts ``new/`` once and then adds
        its own deliveries, re-counting only when its estimate reaches the limit, so
        several long-lived sender handles can together overshoot it.

        Args:
            message: what to send.
            block_timeout: when the mailbox is full, wait up to this many seconds for
                room (``None`` = forever; 0 = refuse at once).

        Raises:
            MailboxFull: ``max_pending`` messages are waiting and no room came in time.
            StoreError: the write failed (nothing was delivered).
        """
        self._make_room(block_timeout)
        path = self._publish(*self._stage(message, sync=self.durability == MACHINE))
        if self.durability == MACHINE:
            fsync_dir(self.new_dir)
        if self._pending_bound is not None:
            self._pending_bound += 1
        self.ring()
        return path

    def deliver_many(self, messages: list[InboxMessage], *,
                     block_timeout: float | None = 0.0) -> list[str]:
        """Deliver several messages, in order, with one flush to disk (group commit).

        All files are written first and then renamed into ``new/`` in order, so a
        failed write sends nothing. At durability "machine" the batch is then made
        durable by one ``syncfs`` instead of an fsync per message; each message has
        :meth:`deliver`'s guarantee once this returns. A power loss before that may
        leave some of the batch missing or in ``corrupt/``; none was acknowledged.

        Raises:
            MailboxFull: the batch does not fit under ``max_pending`` in time (nothing
                was sent). StoreError: a write failed (nothing was sent) or, rarer, a
                rename failed (the reason says how many of the batch were delivered).
        """
        if not messages:
            return []
        self._make_room(block_timeout, len(messages))
        staged: list[tuple[str, str]] = []
        try:
            for message in messages:
                staged.append(self._stage(message, sync=False))
        except BaseException:
            for tmp, _ in staged:
                unlink_quietly(tmp)
            raise
        published: list[str] = []
        try:
            for tmp, path in staged:
                published.append(self._publish(tmp, path))
        except StoreError as exc:
            for tmp, _ in staged[len(published) + 1:]:
                unlink_quietly(tmp)
            raise StoreError(self.new_dir, f"{exc.reason}; the first {len(published)} of "
                                           f"{len(messages)} messages were delivered") from exc
        finally:
            if published:
                if self.durability == MACHINE:
                    try:
                        sync_filesystem(self.new_dir)
                    except OSError as exc:
                        raise StoreError(self.new_dir, f"flush failed: {exc.strerror or exc}") from exc
                if self._pending_bound is not None:
                    self._pending_bound += len(published)
                self.ring()
        return published

    def _stage(self, message: InboxMessage, *, sync: bool) -> tuple[str, str]:
        """Write one message to a hidden temp in new/ (a recycled file when one is free).

        Returns the temp path and the final path. Raises ``StoreError`` (nothing left).
        """
        final = os.path.join(self.new_dir, message.file_name())
        data = message.to_wire()
        tmp = self._claim_free()
        try:
            if tmp is None:
                tmp = temp_name(self.new_dir)
                write_file(tmp, data, MACHINE if sync else "process")
            else:
                fd = os.open(tmp, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
                try:
                    overwrite(fd, data, os.fstat(fd).st_size)
                    if sync:
                        sync_data(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            if tmp is not None:
                unlink_quietly(tmp)
            raise StoreError(self.new_dir, f"deliver failed: {exc.strerror or exc}") from exc
        return tmp, final

    def _publish(self, tmp: str, final: str) -> str:
        """Rename a staged message into new/: from here on it is delivered."""
        try:
            os.rename(tmp, final)
        except OSError as exc:
            unlink_quietly(tmp)
            raise StoreError(self.new_dir, f"deliver failed: {exc.strerror or exc}") from exc
        return final

    def _claim_free(self) -> str | None:
        """Take a spent file from ``free/`` (renamed to a hidden temp in ``new/``), or None."""
        while True:
            if not self._free_names:
                if self._free_skip > 0:
                    self._free_skip -= 1
                    return None
                started = time.perf_counter()
                try:
                    names = [n for n in os.listdir(self.free_dir) if n[0] != "."]
                except FileNotFoundError:  # a mailbox made before recycling existed
                    names = []
                if not names:
                    listing_us = (time.perf_counter() - started) * 1e6
                    self._free_skip = min(FREE_RELIST_MAX, int(listing_us / FREE_RELIST_US_PER_SKIP))
                    return None
                random.shuffle(names)  # concurrent senders then rarely race for one file
                self._free_names = names
            tmp = temp_name(self.new_dir)
            try:
                os.rename(os.path.join(self.free_dir, self._free_names.pop()), tmp)
                return tmp
            except FileNotFoundError:
                continue  # another sender took it

    def _make_room(self, block_timeout: float | None, count: int = 1) -> None:
        if self._pending_bound is not None and self._pending_bound + count <= self.max_pending:
            return
        if count > self.max_pending:  # can never fit, however long we wait
            raise MailboxFull(self.root, self._count(self.new_dir), self.max_pending)
        deadline = None if block_timeout is None else time.monotonic() + block_timeout
        while True:
            waiting = self._count(self.new_dir)
            self._pending_bound = waiting
            if waiting + count <= self.max_pending:
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise MailboxFull(self.root, waiting, self.max_pending)
            time.sleep(_FULL_RECHECK if remaining is None else min(_FULL_RECHECK, remaining))

    def ring(self) -> None:
        """Wake the reader, if one waits. Never blocks, never fails."""
        for _ in range(2):
            if self._bell_fd < 0:
                try:
                    self._bell_fd = os.open(
                        self.bell_path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
                    )
                except OSError:  # ENXIO: no reader; ENOENT: no bell (foreign mailbox)
                    return
            try:
                os.write(self._bell_fd, b"\0")
                return
            except BlockingIOError:  # pipe full: a wake-up is already pending
                return
            except OSError as exc:  # EPIPE: the reader went away; reopen once
                self._close_bell()
                if exc.errno != errno.EPIPE:
                    return

    def _close_bell(self) -> None:
        if self._bell_fd >= 0:
            os.close(self._bell_fd)
            self._bell_fd = -1

    def close(self) -> None:
        """Release the sender-side doorbell descriptor."""
        self._close_bell()

    # -- reading (the single reader) -----------------------------------------------------

    def doorbell(self) -> Doorbell:
        """Open the reader side of the doorbell (the reader process owns it)."""
        return Doorbell(self.bell_path)

    def drain(self, limit: int | None = None) -> list[Delivered]:
        """Claim waiting messages in delivery order (at most ``limit``).

        Each file is renamed ``new/ -> cur/``; a file another reader claimed first is
        skipped; an unparsable one is moved to ``corrupt/`` and not returned. The
        claimed messages stay in ``cur/`` until acked, so a crash loses none of them.
        Afterwards ``more_waiting`` says whether ``limit`` left messages behind.
        """
        names = sorted(n for n in os.listdir(self.new_dir) if n[0] != ".")
        self.more_waiting = limit is not None and len(names) > limit
        if self.more_waiting:
            names = names[:limit]
        claimed = []
        for name in names:
            path = os.path.join(self.cur_dir, name)
            try:
                os.rename(os.path.join(self.new_dir, name), path)
            except FileNotFoundError:
                continue
            delivered = self._load(path)
            if delivered is not None:
                claimed.append(delivered)
        if self._pending_bound is not None:
            self._pending_bound = max(0, self._pending_bound - len(names))
        return claimed

    def recover(self) -> list[Delivered]:
        """Messages claimed but never acked (a previous activation crashed), in order.

        Also removes temp files that crashed senders left behind.
        """
        self._sweep_temps()
        names = sorted(n for n in os.listdir(self.cur_dir) if n[0] != ".")
        recovered = []
        for name in names:
            delivered = self._load(os.path.join(self.cur_dir, name))
            if delivered is not None:
                recovered.append(delivered)
        return recovered

    def _load(self, path: str) -> Delivered | None:
        try:
            message = InboxMessage.from_wire(read_bytes(path))
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            self._quarantine(path, exc)
            return None
        return Delivered(message, path)

    def _quarantine(self, path: str, exc: BaseException) -> None:
        log.warning("mailbox %s: moving unparsable %s to corrupt/: %s", self.root, os.path.basename(path), exc)
        try:
            os.rename(path, os.path.join(self.corrupt_dir, os.path.basename(path)))
        except OSError:
            pass

    def _sweep_temps(self) -> None:
        cutoff = time.time() - STALE_TEMP_AGE
        for sub in (self.new_dir, self.dead_dir):
            for name in os.listdir(sub):
                if name.startswith(".tmp-"):
                    path = os.path.join(sub, name)
                    if temp_owner_alive(name):
                        # A live sender's, perhaps a recycled file it just claimed: that
                        # keeps the mtime of its last write, however old.
                        continue
                    try:
                        if os.stat(path).st_mtime < cutoff:
                            os.unlink(path)
                    except OSError:
                        pass

    def ack_delivered(self, delivered: Delivered | str) -> bool:
        """Retire one claimed file. Idempotent: returns whether it retired something.

        The file is recycled into ``free/`` (or unlinked once ``free/`` is full); either
        way it is gone from ``cur/`` and will not be recovered again.
        """
        path = delivered if isinstance(delivered, str) else delivered.path
        try:
            if self._free_has_room():
                os.rename(path, os.path.join(self.free_dir, os.path.basename(path)))
                self._free_estimate = (self._free_estimate or 0) + 1
            else:
                os.unlink(path)
            return True
        except FileNotFoundError:
            return False

    def _free_has_room(self) -> bool:
        if self._free_full_for > 0:  # found full lately: unlink without listing again
            self._free_full_for -= 1
            return False
        if self._free_estimate is None or self._free_estimate >= FREE_LIMIT:
            # Senders take files away, so the estimate only ever runs high: recount.
            self._free_estimate = self._count(self.free_dir)
            if self._free_estimate >= FREE_LIMIT:
                # Nobody is taking files (a backlog being worked off): listing a full
                # free/ on every ack would cost more than the recycling saves.
                self._free_full_for = FREE_RECOUNT_AFTER
        return self._free_estimate < FREE_LIMIT

    def ack(self, msg_id: str) -> bool:
        """Remove the claimed file(s) of ``msg_id`` from ``cur/``; returns whether any was."""
        suffix = f"-{msg_id}.json"
        removed = False
        for name in os.listdir(self.cur_dir):
            if name.endswith(suffix):
                removed = self.ack_delivered(os.path.join(self.cur_dir, name)) or removed
        return removed

    # -- dead letters --------------------------------------------------------------------

    def bury(self, delivered: Delivered, reason: str, attempts: int) -> str:
        """Move a claimed message to ``dead/`` with a reason record; returns its path.

        The envelope is written durably before the claim is removed, so a crash in
        between leaves the message in both places, never in neither.
        """
        dead_path = os.path.join(self.dead_dir, os.path.basename(delivered.path))
        envelope = {
            "message": json.loads(delivered.message.to_wire()),
            "reason": reason,
            "attempts": attempts,
            "dead_at": time.time(),
        }
        atomic_write(dead_path, json.dumps(envelope, indent=1).encode(), self.durability)
        self.ack_delivered(delivered)
        return dead_path

    def dead_letters(self) -> list[DeadLetter]:
        """The messages in ``dead/``, oldest first. Unreadable envelopes are skipped."""
        letters = []
        for name in sorted(n for n in os.listdir(self.dead_dir) if n[0] != "."):
            path = os.path.join(self.dead_dir, name)
            try:
                doc = json.loads(read_bytes(path))
                message = InboxMessage.from_wire(json.dumps(doc["message"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("mailbox %s: unreadable dead letter %s: %s", self.root, name, exc)
                continue
            letters.append(
                DeadLetter(message, str(doc.get("reason", "")), int(doc.get("attempts", 0)),
                           float(doc.get("dead_at", 0.0)), path)
            )
        return letters

    def requeue(self, msg_id: str) -> bool:
        """Deliver the dead letter ``msg_id`` again (same id, same place in order).

        Returns whether a dead letter of that id existed.
        """
        for letter in self.dead_letters():
            if letter.message.id == msg_id:
                self.deliver(letter.message, block_timeout=None)
                unlink_quietly(letter.path)
                return True
        return False

    # -- inspection ---------------------------------------------------------------------

    @staticmethod
    def _count(directory: str) -> int:
        return sum(1 for n in os.listdir(directory) if n[0] != ".")

    def pending_count(self) -> int:
        """Messages not yet acked: waiting in ``new/`` plus claimed in ``cur/``."""
        return self._count(self.new_dir) + self._count(self.cur_dir)

    def has_waiting(self) -> bool:
        """Whether any message waits to be handled (in ``new/``, or left in ``cur/``)."""
        for directory in (self.new_dir, self.cur_dir):
            with os.scandir(directory) as entries:
                if any(e.name[0] != "." for e in entries):
                    return True
        return False

    def has_new(self) -> bool:
        """Whether any message waits in ``new/`` (cheaper than counting)."""
        with os.scandir(self.new_dir) as entries:
            return any(e.name[0] != "." for e in entries)

    def is_empty(self) -> bool:
        """Whether nothing waits in ``new/`` or ``cur/``."""
        return self.pending_count() == 0

    def counts(self) -> dict[str, int]:
        """Messages per state (``new``, ``cur``, ``corrupt``, ``dead``)."""
        return {sub: self._count(os.path.join(self.root, sub)) for sub in MESSAGE_DIRS}

    def peek(self, sub: str = "new") -> Iterator[InboxMessage]:
        """Read (without claiming) the parsable messages of ``new/`` or ``cur/``, in order."""
        if sub not in ("new", "cur"):
            raise ValueError(f"peek reads 'new' or 'cur', not {sub!r}")
        directory = os.path.join(self.root, sub)
        for name in sorted(n for n in os.listdir(directory) if n[0] != "."):
            try:
                yield InboxMessage.from_wire(read_bytes(os.path.join(directory, name)))
            except (OSError, ValueError, UnicodeDecodeError):
                continue

