"""SIGKILL workers at every point of their loop and at random moments: nothing lost,
nothing applied twice, every ask answered."""

from __future__ import annotations

import chaos_actors
import crash_actors
import pytest
from conftest import ON_EVERY_BACKEND, descendants, wait_until

from actors import ActorSystem

from .book import Book, Senders, applied, check_exactly_once, kill, mixed_stream, seeded

pytestmark = pytest.mark.chaos

STREAM = 500


@pytest.mark.timeout(60)
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
        for seq in range(STREAM):
            ref.tell({"n": 1, "seq": seq})
        wait_until(lambda: ref.ask("count", timeout=10) >= STREAM and system.inspect(ref).pending == 0, timeout=60)
        seqs = ref.ask("seqs", timeout=10)
        check_exactly_once({"killable": seqs}, {"killable": set(range(STREAM))})
        assert ref.ask("count", timeout=10) == STREAM
        assert sorted(p.name for p in plan_dir.iterdir()) == ["ack.done", "commit.done", "handle.done"]
        info = {c.name: c for c in system.children()}["killable"]
        assert info.restarts == 3 and info.status == "running"
        assert system.pid_of(ref) != first_pid
        assert system.dead_letters(ref) == []


@ON_EVERY_BACKEND
@pytest.mark.timeout(60)
def test_external_sigkills_at_random_moments_during_a_stream_lose_and_repeat_nothing(system):
    rng = seeded(1234)
    book = Book()
    system.spawn(chaos_actors.Ledger, name="ledger", max_attempts=100)
    senders = Senders(rng, 1, lambda _rng, _i: [book.tell(system, "ledger") for _ in range(STREAM)])
    kills = []
    try:
        for round_ in range(3):
            # Kill whichever worker runs once it has made some progress.
            progress = round_ * 100
            wait_until(lambda progress=progress: system.pid_of("ledger") is not None
                       and len(system.ask("ledger", "seqs", timeout=10)) > progress, timeout=30)
            for _ in range(rng.randrange(1, 4)):
                system.ask("ledger", "seqs", timeout=10)
            pid = system.pid_of("ledger")
            assert kill(pid)
            kills.append(pid)
            wait_until(lambda pid=pid: system.pid_of("ledger") not in (None, pid), timeout=30)
    finally:
        senders.join()
    seqs = applied(system, ["ledger"], book.confirmed)
    check_exactly_once(seqs, book.confirmed)
    assert len(book.confirmed["ledger"]) == STREAM
    assert len(set(kills)) == 3


ACTORS = 4
THREADS = 4
OPS_PER_THREAD = 500
KILLS = 16


@pytest.mark.timeout(90)
def test_random_sigkills_while_four_threads_tell_and_ask_several_actors_lose_and_repeat_nothing(home, project):
    rng = seeded(14_001)
    book = Book()
    names = [f"ledger-{i}" for i in range(ACTORS)]
    killed: list[tuple[str, int]] = []
    # Deaths here are the test's doing: neither the restart budget nor the poison
    # count may end an actor's run (that is what test_poison_budget is about).
    with ActorSystem(home=home, project=project, durability="process", pool_size=2,
                     restart_limit=1_000) as system:
        for name in names:
            system.spawn(chaos_actors.Ledger, name=name, max_attempts=1_000)
        senders = mixed_stream(rng, book, system, names, THREADS, OPS_PER_THREAD)
        try:
            # The moments, as counts of messages sent, spread over the stream's first 90%.
            for mark in sorted(rng.randrange(THREADS * OPS_PER_THREAD * 9 // 10) for _ in range(KILLS)):
                wait_until(lambda mark=mark: book.sent >= mark or not senders.running(), timeout=60)
                if not senders.running():
                    break
                if rng.random() < 0.25:
                    # Any worker that is not an actor's running one: parked in the
                    # pool, or being started (a restart, or a refill).
                    serving = {system.pid_of(name) for name in names}
                    others = sorted(descendants() - serving)
                    if others:
                        victim = rng.choice(others)
                        if kill(victim):
                            killed.append(("(spare)", victim))
                    continue
                name = rng.choice(names)
                pid = system.pid_of(name)
                if pid is not None and kill(pid):
                    killed.append((name, pid))
        finally:
            senders.join()
        seqs = applied(system, names, book.confirmed)
        check_exactly_once(seqs, book.confirmed, book.uncertain)
        assert not book.failures, f"asks failed: {book.failures[:5]}"
        assert sum(len(book.confirmed[name]) for name in names) == THREADS * OPS_PER_THREAD
        for name in names:
            assert system.inspect(name).status == "running"
            assert system.dead_letters(name) == []
    print(f"killed: {killed}")
    assert len(killed) >= KILLS // 2


@pytest.mark.timeout(60)
def test_a_worker_killed_in_on_start_while_it_restarts_is_restarted_again_and_loses_nothing(
        home, project, tmp_path):
    rng = seeded(14_002)
    book = Book()
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir()
    with ActorSystem(home=home, project=project, durability="process", restart_limit=1_000) as system:
        system.spawn(chaos_actors.Ledger, name="ledger", secrets={"hold_dir": str(hold_dir)}, max_attempts=1_000)
        senders = mixed_stream(rng, book, system, ["ledger"], 2, 200)
        try:
            mark = rng.randrange(20, 80)
            wait_until(lambda: book.sent >= mark, timeout=30)
            (hold_dir / "hold").touch()  # the next activation holds in on_start
            first = system.pid_of("ledger")
            assert kill(first)
            holding = wait_until(lambda: list(hold_dir.glob("holding-*")), timeout=30)
            held = int(holding[0].name.removeprefix("holding-"))
            assert held != first
            assert kill(held)  # inside on_start of the restart
            (hold_dir / "hold").unlink()  # the one after goes through
            wait_until(lambda: system.pid_of("ledger") not in (None, first, held), timeout=30)
        finally:
            senders.join()
        seqs = applied(system, ["ledger"], book.confirmed)
        check_exactly_once(seqs, book.confirmed, book.uncertain)
        assert not book.failures, f"asks failed: {book.failures[:5]}"
        assert held not in system.ask("ledger", "pids", timeout=10)  # it applied nothing
        info = system.inspect("ledger")
        assert info.status == "running" and info.restarts >= 2
