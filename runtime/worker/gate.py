"""The output gate: what a turn sends leaves only once the turn has committed.

::

    handler sends (tell, hand-off, reply)  -> held            (memory; gone if the turn fails)
    commit                                 -> owed, written in the same atomic commit
                                              as the state (the session's outbox)
    release (right after the commit)       -> delivered; owed empties
    next commit                            -> the outbox on disk empties too

A turn that raises, is cancelled or dies before its commit has sent nothing. A crash
after the commit and before (or during) the release leaves the messages in the
committed outbox: the next activation delivers them again with the same ids, and
receivers drop the ones they already had (their AdmittedSet). To keep that window
inside the receivers' AdmittedSet, the worker commits once more before it waits
idle whenever tells went out since its last commit (``stale``).

An answer to an ask of the system that started the worker (its parent, waiting on
the worker's pipe) is held as the pipe's compact frame alone (``HeldAnswer``): its
message and wire bytes are made only if something needs them (the pipe failed and it
goes through the system's inbox, or a commit lists it in its outbox).

Questions a handler waits for (``ask``, host calls, spawns) are not held: the
handler could not go on without their answers. They are steps instead: the request
leaves at once with an id derived from the turn, and a re-run of the turn finds the
answer again (see ``replies``).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

from .. import control, tracing
from ..address import Address
from ..backends.base import Backend
from ..errors import ActorNotFound, MailboxFull, StoreError
from ..messages import AgentRef, InboxKind, InboxMessage, ReplyBody, derived_msg_id

log = logging.getLogger(__name__)


class Held:
    """A message a turn sent, and where to."""

    __slots__ = ("target", "kind", "_message", "_wire")

    def __init__(self, target: Address, message: InboxMessage | None, wire: bytes | None,
                 kind: str | None = None) -> None:
        self.target = target
        self._message = message
        self._wire = wire
        self.kind: str = message.kind if message is not None else kind or ""

    @property
    def message(self) -> InboxMessage:
        assert self._message is not None
        return self._message

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = self.message.to_wire()
        return self._wire

    @property
    def frame(self) -> bytes:
        """The reply's frame on the parent's pipe (for replies only)."""
        return control.REPLY_PREFIX + self.wire


class HeldAnswer(Held):
    """An answer to the parent's ask ``asked``, held as its pipe frame
    (``control.answer_frame``); the reply message is built from it only when asked
    for: the message the handler's turn would have built (its trace context is the
    ask's, ``tracing.passed_on``: only made when no span is), stamped when it is built."""

    __slots__ = ("_frame", "_sender", "_asked", "_inherited")

    def __init__(self, target: Address, frame: bytes, sender: AgentRef, asked: InboxMessage) -> None:
        super().__init__(target, None, None, InboxKind.REPLY)
        self._frame, self._sender, self._asked, self._inherited = frame, sender, asked.id, asked.traceparent

    @property
    def frame(self) -> bytes:
        return self._frame

    @property
    def message(self) -> InboxMessage:
        if self._message is None:
            _, answer = control.parse_answer(self._frame)
            self._message = InboxMessage.create(self._sender, InboxKind.REPLY, ReplyBody(answer=answer).to_body(),
                                                msg_id=derived_msg_id(self._asked, -1), correlation_id=self._asked,
                                                traceparent=tracing.passed_on(self._inherited))
        return self._message


class OutputGate:
    """Holds one worker's outgoing messages until their turn commits."""

    def __init__(self, backend: Backend, actor_id: str, parent_inbox: Address,
                 parent_lane: Callable[[bytes], bool] | None,
                 delivered: Callable[[list[Held]], None]) -> None:
        self.backend = backend
        self.actor_id = actor_id
        self.parent_inbox = parent_inbox
        self.parent_lane = parent_lane
        self._delivered = delivered
        #: Sent by turns that have not committed yet, in order.
        self.held: list[Held] = []
        #: Committed, not delivered yet, in order.
        self.owed: list[Held] = []
        #: Tells went out since the last commit, which still lists them.
        self.stale = False

    def hold(self, target: Address, message: InboxMessage, wire: bytes) -> None:
        self.held.append(Held(target, message, wire))

    def hold_answer(self, held: HeldAnswer) -> None:
        self.held.append(held)

    @property
    def mark(self) -> int:
        """Where the running turn's messages begin (for ``drop``)."""
        return len(self.held)

    def drop(self, mark: int = 0) -> None:
        """Forget what was held since ``mark``: a turn that failed sent nothing."""
        del self.held[mark:]

    @property
    def holds_tells(self) -> bool:
        """Whether anything but replies waits for the commit (then it must be durable)."""
        return any(h.kind != InboxKind.REPLY for h in self.held)

    def outbox_json(self) -> str:
        """The committed outbox for the commit being written: owed, then held."""
        if not self.owed and not self.held:
            return "[]"
        parts = [f'{{"to":{json.dumps(h.target.to_dict())},"message":{h.wire.decode()}}}'
                 for h in (*self.owed, *self.held)]
        return "[" + ",".join(parts) + "]"

    def committed(self) -> None:
        """The held messages are in the commit just written: they are owed now."""
        self.owed.extend(self.held)
        self.held = []
        self.stale = False

    def pass_replies(self) -> None:
        """Let the held replies go without a commit (only replies are held: the batch
        was queries, which a re-run after a crash answers again)."""
        self.owed.extend(self.held)
        self.held = []

    def restore(self, outbox: list[dict[str, Any]]) -> None:
        """Owe again what a crashed activation's last commit listed."""
        for entry in outbox:
            try:
                target = Address.from_dict(entry.get("to"))
                wire = json.dumps(entry["message"], separators=(",", ":")).encode()
                message = InboxMessage.from_wire(wire)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.error("actor %s: an entry of the committed outbox is unreadable (%s); skipped",
                          self.actor_id, exc)
                continue
            self.owed.append(Held(target, message, wire))

    def release(self) -> bool:
        """Deliver what is owed, in order; returns whether all of it went.

        Consecutive messages to one mailbox go as one record (one write, and at
        "machine" one flush). A mailbox that is full keeps its messages (and those
        after them to the same target) owed for the next release; a target that no
        longer exists loses its messages, with an error logged naming each.
        """
        if not self.owed:
            return True
        blocked: set[Address] = set()
        kept: list[Held] = []
        for run in _runs(self.owed):
            target = run[0].target
            if target in blocked:
                kept.extend(run)
                continue
            try:
                self._deliver(run)
            except MailboxFull:
                blocked.add(target)
                kept.extend(run)
                continue
            except (ActorNotFound, StoreError) as exc:
                for held in run:
                    log.error("actor %s: message %s (%s) to %s not delivered: %s", self.actor_id,
                              held.message.id, held.message.kind, target.name, exc)
                continue
            if any(held.kind != InboxKind.REPLY for held in run):
                self.stale = True
        self.owed = kept
        return not kept

    def _deliver(self, run: list[Held]) -> None:
        # A reply to the system that started us goes back on the control pipe: the
        # question waits in that process's memory only. If the pipe is gone, the
        # mailbox below still delivers it.
        if run[0].target == self.parent_inbox and self.parent_lane is not None and \
                run[0].kind == InboxKind.REPLY:
            lane = self.parent_lane
            run = [held for held in run if held.kind != InboxKind.REPLY or not lane(held.frame)]
            if not run:
                return
        self.backend.deliver(run[0].target, [held.message for held in run], block_timeout=0.0)
        self._delivered(run)


def _runs(owed: list[Held]) -> list[list[Held]]:
    """``owed`` cut into runs of consecutive messages to one target."""
    runs: list[list[Held]] = []
    for held in owed:
        if runs and runs[-1][0].target == held.target:
            runs[-1].append(held)
        else:
            runs.append([held])
    return runs
