"""Durable timers of one actor: reminders and delayed messages, committed with the turn.

::

    remind / forget (a handler)     TimerTable.set / forget: the turn's table (a turn
                                    rolled back loses them, like its state)
    a delayed message is drained    ``before_admit``: kept in the table until due, in
                                    the turn's table and its base, committed BEFORE
                                    the message is acked
    due (``loop.run``)              ``with_due``: one synthetic ``Delivered`` per due
                                    entry (receipt ``Fired``, no mailbox behind it)
    the tick is admitted            ``before_admit`` settles it: the reminder moves to
                                    its next due time (or goes), the delayed message
                                    goes; in the table and its base
    commit (``ActorState.commit``)  meta["reminders"], meta["delayed"]; base = table

Why this is exactly once: a tick's id is derived from (actor, reminder name, due
time) and a delayed message keeps its own id, so a tick that runs again after a
crash has the id the AdmittedSet remembers. Settling happens at admission, into the
base a rollback returns to (like an admitted id, it is not undone by a handler that
raises), and is committed with the tick's turn: a crash before that commit leaves the
entry as it was, and it fires again with the same id; after it, it never fires again.

Coalescing: a periodic reminder found ``k`` due times late (``k`` due times at or
before now) fires once, with ``coalesced=k``, and its next due time is the first one
after now on its original grid (due + n * period: no drift).
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..backends.base import Delivered
from ..errors import InvalidSpec
from ..messages import AgentRef, InboxKind, InboxMessage, ReminderTick, _rfc3339_from_us

if TYPE_CHECKING:
    from .activation import Worker

log = logging.getLogger(__name__)

#: Namespace of the ids of reminder ticks: uuid5(actor id, name, due time).
_TICK_NS = uuid.UUID("0d6e3f5c-9a41-4c1e-8b7d-2f0a6c9e1b34")
#: The longest reminder name accepted.
MAX_NAME = 200
#: The keys of the session meta that hold the table (a dashboard reads them).
REMINDERS_KEY, DELAYED_KEY = "reminders", "delayed"


def tick_id(actor_id: str, name: str, due: float) -> str:
    """The id of the tick of reminder ``name`` due at ``due`` (the same after any crash)."""
    return str(uuid.uuid5(_TICK_NS, f"{actor_id}\0{name}\0{due!r}"))


@dataclass(frozen=True, slots=True)
class Fired:
    """The receipt of a synthetic tick: what to settle once it is admitted.

    Attributes:
        name: the reminder's name; ``None`` for a delayed message.
        due: the due time this tick stands for (a reminder's table entry then).
        next_due: the reminder's next due time; ``None`` when it goes (one-shot).
        msg_id: the tick's id (a delayed message's own id).
    """

    name: str | None
    due: float
    next_due: float | None
    msg_id: str


def check_name(name: Any) -> str:
    """A reminder name, or ``InvalidSpec``."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise InvalidSpec("reminder name", f"{name!r} is not a non-empty string of at most {MAX_NAME} characters")
    return name


def _valid_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class TimerTable:
    """One actor's reminders and delayed messages: the turn's copy and its base.

    ``reminders`` maps a name to ``{"due": unix seconds, "period": seconds or None,
    "payload": JSON}``; ``delayed`` lists ``{"due": unix seconds, "message": the wire
    document}``. Entries are replaced, never changed in place, so copies are shallow.
    The base is the last commit plus what admission settled since (``restore``
    returns to it).
    """

    def __init__(self) -> None:
        self.reminders: dict[str, dict[str, Any]] = {}
        self.delayed: list[dict[str, Any]] = []
        self._base: tuple[dict[str, dict[str, Any]], list[dict[str, Any]]] = ({}, [])
        #: Changed since the last commit (the meta is written again).
        self.changed = False
        #: Ticks were handed out that the next ack must leave out (no receipt).
        self.fired = False
        self._next: float | None = None
        #: What admitting each tick since the last commit settled (see ``unsettle``).
        self._undo: dict[str, Any] = {}

    # -- the session ---------------------------------------------------------------------

    def load(self, meta: dict[str, Any], actor_id: str) -> None:
        """Take the table from a session's meta (entries that do not parse are dropped, logged)."""
        reminders: dict[str, dict[str, Any]] = {}
        raw = meta.get(REMINDERS_KEY)
        for name, entry in (raw.items() if isinstance(raw, dict) else ()):
            if (isinstance(entry, dict) and _valid_time(entry.get("due"))
                    and (entry.get("period") is None or _valid_time(entry["period"]) and entry["period"] > 0)):
                reminders[name] = {"due": float(entry["due"]), "period": entry.get("period"),
                                   "payload": entry.get("payload")}
            else:
                log.warning("actor %s: reminder %r in the session is unreadable; dropped", actor_id, name)
        delayed = []
        raw = meta.get(DELAYED_KEY)
        for entry in (raw if isinstance(raw, list) else ()):
            if isinstance(entry, dict) and _valid_time(entry.get("due")) and isinstance(entry.get("message"), dict):
                delayed.append({"due": float(entry["due"]), "message": entry["message"]})
            else:
                log.warning("actor %s: a delayed message in the session is unreadable; dropped", actor_id)
        self.reminders, self.delayed = reminders, delayed
        self._base = (dict(reminders), list(delayed))
        self.changed, self._next = False, self._earliest()

    def write(self, meta: dict[str, Any]) -> None:
        """Put the table into ``meta`` (keys absent when empty)."""
        for key, value in ((REMINDERS_KEY, dict(self.reminders)), (DELAYED_KEY, list(self.delayed))):
            if value:
                meta[key] = value
            else:
                meta.pop(key, None)

    def committed(self) -> None:
        """The table was committed: it is the new base."""
        self._base = (dict(self.reminders), list(self.delayed))
        self._undo.clear()
        self.changed = False

    def restore(self) -> None:
        """Throw away the turn's changes (``remind``/``forget``); what admission settled stays."""
        reminders, delayed = self._base
        if reminders != self.reminders or delayed != self.delayed:
            self.reminders, self.delayed = dict(reminders), list(delayed)
            self.changed, self._next = True, self._earliest()

    # -- a handler's changes ---------------------------------------------------------------

    def set(self, name: str, due: float, period: float | None, payload: Any) -> None:
        """Set (or replace) reminder ``name``; committed with the turn."""
        self.reminders[name] = {"due": due, "period": period, "payload": payload}
        self._touched()

    def forget(self, name: str) -> bool:
        """Remove reminder ``name``; returns whether it existed. Committed with the turn."""
        if self.reminders.pop(name, None) is None:
            return False
        self._touched()
        return True

    # -- when -----------------------------------------------------------------------------

    @property
    def next_due(self) -> float | None:
        """The earliest due time in the table (``None``: nothing is scheduled)."""
        return self._next

    def _earliest(self) -> float | None:
        dues = [entry["due"] for entry in self.reminders.values()]
        dues += [entry["due"] for entry in self.delayed]
        return min(dues, default=None)

    def _touched(self) -> None:
        self.changed = True
        self._next = self._earliest()

    # -- firing ------------------------------------------------------------------------------

    def due_ticks(self, now: float, actor_id: str, sender: AgentRef) -> list[Delivered]:
        """A synthetic ``Delivered`` for every entry due at ``now``, earliest first.

        Nothing changes here: the entries are settled when the ticks are admitted.
        """
        found: list[tuple[float, Delivered]] = []
        for name, entry in self.reminders.items():
            due = entry["due"]
            if due > now:
                continue
            period = entry["period"]
            if period is None:
                count, next_due = 1, None
            else:
                count = int((now - due) // period) + 1
                next_due = due + count * period
                while next_due <= now:  # float rounding at the boundary
                    count += 1
                    next_due = due + count * period
            msg_id = tick_id(actor_id, name, due)
            message = InboxMessage(
                id=msg_id, sender=sender, kind=InboxKind.TASK.value,
                body=json.loads(json.dumps(entry["payload"])),  # the handler's own copy
                created_at=_rfc3339_from_us(int(due * 1_000_000)), reminder=ReminderTick(name, due, count),
            )
            found.append((due, Delivered(message, Fired(name, due, next_due, msg_id))))
        for entry in self.delayed:
            if entry["due"] > now:
                continue
            try:
                message = InboxMessage.from_wire(json.dumps(entry["message"]))
            except ValueError as exc:  # only a hand-edited session could hold one
                log.error("actor %s: a delayed message in the session cannot be read (%s); dropped", actor_id, exc)
                self._settle_delayed(entry["message"].get("id"))
                continue
            found.append((entry["due"], Delivered(message, Fired(None, entry["due"], None, message.id))))
        found.sort(key=lambda pair: pair[0])
        self.fired = self.fired or bool(found)
        return [delivered for _, delivered in found]

    def settle(self, fired: Fired) -> None:
        """A tick was admitted: advance or remove its entry, in the table and its base
        (``unsettle`` takes that back until the next commit)."""
        if fired.name is None:
            self._undo[fired.msg_id] = [dict(e) for e in self.delayed if e["message"].get("id") == fired.msg_id]
            self._settle_delayed(fired.msg_id)
            return
        self._undo[fired.msg_id] = (fired.name, self.reminders.get(fired.name), self._base[0].get(fired.name))
        for reminders in (self.reminders, self._base[0]):
            entry = reminders.get(fired.name)
            if entry is None or entry["due"] != fired.due:
                continue  # already moved on (a handler set it again)
            if fired.next_due is None:
                del reminders[fired.name]
            else:
                reminders[fired.name] = {**entry, "due": fired.next_due}
        self._touched()

    def unsettle(self, msg_id: str) -> None:
        """Put back what admitting tick ``msg_id`` settled (its turn was left unhandled:
        the tick has no other copy). A no-op for any other id."""
        undo = self._undo.pop(msg_id, None)
        if undo is None:
            return
        if isinstance(undo, tuple):
            name, entry, base_entry = undo
            for reminders, before in ((self.reminders, entry), (self._base[0], base_entry)):
                if before is not None:
                    reminders[name] = before
        else:
            for entry in undo:
                if not self.holds(entry["message"].get("id")):
                    self.delayed.append(entry)
                    self._base[1].append(entry)
        self._touched()

    def _settle_delayed(self, msg_id: Any) -> None:
        self.delayed = [e for e in self.delayed if e["message"].get("id") != msg_id]
        self._base = (self._base[0], [e for e in self._base[1] if e["message"].get("id") != msg_id])
        self._touched()

    def holds(self, msg_id: str) -> bool:
        """Whether a delayed message of this id is kept already."""
        return any(e["message"].get("id") == msg_id for e in self.delayed)

    def keep(self, message: InboxMessage) -> None:
        """Keep a delayed message until its ``deliver_at`` (in the table and its base)."""
        entry = {"due": message.deliver_at, "message": json.loads(message.to_wire())}
        self.delayed.append(entry)
        self._base[1].append(entry)
        self._touched()

    def without_fired(self, done: list[Delivered]) -> list[Delivered]:
        """``done`` without the synthetic ticks (they have nothing to ack)."""
        if not self.fired:
            return done
        self.fired = False
        return [d for d in done if type(d.receipt) is not Fired]

    def listing(self) -> list[dict[str, Any]]:
        """Every reminder and delayed message: {"kind", "name", "due", "period", "payload"}."""
        rows: list[dict[str, Any]] = [
            {"kind": "reminder", "name": name, "due": e["due"], "period": e["period"], "payload": e["payload"]}
            for name, e in self.reminders.items()]
        rows += [{"kind": "delayed", "name": e["message"].get("id"), "due": e["due"], "period": None,
                  "payload": e["message"].get("body")} for e in self.delayed]
        return sorted(rows, key=lambda row: row["due"])


# -- the worker's side (called from ``loop``) ------------------------------------------------


def tick_of(delivered: Delivered) -> Fired | None:
    """The receipt of a synthetic tick (a reminder's, or a delayed message's), else None."""
    receipt = delivered.receipt
    return receipt if type(receipt) is Fired else None


def with_due(worker: "Worker", batch: list[Delivered]) -> list[Delivered]:
    """``batch`` with the ticks due now in front (unchanged when none is due)."""
    timers = worker.state.timers
    next_due = timers.next_due
    if next_due is None:
        return batch
    now = worker.clock()
    if next_due > now:
        return batch
    ticks = timers.due_ticks(now, worker.actor_id, worker.outbox.sender)
    return ticks + batch if batch else ticks


def seconds_to_due(worker: "Worker", longest: float) -> float:
    """How long the loop may wait before a timer is due (at most ``longest``)."""
    next_due = worker.state.timers.next_due
    if next_due is None:
        return longest
    return max(0.0, min(longest, next_due - worker.clock()))


def before_admit(worker: "Worker", delivered: Delivered) -> bool:
    """For a message with ``deliver_at`` or ``reminder`` set, just before admission.

    A tick is settled (and goes on to be admitted: returns False). A delayed message
    not yet due is kept in the table instead (returns True: the caller acks it after
    the commit that stores it, so it is never lost, and a copy of it redelivered by a
    crash before that ack is recognised by its id and dropped).
    """
    state = worker.state
    receipt = delivered.receipt
    if type(receipt) is Fired:
        state.timers.settle(receipt)
        return False
    message = delivered.message
    if message.deliver_at is None or message.deliver_at <= worker.clock():
        return False
    if delivered.id in state.admitted or state.timers.holds(delivered.id):
        log.debug("actor %s: delayed message %s is kept already", worker.actor_id, delivered.id)
        return True
    state.timers.keep(message)
    log.debug("actor %s: message %s kept until %s", worker.actor_id, delivered.id, message.deliver_at)
    return True
