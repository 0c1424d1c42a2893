"""Running one handler once on one message: an attempt, and what it leaves.

An attempt either returns the handler's answer or a ``Failure`` (an exception, or a
cancel); it never raises but ``BaseException``s that are not ``Cancelled``. What to
do with a failure (undo, retry, ``on_failure``, the error reply) is ``turns``'
business. A query (an ask in "query" mode) answers from the current state and
leaves it exactly as it was, whatever the handler did.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import tracing
from ..errors import Cancelled
from ..messages import AskMode, InboxKind, InboxMessage, ReplyBody, ReplyError, derived_msg_id, reply_error
from ..observe.failures import record_failure

if TYPE_CHECKING:
    from .activation import Worker

log = logging.getLogger(__name__)


class Failure(NamedTuple):
    """Why an attempt did not answer: the handler raised ``exc`` (or was cancelled)."""

    exc: BaseException
    traceback: str

    @property
    def cancelled(self) -> bool:
        return isinstance(self.exc, Cancelled)


def ask_mode(message: InboxMessage) -> str:
    body = message.body
    return body.get("mode", AskMode.QUERY) if isinstance(body, dict) else AskMode.QUERY


def is_query(message: InboxMessage) -> bool:
    """Whether a message is an ask in "query" mode, whose state changes are discarded."""
    return message.kind == InboxKind.ASK and ask_mode(message) == AskMode.QUERY


def attempt(worker: "Worker", message: InboxMessage) -> tuple[Any, Failure | None]:
    """Run the handler once: ``(answer, None)``, or ``(None, failure)``."""
    handler, state, outbox, watchdog = worker.handler, worker.state, worker.outbox, worker.watchdog
    assert handler is not None
    outbox.begin(message)
    worker.journal.begin(message.id)
    # A query restores the state from its text afterwards; that text is known already
    # when a query left the state and nothing ran since (``hint``).
    hint, state.hint = state.hint, None  # the handler may change the state
    saved = (hint if hint is not None else state.snapshot_json()) if is_query(message) else None
    try:
        try:
            if watchdog is not None:
                watchdog.arm()
            with worker.cancellation.region():
                return handler.dispatch(message), None
        except Cancelled as exc:
            log.info("actor %s: handler for %s cancelled", worker.actor_id, message.id)
            return None, Failure(exc, "")
        except Exception as exc:
            return None, Failure(exc, traceback.format_exc())
        finally:
            if watchdog is not None:
                watchdog.disarm()
    finally:
        outbox.end_turn()
        if saved is not None:
            # The state is exactly that text again: a commit right after this (a
            # batch of queries) need not encode it once more.
            state.load_json(saved)
        outbox.begin(None)
        worker.journal.begin(None)


def answer(worker: "Worker", message: InboxMessage, value: Any) -> None:
    """Hold the reply to an ask that was answered (it leaves with the commit)."""
    if message.kind == InboxKind.ASK:
        worker.outbox.answer(message, value)


def settle(worker: "Worker", message: InboxMessage, failure: Failure) -> None:
    """A turn failed for good: ``on_failure`` runs (not for a cancel) and an asker gets
    the error. The state is already what it was before the message; what
    ``on_failure`` changes or sends is kept, with ids derived from the message."""
    worker.outbox.begin(message)  # log records name the message; on_failure's sends derive from it
    try:
        if failure.cancelled:
            reason = failure.exc.reason if isinstance(failure.exc, Cancelled) else "cancelled"
            reply = ReplyBody(error=ReplyError(type="actors_runtime.errors.Cancelled", message=reason))
        else:
            exc = failure.exc
            log.error("actor %s: handler failed on %s: %s: %s", worker.actor_id, message.id, type(exc).__name__,
                      exc, exc_info=exc)
            tracing.record_error(exc)
            reply = ReplyBody(error=reply_error(exc, failure.traceback))
            on_failure(worker, exc, message)
    finally:
        worker.outbox.begin(None)
    if message.kind == InboxKind.ASK:
        worker.outbox.reply(message, reply, derived_msg_id(message.id, -1))


def on_failure(worker: "Worker", exc: BaseException, message: InboxMessage) -> None:
    assert worker.handler is not None
    record_failure(worker.state, exc, message.id)  # in the meta: a rolled-back state keeps it
    worker.state.hint = None  # on_failure may change the state
    try:
        worker.handler.on_failure(exc, message)
    except Exception:
        log.exception("actor %s: on_failure raised", worker.actor_id)
