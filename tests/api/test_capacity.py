"""ActorSystem(max_active=N) with real worker processes: the bound, exactly-once
handling and state across passivation, and no passivation in the middle of a message."""

from __future__ import annotations

import os
import threading

import capacity_actors
import pytest
from actors_runtime.parent.capacity import max_leaving
from conftest import descendants, handling, wait_until

from actors import ActorSystem, InvalidSpec


class Sampler:
    """Counts the system's live child processes (its workers) and the actors holding
    a capacity slot over and over on a thread, and keeps the most seen at once."""

    def __init__(self, system: ActorSystem) -> None:
        self.capacity = system._supervisor.capacity
        self.most = 0
        self.most_warm = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.is_set():
            self.most = max(self.most, len(descendants()))
            self.most_warm = max(self.most_warm, len(self.capacity.warm()))
            self._done.wait(0.002)

    def check(self, limit: int) -> None:
        """At most ``limit`` actors held a slot; the processes of idle victims on their
        way out are the only ones beyond it (see ``capacity``)."""
        assert self.most_warm <= limit, f"{self.most_warm} actors held a slot at once"
        assert self.most <= limit + max_leaving(limit), f"{self.most} workers alive at once"

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(10)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_max_active_must_be_a_positive_count_or_none(home, project, bad):
    with pytest.raises(InvalidSpec, match="max_active"):
        ActorSystem(home=home, project=project, max_active=bad)


def test_five_actors_told_in_turn_under_max_active_2_never_run_more_than_2_workers_and_keep_their_state(
        home, project):
    rounds, names = 4, [f"tally-{i}" for i in range(5)]
    with ActorSystem(home=home, project=project, durability="process", max_active=2) as system:
        with Sampler(system) as sampler:
            refs = [system.spawn(capacity_actors.Tally, name=name) for name in names]
            seq = 0
            for _ in range(rounds):
                for ref in refs:
                    ref.tell({"seq": seq})
                    seq += 1
                    assert str(seq - 1) in ref.ask("state", timeout=30)["seen"]  # handled before the next
                    assert len(system._supervisor.capacity.warm()) <= 2
            states = {ref.name: ref.ask("state", timeout=30) for ref in refs}
        sampler.check(2)
        for i, name in enumerate(names):
            expected = {str(r * len(names) + i): 1 for r in range(rounds)}
            assert states[name]["seen"] == expected  # every message once, none lost
            # Passivated and activated again between its messages, keeping its state:
            # more than one worker served it.
            assert len(states[name]["pids"]) > 1
        statuses = {c.name: c.status for c in system.children()}
        assert sorted(statuses.values()).count("running") <= 2
        assert set(statuses.values()) <= {"running", "idle"}  # passivated = idle, never stopped
        assert all(c.restarts == 0 for c in system.children())


def test_a_passivated_actor_comes_back_for_its_next_message_and_a_spawned_one_counts_too(home, project):
    with ActorSystem(home=home, project=project, durability="process", max_active=1) as system:
        first = system.spawn(capacity_actors.Tally, name="first")
        first.tell({"seq": 1})
        assert first.ask("state", timeout=30)["seen"] == {"1": 1}
        second = system.spawn(capacity_actors.Tally, name="second")  # passivates first
        assert system.pid_of(first) is None
        assert {c.name: c.status for c in system.children()}["first"] == "idle"
        first.tell({"seq": 2})
        assert first.ask("state", timeout=30)["seen"] == {"1": 1, "2": 1}
        assert system.pid_of(second) is None


def test_a_busy_actor_is_not_passivated_in_the_middle_of_a_message(home, project, tmp_path):
    hold = tmp_path / "hold"
    hold.mkdir()
    with ActorSystem(home=home, project=project, durability="process", max_active=1) as system:
        with Sampler(system) as sampler:
            waiter = system.spawn(capacity_actors.Tally, name="waiter")
            busy = system.spawn(capacity_actors.Tally, name="busy")  # passivates waiter (idle)
            busy_pid = system.pid_of(busy)
            busy.tell({"seq": 1, "hold": str(hold)})
            wait_until(lambda: (hold / "holding").exists())
            waiter.tell({"seq": 2})  # needs the only slot, held by an actor mid-message
            child = system._supervisor.children["busy"]
            # After a second of finding it busy the start asks it to go; it has not gone.
            wait_until(lambda: child.passivating, timeout=20)
            assert handling(busy) and system.pid_of(busy) == busy_pid
            assert os.path.exists(f"/proc/{busy_pid}") and system.pid_of(waiter) is None
            (hold / "released").touch()
            # The held message is finished and committed, then the worker leaves and
            # the waiting actor starts.
            assert waiter.ask("state", timeout=30)["seen"] == {"2": 1}
            assert busy.ask("state", timeout=30)["seen"] == {"1": 1}
        sampler.check(1)
        assert all(c.restarts == 0 and c.reason == "" for c in system.children())


def test_a_burst_of_tells_to_more_actors_than_fit_is_handled_once_each_within_the_bound(home, project):
    names = [f"burst-{i}" for i in range(6)]
    with ActorSystem(home=home, project=project, durability="process", max_active=2) as system:
        with Sampler(system) as sampler:
            refs = [system.spawn(capacity_actors.Tally, name=name) for name in names]
            for seq in range(60):  # no waiting between tells: activations queue for slots
                refs[seq % len(refs)].tell({"seq": seq})
            states = {ref.name: ref.ask("state", timeout=60) for ref in refs}
        sampler.check(2)
        for i, name in enumerate(names):
            assert states[name]["seen"] == {str(seq): 1 for seq in range(i, 60, len(names))}


def test_an_idle_victim_gives_its_slot_to_the_start_before_its_worker_has_exited(home, project, tmp_path):
    hold = tmp_path / "hold"
    hold.mkdir()
    with ActorSystem(home=home, project=project, durability="process", max_active=1) as system:
        leaving = system.spawn(capacity_actors.SlowToLeave, name="leaving")
        leaving.tell({"hold_stop": str(hold)})
        leaving.tell({"seq": 1})
        assert leaving.ask("state", timeout=30)["seen"] == {"1": 1}
        leaving_pid = system.pid_of(leaving)
        capacity = system._supervisor.capacity
        with Sampler(system) as sampler:
            target = system.spawn(capacity_actors.Tally, name="target")  # passivates the idle one
            # The target started and answers while the victim's worker is still in on_stop.
            assert target.ask("state", timeout=30)["seen"] == {}
            assert (hold / "stopping").exists() and os.path.exists(f"/proc/{leaving_pid}")
            assert capacity.warm() == ["target"] and capacity.leaving() == ["leaving"]
            leaving.tell({"seq": 2})  # for the actor on its way out: handled by its next worker
            (hold / "go").touch()
            assert leaving.ask("state", timeout=30)["seen"] == {"1": 1, "2": 1}
            assert system.pid_of(leaving) not in (None, leaving_pid)
            # The target made room for it in turn: idle, it gave its slot up when asked
            # to go, so "leaving" may answer before the target's worker has exited.
            wait_until(lambda: system.pid_of(target) is None, timeout=30)
        sampler.check(1)
        assert capacity.leaving() == [] or capacity.leaving() == ["target"]
        assert all(c.restarts == 0 for c in system.children())
