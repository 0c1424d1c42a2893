"""Poison messages: a message that kills the worker ``max_attempts`` times is buried.

The in-flight marker names the message being handled; it survives the process, so
the next activation knows which message was running when the last one died and
counts an attempt against it (the counts are kept in the session's meta). A handler
that raises is not a crash: only deaths count.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Protocol

from ..backends.base import Delivered, InflightMarker, Mailbox
from ..messages import InboxKind, InboxMessage, ReplyBody, ReplyError, derived_msg_id

log = logging.getLogger(__name__)


def count_attempts(marker: InflightMarker, recovered: list[Delivered], attempts: dict[str, Any],
                   actor_id: str, max_attempts: int,
                   applied: Callable[[str], bool] = lambda msg_id: False) -> dict[str, int]:
    """Poison attempts of the unacked messages, counting the one the marker names.

    ``recovered`` must be every unacked message: attempts are kept only for those.
    A message already ``applied`` (a repeat the loop drops unseen) has none.
    """
    crashed = marker.read()
    present = {d.id for d in recovered if not applied(d.id)}
    counts = {k: v for k, v in attempts.items() if k in present and isinstance(v, int)}
    if crashed is not None and crashed in present:
        counts[crashed] = counts.get(crashed, 0) + 1
        log.warning("actor %s: message %s was running when the worker died (attempt %d of %d)",
                    actor_id, crashed, counts[crashed], max_attempts)
    marker.clear()
    return counts


class Replier(Protocol):
    """What sends a reply to an asker (the worker's ``Outbox``, or ``resuming``'s)."""

    def reply(self, message: InboxMessage, body: ReplyBody | None, msg_id: str) -> None: ...


def bury(mailbox: Mailbox, outbox: Replier, actor_id: str, delivered: Delivered, reason: str,
         attempts: int) -> None:
    """Dead-letter a message, telling an asker it will get no answer."""
    log.error("actor %s: message %s moved to the dead letters: %s", actor_id, delivered.id, reason)
    mailbox.bury(delivered, reason, attempts)
    if delivered.message.kind == InboxKind.ASK.value:
        error = ReplyError(type="actors_runtime.errors.ActorFailed", message=f"dead letter: {reason}")
        outbox.reply(delivered.message, ReplyBody(error=error), derived_msg_id(delivered.id, -1))


def sift(recovered: list[Delivered], counts: dict[str, int], max_attempts: int,
         buried: Callable[[Delivered, str, int], None]) -> list[Delivered]:
    """The recovered messages that may run again; ``buried`` gets the others."""
    survivors = []
    for delivered in recovered:
        count = counts.get(delivered.id, 0)
        if count >= max_attempts:
            buried(delivered, f"the worker died while handling it {count} times", count)
            # The count stays while the message does: a message acked behind an
            # unacked one comes back after a crash (its cursor could not move past
            # it), and that stale copy must be buried again, not run again. Once
            # it is gone the count goes (``count_attempts`` keeps only present ids).
        else:
            survivors.append(delivered)
    return survivors
