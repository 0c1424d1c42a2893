"""SIGKILL a worker at every point of its loop: nothing lost, nothing applied twice."""

from __future__ import annotations

import os
import random
import signal
import threading

import crash_actors
import pytest
import sample_actors
from conftest import open_project, wait_until

from actors import ActorSystem

STREAM = 500


def _settled(ref, expected):
    """The count once every message is handled and acked."""
    backend = open_project(ref.address)
    box = backend.view(ref.address)
    try:
        wait_until(lambda: ref.ask("count", timeout=10) >= expected and box.pending_count() == 0, timeout=60)
    finally:
        box.close()
        backend.close()
    return ref.ask("count", timeout=10)


@pytest.mark.parametrize("durability", ["process", "machine"])
def test_kills_inside_a_handler_after_commit_and_after_ack_lose_nothing_and_repeat_nothing(
        home, project, tmp_path, durability):
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    kill_at = {"handle": 60, "commit": 200, "ack": 350}
    with ActorSystem(home=home, project=project, durability=durability) as system:
        ref = system.spawn(crash_actors.Killable, name="killable",
                           secrets={"plan_dir": str(plan_dir), "kill_at": kill_at})
        first_pid = system.pid_of(ref)
        for _ in range(STREAM):
            ref.tell({"n": 1})
        assert _settled(ref, STREAM) == STREAM
        assert sorted(p.name for p in plan_dir.iterdir()) == ["ack.done", "commit.done", "handle.done"]
        info = {c.name: c for c in system.children()}["killable"]
        assert info.restarts == 3 and info.status == "running"
        assert system.pid_of(ref) != first_pid
        assert system.dead_letters(ref) == []


def test_external_sigkills_at_random_moments_during_a_stream_lose_and_repeat_nothing(system):
    ref = system.spawn(sample_actors.Counter, name="counter")
    rng = random.Random(1234)
    kills = []
    sent = threading.Event()

    def stream():
        for _ in range(STREAM):
            ref.tell({"n": 1})
        sent.set()

    sender = threading.Thread(target=stream)
    sender.start()
    try:
        for _ in range(3):
            # Kill whichever worker runs once it has made some progress.
            wait_until(lambda: system.pid_of(ref) is not None and ref.ask("count", timeout=10) > len(kills) * 100)
            for _ in range(rng.randrange(1, 4)):
                ref.ask("count", timeout=10)
            pid = system.pid_of(ref)
            os.kill(pid, signal.SIGKILL)
            kills.append(pid)
            wait_until(lambda: system.pid_of(ref) not in (None, pid))
    finally:
        sender.join()
    assert sent.is_set()
    assert _settled(ref, STREAM) == STREAM
    assert len(set(kills)) == 3
