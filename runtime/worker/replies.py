"""What a handler sends, and the replies it waits for.

Outgoing ids are derived from the id of the message being handled (uuid5 of it and
a counter), so a handler that runs again after a crash re-sends the same ids and the
receivers drop the repeats. A handler that asks waits for the reply while other
messages stay queued: replies are taken out of the mailbox by kind (``take``), kept
in a stash until asked for, and acked with the batch that consumed them.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from typing import Any, Callable

from .. import control, foreign, tracing
from ..address import Address
from ..backends.base import Backend, Delivered, Mailbox
from ..control import ACTIVATE_TOOL
from ..errors import ActorFailed, ActorNotFound, AskTimeout, Cancelled, StoreError
from ..messages import (
    AgentRef,
    InboxKind,
    InboxMessage,
    ReplyBody,
    ReplyError,
    derived_msg_id,
    new_msg_id,
)
from .cancellation import Cancellation
from .fanout import ReplyPump
from .gate import Held, HeldAnswer, OutputGate

log = logging.getLogger(__name__)

#: Reply kinds: claimed by whoever waits for them, never dispatched to a handler.
REPLY_KINDS = frozenset({InboxKind.REPLY.value, InboxKind.MCP_REPLY.value})
#: Questions a handler waits for: they leave at once, not at the commit (see ``gate``).
REQUEST_KINDS = frozenset({InboxKind.ASK.value, InboxKind.MCP_REQUEST.value})
#: Kinds whose delivery should bring a deactivated actor back.
WAKING_KINDS = frozenset({InboxKind.TASK.value, InboxKind.ASK.value, InboxKind.HANDOFF.value})


def ask_system(backend: Backend, sender: AgentRef, target: Address, tool: str) -> None:
    """Deliver a request for one of the system's own tools (``tool``, about the actor
    ``target``) to the inbox of the system that owns ``target``; no reply is sent.

    Raises:
        ActorNotFound: the system has no inbox. StoreError: it could not be delivered.
    """
    request = InboxMessage.create(sender, InboxKind.MCP_REQUEST.value,
                                  {"tool": tool, "arguments": {"name": target.name}, "no_reply": True})
    backend.deliver(target.system_inbox, [request], block_timeout=None)


def request_activation(backend: Backend, sender: AgentRef, target: Address) -> bool:
    """Ask the system that owns ``target`` to start it, unless it has a live lease.

    For a message already delivered to an actor that may not be running: the message
    is durable either way, this only decides how soon it is handled. The owning system
    reads the request from its inbox (when it next runs). Never raises.

    Returns:
        Whether a request was sent.
    """
    if target.actor_id is None or backend.fabric.is_live(target.actor_id):
        return False
    try:
        ask_system(backend, sender, target, ACTIVATE_TOOL)
        return True
    except (ActorNotFound, StoreError) as exc:
        log.warning("could not ask system %s to activate %s: %s", target.system_id, target.name, exc)
        return False


def error_from_reply(error: ReplyError, who: str) -> BaseException:
    """The exception an asker raises for an error reply."""
    if error.type.rsplit(".", 1)[-1] == "Cancelled":
        return Cancelled(who, error.message or "cancelled")
    return ActorFailed(who, error.type, error.message, error.traceback)


def unwrap_reply(message: InboxMessage, who: str) -> Any:
    """The answer of a reply, or raise the error it carries."""
    body = message.body if isinstance(message.body, dict) else {}
    error = body.get("error")
    if error:
        raise error_from_reply(ReplyError.from_dict(error), who)
    return body.get("answer")


class Outbox:
    """The sending side of one worker, and the replies its handlers wait for."""

    def __init__(self, backend: Backend, address: Address, role: str | None, mailbox: Mailbox,
                 cancellation: Cancellation, sweep_interval: float,
                 parent_lane: Callable[[bytes], bool] | None) -> None:
        self.backend = backend
        self.address = address
        self.parent_inbox = address.system_inbox
        self.sender = address.agent_ref(role)
        self.mailbox = mailbox
        self.cancellation = cancellation
        self.sweep_interval = sweep_interval
        #: Holds what turns send until they commit. Its ``parent_lane`` sends a reply's
        #: frame (``control.REPLY_PREFIX`` or ``ANSWER_PREFIX``) to the parent over the
        #: control pipe and returns whether it could (None: no pipe, replies go through
        #: the system's inbox).
        self.gate = OutputGate(backend, address.name, self.parent_inbox, parent_lane, self._run_delivered)
        #: The message being handled (its id seeds the ids of what the handler sends).
        self.current: InboxMessage | None = None
        self.sent_counter = 0
        #: Replies claimed and not yet asked for, by the id of the message they answer.
        self.stash: dict[str, Delivered] = {}
        #: Replies handlers consumed in this batch (acked with it).
        self.consumed: list[Delivered] = []
        #: Repeats of replies already stashed (acked with the batch).
        self.spare: list[Delivered] = []
        #: Resolves the Futures of ``ask_async`` while the handler runs on.
        self.pump = ReplyPump(self)
        #: Whether a wait for a reply looked into the mailbox (rings meant for the loop
        #: went there: the loop must look before it waits).
        self.looked = False

    # -- sending -----------------------------------------------------------------------

    def begin(self, message: InboxMessage | None) -> None:
        """A handler starts on ``message`` (or re-starts: its ids begin again)."""
        self.current = message
        self.sent_counter = 0

    def send(self, target: Address, kind: str, body: Any, *, correlation_id: str | None = None,
             block_timeout: float | None = 0.0, deliver_at: float | None = None) -> str:
        """Send a message as this actor; returns its id. With ``deliver_at`` (unix
        seconds) the receiver keeps it until then.

        Inside a turn, a tell or hand-off is held by the output gate and leaves when the
        turn commits (``gate``); a question (ask, host call) leaves at once, durable on
        return. Outside a turn (``on_start``, ``on_stop``) everything leaves at once.

        Raises:
            ActorNotFound: no mailbox at ``target``. MailboxFull, StoreError: sent at
                once and not delivered.
        """
        if self.current is not None:
            msg_id = derived_msg_id(self.current.id, self.sent_counter)
            self.sent_counter += 1
        else:
            msg_id = new_msg_id()
        message = InboxMessage.create(self.sender, kind, body, msg_id=msg_id, correlation_id=correlation_id,
                                      deliver_at=deliver_at)
        message.traceparent = tracing.outgoing(message, None if self.current is None else self.current.traceparent)
        if self.current is not None and kind not in REQUEST_KINDS:
            self.backend.reachable(target)
            self.gate.hold(target, message, message.to_wire())
            return msg_id
        with self.cancellation.shielded():
            self.backend.deliver(target, [message], block_timeout=block_timeout)
            self._delivered(target, message)
        return msg_id

    def _run_delivered(self, run: list[Held]) -> None:
        """Messages the gate delivered to one target: one activation request will do."""
        waking = next((held for held in run if held.kind in WAKING_KINDS), None)
        if waking is not None:
            self._delivered(waking.target, waking.message)

    def _delivered(self, target: Address, message: InboxMessage) -> None:
        if target.actor_id is not None and message.kind in WAKING_KINDS:
            # The request has a random id (not a derived one) so that whether it
            # was needed never shifts the ids of the handler's later messages.
            request_activation(self.backend, self.sender, target)

    def reply(self, message: InboxMessage, body: ReplyBody | None, msg_id: str) -> None:
        """Hold the reply to an ask for the commit (an answer that is not JSON becomes
        an error reply)."""
        reply = InboxMessage.create(self.sender, InboxKind.REPLY, (body or ReplyBody()).to_body(),
                                    msg_id=msg_id, correlation_id=message.id)
        reply.traceparent = tracing.outgoing(reply, message.traceparent)
        try:
            wire = reply.to_wire()
        except (TypeError, ValueError) as exc:
            error = ReplyError("TypeError", f"the answer is not JSON-serialisable: {exc}")
            reply.body = ReplyBody(error=error).to_body()
            wire = reply.to_wire()
        if message.sender.system_id is None:  # a crate process, perhaps (see ``foreign``)
            target = self._foreign_target(message.sender, reply)
            if target is None:
                return
            wire = reply.to_wire()
        else:
            target = self.address.reply_address(message.sender)
        self.gate.hold(target, reply, wire)

    def answer(self, message: InboxMessage, value: Any) -> None:
        """Hold the answer to an ask for the commit (see ``reply``).

        An answer to the system that started this worker, which waits on the pipe for
        it, is held as the pipe's compact frame (``gate.HeldAnswer``): its reply
        message is built only should the pipe fail (or a commit list it). So is not an
        answer that is not JSON, nor one whose send span a tracer records (the span
        belongs to the turn, which ends before the release)."""
        sender, parent = message.sender, self.parent_inbox
        if self.gate.parent_lane is not None and sender.system_id == parent.system_id \
                and sender.session_id == parent.system_id and not tracing.makes_spans():
            frame = control.answer_frame(message.id, value)
            if frame is not None:
                self.gate.hold_answer(HeldAnswer(parent, frame, self.sender, message))
                return
        self.reply(message, ReplyBody(answer=value), derived_msg_id(message.id, -1))

    def _foreign_target(self, sender: AgentRef, reply: InboxMessage) -> Address | None:
        """Where a reply to a sender that names no system goes, with its body in the
        crate's shape if the sender is foreign; ``None`` (the reply dead-lettered
        here, with why) if it has no mailbox in this project."""
        if foreign.is_foreign(self.backend, sender):
            reply.body = foreign.crate_reply_body(reply.body)
        try:
            return foreign.reply_target(self.backend, self.address, sender)
        except foreign.Undeliverable as exc:
            foreign.keep_undeliverable(self.mailbox, reply, f"reply to {sender.session_id[:80]!r}: {exc}")
            return None

    def release(self) -> bool:
        """Deliver what committed turns sent (see ``gate``); whether all of it went."""
        with self.cancellation.shielded():
            return self.gate.release()

    # -- waiting for replies -----------------------------------------------------------

    def await_reply(self, correlation_id: str, timeout: float | None, who: str) -> Any:
        """Wait for the reply to ``correlation_id``, leaving other messages queued."""
        if self.pump.running:  # it waits on the mailbox for everyone (see ``fanout``)
            return self.pump.expect(correlation_id, who, timeout).result()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.cancellation.shielded():
                found = self.stash.pop(correlation_id, None) or self._take_replies(correlation_id)
                if found is not None:  # recorded before a deferred cancel can be raised
                    self.consumed.append(found)
            if found is not None:
                return unwrap_reply(found.message, who)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise AskTimeout(who, timeout)
            self.mailbox.wait(self.sweep_interval if remaining is None else min(remaining, self.sweep_interval))

    def ask_async(self, target: Address, body: Any, timeout: float | None) -> "Future[Any]":
        """Send an ask now; its answer resolves the returned Future (see ``fanout``)."""
        msg_id = self.send(target, InboxKind.ASK.value, body)
        return self.pump.expect(msg_id, target.name, timeout)

    def end_turn(self) -> None:
        """The handler returned: Futures it left unresolved are cancelled."""
        self.pump.end_turn()

    @staticmethod
    def answer_of(delivered: Delivered, who: str) -> Any:
        return unwrap_reply(delivered.message, who)

    def _take_replies(self, correlation_id: str) -> Delivered | None:
        """Take every reply waiting into the stash; return the one asked for."""
        self.take_into_stash()
        return self.stash.pop(correlation_id, None)

    def take_into_stash(self) -> None:
        """Take every reply waiting in the mailbox into the stash."""
        self.looked = True
        for delivered in self.mailbox.take(REPLY_KINDS):
            self.keep(delivered)

    def keep(self, delivered: Delivered) -> None:
        """Stash a claimed reply for the handler that will wait for it (a repeat is spare)."""
        key = delivered.message.correlation_id or ""
        if key in self.stash:
            self.spare.append(delivered)
        else:
            self.stash[key] = delivered

    def unconsume(self) -> None:
        """Put the replies handlers consumed back, before those handlers run again.

        A handler that runs again (a retry, a replay) re-sends its asks with the same
        ids; the peers drop them as repeats, so the answers must come from here.
        """
        for delivered in self.consumed:
            self.keep(delivered)
        self.consumed.clear()

    def retired(self, keep_stash: bool) -> list[Delivered]:
        """The replies to ack with the batch just committed, and forget them. With
        ``keep_stash``, unclaimed replies stay (messages left unacked may need them)."""
        done = self.consumed + self.spare
        if not keep_stash:
            done += self.stash.values()  # late replies nobody waits for
        self.consumed, self.spare, self.stash = [], [], {}
        return done
