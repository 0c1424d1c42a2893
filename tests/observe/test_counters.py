"""Turn counters and failure records as the worker keeps them in the session meta."""

from __future__ import annotations

import json

from actors_runtime.observe import BUCKETS, COUNTERS_KEY, FAILURES_KEPT, TurnCounters, failures_of, record_failure
from actors_runtime.observe.failures import TRACEBACK_CHARS


class _State:
    """What ``record_failure`` touches of an ``ActorState``."""

    def __init__(self) -> None:
        self.meta: dict = {"id": "a"}
        self.counters = TurnCounters()
        self.changed = 0

    def meta_changed(self) -> None:
        self.changed += 1


def test_counters_put_each_turn_in_the_bucket_of_the_smallest_bound_not_below_it():
    counters = TurnCounters()
    for seconds in (0.0001, BUCKETS[0], BUCKETS[0] * 1.01, 0.3, 1_000.0):
        counters.observe(seconds)
    assert counters.handled == 5
    assert counters.buckets[0] == 2  # le=0.0005 holds 0.0001 and 0.0005 itself
    assert counters.buckets[1] == 1
    assert counters.buckets[BUCKETS.index(0.5)] == 1
    assert counters.buckets[-1] == 1  # +Inf
    assert abs(counters.seconds_sum - (0.0001 + BUCKETS[0] * 2.01 + 0.3 + 1_000.0)) < 1e-9


def test_the_counters_json_spliced_into_a_meta_parses_back_to_the_same_counters():
    counters = TurnCounters()
    counters.observe(0.002)
    counters.failed, counters.redeliveries = 3, 2
    for meta_json in ("{}", json.dumps({"id": "a", "labels": ["x"]}, separators=(",", ":"))):
        meta = json.loads(TurnCounters.splice(meta_json, counters.to_json()))
        assert {k: v for k, v in meta.items() if k != COUNTERS_KEY} == json.loads(meta_json)
        assert TurnCounters.from_meta(meta[COUNTERS_KEY]).as_dict() == counters.as_dict()


def test_malformed_counters_in_a_session_count_from_zero_and_never_raise():
    for value in (None, [], "7", {"handled": -1, "failed": True, "buckets": [1, 2]}, {"seconds_sum": "x"}):
        assert TurnCounters.from_meta(value).as_dict() == TurnCounters().as_dict()
    kept = TurnCounters.from_meta({"handled": 4, "buckets": "no"})
    assert kept.handled == 4 and kept.buckets == [0] * (len(BUCKETS) + 1)


def _deep(depth: int, text: str) -> None:
    """Raises ValueError(text) at the end of a chain of ``depth`` earlier exceptions."""
    if depth:
        try:
            _deep(depth - 1, f"earlier {depth}")
        except ValueError:
            raise ValueError(text)
    raise ValueError(text)


def _raise(n: int) -> BaseException:
    """A ValueError; failure 0 is long: a deep traceback and a long text."""
    try:
        _deep(60 if n == 0 else 0, f"failure {n}" + "x" * (TRACEBACK_CHARS if n == 0 else 0))
    except ValueError as exc:
        return exc
    raise AssertionError("unreachable")


def test_a_failure_record_has_time_message_id_type_text_and_traceback_and_marks_the_meta_changed():
    state = _State()
    record_failure(state, _raise(1), "m1", clock=lambda: 123.0)  # type: ignore[arg-type]
    [record] = failures_of(state.meta)
    assert record["time"] == 123.0 and record["msg_id"] == "m1"
    assert record["type"] == "builtins.ValueError" and record["message"] == "failure 1"
    assert "Traceback (most recent call last)" in record["traceback"] and "_raise" in record["traceback"]
    assert state.changed == 1 and state.counters.failed == 1


def test_failure_records_are_bounded_newest_last_and_a_long_traceback_keeps_its_end():
    state = _State()
    for n in range(FAILURES_KEPT + 3):
        record_failure(state, _raise(n), f"m{n}")  # type: ignore[arg-type]
    records = failures_of(state.meta)
    assert [r["msg_id"] for r in records] == [f"m{n}" for n in range(3, FAILURES_KEPT + 3)]
    assert state.counters.failed == FAILURES_KEPT + 3
    state = _State()
    record_failure(state, _raise(0), "long")  # type: ignore[arg-type]
    text = failures_of(state.meta)[0]["traceback"]
    assert len(text) <= TRACEBACK_CHARS + 10 and text.startswith("...")
    assert text.rstrip().endswith("x...") and "ValueError: failure 0x" in text  # its end: the exception


def test_failures_of_skips_records_of_the_wrong_shape():
    meta = {"failures": [{"time": 1.0, "msg_id": "a", "type": "T", "message": "m", "traceback": "t"},
                         {"time": "soon"}, "text", None]}
    assert [r["msg_id"] for r in failures_of(meta)] == ["a"]
    assert failures_of({"failures": "no"}) == [] and failures_of(None) == []
