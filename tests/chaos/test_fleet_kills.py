"""A hundred actors, four sending threads, and a random sample of workers SIGKILLed
along the way: every actor's count is exact, with no message lost or doubled."""

from __future__ import annotations

import chaos_actors
import pytest
from conftest import wait_until

from actors import ActorSystem

from .book import Book, applied, check_exactly_once, kill, mixed_stream, seeded

pytestmark = pytest.mark.chaos

ACTORS = 100
THREADS = 4
OPS_PER_THREAD = 600
#: Asks are round trips: a smaller share than elsewhere keeps the test short.
ASK_SHARE = 0.05
VICTIMS = 15


@pytest.mark.timeout(120)
def test_a_hundred_actors_with_a_random_sample_killed_mid_stream_apply_every_message_exactly_once(home, project):
    rng = seeded(14_401)
    book = Book()
    names = [f"ledger-{i:03d}" for i in range(ACTORS)]
    killed: list[tuple[str, int]] = []
    with ActorSystem(home=home, project=project, durability="process", restart_limit=1_000) as system:
        for name in names:
            system.spawn(chaos_actors.Ledger, name=name, max_attempts=1_000)
        senders = mixed_stream(rng, book, system, names, THREADS, OPS_PER_THREAD, ASK_SHARE)
        try:
            total = THREADS * OPS_PER_THREAD
            marks = sorted(rng.randrange(total * 9 // 10) for _ in range(VICTIMS))
            for mark, name in zip(marks, rng.sample(names, VICTIMS)):
                wait_until(lambda mark=mark: book.sent >= mark or not senders.running(), timeout=60)
                pid = system.pid_of(name)
                if pid is not None and kill(pid):
                    killed.append((name, pid))
        finally:
            senders.join()
        seqs = applied(system, names, book.confirmed, timeout=90)
        check_exactly_once(seqs, book.confirmed, book.uncertain)
        assert not book.failures, f"asks failed: {book.failures[:5]}"
        assert sum(len(seqs[name]) for name in names) == total
        for name, _ in killed:
            assert system.inspect(name).status == "running"
            assert system.dead_letters(name) == []
    print(f"killed: {killed}")
    assert len(killed) >= VICTIMS // 2
