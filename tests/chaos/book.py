"""What a chaos test sent, and the checks that each message was applied exactly once.

Every message carries a sequence number unique within its test; ``Ledger`` actors
(tests/support/chaos_actors.py) keep the numbers they applied in their state. A
number is *confirmed* once its tell returned or its steer ask was answered: it must
be applied exactly once. One whose ask failed with an ``ActorError`` is *uncertain*:
it may be applied or not, but at most once.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import threading
from typing import Callable

from conftest import wait_until

from actors import ActorError

#: Seconds an ask of a chaos test waits: long enough for a few restarts' backoff.
ASK_TIMEOUT = 30.0
#: The share of a stream's messages sent as steer asks (the rest are tells).
ASK_SHARE = 0.2


def seeded(default: int) -> random.Random:
    """The test's random source: ``CHAOS_SEED`` if set, else ``default``; the seed is
    printed, so a failure's captured output says how to replay it."""
    seed = int(os.environ.get("CHAOS_SEED", default))
    print(f"chaos seed: {seed} (replay with CHAOS_SEED={seed})")
    return random.Random(seed)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie is dead: only its parent's wait is missing)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Book:
    """The sequence numbers sent to each actor (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self.confirmed: dict[str, set[int]] = collections.defaultdict(set)
        self.uncertain: dict[str, set[int]] = collections.defaultdict(set)
        #: (actor, seq, error) of every ask that failed with an ActorError.
        self.failures: list[tuple[str, int, ActorError]] = []

    def next_seq(self) -> int:
        with self._lock:
            self._next += 1
            return self._next

    @property
    def sent(self) -> int:
        with self._lock:
            return self._next

    def confirm(self, name: str, seq: int) -> None:
        with self._lock:
            self.confirmed[name].add(seq)

    def fail(self, name: str, seq: int, error: ActorError) -> None:
        with self._lock:
            self.uncertain[name].add(seq)
            self.failures.append((name, seq, error))

    def tell(self, system, name: str) -> None:
        """Tell ``name`` the next number; confirmed once the tell returned."""
        seq = self.next_seq()
        system.tell(name, {"seq": seq})
        self.confirm(name, seq)

    def ask(self, system, name: str) -> ActorError | None:
        """Ask ``name`` to apply the next number (a steer ask, so the change is kept).

        An answer confirms it (and must be the number); an ``ActorError`` leaves it
        uncertain and is returned; any other exception fails the test.
        """
        seq = self.next_seq()
        try:
            answer = system.ask(name, {"seq": seq}, mode="steer", timeout=ASK_TIMEOUT)
        except ActorError as exc:
            self.fail(name, seq, exc)
            return exc
        assert answer == seq, f"{name} answered {answer!r} to seq {seq}"
        self.confirm(name, seq)
        return None


class Senders:
    """``count`` threads, each running ``body(rng, index)`` with a random source of its
    own drawn from ``rng``; ``join`` re-raises the first error a thread met."""

    def __init__(self, rng: random.Random, count: int, body: Callable[[random.Random, int], None]) -> None:
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(body, random.Random(rng.random()), i),
                                         name=f"chaos-sender-{i}") for i in range(count)]
        for thread in self.threads:
            thread.start()

    def _run(self, body: Callable[[random.Random, int], None], rng: random.Random, index: int) -> None:
        try:
            body(rng, index)
        except BaseException as exc:
            self.errors.append(exc)

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def join(self) -> None:
        for thread in self.threads:
            thread.join()
        if self.errors:
            raise self.errors[0]


def mixed_stream(rng: random.Random, book: Book, system, names: list[str], threads: int, ops: int,
                 ask_share: float = ASK_SHARE) -> Senders:
    """``threads`` threads each sending ``ops`` messages to random actors of ``names``:
    asks with probability ``ask_share``, tells otherwise, all recorded in ``book``."""

    def send(thread_rng: random.Random, _index: int) -> None:
        for _ in range(ops):
            name = thread_rng.choice(names)
            if thread_rng.random() < ask_share:
                book.ask(system, name)
            else:
                book.tell(system, name)

    return Senders(rng, threads, send)


def kill(pid: int) -> bool:
    """SIGKILL ``pid``; False if it was gone already."""
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


def applied(system, names, confirmed: dict[str, set[int]], timeout: float = 60.0) -> dict[str, list[int]]:
    """Wait until every ``confirmed`` number is applied and nothing waits in the
    mailboxes; returns each actor's applied numbers, in the order applied."""

    def settled_one(name: str) -> bool:
        if not confirmed.get(name, set()) <= set(system.ask(name, "seqs", timeout=ASK_TIMEOUT)):
            return False
        info = system.inspect(name)
        return info.pending == 0 and info.claimed == 0

    waiting = set(names)

    def all_settled() -> bool:
        waiting.difference_update([name for name in sorted(waiting) if settled_one(name)])
        return not waiting

    wait_until(all_settled, timeout=timeout)
    return {name: system.ask(name, "seqs", timeout=ASK_TIMEOUT) for name in names}


def check_exactly_once(seqs_by_name: dict[str, list[int]], confirmed: dict[str, set[int]],
                       uncertain: dict[str, set[int]] | None = None) -> None:
    """Every confirmed number applied once, no number twice, nothing never sent."""
    uncertain = uncertain or {}
    for name, seqs in seqs_by_name.items():
        twice = sorted(seq for seq, times in collections.Counter(seqs).items() if times > 1)
        assert not twice, f"{name}: applied more than once: {twice[:20]}"
        lost = sorted(confirmed.get(name, set()) - set(seqs))
        assert not lost, f"{name}: {len(lost)} confirmed messages never applied: {lost[:20]}"
        strangers = sorted(set(seqs) - confirmed.get(name, set()) - uncertain.get(name, set()))
        assert not strangers, f"{name}: applied numbers never sent to it: {strangers[:20]}"
