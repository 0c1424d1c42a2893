"""When a dead actor is restarted, and when the supervisor gives up: a pure function.

The supervisor passes the clock's reading in, so the policy is tested by moving a
number, not by waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Default restart cap: this many restarts ...
RESTART_LIMIT = 5
#: ... within this many seconds, then the actor is marked failed.
RESTART_WINDOW = 60.0
#: First and largest restart delay (seconds); doubles in between.
BACKOFF = (0.1, 5.0)


@dataclass(frozen=True)
class RestartPolicy:
    """More than ``limit`` unexpected deaths within ``window`` seconds is a failure;
    until then each restart waits ``first_delay`` doubled per recent death, at most
    ``max_delay``."""

    limit: int = RESTART_LIMIT
    window: float = RESTART_WINDOW
    first_delay: float = BACKOFF[0]
    max_delay: float = BACKOFF[1]


@dataclass(frozen=True)
class Verdict:
    """What to do about a death: restart after ``delay`` seconds, or give up (``reason``)."""

    restart: bool
    delay: float = 0.0
    reason: str = ""


def judge(policy: RestartPolicy, mode: str, deaths: tuple[float, ...], now: float) -> tuple[Verdict, tuple[float, ...]]:
    """Decide on an unexpected death at ``now``.

    Args:
        policy: the limits.
        mode: the actor's restart mode ("never", "on-failure", "always").
        deaths: times of the earlier deaths that were restarted (oldest first).
        now: the time of this one (any monotonic clock).

    Returns:
        The verdict, and the death times to keep for the next one.
    """
    if mode == "never":
        return Verdict(False, reason="its restart policy is never"), deaths
    recent = tuple(t for t in deaths if t >= now - policy.window)
    if len(recent) >= policy.limit:
        return Verdict(False, reason=f"died {len(recent) + 1} times within {policy.window:.0f} s"), recent
    delay = min(policy.first_delay * (2 ** len(recent)), policy.max_delay)
    return Verdict(True, delay), (*recent, now)
