"""Pause instead of dead-letter: a poison message stays first in line and the actor waits.

With ``on_poison="pause"`` in its spec, an activation that finds a message which
killed the worker ``max_attempts`` times does not bury it: it records the pause in
the session's meta (``PAUSED_KEY``, committed before anything else happens) and
handles nothing, neither that message nor any other. The worker then exits with
``PAUSED_EXIT`` and its system marks the actor paused; it is not restarted, and
messages delivered to it wait durably. The session is the authority: every later
activation (a spawn by name, a new system, a worker started by hand) reads the
pause and exits again, until ``resume`` (see ``resuming``) lifts it.

::

    activation: recover -> count attempts -> paused in meta, its message unacked?
                    yes: stay paused        no: the first message at max_attempts?
                                                yes: record the pause   no: run
                paused: commit meta -> exit "paused" (no on_start, no lease)

A recorded pause whose message is gone (requeued elsewhere, skipped by a resume
that crashed before its commit) is lifted with a warning: nothing is left to wait
for. A pause is kept even if the actor is later spawned with ``on_poison`` at
"dead-letter": only a resume lifts it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any, Callable

from ..backends.base import Delivered, SessionStore
from ..errors import StoreError

log = logging.getLogger(__name__)

#: The session meta key of a pause (other tools, a dashboard, read it: keep the name).
PAUSED_KEY = "paused"
#: The exit reason of a worker that found its actor paused.
PAUSED_EXIT = "paused"
#: The session meta key of the ids a resume skipped while a copy may come back
#: (see ``resuming``); an id is dropped once no copy of it waits.
SKIPPED_KEY = "skipped"


@dataclasses.dataclass(frozen=True)
class Pause:
    """Why an actor is paused, as ``meta["paused"]`` keeps it.

    Attributes:
        msg_id: the message that killed the worker; first in line, not handled.
        reason: one line for people ("message ... killed the worker 3 times").
        since: unix time the pause was recorded.
        attempts: deaths counted against the message when it paused.
    """

    msg_id: str
    reason: str
    since: float
    attempts: int = 0

    def to_meta(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_meta(cls, doc: Any) -> "Pause | None":
        """The pause a meta value describes (None if it describes none).

        Written by a worker, but read from a file anything may have touched: a
        value of the wrong shape is no pause.
        """
        if not isinstance(doc, dict) or not isinstance(doc.get("msg_id"), str) or not doc["msg_id"]:
            return None
        reason, since, attempts = doc.get("reason"), doc.get("since"), doc.get("attempts")
        return cls(
            msg_id=doc["msg_id"],
            reason=reason if isinstance(reason, str) else "",
            since=_finite(since),
            attempts=attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else 0,
        )


def _finite(value: Any) -> float:
    """A finite number as a float (0.0 for anything else)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return 0.0


def pause_of(meta: Any) -> Pause | None:
    """The pause recorded in a session's meta, if any."""
    return Pause.from_meta(meta.get(PAUSED_KEY)) if isinstance(meta, dict) else None


def read_pause(store: SessionStore, system_id: str, actor_id: str) -> Pause | None:
    """The pause recorded in an actor's session (read-only; any process).

    Raises:
        StoreError: the session exists but cannot be read.
    """
    doc = store.load_session(system_id, actor_id)
    return pause_of(doc.meta) if doc is not None else None


def recorded_pause(store: SessionStore, system_id: str, actor_id: str) -> Pause | None:
    """As ``read_pause``, but an unreadable session reads as no pause (logged): for
    status reports, which must not fail on one bad file."""
    try:
        return read_pause(store, system_id, actor_id)
    except StoreError as exc:
        log.warning("actor %s: cannot read its session to see whether it is paused: %s", actor_id, exc)
        return None


def skipped_ids(meta: dict[str, Any]) -> list[str]:
    """The ids a resume skipped, as the meta lists them."""
    found = meta.get(SKIPPED_KEY)
    return [i for i in found if isinstance(i, str)] if isinstance(found, list) else []


def screen(recovered: list[Delivered], counts: dict[str, int], max_attempts: int, meta: dict[str, Any],
           actor_id: str, applied: Callable[[str], bool], pause_new: bool,
           drop: Callable[[Delivered], None]) -> tuple[list[Delivered], Pause | None]:
    """The activation's look for pauses: ``drop`` (ack) copies of skipped messages,
    then ``hold``.

    An id is listed as skipped only once its dead letter is written and it is acked
    (``resuming``), so a copy read again is only acked, never buried twice.

    Returns:
        The messages left to run, and the pause in force (then nothing may run).
    """
    skipped = set(skipped_ids(meta))
    left = []
    for delivered in recovered:
        if delivered.id in skipped and not applied(delivered.id):
            log.info("actor %s: message %s was skipped to the dead letters; its copy read again is dropped",
                     actor_id, delivered.id)
            counts.pop(delivered.id, None)
            drop(delivered)
        else:
            left.append(delivered)
    still = [i for i in skipped_ids(meta) if any(d.id == i for d in recovered)]
    if still:
        meta[SKIPPED_KEY] = still  # kept while a copy may come back
    else:
        meta.pop(SKIPPED_KEY, None)
    pause = hold(left, counts, max_attempts, meta, actor_id, applied, pause_new)
    return ([] if pause is not None else left), pause


def hold(recovered: list[Delivered], counts: dict[str, int], max_attempts: int, meta: dict[str, Any],
         actor_id: str, applied: Callable[[str], bool], pause_new: bool,
         clock: Callable[[], float] = time.time) -> Pause | None:
    """Whether this activation finds its actor paused; records a new pause in ``meta``.

    Args:
        recovered: every unacked message, in order.
        counts: poison attempts per message id (``poison.count_attempts``).
        max_attempts: deaths after which a message is poison.
        meta: the session meta to record the pause in (the caller commits it).
        actor_id: for the logs.
        applied: whether a message id was already applied (a repeat: not waiting).
        pause_new: the spec says ``on_poison="pause"`` (otherwise only a recorded
            pause holds; new poison is the dead letters' business).
        clock: unix time, for ``since``.

    Returns:
        The pause in force (nothing may be handled), or None.
    """
    waiting = [d for d in recovered if not applied(d.id)]
    recorded = pause_of(meta)
    if recorded is not None:
        if any(d.id == recorded.msg_id for d in waiting):
            log.warning("actor %s: paused at message %s (%s); nothing is handled until it is resumed "
                        "('actors resume %s [--skip]')", actor_id, recorded.msg_id, recorded.reason, actor_id)
            return recorded
        log.warning("actor %s: its pause at message %s is lifted: that message is no longer waiting",
                    actor_id, recorded.msg_id)
    meta.pop(PAUSED_KEY, None)  # none, lifted, or not a pause at all
    if not pause_new:
        return None
    for delivered in waiting:
        count = counts.get(delivered.id, 0)
        if count >= max_attempts:
            pause = Pause(delivered.id, f"message {delivered.id} killed the worker {count} times",
                          clock(), count)
            meta[PAUSED_KEY] = pause.to_meta()
            log.error("actor %s: paused: %s; it and every later message wait until the actor is resumed "
                      "('actors resume %s [--skip]')", actor_id, pause.reason, actor_id)
            return pause
    return None
