"""The activation's decision to pause (``worker.pausing``), with plain values and a
fake clock: which message it pauses at, what it records, when a pause holds or lifts."""

from __future__ import annotations

from actors_runtime.backends.base import Delivered
from actors_runtime.messages import AgentRef, InboxMessage
from actors_runtime.worker.pausing import PAUSED_KEY, SKIPPED_KEY, Pause, hold, pause_of, screen


def line(n):
    return [Delivered(InboxMessage.create(AgentRef("tester"), "task", {"n": i}), i) for i in range(n)]


def never(msg_id):
    return False


def test_the_first_waiting_message_at_max_attempts_is_recorded_as_the_pause(clock):
    recovered = line(4)
    meta = {}
    counts = {recovered[1].id: 1, recovered[2].id: 3, recovered[3].id: 5}
    pause = hold(recovered, counts, 3, meta, "a", never, pause_new=True, clock=clock)
    assert pause == Pause(recovered[2].id, f"message {recovered[2].id} killed the worker 3 times", clock.now, 3)
    assert pause_of(meta) == pause and meta[PAUSED_KEY]["since"] == clock.now


def test_without_pause_new_only_a_recorded_pause_holds(clock):
    recovered = line(2)
    counts = {recovered[0].id: 3}
    assert hold(recovered, counts, 3, {}, "a", never, pause_new=False, clock=clock) is None
    recorded = Pause(recovered[1].id, "why", 5.0, 3)
    meta = {PAUSED_KEY: recorded.to_meta()}
    assert hold(recovered, {}, 3, meta, "a", never, pause_new=False, clock=clock) == recorded
    assert meta[PAUSED_KEY] == recorded.to_meta(), "a pause in force is left as it was"


def test_a_recorded_pause_whose_message_is_gone_or_applied_is_lifted(clock):
    recovered = line(2)
    for meta, applied in (({PAUSED_KEY: Pause("gone", "why", 1.0).to_meta()}, never),
                          ({PAUSED_KEY: Pause(recovered[0].id, "why", 1.0).to_meta()},
                           lambda msg_id: msg_id == recovered[0].id)):
        assert hold(recovered, {}, 3, meta, "a", applied, pause_new=True, clock=clock) is None
        assert PAUSED_KEY not in meta


def test_a_meta_value_of_the_wrong_shape_is_no_pause():
    for value in (None, "x", [], {"msg_id": 5}, {"msg_id": ""}, {"reason": "no id"}):
        assert Pause.from_meta(value) is None
    odd = Pause.from_meta({"msg_id": "m", "reason": 7, "since": float("nan"), "attempts": True})
    assert odd == Pause("m", "", 0.0, 0)


def test_copies_of_skipped_messages_are_dropped_and_not_paused_at(clock):
    recovered = line(3)
    skipped = recovered[1].id
    meta = {SKIPPED_KEY: [skipped, "long-gone"]}
    counts = {skipped: 3}
    dropped = []
    left, pause = screen(recovered, counts, 3, meta, "a", never, True, dropped.append)
    assert pause is None and [d.id for d in left] == [recovered[0].id, recovered[2].id]
    assert [d.id for d in dropped] == [skipped] and skipped not in counts
    assert meta[SKIPPED_KEY] == [skipped], "kept while a copy may come back; gone ids forgotten"
    left, pause = screen([recovered[0]], {}, 3, meta, "a", never, True, dropped.append)
    assert SKIPPED_KEY not in meta
