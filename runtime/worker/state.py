"""The actor's state and the ids of the messages applied to it: restored, committed.

A commit writes state, metadata and the newly admitted ids in one atomic write of
the session (``ActorSession.commit``). Commit comes before ack: a crash between the
two redelivers the batch, and the AdmittedSet committed with the state drops every
message already applied. A crash before the commit loses the in-memory state
changes *and* the admitted ids together, so the batch is applied again from the last
committed state. Either way each message id changes the state exactly once.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from ..admitted import DEFAULT_CAPACITY, AdmittedSet
from ..backends.base import ActorSession, CommitsAndAcks, Delivered, FlushesLater
from ..errors import StoreError
from ..observe.counters import COUNTERS_KEY, TurnCounters
from .handler import Handler
from .meta_json import TableJson, rest_json
from .timers import TimerTable

#: Ids a batch of queries may leave uncommitted: they ride with the next commit,
#: so a stream of queries writes nothing (bounded so the next commit stays small).
QUERY_IDS_CARRIED = 128

#: A mailbox that commits and acks in one step, and what to ack with the commit.
AckWith = tuple[CommitsAndAcks, Callable[[], list[Delivered]]]


class UnencodableState(StoreError):
    """The handler's state cannot be written as JSON (nothing was written)."""


class ActorState:
    """One actor's committed state and AdmittedSet, and what changed since."""

    def __init__(self, session: ActorSession) -> None:
        self.session = session
        self.handler: Handler | None = None
        self.meta: dict[str, Any] = {}
        self.admitted = AdmittedSet(DEFAULT_CAPACITY)
        self.uncommitted: list[str] = []  # admitted since the last commit
        #: The current state's JSON, when it is known to be exactly that (a query
        #: restored it): the next commit need not encode it again, nor the next query
        #: save it. Whatever runs handler code forgets it first (a turn, on_start,
        #: on_stop, on_failure).
        self.hint: str | None = None
        self._committed_json = "{}"
        self._meta_json: str | None = None
        #: The meta without the timer table, and the table's encoded entries (``meta_json``).
        self._rest_json: str | None = None
        self._table_json = TableJson()
        #: What the last commit left beside the state: its outbox and step journal.
        self.restored_outbox: list[dict[str, Any]] = []
        self.restored_journal: list[dict[str, Any]] = []
        #: Reminders and delayed messages, committed in the meta (see ``timers``).
        self.timers = TimerTable()
        #: Turn counters, committed in the meta (see ``observe.counters``).
        self.counters = TurnCounters()
        self._committed_counters = "{}"

    def restore(self, handler: Handler, identity_meta: dict[str, Any]) -> None:
        """Load the last commit into ``handler`` (``identity_meta`` updates the meta).

        Raises:
            StoreError: the session cannot be read.
        """
        doc = self.session.load()
        state = doc.state if doc is not None else {}
        self.meta = dict(doc.meta) if doc is not None else {}
        self.meta.update(identity_meta)
        self.counters = TurnCounters.from_meta(self.meta.pop(COUNTERS_KEY, None))
        self._committed_counters = self.counters.to_json()
        self.admitted = AdmittedSet.from_list(doc.admitted if doc is not None else [], DEFAULT_CAPACITY)
        if doc is not None:
            self.restored_outbox, self.restored_journal = doc.outbox, doc.journal
        self._committed_json = json.dumps(state)
        self.timers.load(self.meta, str(self.meta.get("id", "")))
        handler.restore_state(state)
        self.handler = handler
        self.hint = None

    def admit(self, msg_id: str) -> bool:
        """Whether ``msg_id`` is new (then it is admitted); False for a repeat."""
        if self.admitted.insert(msg_id):
            self.uncommitted.append(msg_id)
            return True
        return False

    def snapshot_json(self) -> str | None:
        """The current state as JSON, or None if it does not encode (the commit will
        find and fail the message that broke it)."""
        assert self.handler is not None
        try:
            return json.dumps(self.handler.snapshot_state())
        except (TypeError, ValueError):
            return None

    def load_json(self, text: str) -> None:
        """Make the handler's state exactly ``text`` (and remember that it is)."""
        assert self.handler is not None
        self.handler.restore_state(json.loads(text))
        self.hint = text

    def roll_back(self, ids: set[str]) -> None:
        """Forget ``ids`` were admitted and restore the last committed state."""
        assert self.handler is not None
        for msg_id in ids:
            self.admitted.discard(msg_id)
        self.uncommitted = [i for i in self.uncommitted if i not in ids]
        self.handler.restore_state(json.loads(self._committed_json))
        self.timers.restore()
        self.counters = TurnCounters.from_meta(json.loads(self._committed_counters))  # the batch runs again
        self.hint = None

    def unadmit(self, msg_id: str) -> None:
        """Forget ``msg_id`` was admitted (not yet committed), leaving the state as it is:
        a commit made meanwhile does not count it as applied."""
        self.admitted.discard(msg_id)
        self.uncommitted = [i for i in self.uncommitted if i != msg_id]

    def restore_committed(self) -> None:
        """Throw away changes since the last commit (the admitted ids stay, and so does
        what admitting them settled in the timer table)."""
        assert self.handler is not None
        self.handler.restore_state(json.loads(self._committed_json))
        self.timers.restore()
        self.hint = None

    @property
    def can_defer(self) -> bool:
        """Whether the ids admitted since the last commit may wait for the next one
        (not when the meta changed: a failure record is committed with its turn, and a
        delayed message kept must be stored before it is acked)."""
        return len(self.uncommitted) < QUERY_IDS_CARRIED and self._meta_json is not None \
            and not self.timers.changed

    def commit(self, outbox_json: str = "[]", ack: AckWith | None = None,
               staged: FlushesLater | None = None) -> None:
        """Write state + meta + outbox + the ids admitted since the last commit, atomically.

        With ``ack`` (a mailbox that commits and acks in one step, and what to ack, asked
        for only once the state encoded), the batch is acked in the same atomic write.
        With ``staged`` (the session), it is written without its flush (``group_commit``).

        Raises:
            UnencodableState: the state is not JSON (nothing was written).
            StoreError: the write failed (the previous commit stands).
        """
        assert self.handler is not None
        state_json, self.hint = self.hint, None
        if state_json is None:
            try:
                state_json = json.dumps(self.handler.snapshot_state(), separators=(",", ":"))
            except (TypeError, ValueError) as exc:
                raise UnencodableState("state", f"a state that is not JSON-serialisable ({exc})") from None
        timers = self.timers
        if timers.changed:
            timers.write(self.meta)
            self._meta_json = None
        if self._meta_json is None:  # meta is settled by activation, before the first commit
            if self._rest_json is None:
                self._rest_json = rest_json(self.meta)
            self._meta_json = self._table_json.meta_json(self._rest_json, timers.reminders, timers.delayed)
        counters_json = self.counters.to_json()
        meta_json = TurnCounters.splice(self._meta_json, counters_json)
        if staged is not None:
            staged.commit_unflushed(state_json, meta_json, self.uncommitted, self.admitted, outbox_json)
        elif ack is None:
            self.session.commit(state_json, meta_json, self.uncommitted, self.admitted, outbox_json)
        else:
            mailbox, batch = ack
            mailbox.commit_and_ack(self.session, state_json, meta_json, self.uncommitted, self.admitted,
                                   outbox_json, batch())
        self._committed_json, self._committed_counters = state_json, counters_json
        self.uncommitted = []
        if timers.changed:
            timers.committed()

    def meta_changed(self) -> None:
        """The meta was changed after activation (it is encoded again at the next commit)."""
        self._meta_json = self._rest_json = None
