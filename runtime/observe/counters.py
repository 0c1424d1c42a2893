"""Per-actor counters, committed with the state: handled, failed, redelivered, turn time.

::

    loop.apply     counters.observe(seconds)      one turn of a handler (a failed one too)
    on_failure     counters.failed += 1           (``failures.record_failure``)
    activation     counters.redeliveries += n     messages an earlier activation handed
                                                  out and did not ack
    state.commit   splice(meta_json, to_json())   into the meta written with the state

They are exact for committed turns: a turn lost to a crash before its commit is lost
with its counts, and runs (and is counted) again. Queries ride with the next commit,
as their ids do (``state.QUERY_IDS_CARRIED``), so a worker killed after a run of
queries loses their counts (never anything else's). The hot-path cost is a few
attribute updates and one ``bisect`` per message, and one small string per commit.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

#: The meta key the counters are committed under.
COUNTERS_KEY = "metrics"

#: Upper bounds (seconds) of the turn-time histogram's buckets; one more is +Inf.
BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                              2.5, 5.0, 10.0, 30.0, 60.0)


class TurnCounters:
    """One actor's counters since it first ran (restored at each activation).

    Attributes:
        handled: turns a handler ran to the end, failed ones included.
        failed: turns whose handler raised (after its retries), or left a state that
            is not JSON.
        redeliveries: messages handed out again because the activation that had them
            ended (died, or stopped mid-batch) before acking them.
        seconds_sum: total seconds of the handled turns.
        buckets: turns per histogram bucket (not cumulative; the last is +Inf).
    """

    __slots__ = ("handled", "failed", "redeliveries", "seconds_sum", "buckets")

    def __init__(self) -> None:
        self.handled = 0
        self.failed = 0
        self.redeliveries = 0
        self.seconds_sum = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)

    def observe(self, seconds: float) -> None:
        """Count one handled turn that took ``seconds``."""
        self.handled += 1
        self.seconds_sum += seconds
        self.buckets[bisect_left(BUCKETS, seconds)] += 1

    def to_json(self) -> str:
        """The counters as the JSON object committed in the meta (built by hand: this
        runs at every commit, and ``json.dumps`` of the same dict costs several times more)."""
        return (f'{{"handled":{self.handled},"failed":{self.failed},"redeliveries":{self.redeliveries},'
                f'"seconds_sum":{self.seconds_sum!r},"buckets":[{",".join(map(str, self.buckets))}]}}')

    @staticmethod
    def splice(meta_json: str, counters_json: str) -> str:
        """``meta_json`` (a JSON object without the counters' key) with ``counters_json`` in it."""
        if meta_json == "{}":
            return f'{{"{COUNTERS_KEY}":{counters_json}}}'
        return f'{meta_json[:-1]},"{COUNTERS_KEY}":{counters_json}}}'

    @classmethod
    def from_meta(cls, value: Any) -> "TurnCounters":
        """Counters from a committed meta's ``metrics`` value; anything malformed
        counts from zero (a session written by an older version has none)."""
        counters = cls()
        if not isinstance(value, dict):
            return counters
        for name in ("handled", "failed", "redeliveries"):
            number = value.get(name)
            if isinstance(number, int) and not isinstance(number, bool) and number >= 0:
                setattr(counters, name, number)
        total = value.get("seconds_sum")
        if isinstance(total, (int, float)) and not isinstance(total, bool) and total >= 0:
            counters.seconds_sum = float(total)
        buckets = value.get("buckets")
        if (isinstance(buckets, list) and len(buckets) == len(counters.buckets)
                and all(isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in buckets)):
            counters.buckets = list(buckets)
        return counters

    def as_dict(self) -> dict[str, Any]:
        return {"handled": self.handled, "failed": self.failed, "redeliveries": self.redeliveries,
                "seconds_sum": self.seconds_sum, "buckets": list(self.buckets)}
