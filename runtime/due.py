"""When something is due: a delay in seconds or an aware ``datetime``, checked once.

Used by every caller that schedules (``remind``, ``tell(delay=)`` / ``tell(at=)``, in
the parent and in workers), so all of them refuse the same mistakes with the same
one-line ``InvalidSpec``: a naive datetime (whose zone is a guess), a negative, NaN or
infinite delay, a bool, a period that is not a positive number of seconds.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from .errors import InvalidSpec

#: The shortest period a reminder may have (seconds): a shorter one would keep its
#: actor busy with nothing but ticks.
MIN_PERIOD = 0.001


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidSpec(what, f"{value!r} is not a number of seconds")
    seconds = float(value)
    if not math.isfinite(seconds):
        raise InvalidSpec(what, f"{value!r} is not a finite number of seconds")
    return seconds


def instant(at: Any, what: str = "at") -> float:
    """Unix seconds of an aware ``datetime``.

    Raises:
        InvalidSpec: not a ``datetime``, or a naive one.
    """
    if not isinstance(at, datetime):
        raise InvalidSpec(what, f"{at!r} is not a datetime")
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidSpec(what, f"{at.isoformat()} has no time zone (use an aware datetime, e.g. "
                                "datetime.now(timezone.utc))")
    return at.timestamp()


def due_from(due: Any, now: float, what: str = "due") -> float:
    """Unix seconds of ``due``: seconds from ``now`` (>= 0), or an aware ``datetime``.

    Raises:
        InvalidSpec: a negative, NaN or infinite delay, a bool, or a naive datetime.
    """
    if isinstance(due, datetime):
        return instant(due, what)
    seconds = _seconds(due, what)
    if seconds < 0:
        raise InvalidSpec(what, f"a delay of {seconds!r} seconds is negative")
    return now + seconds


def deliver_at(delay: Any, at: Any, now: float) -> float | None:
    """Unix seconds a delayed tell is due (``None`` when neither is given).

    Raises:
        InvalidSpec: both given, or one that ``due_from`` refuses.
    """
    if delay is None and at is None:
        return None
    if delay is not None and at is not None:
        raise InvalidSpec("tell", "give delay= or at=, not both")
    if at is not None:
        return instant(at, "at")
    if isinstance(delay, datetime):
        raise InvalidSpec("delay", "a delay is a number of seconds; use at= for a datetime")
    return due_from(delay, now, "delay")


def period_of(period: Any) -> float | None:
    """A reminder's period in seconds (``None``: it fires once).

    Raises:
        InvalidSpec: not a finite number of at least ``MIN_PERIOD`` seconds.
    """
    if period is None:
        return None
    seconds = _seconds(period, "period")
    if seconds < MIN_PERIOD:
        raise InvalidSpec("period", f"{seconds!r} seconds is shorter than {MIN_PERIOD} s")
    return seconds
