"""A turn: one message's handler, all or nothing.

::

    admitted message -> attempt (what it sends is held by the gate; its steps are journaled)
        answered  -> its reply is held; the turn commits with the batch
        raised    -> undo: the state before the message, its sends dropped (rewind)
                     -> retryable, attempts left: wait the backoff, attempt again
                        (cancel ends the wait with a cancel; stop leaves the message
                        unhandled for the next activation)
                     -> else: on_failure, the asker gets the error; committed at once
        cancelled -> undo; the asker gets Cancelled; committed at once

Undoing costs nothing on the way that succeeds: no copy of the state is taken per
message. The state before a failing message is the last commit plus the batch's
messages applied since; ``rewind`` restores the last commit and applies those again
(their steps answer from the journal, their asks from the replies kept in the
mailbox, their sends get the same ids and are held again), then commits, so a
second failure in the batch starts from there.
"""

from __future__ import annotations

import logging
import random
from enum import Enum
from typing import TYPE_CHECKING, Callable

from ..backends.base import Delivered
from ..errors import Cancelled
from ..messages import InboxMessage
from ..spec import Limits
from .dispatch import Failure, answer, attempt, is_query, settle
from .state import UnencodableState
from .timers import tick_of

if TYPE_CHECKING:
    from .activation import Worker

log = logging.getLogger(__name__)

#: Longest wait between two attempts of a handler, whatever ``retry_backoff`` (seconds),
#: unless ``retry_backoff`` itself is longer.
RETRY_BACKOFF_CAP = 60.0


class Turn(Enum):
    """What a turn left for the batch around it."""

    #: Answered; uncommitted, like the batch's messages before it.
    DONE = "done"
    #: Answered after a rewind committed the messages before it: only it is uncommitted.
    REBASED = "rebased"
    #: Failed for good and committed with everything before it.
    SETTLED = "settled"
    #: Not handled (a stop came during a backoff): un-admitted, to stay in the mailbox.
    LEFT = "left"


def backoff(limits: Limits, retry: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``retry`` (1, 2, ...): exponential from
    ``retry_backoff``, capped, with jitter (a half to the whole of it), so that actors
    failing on one API together do not retry together."""
    base = limits.retry_backoff
    if base <= 0:
        return 0.0
    ceiling = max(RETRY_BACKOFF_CAP, base)
    return float(min(ceiling, base * 2 ** (retry - 1)) * (0.5 + rand() / 2))


def retryable(limits: Limits, exc: BaseException) -> bool:
    """Whether ``retry_on`` (qualified type names; empty: any exception) covers ``exc``."""
    if not limits.retry_on:
        return isinstance(exc, Exception)
    names = {f"{kind.__module__}.{kind.__qualname__}" for kind in type(exc).__mro__}
    return any(name in names for name in limits.retry_on)


def run_turn(worker: "Worker", delivered: Delivered, since_commit: list[Delivered]) -> Turn:
    """Handle one admitted message (``since_commit``: the batch's messages applied after
    the last commit, in order). See the module docstring."""
    message = delivered.message
    mark = worker.outbox.gate.mark
    value, failure = attempt(worker, message)
    if failure is None:
        answer(worker, message, value)
        return Turn.DONE
    # Out of the batch while the messages before it commit: its id must not be stored
    # as applied before it is (a stop or a crash during a backoff would lose it), nor
    # its step records dropped with theirs, nor a tick's settlement stored with them.
    step_out(worker, delivered)
    rebased = undo(worker, mark, since_commit)
    step_in(worker, delivered)
    limits = worker.spec.limits
    retry = 0
    while not failure.cancelled and retry < limits.retries and retryable(limits, failure.exc):
        retry += 1
        delay = backoff(limits, retry)
        log.warning("actor %s: handler failed on %s (%s: %s); retry %d of %d in %.2f s", worker.actor_id,
                    message.id, type(failure.exc).__name__, failure.exc, retry, limits.retries, delay)
        worker.outbox.release()  # what committed turns sent need not wait for this one
        worker.group.flush()  # nor the acks of staged commits
        waited = wait(worker, delay)
        if waited is None:
            worker.state.roll_back({message.id})
            step_out(worker, delivered)
            return Turn.LEFT
        if isinstance(waited, Failure):
            failure = waited
            break
        worker.journal.forget_errors(message.id)
        worker.outbox.unconsume()
        mark = worker.outbox.gate.mark
        value, failure = attempt(worker, message)
        if failure is None:
            answer(worker, message, value)
            return Turn.REBASED if rebased else Turn.DONE
        worker.outbox.gate.drop(mark)
        if not is_query(message):
            worker.state.restore_committed()
    settle_kept(worker, message, failure)
    worker.commit()
    return Turn.SETTLED


def step_out(worker: "Worker", delivered: Delivered) -> None:
    """Take an admitted message's admission back: its id, and a tick's settlement."""
    worker.state.unadmit(delivered.id)
    if tick_of(delivered) is not None:
        worker.state.timers.unsettle(delivered.id)


def step_in(worker: "Worker", delivered: Delivered) -> None:
    """Admit a message again (``step_out`` undone)."""
    fired = tick_of(delivered)
    if fired is not None:
        worker.state.timers.settle(fired)
    worker.state.admit(delivered.id)


def undo(worker: "Worker", mark: int, since_commit: list[Delivered]) -> bool:
    """Take back a failed attempt: its sends, and (but for a query, whose state was
    restored already) its state changes. Returns whether a rewind committed."""
    worker.outbox.gate.drop(mark)
    worker.outbox.unconsume()
    if since_commit:
        rewind(worker, since_commit)
        return True
    worker.state.restore_committed()
    return False


def rewind(worker: "Worker", since_commit: list[Delivered]) -> None:
    """Back to the last commit, the messages applied since again, then commit.

    A message that fails now (a handler that is not deterministic), or that leaves a
    state that is not JSON, is settled as a failure from the state before it, which
    is kept for this one pass.
    """
    state, gate = worker.state, worker.outbox.gate
    state.restore_committed()
    gate.drop()
    worker.outbox.unconsume()
    before = state.snapshot_json()
    for delivered in since_commit:
        mark = gate.mark
        value, failure = attempt(worker, delivered.message)
        after = state.snapshot_json() if failure is None else None
        if failure is None and after is not None:
            answer(worker, delivered.message, value)
            before = after
            continue
        if failure is None:
            failure = Failure(UnencodableState("state", "a state that is not JSON-serialisable"), "")
        gate.drop(mark)
        if before is not None:
            state.load_json(before)
        settle_kept(worker, delivered.message, failure)
        before = state.snapshot_json()
    worker.commit()


def settle_kept(worker: "Worker", message: InboxMessage, failure: Failure) -> None:
    """``settle`` a failure; should ``on_failure`` leave a state that is not JSON, its
    changes to the state are dropped (so that the commit after it can be written)."""
    state = worker.state
    before = state.snapshot_json()
    settle(worker, message, failure)
    if before is not None and state.snapshot_json() is None:
        log.error("actor %s: on_failure left a state that is not JSON-serialisable; its changes are dropped",
                  worker.actor_id)
        state.load_json(before)


def wait(worker: "Worker", delay: float) -> Failure | bool | None:
    """Wait out a backoff: True when it passed, None when a stop came, a Failure when
    the message was cancelled meanwhile."""
    try:
        with worker.cancellation.region():
            stopped = worker.stopping.wait(delay)
    except Cancelled as exc:
        return Failure(exc, "")
    return None if stopped else True
