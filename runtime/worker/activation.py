"""A worker: one activation of one actor in this process.

::

    activate  claim the mailbox -> import the class -> restore state + AdmittedSet
              -> recover() (poison check: bury repeat killers, or pause) -> on_start
              -> commit -> publish the lease record
    run       see ``loop``
    finish    stop / parent gone / idle: on_stop, commit, withdraw, exit 0

A paused actor (``pausing``) commits the pause and exits "paused" at once: no
``on_start``, no lease record, no message handled.

Control arrives out of band, never through the mailbox: on the provisioning pipe
(``pipe_entry``) or as signals for seed-protocol workers (``seed_entry``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable

from .. import spinning
from ..backends import open_backend
from ..backends.base import Backend, CommitsAndAcks, Delivered, InflightMarker, PollsBeforeSleeping
from ..control import ERROR, EXIT, EXIT_ACTIVATION_FAILED, EXIT_OK, READY
from ..errors import ActorError, SpawnError, StoreError
from ..records import PAUSED, RUNNING, AgentRecord, ChildEntry
from ..spec import ProvisionSpec
from . import logs, loop
from .cancellation import Cancellation
from .group_commit import GroupCommit
from .handler import Context, Handler, import_class
from .journal import StepJournal
from .lease import Lease, Watchdog
from .pausing import PAUSED_EXIT, Pause, screen
from .poison import bury, count_attempts, sift
from .replies import Outbox
from .state import ActorState, UnencodableState

log = logging.getLogger(__name__)

#: Seconds an activation waits for another process (a worker whose system died,
#: finishing its message) to let go of the actor's mailbox.
CLAIM_TIMEOUT = 5.0
#: How long (microseconds) the worker polls its mailbox before it sleeps, while
#: messages come at least that often (``runtime.spinning``; ``ACTORS_SPIN_US`` sets it).
POLL_US = 200


class Worker:
    """Runs one activation of one actor. See the module docstring for the protocol.

    Args:
        spec: the provisioning spec (validated here).
        backend: the backend to use (default: the one the spec names, opened here).
        clock: unix time for the lease and the timers (when reminders are due).
        parent_lane: sends a reply's frame (``control``) to the parent over the control pipe;
            returns whether it could (set by the pipe launcher).
        supervised: a system indexes this actor itself (the pipe launcher's); a
            worker started by hand adds itself to the index.
        lease_renewed_elsewhere: a launcher thread renews the lease (the pipe
            launcher's control thread); otherwise ``run`` starts a thread for it.
    """

    def __init__(self, spec: ProvisionSpec, *, backend: Backend | None = None,
                 clock: Callable[[], float] = time.time, parent_lane: Callable[[bytes], bool] | None = None,
                 supervised: bool = False, lease_renewed_elsewhere: bool = False) -> None:
        self.spec = spec.validate()
        self.clock = clock
        ident = spec.identity
        self.actor_id = ident.child_id
        self._owns_backend = backend is None
        self.backend = backend or open_backend(spec.backend, spec.home, ident.project_key, spec.durability,
                                               clock=clock)
        self.address = self.backend.address(ident.system_id, ident.child_id)
        self.mailbox = self.backend.mailbox(self.address, create=True, max_pending=spec.limits.max_pending)
        if isinstance(self.mailbox, PollsBeforeSleeping):  # the next message is often due soon
            self.mailbox.poll_before_sleeping(spinning.budget(POLL_US))
        self.state = ActorState(self.backend.store.session(ident.system_id, ident.child_id))
        self.cancellation = Cancellation(self.actor_id)
        self.outbox = Outbox(self.backend, self.address, ident.role, self.mailbox, self.cancellation,
                             spec.limits.sweep_interval, parent_lane)
        self.journal = StepJournal(self.state.session, self.actor_id, self.cancellation.shielded)
        self.lease = Lease(self.backend.fabric, self.actor_id, spec.limits.lease)
        self.supervised = supervised
        self.lease_renewed_elsewhere = lease_renewed_elsewhere
        self.handler: Handler | None = None
        self.context: Context | None = None
        self.stop_requested = False
        self.stop_reason = ""
        #: Set with ``stop_requested``: ends a handler's retry backoff.
        self.stopping = threading.Event()
        #: Cancels a handler that runs past ``handler_timeout`` (while ``run`` runs).
        self.watchdog: Watchdog | None = None
        #: Names the message being handled, past a crash (see ``poison``).
        self.marker: InflightMarker = self.mailbox.inflight
        #: The mailbox, when it commits and acks in one step (see ``loop.process``).
        self.acker: CommitsAndAcks | None = self.mailbox if isinstance(self.mailbox, CommitsAndAcks) else None
        #: Commits staged without their flush, and the acks that wait for it (``group_commit``).
        self.group = GroupCommit(None if self.acker is not None else self.state.session, self.mailbox,
                                 spec.durability)
        #: The pause this activation found or recorded (see ``pausing``): nothing runs.
        self.paused: Pause | None = None

    # -- control (any thread or signal handler) ------------------------------------------

    def install_signal_handlers(self) -> None:
        """Route SIGUSR1 (cancel) and SIGTERM (stop; a second one cancels too) here.

        Call from the main thread of the worker process before ``activate``.
        """
        self.cancellation.install_signal_handlers(self.request_stop, lambda: self.stop_requested)

    def request_stop(self, reason: str = "stop requested") -> None:
        """Finish the current message, commit, withdraw and exit."""
        if not self.stop_requested:
            self.stop_reason = reason
        self.stop_requested = True
        self.stopping.set()
        self.mailbox.wake()

    def request_cancel(self) -> None:
        """Interrupt the running handler with ``Cancelled`` (no-op when idle)."""
        self.cancellation.request()

    # -- activation ----------------------------------------------------------------------

    def activate(self) -> list[Delivered]:
        """Restore, start and register; returns the recovered batch.

        Raises:
            SpawnError: another process reads this actor's mailbox, the class cannot be
                imported or instantiated, or ``on_start`` failed.
        """
        try:
            # Before anything is read or written. A worker of an earlier system may
            # still be finishing its message (its parent died): give it a moment.
            self.mailbox.claim(CLAIM_TIMEOUT)
        except StoreError as exc:
            raise SpawnError(self.actor_id, exc.reason) from None
        try:
            return self._activate()
        except BaseException:
            self.mailbox.close()  # lets go of the claim
            raise

    def _activate(self) -> list[Delivered]:
        cls = import_class(self.spec.actor_class)
        try:
            handler: Handler = cls()
        except Exception as exc:
            raise SpawnError(self.actor_id, f"{self.spec.actor_class}() failed: {type(exc).__name__}: {exc}") from None
        try:
            self.state.restore(handler, self._identity_meta())
        except StoreError as exc:
            raise SpawnError(self.actor_id, f"cannot read its session: {exc}") from None
        self.context = Context(self)
        handler.bind_context(self.context)
        self.handler = handler
        self._count_redeliveries()
        # What the last activation committed and may not have delivered, and the steps
        # of turns it did not commit (those of committed turns are ignored).
        self.outbox.gate.restore(self.state.restored_outbox)
        self.journal.restore(self.state.restored_journal, lambda msg_id: msg_id in self.state.admitted)
        recovered = self._without_poison(self.mailbox.recover())  # all of it: see count_attempts
        if self.paused is not None:
            return self._stay_paused()
        # Handle one batch now; the rest goes back to the mailbox's queue, where a
        # handler waiting for a reply finds it and senders count it as waiting.
        batch_size = self.spec.limits.batch_size
        self.mailbox.give_back(recovered[batch_size:])
        recovered = recovered[:batch_size]
        self.state.hint = None  # on_start may change the state
        try:
            with self.cancellation.region():
                handler.on_start()
        except BaseException as exc:
            raise SpawnError(self.actor_id, f"on_start failed: {type(exc).__name__}: {exc}") from None
        finally:
            self.outbox.end_turn()  # asks on_start left uncollected: the loop reads the mailbox now
        try:
            self.commit()
        except UnencodableState as exc:
            raise SpawnError(self.actor_id, f"on_start left {exc.reason}") from None
        self.outbox.release()
        self._index_self()
        self.lease.publish(AgentRecord(
            agent_id=self.actor_id, role=self.spec.identity.role, labels=list(self.spec.identity.labels),
            endpoint=self.mailbox.endpoint, pid=os.getpid(), started_at=time.time(),
            system_id=self.spec.identity.system_id, actor_class=self.spec.actor_class,
        ))
        return recovered

    def _count_redeliveries(self) -> None:
        """Count the messages an earlier activation handed out and never acked: they
        come round again now (a figure only: a mailbox that cannot be counted is no
        reason not to start)."""
        try:
            self.state.counters.redeliveries += self.mailbox.counts()["cur"]
        except (OSError, StoreError) as exc:
            log.warning("actor %s: could not count redeliveries: %s", self.actor_id, exc)

    def _without_poison(self, recovered: list[Delivered]) -> list[Delivered]:
        """Count the message that was running when the last activation died; bury
        the messages that killed the worker ``max_attempts`` times, or pause at the
        first of them (``on_poison="pause"``, or a pause recorded earlier)."""
        limit = self.spec.limits.max_attempts
        attempts = self.state.meta.get("attempts")
        applied = self.state.admitted.__contains__
        counts = count_attempts(self.marker, recovered, attempts if isinstance(attempts, dict) else {},
                                self.actor_id, limit, applied)

        def buried(d: Delivered, reason: str, n: int) -> None:
            bury(self.mailbox, self.outbox, self.actor_id, d, reason, n)

        recovered, self.paused = screen(recovered, counts, limit, self.state.meta, self.actor_id, applied,
                                        self.spec.on_poison == "pause", self._drop)
        survivors = recovered if self.paused is not None else sift(recovered, counts, limit, buried)
        self.state.meta["attempts"] = counts
        return survivors

    def _drop(self, delivered: Delivered) -> None:
        self.mailbox.ack([delivered])

    def _stay_paused(self) -> list[Delivered]:
        """Commit the pause and register nothing: ``run`` returns at once."""
        try:
            self.commit()  # with what the last activation owed: it still goes out
        except UnencodableState as exc:  # the committed state was JSON: it still is
            raise SpawnError(self.actor_id, f"its restored state is {exc.reason}") from None
        self.outbox.release()
        self._index_self()
        return []

    def _index_self(self) -> None:
        """Make sure the project's index knows this actor.

        A system indexes the actors it starts (``supervised``; its recorder writes the
        entry soon after); a worker started by hand has nobody to do it.
        """
        store = self.backend.store
        if self.supervised or store.resolve_child(self.actor_id) is not None:
            return
        status, why = (PAUSED, self.paused.reason) if self.paused is not None else (RUNNING, "")
        store.record_children(self.spec.identity.system_id,
                              [ChildEntry.for_spec(self.spec, status=status, last_error=why)])

    def _identity_meta(self) -> dict[str, Any]:
        ident = self.spec.identity
        return {
            "id": ident.child_id, "actor_class": self.spec.actor_class, "role": ident.role,
            "labels": list(ident.labels), "parent_id": ident.parent_id, "restart": self.spec.restart,
            "depth": ident.depth, "spec": self.spec.public_dict(),
        }

    # -- serving -------------------------------------------------------------------------

    def run(self, batch: list[Delivered]) -> str:
        """Serve until stopped (see ``loop.run``); returns why it stopped."""
        if self.paused is not None:
            return PAUSED_EXIT
        if not self.lease_renewed_elsewhere:
            self.lease.start_renewing()
        if self.spec.limits.handler_timeout is not None:
            self.watchdog = Watchdog(self.actor_id, self.spec.limits.handler_timeout, self.request_cancel)
        try:
            return loop.run(self, batch)
        finally:
            self.lease.stop_renewing()
            if self.watchdog is not None:
                self.watchdog.stop()

    def process(self, batch: list[Delivered]) -> None:
        """Dispatch one batch, commit, ack (see ``loop.process``)."""
        loop.process(self, batch)

    def commit(self, acking: Callable[[], list[Delivered]] | None = None, *, stage: bool = False) -> bool:
        """Commit state, admitted ids and the held messages (then owed; see ``gate``) in
        one atomic write, and drop the step records of the turns it covers.

        With ``acking`` (what to ack after this commit, asked for once the state
        encoded), a mailbox that can (``CommitsAndAcks``) acks it in the same write;
        returns whether it did (if not, the caller acks after the commit, through
        ``group``). With ``stage``, a commit with nothing to release and no step
        recorded is written without its flush where the session can (``group_commit``);
        any other commit is flushed, and covers the staged ones before it.

        Raises:
            UnencodableState: the state is not JSON (nothing was written).
            StoreError: the write failed (the previous commit stands).
        """
        gate = self.outbox.gate
        acker = self.acker if acking is not None else None
        staged = self.group.session if stage and not gate.held and not self.journal.written else None
        self.state.commit(gate.outbox_json(), None if acker is None or acking is None else (acker, acking),
                          staged)
        self.group.committed()
        gate.committed()
        self.journal.committed(self.state.admitted.__contains__)
        return acker is not None

    # -- exit ----------------------------------------------------------------------------

    def finish(self) -> None:
        """Run ``on_stop``, commit, withdraw. Messages not handled stay in the mailbox.
        A paused activation never started its handler: it is only let go."""
        if self.handler is not None and self.paused is None:
            self.state.hint = None  # on_stop may change the state
            try:
                with self.cancellation.region():
                    self.handler.on_stop()
            except BaseException as exc:  # a failing on_stop must not cost the state
                log.error("actor %s: on_stop failed: %s: %s", self.actor_id, type(exc).__name__, exc)
            finally:
                self.outbox.end_turn()
            if not self.outbox.release():  # before the commit: it then lists only what did not go
                log.warning("actor %s: %d sent messages wait for room in their mailboxes; the next "
                            "activation delivers them", self.actor_id, len(self.outbox.gate.owed))
            try:
                self.commit()
            except UnencodableState as exc:
                log.error("actor %s: on_stop left %s; keeping the last committed state",
                          self.actor_id, exc.reason)
        self.lease.end()
        self.close()

    def close(self) -> None:
        """Release every resource (the worker object is done)."""
        if self.context is not None:
            self.context.closed = True
        self.cancellation.close()
        self.mailbox.close()
        # Lines still queued for the backend go before its connections close: a send
        # cut off by the close was retried, and the server kept the line twice.
        logs.close()
        if self._owns_backend:
            self.backend.close()


def serve(spec: ProvisionSpec, *, notify: Callable[..., None] | None = None,
          on_worker: Callable[[Worker], None] | None = None, **options: Any) -> int:
    """Activate and serve one actor in this process; returns the exit code.

    ``notify(kind, **fields)`` receives events for the parent (``control.READY`` once the record is
    published, ``control.ERROR`` if activation failed, ``control.EXIT`` at the end);
    ``options`` go to ``Worker``.
    """
    notify = notify or (lambda kind, **fields: None)
    worker = Worker(spec, **options)
    if on_worker is not None:
        on_worker(worker)
    try:
        batch = worker.activate()
    except ActorError as exc:
        notify(ERROR, error=str(exc))
        log.error("%s", exc)
        worker.close()
        return EXIT_ACTIVATION_FAILED
    notify(READY, pid=os.getpid())
    reason = worker.run(batch)
    worker.finish()
    # With timers pending, the parent learns when to activate the actor again.
    wake_at = worker.state.timers.next_due
    notify(EXIT, reason=reason, **({} if wake_at is None else {"wake_at": wake_at}))
    return EXIT_OK
