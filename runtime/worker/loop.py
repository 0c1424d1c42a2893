"""The loop: drain -> admit -> dispatch -> COMMIT -> ACK, one message at a time.

::

    batch = batch or mailbox.drain()          (mailbox.wait() when there is none)
    + the timer ticks due now, in front       (see ``timers``)
    for each message:  state.admit(id) is False -> a repeat: skip
                       else dispatch (what the handler sends is delivered as it runs;
                       an answer to the parent goes back on the pipe)
    state.commit()     state + admitted ids, one atomic write (at "machine", staged
                       without its flush when the batch has nothing to release:
                       ``group_commit``)
    mailbox.ack(...)   the batch, and the replies its handlers consumed (in the
                       commit's own write where the mailbox can: ``CommitsAndAcks``;
                       after the flush that covers the commit, when it was staged)

Commit comes before ack (see ``state``): that order is what makes each message's
effect on the state happen exactly once.
"""

from __future__ import annotations

import logging
import time
from time import perf_counter
from typing import TYPE_CHECKING

from .. import tracing
from ..backends.base import Delivered
from .dispatch import Failure, answer, attempt, is_query
from .replies import REPLY_KINDS
from .state import UnencodableState
from .timers import before_admit, seconds_to_due, with_due
from .turns import Turn, run_turn, settle_kept

if TYPE_CHECKING:
    from .activation import Worker

log = logging.getLogger(__name__)

#: Seconds between attempts to deliver what committed turns sent to a full mailbox.
OWED_RETRY_INTERVAL = 0.05


def run(worker: "Worker", batch: list[Delivered]) -> str:
    """Serve until stopped; returns why it stopped ("stop requested", "idle", ...)."""
    limits = worker.spec.limits
    mailbox, outbox, group = worker.mailbox, worker.outbox, worker.group
    last_work = time.monotonic()
    while not worker.stop_requested:
        if not batch:
            outbox.looked = False
            batch = mailbox.drain(limits.batch_size)
        batch = with_due(worker, batch)
        if batch:
            process(worker, batch)
            batch = []
            last_work = time.monotonic()
            group.flush_if_due()  # messages keep coming: the staged commits wait no longer
            if mailbox.more_waiting or outbox.looked:
                continue
            # Anything delivered since the drain rang the bell after the drain cleared
            # it, so waiting (not listing again) cannot miss it.
        wait = seconds_to_due(worker, limits.sweep_interval)
        gate = outbox.gate
        if gate.owed and not outbox.release():
            wait = min(wait, OWED_RETRY_INTERVAL)  # a full mailbox: try again soon
        if gate.stale:
            # Idle from here: the commit that still lists the tells just released is
            # replaced, so a crash cannot deliver them again long after (see ``gate``).
            worker.commit()
        if limits.idle_timeout is not None:
            idle_left = limits.idle_timeout - (time.monotonic() - last_work)
            if idle_left <= 0:
                group.flush()  # everything handled is acked before the mailbox is looked at
                # Withdraw first, then look once more: a sender that delivered before
                # the withdraw is seen here; one after it sees no live record and asks
                # the system to activate us again.
                worker.lease.suspend()
                if mailbox.has_new():
                    worker.lease.resume()
                    last_work = time.monotonic()
                    continue
                return "idle"
            wait = min(wait, idle_left)
        window = group.left()
        if window is not None:
            wait = min(wait, window)  # staged commits: flushed if nothing comes meanwhile
        if not mailbox.wait(wait):
            if worker.state.uncommitted:
                # Idle a while: store the ids (and counts) of deferred queries, with the
                # outbox (tells still waiting for room stay listed in it).
                worker.commit()
            group.flush()  # (that commit, if made, was flushed: this only acks)
    group.flush()  # stop: acked before ``finish`` and the exit
    return worker.stop_reason or "stop requested"


def process(worker: "Worker", batch: list[Delivered]) -> None:
    """Run the batch's turns, commit once, release what they sent, then ack (the
    order crash safety rests on)."""
    state, outbox = worker.state, worker.outbox
    done: list[Delivered] = []
    applied: list[Delivered] = []
    for delivered in batch:
        if delivered.message.kind in REPLY_KINDS:
            outbox.keep(delivered)
    cut_short = False
    since_commit: list[Delivered] = []  # applied after the last commit, for a rewind
    for delivered in batch:
        if delivered.message.kind in REPLY_KINDS:
            continue
        if worker.stop_requested and done:
            cut_short = True  # the rest stays unacked, for the next activation
            break
        message = delivered.message
        if (message.deliver_at is not None or message.reminder is not None) and before_admit(worker, delivered):
            done.append(delivered)  # a delayed message, kept until due: acked after the commit below
            continue
        if not state.admit(delivered.id):
            log.debug("actor %s: duplicate %s dropped", worker.actor_id, delivered.id)
            done.append(delivered)
            continue
        turn = apply(worker, delivered, since_commit)
        if turn is Turn.LEFT:
            cut_short = True
            break
        applied.append(delivered)
        done.append(delivered)
        if turn is Turn.SETTLED:
            since_commit = []
        elif turn is Turn.REBASED:
            since_commit = [delivered]
        else:
            since_commit.append(delivered)
    # Commit before ack: once state and admitted ids are stored, a redelivery of any
    # of these messages is recognised as a repeat. A batch of queries (and repeats)
    # changed nothing, so it skips the write and its flush, and their ids ride with
    # the next commit; unless one consumed a reply (should its ack be stored and the
    # query's not, the query would run again and wait for an answer already spent),
    # sent a tell (held until a commit makes it durable) or ran a step.
    # Replies are acked with the batch that consumed them: a crash before the commit
    # re-runs the handler, and it must find its reply again.
    def acked() -> list[Delivered]:
        return state.timers.without_fired(done) + outbox.retired(keep_stash=cut_short)

    acked_with_commit = False
    if all(is_query(d.message) for d in applied) and not outbox.consumed and state.can_defer \
            and not outbox.gate.holds_tells and not worker.journal.written:
        if outbox.gate.held:
            worker.group.flush()  # the answers read the state staged commits left
        outbox.gate.pass_replies()  # answers to queries: a re-run would answer again
    else:
        try:
            # Where the mailbox can, the ack rides in the commit's own atomic write
            # (what is released below is listed in that commit's outbox either way).
            # With nothing to release, the commit may be staged (``group_commit``).
            acked_with_commit = worker.commit(acked, stage=True)
        except UnencodableState as exc:
            replay_singly(worker, since_commit, exc)
    outbox.release()
    if not acked_with_commit:
        worker.group.ack(acked())


def apply(worker: "Worker", delivered: Delivered, since_commit: list[Delivered]) -> Turn:
    """Run an admitted message's turn, naming it in the in-flight marker while it runs."""
    worker.cancellation.handling = delivered.id  # before the marker: a cancel then has a target
    worker.marker.set(delivered.id)
    started = perf_counter()
    turn = tracing.begin_turn(worker.actor_id, delivered.message)  # None without OpenTelemetry
    try:
        return run_turn(worker, delivered, since_commit)
    finally:
        worker.cancellation.handling = None
        worker.state.counters.observe(perf_counter() - started)
        tracing.end_turn(turn)
        worker.marker.clear()


def replay_singly(worker: "Worker", applied: list[Delivered], error: UnencodableState) -> None:
    """A message of the batch left a state that is not JSON: find it and fail it alone.

    The messages ``applied`` since the last commit are rolled back to the last committed state and applied again one
    message at a time, committing after each. The message after which the state does
    not encode is failed like a raising handler (its changes and sends are dropped,
    ``on_failure`` runs) and the others keep their effects, once. What they send is
    held again with the same ids.
    """
    log.error("actor %s: the batch left %s; finding the message that caused it", worker.actor_id,
              error.reason)
    state, gate = worker.state, worker.outbox.gate
    worker.outbox.unconsume()
    gate.drop()
    state.roll_back({d.id for d in applied})
    for delivered in applied:
        state.admit(delivered.id)
        mark = gate.mark
        worker.cancellation.handling = delivered.id
        try:
            value, failure = attempt(worker, delivered.message)
        finally:
            worker.cancellation.handling = None
        if failure is None:
            answer(worker, delivered.message, value)
        try:
            worker.commit()
            if failure is None:
                continue
        except UnencodableState as exc:
            log.error("actor %s: message %s left %s; its changes are dropped", worker.actor_id,
                      delivered.id, exc.reason)
            failure = Failure(exc, "")
        gate.drop(mark)
        state.restore_committed()
        settle_kept(worker, delivered.message, failure)
        worker.commit()
