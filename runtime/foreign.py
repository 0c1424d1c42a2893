"""Replies to askers that are not actors of this project: processes of the original
crate (bamboo-subagent).

A message's ``from`` says where its reply goes. The project's own senders name their
system (``from.system_id``), and ``Address.reply_address`` finds them. The crate's
``AgentRef`` has only ``session_id`` (and ``role``), so for such a sender:

1. the mailbox ``reply_address`` names (this system's actor, or the system's inbox,
   of that id) is used if it exists: a crate parent that provisioned a worker has its
   mailbox at ``sessions/<its id>/mailbox``, which is this worker's system inbox;
2. otherwise its live fabric record (``fabric/<id>.json``) is looked up: its
   ``endpoint``, if it is a mailbox directory inside this project's ``sessions/``
   (``sessions/<s>/mailbox`` or ``sessions/<s>/children/<c>/mailbox``, as the crate's
   store lays them out), or else the crate's place for a root session,
   ``sessions/<id>/mailbox``;
3. if none exists, :class:`Undeliverable` says why, and the caller dead-letters the
   reply in its own mailbox with that reason: it is never dropped silently.

A reply to such a sender has the crate's ``ReplyBody`` shape (``{"answer": <string>}``:
a non-string answer is sent as its JSON text; an error becomes
``"<type>: <message>"``, with the project's ``error`` object beside it, which the crate
ignores). A mailbox without a ``log/`` (the crate's) is written one file per message.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .address import Address
from .backends.base import Backend
from .errors import ActorNotFound, StoreError
from .ids import is_valid_id
from .messages import AgentRef, InboxMessage
from .records import is_foreign_record

log = logging.getLogger(__name__)


class Undeliverable(Exception):
    """No mailbox could be found for a foreign sender; the message says why."""


def is_foreign(backend: Backend, sender: AgentRef) -> bool:
    """Whether ``sender`` is not a process of this project: it names no system, and
    no record of this project's shape is published under its id."""
    if sender.system_id is not None:
        return False
    if not is_valid_id(sender.session_id):
        return True
    try:
        record = backend.fabric.read(sender.session_id)
    except StoreError:
        return True
    return record is None or is_foreign_record(record)


def reply_target(backend: Backend, me: Address, sender: AgentRef) -> Address:
    """Where a reply to ``sender`` goes (see the module docstring).

    Raises:
        Undeliverable: a sender that names no system, and has no mailbox here.
    """
    default = me.reply_address(sender)
    if sender.system_id is not None:
        return default
    who = sender.session_id
    if not is_valid_id(who):
        raise Undeliverable(f"the asker's id {who[:80]!r} is not a valid id")
    candidates = [default]
    try:
        record = backend.fabric.resolve(who)
    except StoreError as exc:
        record = None
        log.warning("the fabric record of %s cannot be read: %s", who, exc)
    if record is not None:
        of_endpoint = getattr(backend, "endpoint_address", None)  # the maildir backend's
        found = of_endpoint(record.endpoint) if of_endpoint is not None else None
        if found is not None:
            candidates.append(found)
        candidates.append(Address(me.home, me.project_key, who, None))
    for address in candidates:
        try:
            backend.reachable(address)
            return address
        except (ActorNotFound, StoreError):
            continue
    if record is None:
        raise Undeliverable(f"'{who}' is not an actor of this system and has no live fabric record")
    raise Undeliverable(f"'{who}' has a live fabric record (endpoint {record.endpoint[:200]!r}) "
                        "but no mailbox of it is in this project")


def crate_reply_body(body: Any) -> dict[str, Any]:
    """A reply body (``{"answer", "error"}``) in the crate's ``ReplyBody`` shape."""
    if not isinstance(body, dict):
        return {"answer": _text(body)}
    error = body.get("error")
    if isinstance(error, dict):
        return {"answer": f"{error.get('type', 'Error')}: {error.get('message', '')}", "error": error}
    return {"answer": _text(body.get("answer"))}


def _text(answer: Any) -> str:
    if isinstance(answer, str):
        return answer
    try:
        return json.dumps(answer, separators=(",", ":"))
    except (TypeError, ValueError):
        return str(answer)


def keep_undeliverable(mailbox: object, message: InboxMessage, reason: str) -> None:
    """Dead-letter ``message`` in ``mailbox`` (the sender's own) with ``reason``, or,
    where the backend has no way to, log it as an error with the whole message."""
    keep = getattr(mailbox, "keep_dead_letter", None)
    if keep is not None:
        try:
            keep(message, reason)
            log.error("message %s (%s) not delivered, kept in the dead letters: %s", message.id, message.kind, reason)
            return
        except StoreError as exc:
            reason = f"{reason}; and it could not be kept: {exc}"
    log.error("message %s (%s) not delivered: %s; the message was %s", message.id, message.kind, reason,
              message.to_wire()[:2000].decode(errors="replace"))
