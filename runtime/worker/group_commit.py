"""Group commit at durability "machine": one flush for the commits of several batches.

::

    commit of a batch with nothing to release    -> staged: written, not flushed
        (no tell, hand-off or reply held, no step   (``FlushesLater.commit_unflushed``)
        recorded)                                   its acks wait here, in order
    any other commit                             -> flushed as always; it covers every
                                                    staged commit before it: ack what waited
    flush (then ack what waited) when
        - a query's answer is about to leave: it read the staged state
        - the window (``WINDOW``) since the first staged commit has passed while
          messages keep coming
        - the worker would wait: it waits at most the rest of the window, and flushes
          when nothing came meanwhile
        - a handler's retry is about to wait out its backoff
        - the loop ends (stop, parent gone, idle exit), before anything looks at what
          is acked (``has_new`` at the idle exit, ``finish``, the parent's ``has_waiting``)

With one blocking sender a batch holds one or two messages, and each commit's flush
queued on the disk behind the sender's own: a tell waited for two flushes. Now a busy
worker flushes about once per window, whatever its batches.

Why every promise holds:

- A process crash (any time): a staged commit is in the page cache, whole, in the
  session's spare with a higher commit number; the next activation reads it and
  flushes it before it acks anything (``session_file``). The messages it covers were
  not acked, so they come again, and its AdmittedSet drops them. A crash that tears a
  staged commit while the next one is written over it leaves the last flushed commit,
  with every message after it unacked: as after a power loss, below.
- A power loss: the last flushed commit is read (a staged text on disk, if whole, is
  newer and read instead). No ack reaches the disk before the flush of the commit
  that covers it: acks are written (cursor moves, unlinks) only after that flush
  returned, so every message after the commit read is still unacked on disk. It
  comes again and is applied to that state once.
- Output never leaves before the state that produced it is durable: a commit that
  holds output is flushed, and the flush covers the staged commits before it; a
  query's answer (sent without a commit) waits for the flush. A question a handler
  waits for (an ask) leaves at once, before its own turn commits, as it always did:
  a re-run of the turn, after earlier staged turns were applied again, sends the same
  id and finds its answer in the mailbox, whose ack waited too (as within one batch).
- Steps: a commit that covers recorded steps is flushed, since emptying the journal
  after it is not (a power loss must not keep the emptied journal and lose the commit).
- The AdmittedSet checkpoint (``admitted.json``) is written only after the commit that
  holds its ids was flushed (``MaildirSession.commit_unflushed``).

"process" durability never flushes, so it stages nothing and acks at once, as before.
A session without ``FlushesLater`` (Redis, memory) flushes (or not) every commit.
"""

from __future__ import annotations

import time
from typing import Callable

from ..backends.base import ActorSession, Delivered, FlushesLater, Mailbox
from ..durability import MACHINE

#: Seconds a staged commit waits at most for its flush while the worker is busy, and
#: how long an idle worker waits for more messages before it flushes. A flush costs
#: 110-160 us here (docs/benchmarks.md), so 3 ms keeps a busy actor's commits to about
#: 5% of the disk's time, where one flush per batch of one or two messages took as much
#: as its senders' flushes; a crash redelivers at most 3 ms of messages (dropped as
#: repeats), and ``actors inbox`` shows them handed out ("cur") that much longer.
#: Longer windows save little more (the flushes are few already) and delay acks.
WINDOW = 0.003


class GroupCommit:
    """Which commits a worker may stage, and the acks that wait for their flush.

    Args:
        session: the actor's session (staged commits need ``FlushesLater``).
        mailbox: where the acks go once a flush covers them.
        durability: stages only at "machine".
        clock: monotonic seconds (for the window).
    """

    def __init__(self, session: ActorSession | None, mailbox: Mailbox, durability: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.session: FlushesLater | None = \
            session if durability == MACHINE and isinstance(session, FlushesLater) else None
        self.mailbox = mailbox
        self.clock = clock
        self._acks: list[Delivered] = []
        self._since: float | None = None  # when the first commit not flushed yet was staged

    @property
    def pending(self) -> bool:
        """Whether a staged commit (and the acks after it) waits for a flush."""
        return self._since is not None

    def committed(self) -> None:
        """A commit was written: a staged one opens the window; a flushed one covers
        every commit before it, so what waited is acked now."""
        if self.session is None:
            return
        if self.session.unflushed:
            if self._since is None:
                self._since = self.clock()
        elif self._since is not None:
            self._acked()

    def ack(self, batch: list[Delivered]) -> None:
        """Ack ``batch`` now, or after the flush when a staged commit waits (acks keep
        their order: none overtakes the flush of the commit before it)."""
        if self._since is not None:
            self._acks.extend(batch)
        elif batch:
            self.mailbox.ack(batch)

    def left(self) -> float | None:
        """Seconds left of the window (None: nothing waits for a flush)."""
        return None if self._since is None else max(0.0, self._since + WINDOW - self.clock())

    def flush_if_due(self) -> None:
        """Flush once the window since the first staged commit has passed."""
        if self._since is not None and self.clock() - self._since >= WINDOW:
            self.flush()

    def flush(self) -> None:
        """Make the staged commit durable, then ack what waited for it.

        Raises:
            StoreError: the flush failed; nothing more was acked.
        """
        if self._since is None:
            return
        assert self.session is not None
        self.session.flush()
        self._acked()

    def _acked(self) -> None:
        acks, self._acks, self._since = self._acks, [], None
        if acks:
            self.mailbox.ack(acks)
