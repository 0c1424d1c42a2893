"""The session meta as JSON, without encoding the whole timer table at every commit.

A commit stores the whole meta, and the meta holds the actor's reminders and delayed
messages (``timers``). A tick changes one entry of that table, yet ``json.dumps`` of
the meta encodes every entry again: ~2 µs an entry here (a float's shortest repr
alone costs ~0.5 µs), so a table of 100 reminders cost ~200 µs of every tick's
commit, and the spec in the meta another ~20 µs.

Here each entry is encoded once, when it first appears in the table (entries are
replaced, never changed in place: see ``TimerTable``), and the rest of the meta
once per change of it (``ActorState.meta_changed``); a commit joins the pieces. The
text parses to the same object ``json.dumps(meta)`` gives; only the order of the
meta's keys differs (the table's two keys come last).
"""

from __future__ import annotations

import json
from typing import Any

from .timers import DELAYED_KEY, REMINDERS_KEY

_COMPACT = (",", ":")


def rest_json(meta: dict[str, Any]) -> str:
    """The meta without the timer table, as a JSON object."""
    return json.dumps({k: v for k, v in meta.items() if k != REMINDERS_KEY and k != DELAYED_KEY},
                      separators=_COMPACT)


class TableJson:
    """The encoded entries of one timer table, kept between commits."""

    def __init__(self) -> None:
        self._reminders: dict[str, tuple[dict[str, Any], str]] = {}
        self._delayed: dict[int, tuple[dict[str, Any], str]] = {}

    def meta_json(self, rest: str, reminders: dict[str, dict[str, Any]], delayed: list[dict[str, Any]]) -> str:
        """``rest`` (``rest_json`` of the meta) with the table's keys added, each absent
        when its part of the table is empty (as ``TimerTable.write`` leaves them).

        Raises:
            TypeError, ValueError: an entry that was never encoded does not encode.
        """
        parts = []
        if reminders:
            parts.append(f'"{REMINDERS_KEY}":{{{self._reminders_json(reminders)}}}')
        if delayed:
            parts.append(f'"{DELAYED_KEY}":[{self._delayed_json(delayed)}]')
        if not parts:
            return rest
        return rest[:-1] + ("," if rest != "{}" else "") + ",".join(parts) + "}"

    def _reminders_json(self, reminders: dict[str, dict[str, Any]]) -> str:
        known, kept = self._reminders, {}
        for name, entry in reminders.items():
            hit = known.get(name)
            if hit is None or hit[0] is not entry:
                hit = (entry, json.dumps(name) + ":" + json.dumps(entry, separators=_COMPACT))
            kept[name] = hit
        self._reminders = kept  # entries that left the table are forgotten
        return ",".join(text for _, text in kept.values())

    def _delayed_json(self, delayed: list[dict[str, Any]]) -> str:
        known, kept = self._delayed, {}
        texts = []
        for entry in delayed:
            hit = known.get(id(entry))
            if hit is None or hit[0] is not entry:
                hit = (entry, json.dumps(entry, separators=_COMPACT))
            kept[id(entry)] = hit  # the entry is held: its id is not reused while it is here
            texts.append(hit[1])
        self._delayed = kept
        return ",".join(texts)
