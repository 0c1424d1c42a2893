"""Resuming a paused actor: lift the pause on its message, or skip the message.

A paused actor has no worker (see ``pausing``), so resuming it is done from outside,
by whichever process acts for its system (the system itself, or ``actors resume``
holding the system's lock), as a short stand-in for a worker: it claims the mailbox
(so no worker can start meanwhile, and it waits for one that is still on its way
out), changes the session, and lets go. Then the caller activates the actor.

::

    claim the mailbox -> load the session -> paused? (else NotPaused)
    without skip:  forget the message's poison attempts        -> commit meta
    with skip:     bury it (an asker gets its error reply)      -> commit meta
                   and remember its id as skipped
    let go of the mailbox

Crash safety. The dead letter is written, then the message acked, then the meta
committed; a crash before the commit leaves the pause recorded and the message
either still waiting (the next resume does it again; its dead letter is the same
file) or gone (the next activation lifts a pause whose message is gone). A message
acked behind one still waiting is read again by the next reader (its segment's
cursor cannot pass the waiting one): the ``SKIPPED_KEY`` list makes the activation
ack such a copy instead of pausing on it (``pausing.screen``).
"""

from __future__ import annotations

import json
import logging

from ..address import Address
from ..backends.base import Backend
from ..control import RESUME_TOOL
from ..errors import ActorNotFound, NotPaused, StoreError
from ..messages import AgentRef, InboxKind, InboxMessage, ReplyBody
from .pausing import PAUSED_KEY, SKIPPED_KEY, Pause, pause_of, skipped_ids
from .poison import bury

log = logging.getLogger(__name__)

#: Seconds a resume waits for a worker that is still letting go of the mailbox.
RESUME_CLAIM_TIMEOUT = 5.0
#: Why a skipped message is in the dead letters (its pause's reason follows).
SKIP_REASON = "skipped by an operator (resume with skip)"


class DirectReplies:
    """Sends a dead letter's error reply to its asker, as the actor."""

    def __init__(self, backend: Backend, address: Address) -> None:
        self.backend, self.address = backend, address

    def reply(self, message: InboxMessage, body: ReplyBody | None, msg_id: str) -> None:
        reply = InboxMessage.create(self.address.agent_ref(), InboxKind.REPLY.value, (body or ReplyBody()).to_body(),
                                    msg_id=msg_id, correlation_id=message.id)
        try:
            self.backend.deliver(self.address.reply_address(message.sender), [reply], block_timeout=None)
        except (ActorNotFound, StoreError) as exc:
            log.warning("actor %s: reply to %s not delivered: %s", self.address.name,
                        message.sender.session_id, exc)


def resume_cold(backend: Backend, address: Address, *, skip: bool,
                claim_timeout: float = RESUME_CLAIM_TIMEOUT) -> Pause:
    """Lift the pause of the actor at ``address`` (see the module docstring); the
    caller starts it afterwards. Returns the pause that was lifted.

    Only the actor's system may call this (it holds the system's lock or is the
    system): the system must not start the actor meanwhile.

    Raises:
        NotPaused: its session records no pause (nothing was changed).
        ActorNotFound: it has no mailbox.
        StoreError: a worker holds its mailbox past ``claim_timeout`` (it runs), or
            its files cannot be read or written (the pause stands).
    """
    actor_id = address.name
    mailbox = backend.mailbox(address)
    try:
        mailbox.claim(claim_timeout)
        session = backend.store.session(address.system_id, actor_id)
        doc = session.load()
        pause = pause_of(doc.meta) if doc is not None else None
        if doc is None or pause is None:
            raise NotPaused(actor_id)
        meta = dict(doc.meta)
        attempts = meta.get("attempts")
        attempts = {k: v for k, v in attempts.items() if k != pause.msg_id} if isinstance(attempts, dict) else {}
        if skip:
            waiting = next((d for d in mailbox.recover() if d.id == pause.msg_id), None)
            if waiting is not None:
                bury(mailbox, DirectReplies(backend, address), actor_id, waiting,
                     f"{SKIP_REASON}; {pause.reason}", pause.attempts)
                meta[SKIPPED_KEY] = [*skipped_ids(meta), pause.msg_id]
        meta.pop(PAUSED_KEY, None)
        meta["attempts"] = attempts
        session.commit(json.dumps(doc.state, separators=(",", ":")), json.dumps(meta, separators=(",", ":")),
                       [], doc.admitted)
        session.close()
    finally:
        mailbox.close()  # lets go of the claim; what it read and did not ack stays waiting
    log.warning("actor %s: resumed at message %s (%s)", actor_id, pause.msg_id,
                "skipped: moved to the dead letters" if skip else "it is tried again")
    return pause


def ask_system_to_resume(backend: Backend, sender: AgentRef, target: Address, skip: bool) -> None:
    """Deliver a resume request for ``target`` to the inbox of the system that owns it
    (that system resumes it; no reply is sent).

    Raises:
        ActorNotFound: the system has no inbox. StoreError: it could not be delivered.
    """
    request = InboxMessage.create(sender, InboxKind.MCP_REQUEST.value, {
        "tool": RESUME_TOOL, "arguments": {"name": target.name, "skip": bool(skip)}, "no_reply": True})
    backend.deliver(target.system_inbox, [request], block_timeout=None)
