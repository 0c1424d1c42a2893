"""A fleet as the dashboard and ``actors inspect`` see it: rows and one actor's detail.

Everything is read through the backend seam (``Fabric``, ``SessionStore``,
``MailboxView``), from the home alone: the fleet's parent need not run, and nothing
is written. The counters and failure records come from each actor's last commit
(``actors_runtime.observe``), the supervision facts from its record, the mailbox
figures from a look at its mailbox now.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from actors_runtime.backends.base import Backend, MailboxView
from actors_runtime.errors import ActorNotFound, StoreError
from actors_runtime.messages import InboxMessage
from actors_runtime.observe import COUNTERS_KEY, TurnCounters, failures_of

from .inspect import collect_actors
from .tables import short

#: Messages looked at to find a mailbox's oldest (a longer backlog is sampled from
#: its front: Maildir files, then each sender's log in order).
OLDEST_SCAN = 1000
#: Dead letters and waiting messages shown in one actor's detail (the newest / the first).
DETAIL_LIMIT = 20


@dataclass
class ActorSnapshot:
    """One actor at one moment: the row of ``/api/actors`` and its counters."""

    row: dict[str, Any]
    counters: TurnCounters = field(default_factory=TurnCounters)
    meta: dict[str, Any] = field(default_factory=dict)


def this_host() -> str:
    """The host label of actors that run here (every backend today runs them locally;
    a multi-host backend names the host in the record)."""
    return socket.gethostname()


def snapshot(backend: Backend, now: float | None = None) -> list[ActorSnapshot]:
    """Every actor of the project, sorted by id (see the module docstring).

    An actor whose session or mailbox cannot be read is still listed, with what
    could be read (``None`` for the rest).
    """
    now = time.time() if now is None else now
    host = this_host()
    return [_snapshot_of(backend, base, now, host)
            for base in collect_actors(backend, pending=False)]  # counted here, with the rest


def _snapshot_of(backend: Backend, base: dict[str, Any], now: float, host: str) -> ActorSnapshot:
    """``collect_actors``'s row of one actor, with its session's counters and failures
    and its mailbox's figures."""
    system_id = base["system"]
    meta: dict[str, Any] = {}
    if system_id:
        try:
            doc = backend.store.load_session(system_id, base["id"])
        except StoreError:
            doc = None
        meta = dict(doc.meta) if doc is not None else {}
    counters = TurnCounters.from_meta(meta.get(COUNTERS_KEY))
    figures = _mailbox_figures(backend, system_id, base["id"], now) if system_id else {}
    failures = failures_of(meta)
    last = failures[-1] if failures else None
    row = {
        "id": base["id"], "system": system_id, "class": base["class"], "role": base["role"],
        "status": base["status"], "host": host, "pid": base["pid"],
        "pending": figures.get("pending"), "oldest_s": figures.get("oldest_s"),
        "handled": counters.handled, "failed": counters.failed, "redeliveries": counters.redeliveries,
        "restarts": base["restarts"], "dead": figures.get("dead"),
        "last_failure": None if last is None else {k: last[k] for k in ("time", "msg_id", "type", "message")},
        "last_error": base["last_error"],
        "paused": meta.get("paused") if isinstance(meta.get("paused"), dict) else None,
    }
    return ActorSnapshot(row=row, counters=counters, meta=meta)


def _mailbox_figures(backend: Backend, system_id: str, actor_id: str, now: float) -> dict[str, Any]:
    try:
        view = backend.view(backend.address(system_id, actor_id))
    except (ActorNotFound, StoreError):
        return {}
    try:
        counts = view.counts()
        oldest = _oldest(view)
    except (OSError, StoreError):
        return {}
    finally:
        view.close()
    return {"pending": counts["new"] + counts["cur"], "dead": counts["dead"],
            "oldest_s": None if oldest is None else round(max(0.0, now - oldest), 3)}


def _oldest(view: MailboxView) -> float | None:
    """Unix time the oldest unacked message was sent (of the first ``OLDEST_SCAN``)."""
    oldest: float | None = None
    looked = 0
    for state in ("cur", "new"):
        for message in view.peek(state):
            sent = sent_at(message)
            if sent is not None and (oldest is None or sent < oldest):
                oldest = sent
            looked += 1
            if looked >= OLDEST_SCAN:
                return oldest
    return oldest


def sent_at(message: InboxMessage) -> float | None:
    """Unix time a message was created (None if its timestamp does not parse)."""
    if message.created_ns:
        return message.created_ns / 1e9
    try:
        return datetime.fromisoformat(message.created_at).timestamp()
    except ValueError:
        return None


def detail(backend: Backend, actor_id: str, now: float | None = None) -> dict[str, Any]:
    """One actor's row with its counters, failure records, dead letters, waiting
    messages, and (when its meta has them) reminders and why it is paused.

    Raises:
        ActorNotFound: the project has no such actor.
    """
    now = time.time() if now is None else now
    match = [base for base in collect_actors(backend, pending=False) if base["id"] == actor_id]
    if not match:
        raise ActorNotFound(actor_id, f"project {backend.project_key} (see 'actors ps')")
    found = _snapshot_of(backend, match[0], now, this_host())
    result: dict[str, Any] = {**found.row, "counters": found.counters.as_dict(),
                              "failures": failures_of(found.meta), "dead_letters": [], "waiting": [],
                              "reminders": _reminders(found.meta.get("reminders"), now)}
    system_id = found.row["system"]
    if not system_id:
        return result
    try:
        view = backend.view(backend.address(system_id, actor_id))
    except (ActorNotFound, StoreError):
        return result
    try:
        letters = view.dead_letters()[-DETAIL_LIMIT:]
        result["dead_letters"] = [{"id": d.message.id, "kind": d.message.kind, "reason": d.reason,
                                   "attempts": d.attempts, "dead_at": d.dead_at, "body": short(d.message.body)}
                                  for d in letters]
        for state in ("cur", "new"):
            for message in view.peek(state):
                if len(result["waiting"]) >= DETAIL_LIMIT:
                    break
                result["waiting"].append({"box": state, "id": message.id, "kind": message.kind,
                                          "created_at": message.created_at, "body": short(message.body)})
    except (OSError, StoreError):
        pass
    finally:
        view.close()
    return result


def _reminders(value: Any, now: float) -> list[dict[str, Any]]:
    """``meta["reminders"]`` (``{name: {"due", "period", "payload"}}``) as rows by due time."""
    if not isinstance(value, dict):
        return []
    rows = []
    for name, entry in value.items():
        if not isinstance(entry, dict):
            continue
        due = entry.get("due")
        due = float(due) if isinstance(due, (int, float)) and not isinstance(due, bool) else None
        period = entry.get("period")
        rows.append({"name": str(name), "due": due, "due_in_s": None if due is None else round(due - now, 3),
                     "period": period if isinstance(period, (int, float)) and not isinstance(period, bool) else None,
                     "payload": short(entry.get("payload"))})
    rows.sort(key=lambda r: (r["due"] is None, r["due"] or 0.0, r["name"]))
    return rows
