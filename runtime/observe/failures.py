"""Failure records: the last few turns that raised, kept in the session's meta.

A handler that raises (after its retries) leaves a record, committed with the turn
that failed: ``meta["failures"]``, a list bounded to ``FAILURES_KEPT``, newest last::

    {"time": unix float, "msg_id": str, "type": "module.QualName", "message": str,
     "traceback": str}

It is meta, not the actor's state, so rolling the state back to before the message
does not take it away. ``actors inspect ID`` and the dashboard show it.
"""

from __future__ import annotations

import time
import traceback
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ..worker.state import ActorState

#: The meta key of the failure records.
FAILURES_KEY = "failures"
#: Records kept per actor (the oldest goes first): every commit writes them.
FAILURES_KEPT = 5
#: Characters of a traceback kept (its end: the raising frame and the exception).
TRACEBACK_CHARS = 3000
#: Characters of an exception's text kept.
MESSAGE_CHARS = 500


def record_failure(state: "ActorState", exc: BaseException, msg_id: str,
                   clock: Callable[[], float] = time.time) -> None:
    """Append a failure record for ``exc`` to the actor's meta and count it.

    The record is committed with the turn (the next ``state.commit``); until then it
    is only in memory, like the turn's other effects.
    """
    message = str(exc)
    if len(message) > MESSAGE_CHARS:
        message = message[:MESSAGE_CHARS] + "..."
    lines = traceback.format_exception(exc)
    if len(lines[-1]) > MESSAGE_CHARS * 2:  # the exception's own line, with its whole text
        lines[-1] = f"{type(exc).__name__}: {message}\n"
    text = "".join(lines)
    if len(text) > TRACEBACK_CHARS:
        text = "...\n" + text[-TRACEBACK_CHARS:]
    kind = type(exc)
    record = {"time": clock(), "msg_id": msg_id, "type": f"{kind.__module__}.{kind.__qualname__}",
              "message": message, "traceback": text}
    state.meta[FAILURES_KEY] = [*failures_of(state.meta), record][-FAILURES_KEPT:]
    state.meta_changed()
    state.counters.failed += 1


def failures_of(meta: Any) -> list[dict[str, Any]]:
    """The well-formed failure records of a session's meta, oldest first."""
    found = meta.get(FAILURES_KEY) if isinstance(meta, dict) else None
    if not isinstance(found, list):
        return []
    return [r for r in found if isinstance(r, dict) and isinstance(r.get("time"), (int, float))
            and all(isinstance(r.get(k), str) for k in ("msg_id", "type", "message", "traceback"))]
