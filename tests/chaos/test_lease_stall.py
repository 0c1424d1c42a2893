"""SIGSTOP a seed-protocol worker past its lease: its lease record expires, but its
claim on the mailbox does not. A second worker started for the same actor meanwhile
is refused and handles nothing; once the first is continued it serves on, and every
message sent throughout is applied exactly once, by the first worker. And the
actor's own system, running beside a hand-started worker that serves it, must leave
that worker alone and get its asks answered."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend
from actors_runtime.control import EXIT_ACTIVATION_FAILED, EXIT_OK
from actors_runtime.spec import Identity, Limits, ProvisionSpec
from conftest import support_env, wait_until

from actors import ActorSystem

from .book import ASK_SHARE, Book, Senders, applied, check_exactly_once, seeded

pytestmark = pytest.mark.chaos

#: Seconds of the first worker's lease: short, so the stall outlives it.
LEASE = 1.0
#: Messages each sending thread sends at most (it stops earlier once told to).
MAX_SENDS = 2_000
#: Tells sent at most at each step of the stall.
BURST = 100


def _seed_worker(spec: ProvisionSpec, log_path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        worker = subprocess.Popen([sys.executable, "-m", "actors_runtime.worker"], stdin=subprocess.PIPE,
                                  stdout=log, stderr=log, env=support_env())
    worker.stdin.write(spec.to_wire())
    worker.stdin.close()
    return worker


def _project(home, project):
    backend = open_backend("maildir", str(home), project_key(str(project)), "process")
    backend.ensure_project(str(project))
    return backend


def _spec(backend, home, name: str) -> ProvisionSpec:
    """A spec for the Ledger ``name`` of system "main" with a short lease (its mailbox made)."""
    backend.mailbox(backend.address("main", name), create=True).close()
    return ProvisionSpec(
        identity=Identity(child_id=name, system_id="main", project_key=backend.project_key),
        actor_class="chaos_actors:Ledger", home=str(home), durability="process",
        limits=Limits(lease=LEASE, max_attempts=1_000))


def _end(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGCONT)
        worker.kill()
        worker.wait()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("resume", ["after_the_second_gave_up", "while_the_second_starts"])
def test_a_worker_stopped_past_its_lease_keeps_its_mailbox_and_a_second_activation_handles_nothing(
        home, project, tmp_path, resume):
    rng = seeded(14_201)
    book = Book()
    backend = _project(home, project)
    spec = _spec(backend, home, "stalled")
    fabric = backend.fabric
    first = _seed_worker(spec, tmp_path / "first.log")
    second = None
    try:
        record = wait_until(lambda: fabric.resolve("stalled"), timeout=30)
        assert record.pid == first.pid
        with ActorSystem(home=home, project=project, name="driver", durability="process") as system:
            done = threading.Event()

            def send(thread_rng, _index):
                for _ in range(MAX_SENDS):
                    if done.is_set():
                        return
                    if thread_rng.random() < ASK_SHARE:
                        book.ask(system, "stalled")
                    else:
                        book.tell(system, "stalled")

            def burst():  # tells from this thread, which never waits for an answer
                for _ in range(rng.randrange(1, BURST)):
                    book.tell(system, "stalled")

            senders = Senders(rng, 2, send)
            try:
                mark = rng.randrange(20, 200)
                wait_until(lambda: book.sent >= mark, timeout=30)
                first.send_signal(signal.SIGSTOP)
                burst()
                wait_until(lambda: not fabric.is_live("stalled"), timeout=30)  # the lease ran out
                burst()
                second = _seed_worker(spec, tmp_path / "second.log")
                burst()
                if resume == "after_the_second_gave_up":
                    assert second.wait(timeout=30) == EXIT_ACTIVATION_FAILED
                    burst()
                first.send_signal(signal.SIGCONT)
                burst()
                assert second.wait(timeout=30) == EXIT_ACTIVATION_FAILED, (tmp_path / "second.log").read_text()
                # The first renews its lease and serves on.
                wait_until(lambda: (fabric.resolve("stalled") or record).pid == first.pid
                           and fabric.is_live("stalled"), timeout=30)
                resumed_at = book.sent
                wait_until(lambda: book.sent >= resumed_at + 50 or not senders.running(), timeout=30)
            finally:
                done.set()
                if first.poll() is None:
                    first.send_signal(signal.SIGCONT)  # the asks waiting for it get their answers
                senders.join()
            seqs = applied(system, ["stalled"], book.confirmed)
            check_exactly_once(seqs, book.confirmed, book.uncertain)
            assert not book.failures, f"asks failed: {book.failures[:5]}"
            assert system.ask("stalled", "pids", timeout=10) == [first.pid]
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == EXIT_OK
        assert fabric.resolve("stalled") is None
    finally:
        _end(first)
        if second is not None:
            _end(second)
        backend.close()


@pytest.mark.timeout(60)
def test_the_actors_own_system_leaves_a_hand_started_worker_serving_and_its_asks_are_answered(
        home, project, tmp_path):
    rng = seeded(14_202)
    book = Book()
    backend = _project(home, project)
    spec = _spec(backend, home, "served")
    worker = _seed_worker(spec, tmp_path / "worker.log")
    try:
        wait_until(lambda: backend.fabric.resolve("served"), timeout=30)
        with ActorSystem(home=home, project=project, durability="process") as system:  # "main", its system
            for _ in range(rng.randrange(1, 50)):
                book.tell(system, "served")
            assert book.ask(system, "served") is None
            # Whatever the system made of those sends has settled (a start it tried is over).
            wait_until(lambda: system.inspect("served").status != "starting", timeout=30)
            for _ in range(rng.randrange(1, 50)):
                book.tell(system, "served")
            error = book.ask(system, "served")
            assert error is None, f"an ask failed while the actor served: {error}"
            seqs = applied(system, ["served"], book.confirmed)
            check_exactly_once(seqs, book.confirmed, book.uncertain)
            assert system.ask("served", "pids", timeout=10) == [worker.pid]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == EXIT_OK
    finally:
        _end(worker)
        backend.close()


@pytest.mark.timeout(60)
def test_messages_sent_while_another_worker_served_are_handled_once_it_is_gone(home, project, tmp_path):
    rng = seeded(14_203)
    book = Book()
    backend = _project(home, project)
    worker = _seed_worker(_spec(backend, home, "served"), tmp_path / "worker.log")
    try:
        wait_until(lambda: backend.fabric.resolve("served"), timeout=30)
        with ActorSystem(home=home, project=project, durability="process") as system:
            worker.send_signal(signal.SIGSTOP)  # its lease stays live a while: the system leaves it alone
            for _ in range(rng.randrange(1, 30)):
                book.tell(system, "served")
            assert system.inspect("served").pid is None
            worker.kill()  # gone with the messages waiting, and no message comes after them
            worker.wait(timeout=30)
            # Only the system's sweep for waiting messages can start the actor now.
            wait_until(lambda: (lambda info: info.status == "running" and info.pending == info.claimed == 0)(
                system.inspect("served")), timeout=30)
            seqs = applied(system, ["served"], book.confirmed)
            check_exactly_once(seqs, book.confirmed, book.uncertain)
    finally:
        _end(worker)
        backend.close()
