"""A maildir mailbox handle: the ``Mailbox`` protocol over per-sender logs and files.

::

    sender (any process)                         reader (the one actor process)
    --------------------                         ------------------------------
    deliver: append [len][crc][JSON] to its own     drain: read records past each
             log/<ns>-<pid>-<n>.seg   --ring .bell-->      segment's cursor; claim
                                                           new/ files into cur/
    (a hand-dropped Maildir file:                   handle, commit
     new/.tmp-X --rename--> new/<ns>-<id>.json)     ack: move the segment's cursor /
                                                         delete the file in cur/
                                                    unparsable -> corrupt/
                                                    poison     -> dead/ (envelope + reason)

The halves live in ``delivery`` (senders), ``reading`` (the reader), ``inspection``
(any process) and ``dead_letters``; this class puts them behind one handle.

Why logs rather than a file per message: creating, renaming, opening and unlinking
files cost 7-30 µs each on this file system (and a create up to ~0.8 ms while others
churn inodes); a message file costs the sender four such steps and the reader four
more. An append is one ``write``, and the reader takes many records with one
``pread``. Maildir files in ``new/`` are still read, so messages dropped by hand or by
other programs (``new/.tmp-*`` then a rename) are delivered too.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from typing import Iterable, Iterator, Sequence

from ...durability import MACHINE, Durability
from ...errors import StoreError
from ...messages import InboxMessage
from ...spinning import PolledWait
from ...threads import done_future
from ..base import DeadLetter, Delivered, InflightMarker
from .dead_letters import read_dead_letters, write_dead_letter
from .delivery import Sender
from .doorbell import Doorbell, make_fifo
from .durable import make_dirs, unlink_quietly
from .inflight import MmapMarker, clear_marker, read_marker
from .inspection import counts, has_waiting, peek
from .layout import DEFAULT_MAX_PENDING, SUBDIRS, MailboxPaths, write_mailbox_config
from .reading import Reader
from .segment_writer import Flusher


def make_mailbox_dirs(paths: MailboxPaths) -> None:
    """Create a mailbox's directories and doorbell (``log/`` last: its presence means
    the rest exists)."""
    if os.path.isdir(paths.log) and os.path.exists(paths.bell):
        return
    for sub in SUBDIRS:
        make_dirs(os.path.join(paths.root, sub))
    make_fifo(paths.bell)


class MaildirMailbox:
    """One actor's mailbox under ``root`` (see the module docstring).

    A handle is a sender, the reader, or an observer. One process reads a mailbox at
    a time: the reader says so with ``claim``.

    Args:
        root: the mailbox directory (``.../mailbox``).
        durability: "machine" flushes each delivery to disk; "process" does not.
        max_pending: ``deliver`` refuses with ``MailboxFull`` above this many waiting.
        create: make the directories if missing (and record ``max_pending`` for
            other senders when it is not the default).
        flusher: flushes ``deliver_async``'s writes in the background (without one,
            ``deliver_async`` flushes before it returns).

    Raises:
        StoreError: ``create`` is false and there is no mailbox at ``root``.
    """

    def __init__(self, root: str | os.PathLike[str], *, durability: Durability = MACHINE,
                 max_pending: int = DEFAULT_MAX_PENDING, create: bool = True,
                 flusher: Flusher | None = None) -> None:
        self.paths = paths = MailboxPaths(os.fspath(root))
        self.root = paths.root
        self.durability = durability
        if create:
            try:
                make_mailbox_dirs(paths)
            except OSError as exc:
                raise StoreError(paths.root, f"cannot create the mailbox: {exc.strerror or exc}") from exc
        elif not os.path.isdir(paths.new):
            raise StoreError(paths.root, "no mailbox here")
        self._sender = Sender(paths, durability, max_pending)
        self._reader = Reader(paths, durability)
        self._flusher = flusher
        self._doorbell: Doorbell | None = None  # the reader's, opened on first use
        self._waiting = PolledWait()  # the doorbell's polling (the worker's loop thread)
        self._marker: MmapMarker | None = None

    @property
    def endpoint(self) -> str:
        return self.root

    @property
    def max_pending(self) -> int:
        return self._sender.max_pending

    @property
    def more_waiting(self) -> bool:
        return self._reader.more_waiting

    # -- senders ------------------------------------------------------------------------

    def deliver(self, messages: Sequence[InboxMessage], *, block_timeout: float | None = 0.0) -> None:
        self._sender.deliver(messages, block_timeout)

    def deliver_async(self, message: InboxMessage, *, block_timeout: float | None = 0.0) -> "Future[str]":
        if self._sender.files:  # a file is flushed as it is written: nothing left for the flusher
            self._sender.deliver([message], block_timeout)
            return done_future(message.id)
        written = self._sender.deliver_unflushed(message, block_timeout)
        if self.durability == MACHINE and self._flusher is not None:
            return self._flusher.submit(written, message.id)  # it owns the flush now
        written.flush()  # at "process": nothing to flush
        return done_future(message.id)

    def ring(self) -> None:
        """Wake the reader, if one waits on the doorbell."""
        self._sender.ring()

    def open_segment(self) -> None:
        """Open this sender's segment now rather than at its first delivery."""
        self._sender.open_segment()

    # -- the reader ---------------------------------------------------------------------

    def claim(self, timeout: float = 0.0) -> None:
        self._reader.claim(timeout)
        self._bell()  # now, so that a wake from another thread always finds it

    def _bell(self) -> Doorbell:
        if self._doorbell is None:
            self._doorbell = Doorbell(self.paths.bell, self._waiting)
        return self._doorbell

    def poll_before_sleeping(self, seconds: float) -> None:
        """``PollsBeforeSleeping``: waits of the calling thread poll first (``Doorbell.wait``)."""
        self._waiting.poll_from(seconds, threading.get_ident())

    def recover(self) -> list[Delivered]:
        self._bell().clear()
        return self._reader.recover()

    def drain(self, limit: int | None = None) -> list[Delivered]:
        known = self._bell().clear()  # before listing: a ring that comes later is not lost
        return self._reader.drain(limit, known_only=known)

    def take(self, kinds: Iterable[str]) -> list[Delivered]:
        self._bell().clear()
        return self._reader.take(kinds)

    def give_back(self, batch: Sequence[Delivered]) -> None:
        self._reader.give_back(batch)

    def ack(self, batch: Iterable[Delivered]) -> int:
        return self._reader.ack(batch)

    def bury(self, delivered: Delivered, reason: str, attempts: int) -> None:
        write_dead_letter(self.paths, self.durability, delivered, reason, attempts)
        self._reader.ack([delivered])

    def keep_dead_letter(self, message: InboxMessage, reason: str) -> None:
        """Put a message this mailbox's owner could not send among its dead letters
        (``actors dead-letters`` lists it; ``requeue`` would deliver it here).

        Raises:
            StoreError: it cannot be written.
        """
        write_dead_letter(self.paths, self.durability, Delivered(message, None), reason, 0)

    def has_new(self) -> bool:
        return self._reader.has_new()

    def wait(self, timeout: float | None) -> bool:
        return self._bell().wait(timeout)

    def wake(self) -> None:
        bell = self._doorbell  # made by the reader (claim, drain), never here: a signal
        if bell is not None:   # handler may call this while the main thread makes it
            bell.wake()

    @property
    def inflight(self) -> InflightMarker:
        if self._marker is None:
            self._marker = MmapMarker(self.paths.inflight)
        return self._marker

    # -- any process --------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        return counts(self.paths, self._reader.views())

    def pending_count(self) -> int:
        found = self.counts()
        return found["new"] + found["cur"]

    def has_waiting(self) -> bool:
        return has_waiting(self.paths)

    def peek(self, state: str = "new") -> Iterator[InboxMessage]:
        return peek(self.paths, self._reader.views(), state)

    def dead_letters(self) -> list[DeadLetter]:
        return [letter for letter, _ in read_dead_letters(self.paths)]

    def requeue(self, msg_id: str) -> bool:
        for letter, path in read_dead_letters(self.paths):
            if letter.message.id == msg_id:
                self._sender.deliver([letter.message], None)
                unlink_quietly(path)
                return True
        return False

    def forget_inflight(self) -> None:
        clear_marker(self.paths.inflight)

    def inflight_id(self) -> str | None:
        return read_marker(self.paths.inflight)

    def set_max_pending(self, max_pending: int) -> None:
        """Record the limit for senders in other processes, and use it here."""
        write_mailbox_config(self.root, max_pending)
        self._sender.max_pending = max_pending

    def close(self) -> None:
        """Seal this handle's log, give up a reader's claim, release its descriptors.
        Messages read but not acked stay pending for the next reader."""
        self._sender.close()
        self._reader.release()
        if self._doorbell is not None:
            self._doorbell.close()
        if self._marker is not None:
            self._marker.close()
            self._marker = None
