"""The capacity policy on its own: a fake fleet, a fake clock, threads for the waits."""

from __future__ import annotations

import threading

from actors_runtime.parent.capacity import Capacity, WarmSet, candidates, max_leaving
from conftest import wait_until


class FakeFleet:
    """Actors are idle unless named in ``busy``; a passivation is recorded, and the
    test decides when the worker "exits" (``capacity.release``)."""

    def __init__(self) -> None:
        self.busy: set[str] = set()
        self.passivated: list[str] = []
        self.refuse: set[str] = set()
        self.asked: list[str] = []
        self.changed = threading.Event()

    def is_idle(self, actor_id: str) -> bool:
        self.asked.append(actor_id)
        return actor_id not in self.busy

    def passivate(self, actor_id: str) -> bool:
        if actor_id in self.refuse:
            return False
        self.passivated.append(actor_id)
        self.changed.set()
        return True


def _acquire_in_thread(capacity: Capacity, actor_id: str, timeout: float | None = 10.0) -> dict[str, object]:
    result: dict[str, object] = {}

    def run() -> None:
        result["granted"] = capacity.acquire(actor_id, timeout)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    result["thread"] = thread
    return result


def test_candidates_are_the_idle_actors_least_recently_used_first_and_busy_ones_only_when_preempting():
    busy = {"b"}
    assert list(candidates(["a", "b", "c"], lambda a: a not in busy, preempt=False)) == ["a", "c"]
    assert list(candidates(["a", "b", "c"], lambda a: a not in busy, preempt=True)) == ["a", "c", "b"]


def test_candidates_look_at_an_actor_only_when_the_caller_gets_that_far():
    asked = []

    def idle(actor_id):
        asked.append(actor_id)
        return True

    first = next(candidates(["a", "b", "c"], idle, preempt=False))
    assert first == "a" and asked == ["a"]


def test_the_warm_set_orders_by_last_use_and_forgets_a_passivation_with_the_release(clock):
    warm = WarmSet()
    for actor_id in ("a", "b", "c"):
        warm.admit(actor_id, clock())
        clock.advance(1)
    warm.touch("a", clock())
    warm.touch("zz", clock())  # not warm: nothing changes
    assert warm.order() == ["b", "c", "a"] and len(warm) == 3
    warm.passivating.add("b")
    assert warm.order() == ["c", "a"]
    assert warm.release("b") and "b" not in warm.passivating
    assert not warm.release("b")


def test_without_a_limit_every_start_is_granted_at_once_and_nothing_is_tracked(clock):
    fleet = FakeFleet()
    capacity = Capacity(None, fleet, clock=clock)
    assert all(capacity.acquire(f"a{i}", 0.0) for i in range(100))
    capacity.touch("a1")
    assert capacity.warm() == [] and fleet.passivated == []


def test_a_full_set_passivates_its_least_recently_used_idle_actor_and_the_start_goes_ahead_while_it_exits(clock):
    fleet = FakeFleet()
    capacity = Capacity(2, fleet, clock=clock)
    assert capacity.acquire("a", 0.0) and capacity.acquire("b", 0.0)
    clock.advance(1)
    capacity.touch("a")  # a message for a: b is now the least recently used
    waiting = _acquire_in_thread(capacity, "c")
    waiting["thread"].join(10)
    # b was idle: it handles nothing more, so its slot passed on before it exited.
    assert fleet.passivated == ["b"] and waiting["granted"] is True
    assert capacity.warm() == ["a", "c"] and capacity.leaving() == ["b"]
    capacity.release("b")  # its worker exited: no slot comes free, it had given its own
    assert capacity.warm() == ["a", "c"] and capacity.leaving() == []
    again = _acquire_in_thread(capacity, "d")
    again["thread"].join(10)
    assert fleet.passivated == ["b", "a"] and again["granted"] is True
    assert capacity.warm() == ["c", "d"]


def test_beyond_max_leaving_an_idle_victim_keeps_its_slot_until_it_exits(clock):
    assert max_leaving(2) == 1 and max_leaving(64) == 8
    fleet = FakeFleet()
    capacity = Capacity(2, fleet, clock=clock)
    capacity.acquire("a", 0.0)
    capacity.acquire("b", 0.0)
    first = _acquire_in_thread(capacity, "x")
    first["thread"].join(10)
    assert first["granted"] is True and capacity.leaving() == ["a"]
    second = _acquire_in_thread(capacity, "y")  # a has not exited: one leaving is the most
    wait_until(lambda: fleet.passivated == ["a", "b"])
    assert "granted" not in second and capacity.leaving() == ["a"]
    assert sorted(capacity.warm()) == ["b", "x"]
    capacity.release("b")  # b kept its slot: its exit frees it
    second["thread"].join(10)
    assert second["granted"] is True and sorted(capacity.warm()) == ["x", "y"]
    capacity.release("a")
    assert capacity.leaving() == []


def test_a_busy_victim_keeps_its_slot_until_it_exits(clock):
    fleet = FakeFleet()
    capacity = Capacity(1, fleet, clock=clock, preempt_after=0.0)
    capacity.acquire("a", 0.0)
    fleet.busy.add("a")
    waiting = _acquire_in_thread(capacity, "b")
    wait_until(lambda: fleet.passivated == ["a"])
    assert "granted" not in waiting and capacity.warm() == ["a"] and capacity.leaving() == []
    capacity.release("a")
    waiting["thread"].join(10)
    assert waiting["granted"] is True and capacity.warm() == ["b"]


def test_a_busy_actor_is_passed_over_for_an_idle_one_even_if_it_was_used_longer_ago(clock):
    fleet = FakeFleet()
    capacity = Capacity(2, fleet, clock=clock)
    capacity.acquire("old-busy", 0.0)
    capacity.acquire("newer-idle", 0.0)
    fleet.busy.add("old-busy")
    waiting = _acquire_in_thread(capacity, "c")
    wait_until(lambda: fleet.passivated == ["newer-idle"])
    capacity.release("newer-idle")
    waiting["thread"].join(10)
    assert waiting["granted"] is True and fleet.passivated == ["newer-idle"]


def test_when_every_warm_actor_is_busy_the_start_waits_and_only_the_clock_lets_it_preempt_the_oldest(clock):
    fleet = FakeFleet()
    capacity = Capacity(2, fleet, clock=clock, preempt_after=5.0, recheck=0.01)
    capacity.acquire("a", 0.0)
    capacity.acquire("b", 0.0)
    fleet.busy.update({"a", "b"})
    waiting = _acquire_in_thread(capacity, "c")
    # It keeps looking (both are asked about, again and again) but passivates nothing
    # while the fake clock stands still.
    wait_until(lambda: fleet.asked.count("a") >= 3 and fleet.asked.count("b") >= 3)
    assert fleet.passivated == []
    fleet.busy.discard("b")  # b finished its backlog
    wait_until(lambda: fleet.passivated == ["b"])
    fleet.busy.add("b")
    capacity.release("b")
    waiting["thread"].join(10)
    assert waiting["granted"] is True
    fleet.busy.add("c")
    again = _acquire_in_thread(capacity, "d")
    wait_until(lambda: fleet.asked.count("c") >= 2)
    assert fleet.passivated == ["b"]
    clock.advance(5.0)  # waited long enough: the least recently used busy actor goes
    wait_until(lambda: fleet.passivated == ["b", "a"])
    capacity.release("a")
    again["thread"].join(10)
    assert again["granted"] is True and capacity.warm() == ["c", "d"]


def test_an_actor_that_cannot_be_passivated_is_skipped_for_the_next(clock):
    fleet = FakeFleet()
    capacity = Capacity(2, fleet, clock=clock)
    capacity.acquire("starting", 0.0)
    capacity.acquire("running", 0.0)
    fleet.refuse.add("starting")  # no worker to ask yet
    waiting = _acquire_in_thread(capacity, "c")
    wait_until(lambda: fleet.passivated == ["running"])
    capacity.release("running")
    waiting["thread"].join(10)
    assert waiting["granted"] is True


def test_each_waiter_makes_its_own_room_and_no_victim_is_picked_twice(clock):
    fleet = FakeFleet()
    capacity = Capacity(3, fleet, clock=clock)
    for actor_id in ("a", "b", "c"):
        capacity.acquire(actor_id, 0.0)
    first = _acquire_in_thread(capacity, "x")
    second = _acquire_in_thread(capacity, "y")
    wait_until(lambda: len(fleet.passivated) == 2)
    assert sorted(fleet.passivated) == ["a", "b"]
    for victim in list(fleet.passivated):
        capacity.release(victim)
    first["thread"].join(10)
    second["thread"].join(10)
    assert first["granted"] is True and second["granted"] is True
    assert sorted(capacity.warm()) == ["c", "x", "y"]


def test_a_start_that_finds_no_room_in_time_gives_up_and_an_actor_already_warm_needs_none(clock):
    fleet = FakeFleet()
    capacity = Capacity(1, fleet, clock=clock, recheck=0.01)
    capacity.acquire("a", 0.0)
    fleet.busy.add("a")
    assert capacity.acquire("b", 0.05) is False
    assert capacity.warm() == ["a"]
    assert capacity.acquire("a", 0.0) is True  # a restart of a warm actor keeps its slot


def test_closing_wakes_every_waiter_with_no_slot(clock):
    fleet = FakeFleet()
    capacity = Capacity(1, fleet, clock=clock)
    capacity.acquire("a", 0.0)
    fleet.busy.add("a")
    waiting = _acquire_in_thread(capacity, "b", timeout=None)
    wait_until(lambda: "a" in fleet.asked)
    capacity.close()
    waiting["thread"].join(10)
    assert waiting["granted"] is False


def test_a_busy_victim_activated_again_before_its_release_keeps_the_slot_and_the_waiter_picks_another(clock):
    # The monitor marks a passivated worker's exit and a message activates the actor
    # again before the exit's release reaches the capacity: the slot passes on to the
    # new worker, and the start that passivated it must not wait for a release that
    # will never come.
    fleet = FakeFleet()
    capacity = Capacity(2, fleet, clock=clock, preempt_after=0.0)
    capacity.acquire("a", 0.0)
    capacity.acquire("b", 0.0)
    fleet.busy.update({"a", "b"})  # busy victims keep their slots until they exit
    waiting = _acquire_in_thread(capacity, "c")
    wait_until(lambda: fleet.passivated == ["a"])
    assert capacity.acquire("a", 0.0) is True  # a's worker exited; a message brought it back
    wait_until(lambda: fleet.passivated == ["a", "b"])
    capacity.release("b")
    waiting["thread"].join(10)
    assert waiting["granted"] is True and sorted(capacity.warm()) == ["a", "c"]


def test_a_leaving_actor_activated_again_before_its_release_needs_a_slot_of_its_own(clock):
    fleet = FakeFleet()
    capacity = Capacity(2, fleet, clock=clock)
    capacity.acquire("a", 0.0)
    capacity.acquire("b", 0.0)
    assert capacity.acquire("c", 1.0) is True  # a left, idle: its slot went to c
    assert capacity.leaving() == ["a"]
    assert capacity.acquire("a", 1.0) is True  # its worker exited; a message brought it back
    assert fleet.passivated == ["a", "b"] and sorted(capacity.warm()) == ["a", "c"]
    assert capacity.leaving() == ["b"]


def test_a_passivated_busy_actor_that_died_and_restarts_keeps_its_slot_and_the_waiter_picks_another(clock):
    fleet = FakeFleet()
    capacity = Capacity(2, fleet, clock=clock, preempt_after=0.0)
    capacity.acquire("a", 0.0)
    capacity.acquire("b", 0.0)
    fleet.busy.update({"a", "b"})
    waiting = _acquire_in_thread(capacity, "c")
    wait_until(lambda: fleet.passivated == ["a"])
    fleet.refuse.add("a")  # restarting: no worker to ask until it is back
    capacity.kept("a")  # its worker crashed on the way out: restarting, slot kept
    wait_until(lambda: fleet.passivated == ["a", "b"])
    capacity.release("b")
    waiting["thread"].join(10)
    assert waiting["granted"] is True and sorted(capacity.warm()) == ["a", "c"]


def test_a_leaving_actor_that_died_and_restarts_counts_again_and_the_next_start_makes_room_for_it(clock):
    fleet = FakeFleet()
    capacity = Capacity(2, fleet, clock=clock)
    capacity.acquire("a", 0.0)
    capacity.acquire("b", 0.0)
    assert capacity.acquire("c", 1.0) is True and capacity.leaving() == ["a"]
    capacity.kept("a")  # its worker crashed on the way out and restarts: over by one
    assert sorted(capacity.warm()) == ["a", "b", "c"] and capacity.leaving() == []
    capacity.release("b")  # back at the limit: nothing to make room for
    assert sorted(capacity.warm()) == ["a", "c"]
    fleet.refuse.add("a")
    assert capacity.acquire("d", 1.0) is True
    assert fleet.passivated == ["a", "c"] and sorted(capacity.warm()) == ["a", "d"]


def test_recording_a_cold_actor_never_frees_the_slot_an_activation_took_meanwhile(clock, monkeypatch):
    from types import SimpleNamespace

    from actors_runtime.parent import supervisor as supervisor_module
    from actors_runtime.records import IDLE, STARTING

    capacity = Capacity(2, FakeFleet(), clock=clock)
    sup = SimpleNamespace(lock=threading.RLock(), capacity=capacity, recorder=SimpleNamespace(record=lambda *_: None))
    child = SimpleNamespace(actor_id="a", status=IDLE, alive=False)
    activated = threading.Event()

    def activate() -> None:  # what an activation does: the status under the lock, then a slot
        with sup.lock:
            child.status = STARTING
        assert capacity.acquire("a", 5.0)
        activated.set()

    original = supervisor_module.holds_slot
    activation = threading.Thread(target=activate, daemon=True)

    def looked_then_activated(c):
        held = original(c)  # cold: it holds no slot ...
        activation.start()  # ... and an activation comes in right after the look
        activated.wait(1.0)  # it gets as far as it can before the release (not at all: the lock)
        return held

    monkeypatch.setattr(supervisor_module, "holds_slot", looked_then_activated)
    supervisor_module.Supervisor.record(sup, child)
    activation.join(10)
    assert activated.is_set() and capacity.holds("a")  # the slot the activation took is still its own
