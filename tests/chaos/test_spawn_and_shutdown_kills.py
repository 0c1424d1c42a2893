"""SIGKILL a worker while its spawn runs on_start, and while system.shutdown() runs:
the spawn fails with SpawnError and the next one resumes; the shutdown finishes and
the next system resumes; no message is lost or applied twice."""

from __future__ import annotations

import os
import signal
import threading

import chaos_actors
import pytest
from conftest import wait_until

from actors import ActorFailed, ActorSystem, SpawnError, SystemShutDown

from .book import ASK_SHARE, ASK_TIMEOUT, Book, Senders, alive, applied, check_exactly_once, seeded

pytestmark = pytest.mark.chaos


def _holders(hold_dir):
    """The pids of the workers that held in hold_dir so far."""
    return [int(p.name.removeprefix("holding-")) for p in hold_dir.glob("holding-*")]


def _held_pid(hold_dir):
    """The pid of the first worker to hold in hold_dir, once there is one."""
    return wait_until(lambda: next(iter(_holders(hold_dir)), None), timeout=30)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pool_size", [0, 1])
def test_a_worker_killed_in_on_start_fails_its_spawn_and_the_next_spawn_applies_everything_once(
        home, project, tmp_path, pool_size):
    rng = seeded(14_301)
    book = Book()
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir()
    secrets = {"hold_dir": str(hold_dir)}
    with ActorSystem(home=home, project=project, durability="process", pool_size=pool_size) as system:
        system.spawn(chaos_actors.Ledger, name="ledger", secrets=secrets)
        for _ in range(rng.randrange(1, 100)):
            book.tell(system, "ledger")
        assert book.ask(system, "ledger") is None
        system.stop("ledger")  # a spawn resumes an actor that does not run
        for _ in range(rng.randrange(1, 100)):
            book.tell(system, "ledger")  # activates it again: wait for that worker, then stop it
        wait_until(lambda: system.inspect("ledger").status == "running", timeout=30)
        system.stop("ledger")

        (hold_dir / "hold").touch()
        outcome: list[BaseException | None] = []

        def spawn():
            try:
                system.spawn(chaos_actors.Ledger, name="ledger", secrets=secrets)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        spawning = threading.Thread(target=spawn)
        spawning.start()
        killed: list[int] = []
        try:
            # A warm worker that dies before it registers is replaced once by a new
            # process (the pool's rule): that one holds too, and is killed too.
            while True:
                wait_until(lambda: set(_holders(hold_dir)) - set(killed) or not spawning.is_alive(), timeout=30)
                fresh = sorted(set(_holders(hold_dir)) - set(killed))
                if not fresh:
                    break
                for _ in range(rng.randrange(1, 100)):
                    book.tell(system, "ledger")  # while its on_start runs
                os.kill(fresh[0], signal.SIGKILL)
                killed.append(fresh[0])
        finally:
            spawning.join(timeout=60)
        assert len(outcome) == 1 and isinstance(outcome[0], SpawnError), outcome
        assert 1 <= len(killed) <= 1 + pool_size
        (hold_dir / "hold").unlink()
        assert system.inspect("ledger").status == "failed"
        for _ in range(rng.randrange(1, 100)):
            book.tell(system, "ledger")  # kept for the next spawn
        error = book.ask(system, "ledger")
        assert isinstance(error, ActorFailed)  # at once: it is marked failed

        system.spawn(chaos_actors.Ledger, name="ledger", secrets=secrets)
        seqs = applied(system, ["ledger"], book.confirmed)
        check_exactly_once(seqs, book.confirmed, book.uncertain)
        assert not set(killed) & set(system.ask("ledger", "pids", timeout=10))
        assert system.inspect("ledger").status == "running"
        assert system.dead_letters("ledger") == []


ACTORS = 3


@pytest.mark.timeout(90)
def test_workers_killed_while_shutdown_runs_leave_nothing_behind_and_the_next_system_applies_everything_once(
        home, project, tmp_path):
    rng = seeded(14_302)
    book = Book()
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir()
    names = [f"ledger-{i}" for i in range(ACTORS)]
    secrets = {"hold_dir": str(hold_dir)}
    system = ActorSystem(home=home, project=project, durability="process")
    try:
        for name in names:
            system.spawn(chaos_actors.Ledger, name=name, secrets=secrets, max_attempts=1_000)

        def send(thread_rng, _index):
            # Until the shutdown refuses a tell: a tell that returned is confirmed; one
            # refused was not sent; an ask may fail with SystemShutDown (typed).
            for _ in range(3_000):
                name = thread_rng.choice(names)
                if thread_rng.random() < ASK_SHARE:
                    if isinstance(book.ask(system, name), SystemShutDown):
                        return
                    continue
                seq = book.next_seq()
                try:
                    system.tell(name, {"seq": seq})
                except SystemShutDown as exc:
                    book.fail(name, seq, exc)
                    return
                book.confirm(name, seq)

        senders = Senders(rng, 2, send)
        mark = rng.randrange(100, 600)
        wait_until(lambda: book.sent >= mark, timeout=30)
        # One worker holds inside a handler, so the shutdown waits for it.
        holder = rng.choice(names)
        seq = book.next_seq()
        system.tell(holder, {"seq": seq, "hold": True})
        book.confirm(holder, seq)
        held = _held_pid(hold_dir)
        others = {name: system.pid_of(name) for name in names if name != holder}
        shutting = threading.Thread(target=system.shutdown, kwargs={"timeout": 20.0})
        shutting.start()
        try:
            victim = rng.choice(sorted(others))
            try:
                os.kill(others[victim], signal.SIGKILL)  # whatever it is doing of its stop
            except ProcessLookupError:
                pass
            wait_until(lambda: not any(alive(pid) for pid in others.values()), timeout=30)
            assert shutting.is_alive()  # still waiting for the holder
            os.kill(held, signal.SIGKILL)
            (hold_dir / "released").touch()
        finally:
            shutting.join(timeout=60)
            senders.join()
        assert not shutting.is_alive()
        assert not alive(held)
    finally:
        system.shutdown()
    unexpected = [error for _, _, error in book.failures if not isinstance(error, SystemShutDown)]
    assert not unexpected, unexpected[:5]
    with ActorSystem(home=home, project=project, durability="process") as system:
        for name in names:
            system.spawn(chaos_actors.Ledger, name=name, secrets=secrets, max_attempts=1_000)
        seqs = applied(system, names, book.confirmed)
        check_exactly_once(seqs, book.confirmed, book.uncertain)
        for name in names:
            assert system.inspect(name).status == "running"
            assert system.dead_letters(name) == []
        assert system.ask(holder, "seqs", timeout=ASK_TIMEOUT).count(seq) == 1
