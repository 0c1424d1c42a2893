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
from typing import Any, Callable

from .. import tracing
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

log = logging.getLogger(__name__)

#: Reply kinds: claimed by whoever waits for them, never dispatched to a handler.
REPLY_KINDS = frozenset({InboxKind.REPLY.value, InboxKind.MCP_REPLY.value})
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
        #: Sends a reply's wire bytes to the parent over the control pipe; returns
        #: whether it could (None: no pipe, replies go through the system's inbox).
        self.parent_lane = parent_lane
        #: The message being handled (its id seeds the ids of what the handler sends).
        self.current: InboxMessage | None = None
        self.sent_counter = 0
        #: Replies claimed and not yet asked for, by the id of the message they answer.
        self.stash: dict[str, Delivered] = {}
        #: Replies handlers consumed in this batch (acked with it).
        self.consumed: list[Delivered] = []
        #: Repeats of replies already stashed (acked with the batch).
        self.spare: list[Delivered] = []
        #: Whether a wait for a reply looked into the mailbox (rings meant for the loop
        #: went there: the loop must look before it waits).
        self.looked = False

    # -- sending -----------------------------------------------------------------------

    def begin(self, message: InboxMessage | None) -> None:
        """A handler starts on ``message`` (or re-starts: its ids begin again)."""
        self.current = message
        self.sent_counter = 0

    def send(self, target: Address, kind: str, body: Any, *, correlation_id: str | None = None,
             block_timeout: float | None = 0.0) -> str:
        """Deliver a message from this actor (durable on return); returns its id."""
        if self.current is not None:
            msg_id = derived_msg_id(self.current.id, self.sent_counter)
            self.sent_counter += 1
        else:
            msg_id = new_msg_id()
        message = InboxMessage.create(self.sender, kind, body, msg_id=msg_id, correlation_id=correlation_id)
        message.traceparent = tracing.outgoing(message, None if self.current is None else self.current.traceparent)
        with self.cancellation.shielded():
            self.backend.deliver(target, [message], block_timeout=block_timeout)
            if target.actor_id is not None and kind in WAKING_KINDS:
                # The request has a random id (not a derived one) so that whether it
                # was needed never shifts the ids of the handler's later messages.
                request_activation(self.backend, self.sender, target)
        return msg_id

    def reply(self, message: InboxMessage, body: ReplyBody | None, msg_id: str) -> None:
        """Send the reply to an ask (an answer that is not JSON becomes an error reply)."""
        target = self.address.reply_address(message.sender)
        reply = InboxMessage.create(self.sender, InboxKind.REPLY.value, (body or ReplyBody()).to_body(),
                                    msg_id=msg_id, correlation_id=message.id)
        reply.traceparent = tracing.outgoing(reply, message.traceparent)
        try:
            try:
                wire = reply.to_wire()
            except (TypeError, ValueError) as exc:
                error = ReplyError("TypeError", f"the answer is not JSON-serialisable: {exc}")
                reply.body = ReplyBody(error=error).to_body()
                wire = reply.to_wire()
            # A reply to the system that started us goes back on the control pipe: the
            # question waits in that process's memory only, so a durable write (and its
            # flush, its doorbell and the system's drain) would buy nothing. If the pipe
            # is gone, the mailbox below still delivers it.
            if target == self.parent_inbox and self.parent_lane is not None and self.parent_lane(wire):
                return
            self.backend.deliver(target, [reply], block_timeout=None)
        except (ActorNotFound, StoreError) as exc:
            log.warning("actor %s: reply to %s not delivered: %s", self.address.name,
                        message.sender.session_id, exc)

    # -- waiting for replies -----------------------------------------------------------

    def await_reply(self, correlation_id: str, timeout: float | None, who: str) -> Any:
        """Wait for the reply to ``correlation_id``, leaving other messages queued."""
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

    def _take_replies(self, correlation_id: str) -> Delivered | None:
        """Take every reply waiting into the stash; return the one asked for."""
        self.looked = True
        for delivered in self.mailbox.take(REPLY_KINDS):
            self.keep(delivered)
        return self.stash.pop(correlation_id, None)

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
