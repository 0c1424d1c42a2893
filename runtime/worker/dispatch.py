"""Running one handler on one message: retries, cancel, the answer to an ask.

A handler exception is not a crash: the message is acked, the error is logged and
passed to ``on_failure``, and an asker gets an error reply carrying the remote
traceback as text. A query (an ask in "query" mode) answers from the current state
and leaves it exactly as it was.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING

from ..errors import Cancelled
from ..messages import AskMode, InboxKind, InboxMessage, ReplyBody, ReplyError, derived_msg_id, reply_error
from ..observe.failures import record_failure

if TYPE_CHECKING:
    from .activation import Worker

log = logging.getLogger(__name__)


def ask_mode(message: InboxMessage) -> str:
    body = message.body
    return body.get("mode", AskMode.QUERY.value) if isinstance(body, dict) else AskMode.QUERY.value


def is_query(message: InboxMessage) -> bool:
    """Whether a message is an ask in "query" mode, whose state changes are discarded."""
    return message.kind == InboxKind.ASK.value and ask_mode(message) == AskMode.QUERY.value


def dispatch(worker: "Worker", message: InboxMessage) -> None:
    """Run the handler for one message and reply to an ask. Never raises but
    ``BaseException``s that are not ``Cancelled``."""
    handler, state, outbox, watchdog = worker.handler, worker.state, worker.outbox, worker.watchdog
    assert handler is not None
    outbox.begin(message)
    state.hint = None
    is_ask = message.kind == InboxKind.ASK.value
    saved = state.snapshot_json() if is_ask and is_query(message) else None
    reply: ReplyBody | None = None
    attempts_left = worker.spec.limits.retries
    try:
        while True:
            try:
                if watchdog is not None:
                    watchdog.arm()
                with worker.cancellation.region():
                    answer = handler.dispatch(message)
                reply = ReplyBody(answer=answer)
                break
            except Cancelled as exc:
                log.info("actor %s: handler for %s cancelled", worker.actor_id, message.id)
                reply = ReplyBody(error=ReplyError(type="actors_runtime.errors.Cancelled", message=exc.reason))
                break
            except Exception as exc:
                text = traceback.format_exc()
                if attempts_left > 0:
                    attempts_left -= 1
                    outbox.begin(message)
                    outbox.unconsume()
                    log.warning("actor %s: handler failed on %s, retrying: %s", worker.actor_id, message.id, exc)
                    continue
                log.error("actor %s: handler failed on %s: %s: %s", worker.actor_id, message.id,
                          type(exc).__name__, exc)
                reply = ReplyBody(error=reply_error(exc, text))
                on_failure(worker, exc, message)
                break
            finally:
                if watchdog is not None:
                    watchdog.disarm()
    finally:
        if saved is not None:
            # The state is exactly that text again: a commit right after this (a
            # batch of queries) need not encode it once more.
            state.load_json(saved)
        outbox.begin(None)
    if is_ask:
        outbox.reply(message, reply, derived_msg_id(message.id, -1))


def on_failure(worker: "Worker", exc: BaseException, message: InboxMessage) -> None:
    assert worker.handler is not None
    record_failure(worker.state, exc, message.id)  # in the meta: a rolled-back state keeps it
    try:
        worker.handler.on_failure(exc, message)
    except Exception:
        log.exception("actor %s: on_failure raised", worker.actor_id)
