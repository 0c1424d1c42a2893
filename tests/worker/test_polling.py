"""Polling before sleeping (``runtime.spinning``): when a wait polls, for how long, and
that a poll finds what a sleep would have (a ring, an answer, a worker's death).

The clocks of ``spinning`` are replaced where a test needs a machine that is busy (no
CPU time passes for the polling thread), and the machine's load (``cpu_to_spare``)
is read from a file the test writes, or taken as light, so that a loaded machine
running the suite decides nothing here; everything else runs for real: a doorbell
rung by another process, a worker asked by a thread that polls its pipe.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import lane_actors
import pytest
from actors_runtime import spinning
from actors_runtime.backends import open_backend
from actors_runtime.backends.maildir import doorbell as doorbell_module
from actors_runtime.backends.maildir.doorbell import Doorbell, Ringer, make_fifo
from actors_runtime.messages import AgentRef, InboxMessage
from actors_runtime.parent import lanes as lanes_module
from actors_runtime.spinning import PolledWait, Spin
from actors_runtime.worker import activation
from conftest import wait_until

_CPU_TO_SPARE = spinning.cpu_to_spare


@pytest.fixture(autouse=True)
def a_cpu_to_spare(monkeypatch):
    """The machine's load decides whether a wait polls; these tests are about the rest
    (the load's own test reads a file it writes)."""
    monkeypatch.setattr(spinning, "cpu_to_spare", lambda: True)


def test_a_wait_polls_only_while_the_machine_has_a_cpu_to_spare(tmp_path, monkeypatch):
    loadavg = tmp_path / "loadavg"
    monkeypatch.setattr(spinning, "_CPUS", 2)
    monkeypatch.setattr(spinning._Load, "fd", -1)  # restored after the test: the process's own

    def spare(text: str | None) -> bool:
        """``cpu_to_spare`` of a /proc/loadavg that reads ``text`` (None: missing), read afresh."""
        if spinning._Load.fd >= 0:
            os.close(spinning._Load.fd)
            spinning._Load.fd = -1
        monkeypatch.setattr(spinning, "LOADAVG", str(loadavg if text is not None else tmp_path / "missing"))
        if text is not None:
            loadavg.write_text(text)
        monkeypatch.setattr(spinning._Load, "read_at", -1.0)
        return _CPU_TO_SPARE()

    try:
        assert spare("0.50 0.40 0.30 2/180 4242\n")  # this thread and one more: 2 CPUs hold them
        assert not spare("3.10 2.40 1.30 3/180 4242\n")
        assert spare("garbage\n") and spare(None)  # unreadable: polling is not refused for it
        assert not spare("0.50 0.40 0.30 9/180 4242\n")
        monkeypatch.setattr(spinning, "cpu_to_spare", _CPU_TO_SPARE)
        assert not Spin(1.0).wanted()  # a busy machine: no polling, however short the waits
    finally:
        if spinning._Load.fd >= 0:
            os.close(spinning._Load.fd)
        monkeypatch.setattr(spinning._Load, "read_at", -1.0)


@pytest.mark.parametrize(("raw", "expected"), [
    ("", 250e-6), ("0", 0.0), ("120", 120e-6), (" 75.5 ", 75.5e-6),
    ("-1", 250e-6), ("nan", 250e-6), ("inf", 250e-6), ("fast", 250e-6),
])
def test_the_budget_comes_from_the_environment_when_it_is_a_number_of_microseconds(monkeypatch, raw, expected):
    monkeypatch.setenv(spinning.ENV, raw)
    assert spinning.budget(250) == pytest.approx(expected)


def test_a_poll_returns_the_first_true_result_of_its_check():
    results = iter([[], [], ["ready"], ["later"]])
    calls = []

    def check():
        calls.append(1)
        return next(results)

    assert Spin(1.0).poll(check) == ["ready"]
    assert len(calls) == 3


def test_a_poll_that_finds_nothing_gives_up_after_its_budget_or_its_limit():
    spin = Spin(0.002)
    start = time.perf_counter()
    assert not spin.poll(lambda: [])
    assert time.perf_counter() - start >= 0.002
    start = time.perf_counter()
    assert not Spin(5.0).poll(lambda: [], 0.001)  # the limit: a wait's timeout
    assert time.perf_counter() - start < 1.0


def test_a_wait_polls_only_while_the_waits_before_it_were_short():
    spin = Spin(0.001)
    assert spin.wanted()  # nothing known yet
    for _ in range(10):
        spin.waited(0.0002)
    assert spin.wanted()
    spin.waited(10.0)  # a pause (counted as four budgets) ...
    assert not spin.wanted()
    spin.waited(0.0002)
    assert spin.wanted()  # ... costs a quick rhythm one wait without polling
    spin.waited(10.0)
    spin.waited(10.0)
    spin.waited(0.0002)
    assert not spin.wanted()  # a quiet actor stops polling for longer
    for _ in range(5):
        spin.waited(0.0001)
    assert spin.wanted()  # quick again


def test_a_budget_of_zero_never_polls():
    spin = Spin(0.0)
    spin.waited(0.0)
    assert not spin.wanted()


def test_a_poll_held_off_the_cpu_backs_off(monkeypatch):
    monkeypatch.setattr(spinning, "_cpu_clock", lambda: 0.0)  # the thread never ran: others had the CPU
    spin = Spin(0.001)
    assert not spin.poll(lambda: [])
    assert spin.wanted()  # once may be an interrupt
    assert not spin.poll(lambda: [])
    assert not spin.wanted()  # twice in a row: the machine is busy
    monkeypatch.setattr(spinning, "_clock", lambda: time.perf_counter() + spinning.BACK_OFF)
    assert spin.wanted()


def test_a_poll_that_found_its_answer_after_being_held_off_the_cpu_backs_off_too(monkeypatch):
    monkeypatch.setattr(spinning, "_cpu_clock", lambda: 0.0)
    spin = Spin(1.0)
    for _ in range(spinning.STRIKES):
        start = time.perf_counter()
        assert spin.poll(lambda: ["late"] if time.perf_counter() - start > 0.001 else [])
    assert not spin.wanted()


def test_one_thread_polls_at_a_time_where_polls_share_a_token():
    token = spinning.Token()
    first, second = Spin(5.0, token), Spin(5.0, token)
    inside, leave = threading.Event(), threading.Event()
    calls = []

    def check():
        inside.set()
        return leave.is_set()

    polling = threading.Thread(target=first.poll, args=(check,))
    polling.start()
    try:
        assert inside.wait(5)
        assert second.poll(lambda: calls.append(1)) is None  # refused without a call
        assert calls == []
    finally:
        leave.set()
        polling.join(5)
    assert second.poll(lambda: "mine") == "mine"  # free again


def test_a_token_held_by_a_thread_at_a_fork_is_free_in_the_child():
    token = spinning.Token()
    assert token.lock.acquire(blocking=False)  # held, as by a thread polling when another forks
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os._exit(0 if token.lock.acquire(blocking=False) else 1)
    token.lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def _ring_later(bell_path: str, delay: float) -> None:
    time.sleep(delay)
    Ringer(bell_path).ring()


def test_a_doorbell_that_polls_finds_a_ring_from_another_process_without_sleeping(tmp_path, monkeypatch):
    path = str(tmp_path / ".bell")
    make_fifo(path)
    bell = Doorbell(path)
    bell.waiting.poll_from(5.0, threading.get_ident())  # a budget that cannot run out before the ring
    calls = []
    original = doorbell_module.wait_readable

    def recorded(fds, timeout):
        calls.append(timeout)
        return original(fds, timeout)

    monkeypatch.setattr(doorbell_module, "wait_readable", recorded)
    ringer = multiprocessing.get_context("fork").Process(target=_ring_later, args=(path, 0.05))
    ringer.start()
    try:
        assert bell.wait(30)
    finally:
        ringer.join(10)
        bell.close()
    assert calls and set(calls) == {0}  # only polls: it never slept


def test_a_doorbell_sleeps_at_once_unless_asked_to_poll_on_the_waiting_thread(tmp_path, monkeypatch):
    path = str(tmp_path / ".bell")
    make_fifo(path)
    bell = Doorbell(path)
    calls = []
    monkeypatch.setattr(doorbell_module, "wait_readable", lambda fds, timeout: calls.append(timeout) or [])
    assert not bell.wait(0.01)
    assert calls == [0.01]
    calls.clear()
    bell.waiting.poll_from(0.001, threading.get_ident() + 1)  # another thread's waits poll
    assert not bell.wait(0.01)
    assert calls == [0.01]
    calls.clear()
    bell.waiting.poll_from(0.001, threading.get_ident())
    assert not bell.wait(0.01)
    bell.close()
    assert calls[0] == 0 and 0 <= calls[-1] <= 0.009  # polled, then slept what was left of the timeout


def _deliver_later(url: str, home: str, key: str, delay: float) -> None:
    time.sleep(delay)
    backend = open_backend(url, home, key, "process")  # its own connections: nothing shared with the parent
    try:
        backend.deliver(backend.address("main", "polled"), [InboxMessage.create(AgentRef("tester"), "task", 1)])
    finally:
        backend.close()


def test_a_redis_mailbox_that_polls_finds_a_delivery_from_another_process_without_sleeping(
        redis_server, tmp_path, monkeypatch):
    key = "polling-00000001"
    backend = open_backend(redis_server.url, str(tmp_path), key, "process")
    mailbox = backend.mailbox(backend.address("main", "polled"), create=True)
    blocked = []
    original = PolledWait.wait

    def recorded(self, poll, block, timeout):
        return original(self, poll, lambda left: blocked.append(left) or block(left), timeout)

    monkeypatch.setattr(PolledWait, "wait", recorded)
    try:
        mailbox.claim()
        assert mailbox.drain() == []
        mailbox.poll_before_sleeping(5.0)  # a budget that cannot run out before the delivery
        sender = multiprocessing.get_context("fork").Process(
            target=_deliver_later, args=(redis_server.url, str(tmp_path), key, 0.05))
        sender.start()
        try:
            assert mailbox.wait(30)
        finally:
            sender.join(10)
        assert blocked == []  # the BLPOP's reply was found polling: the worker never slept
        assert [d.message.body for d in mailbox.drain()] == [1]
    finally:
        mailbox.close()
        backend.close()


def test_a_worker_polls_its_mailbox_with_the_budget_of_its_environment(tmp_path, monkeypatch):
    from actors_runtime.spec import Identity, Limits, ProvisionSpec

    def worker_budget() -> float:
        spec = ProvisionSpec(identity=Identity(child_id="polled", system_id="main", project_key="poll-12345678"),
                             actor_class="lane_actors:Gated", home=str(tmp_path), durability="process",
                             limits=Limits()).validate()
        worker = activation.Worker(spec)
        try:
            return worker.mailbox._bell().waiting.spin.budget
        finally:
            worker.backend.close()

    monkeypatch.delenv(spinning.ENV, raising=False)
    assert worker_budget() == pytest.approx(activation.POLL_US / 1e6)
    monkeypatch.setenv(spinning.ENV, "0")
    assert worker_budget() == 0.0


def _ask_from_a_new_thread(ask):
    """``ask()`` on a thread of its own (its waker, and so its polling, is new); its result."""
    result: list[object] = []
    asker = threading.Thread(target=lambda: result.append(ask()))
    asker.start()
    return asker, result


def test_asks_from_a_polling_thread_are_answered(system, monkeypatch):
    monkeypatch.delenv(spinning.ENV, raising=False)
    polls = []
    original = Spin.poll

    def counted(self, check, limit=None):
        polls.append(limit)
        return original(self, check, limit)

    monkeypatch.setattr(Spin, "poll", counted)
    gated = system.spawn(lane_actors.Gated, name="gated")
    asker, result = _ask_from_a_new_thread(lambda: [gated.ask({"echo": i}, timeout=30) for i in range(50)])
    asker.join(60)
    assert result == [list(range(50))]
    assert polls  # the asker polled its pipe before it slept


def test_a_worker_killed_while_its_asker_polls_ends_the_poll(system, tmp_path, monkeypatch):
    # A budget that cannot run out: only the worker's death (its sentinel) ends the poll.
    monkeypatch.delenv(spinning.ENV, raising=False)
    monkeypatch.setattr(lanes_module, "POLL_US", 60e6)
    polling = []
    original = Spin.poll

    def tracked(self, check, limit=None):
        polling.append(1)
        try:
            return original(self, check, limit)
        finally:
            polling.pop()

    monkeypatch.setattr(Spin, "poll", tracked)
    gated = system.spawn(lane_actors.Gated, name="gated")
    pid = system.pid_of(gated)
    hold, go = str(tmp_path / "hold"), str(tmp_path / "go")
    asker, result = _ask_from_a_new_thread(lambda: gated.ask({"hold": hold, "go": go}, timeout=30))
    wait_until(lambda: os.path.exists(hold) and polling)  # the handler holds; the asker polls
    os.kill(pid, signal.SIGKILL)
    asker.join(40)
    assert result == ["again"]  # the redelivered question, answered by the restarted worker
    assert not polling
