"""When a dead actor is restarted, and when the supervisor gives up: a pure function.

The supervisor passes the clock's reading in, so the policy is tested by moving a
number, not by waiting.

A death while a message was being handled (the in-flight marker named one) is the
message's fault: the worker's poison check counts it against that message and
buries the message after ``max_attempts`` such deaths. Counting it against the actor
too would let a few bad messages (or a requeued dead letter) mark a healthy actor
failed, with the good messages behind them waiting for ever. So such a death only
lengthens the backoff; deaths with nothing in flight (at import, in ``on_start``,
while idle) use up the restart budget.
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
class Deaths:
    """The times of an actor's earlier deaths that were restarted (oldest first).

    Attributes:
        counted: deaths that count against the restart limit.
        poison: deaths while a message was in flight; they only lengthen the backoff.
    """

    counted: tuple[float, ...] = ()
    poison: tuple[float, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """What to do about a death: restart after ``delay`` seconds, or give up (``reason``)."""

    restart: bool
    delay: float = 0.0
    reason: str = ""


def judge(policy: RestartPolicy, mode: str, deaths: Deaths, now: float, *,
          poison: bool = False) -> tuple[Verdict, Deaths]:
    """Decide on an unexpected death at ``now``.

    Args:
        policy: the limits.
        mode: the actor's restart mode ("never", "on-failure", "always").
        deaths: the earlier deaths that were restarted.
        now: the time of this one (any monotonic clock).
        poison: a message was in flight when the worker died (see the module
            docstring); ``"never"`` still means never.

    Returns:
        The verdict, and the deaths to keep for the next one (those outside the
        window are forgotten).
    """
    if mode == "never":
        return Verdict(False, reason="its restart policy is never"), deaths
    counted = tuple(t for t in deaths.counted if t >= now - policy.window)
    poisoned = tuple(t for t in deaths.poison if t >= now - policy.window)
    kept = Deaths(counted, poisoned)
    if not poison and len(counted) >= policy.limit:
        return Verdict(False, reason=f"died {len(counted) + 1} times within {policy.window:.0f} s"), kept
    recent = len(counted) + len(poisoned)
    delay = min(policy.first_delay * (2 ** min(recent, 64)), policy.max_delay)
    if poison:
        return Verdict(True, delay), Deaths(counted, (*poisoned, now))
    return Verdict(True, delay), Deaths((*counted, now), poisoned)
