"""What ``Actor.reminders()`` reports: one ``Reminder`` per reminder set (and committed
or set in the running turn)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Reminder:
    """One reminder of an actor, as ``Actor.reminders()`` reports it.

    Attributes:
        name: the name given to ``remind`` (one reminder per name).
        due: when it fires next (an aware UTC ``datetime``).
        period: seconds between ticks; ``None`` for a reminder that fires once.
        payload: what each tick carries (decoded as a handler would receive it).
    """

    name: str
    due: datetime
    period: float | None
    payload: Any
