"""An ask's reply read off the worker's pipe by the asking thread (``lanes``).

The pipe has one reader at a time: the monitor, or an asker that found it free.
These tests hold the hand-over to what it must keep: concurrent askers each get
their own answer, whichever thread read it; an asker that gives up leaves the pipe
to the monitor, which drops the late reply; a worker killed while its asker reads
the pipe is restarted and the asker gets the answer of the redelivered ask; what
else comes on the pipe (log records) is handled by whoever reads it. And the epoll
the monitor waits on reports a pipe once per arming, never while it is disarmed.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import Counter

import lane_actors
import pytest
from actors_runtime.parent import lanes as lanes_module
from actors_runtime.parent import monitor as monitor_module
from asking import ask_from_threads
from conftest import wait_until

from actors import AskTimeout


@pytest.fixture
def reads(monkeypatch):
    """Counts the events read off children's pipes, by the kind of thread that read them."""
    counts: Counter[str] = Counter()
    original = lanes_module.read_one

    def counting(sup, child, conn):
        name = threading.current_thread().name
        counts["monitor" if name.startswith("actors-monitor") else "asker"] += 1
        return original(sup, child, conn)

    monkeypatch.setattr(lanes_module, "read_one", counting)
    monkeypatch.setattr(monitor_module, "read_one", counting)
    return counts


def test_concurrent_askers_each_get_their_own_answer(system, reads):
    gated = system.spawn(lane_actors.Gated, name="gated")
    answers = ask_from_threads(gated, lambda n: [{"echo": [n, i]} for i in range(60)], threads=4)
    for n in range(4):
        assert answers[n] == [[n, i] for i in range(60)]
    assert reads["asker"] > 0  # the askers read replies themselves, their own and each other's


def test_an_asker_that_gives_up_leaves_the_late_reply_to_be_dropped(system, tmp_path, reads):
    gated = system.spawn(lane_actors.Gated, name="gated")
    hold, go = str(tmp_path / "hold"), str(tmp_path / "go")
    with pytest.raises(AskTimeout):
        gated.ask({"hold": hold, "go": go}, timeout=0.3)
    assert os.path.exists(hold)  # it was handling the ask when the asker gave up
    monitor_reads = reads["monitor"]
    open(go, "w").close()
    wait_until(lambda: reads["monitor"] > monitor_reads)  # the monitor has the pipe back: it reads the late reply
    assert gated.ask({"echo": "after"}, timeout=20) == "after"
    assert gated.ask({"echo": "and again"}, timeout=20) == "and again"


def test_a_worker_killed_while_its_asker_reads_the_pipe_answers_after_its_restart(system, tmp_path, reads):
    gated = system.spawn(lane_actors.Gated, name="gated")
    pid = {c.name: c for c in system.children()}["gated"].pid
    hold, go = str(tmp_path / "hold"), str(tmp_path / "go")
    result: list[object] = []
    asker = threading.Thread(target=lambda: result.append(gated.ask({"hold": hold, "go": go}, timeout=30)))
    asker.start()
    wait_until(lambda: os.path.exists(hold))
    os.kill(pid, signal.SIGKILL)
    asker.join(40)
    assert result == ["again"]  # the redelivered question, answered by the restarted worker
    child = {c.name: c for c in system.children()}["gated"]
    assert child.pid != pid and child.restarts == 1
    assert gated.ask({"echo": "still here"}, timeout=20) == "still here"


def test_a_log_record_sent_before_the_reply_is_handled_by_the_asker_that_reads_it(system, caplog, reads):
    gated = system.spawn(lane_actors.Gated, name="gated")
    asker_reads = reads["asker"]
    with caplog.at_level(logging.WARNING, logger="lanes"):
        assert gated.ask({"log": "the weather"}, timeout=20) == "the weather"
        # the record went on the pipe before the reply, so it is handled by now
        assert any("asked about the weather" in record.getMessage() for record in caplog.records)
    assert reads["asker"] >= asker_reads + 2


def _pair():
    left, right = socket.socketpair()
    return left, right


def test_the_epoll_reports_a_pipe_once_per_arming_and_never_while_disarmed():
    lanes = lanes_module.Lanes()
    reader, writer = _pair()
    try:
        lanes.sync([reader])
        assert lanes.ready() == []
        writer.send(b"x")
        assert lanes.ready() == [reader]
        assert lanes.ready() == []  # one-shot: reported once, though still readable
        lanes.disarm(reader.fileno())
        lanes.arm(reader.fileno())
        assert lanes.ready() == [reader]
        lanes.disarm(reader.fileno())  # an asker took it
        writer.send(b"y")
        assert lanes.ready() == []
        lanes.arm(reader.fileno())  # it let go with bytes still unread: the monitor hears of them
        assert lanes.ready() == [reader]
    finally:
        lanes.close()
        reader.close()
        writer.close()


def test_a_closed_pipe_leaves_the_epoll_and_a_new_one_on_its_number_is_registered():
    lanes = lanes_module.Lanes()
    first, first_writer = _pair()
    try:
        lanes.sync([first])
        fd = first.fileno()
        first.close()
        first_writer.close()
        second, second_writer = _pair()
        # a descriptor number is reused at once: make the new pipe take the old number
        if second.fileno() != fd:
            os.dup2(second.fileno(), fd)
            second.close()
            second = socket.socket(fileno=fd)
        try:
            lanes.arm(fd)  # an asker re-arming its old pipe's number: harmless
            lanes.sync([second])
            second_writer.send(b"z")
            assert lanes.ready() == [second]
            lanes.sync([])
            lanes.arm(fd)  # unregistered: ignored
            assert lanes.ready() == []
        finally:
            second.close()
            second_writer.close()
    finally:
        lanes.close()


def test_an_asker_reading_the_pipe_wakes_when_another_thread_resolves_its_future(system):
    from concurrent.futures import Future

    system.spawn(lane_actors.Gated, name="gated")
    supervisor = system._supervisor
    lane = lanes_module.Lane.take(supervisor, "gated")
    assert lane is not None
    assert lanes_module.Lane.take(supervisor, "gated") is None  # one reader at a time
    future: Future[object] = Future()
    waiting = threading.Thread(target=lane.wait, args=(future, time.monotonic() + 60))
    waiting.start()
    try:
        future.set_result("from elsewhere")  # as the inbox, a failure or a shutdown would
        waiting.join(30)
        assert not waiting.is_alive()  # woken by its waker, long before its deadline
    finally:
        lane.release()
    again = lanes_module.Lane.take(supervisor, "gated")
    assert again is not None
    again.release()


def test_a_stale_report_of_a_pipe_an_asker_read_empty_never_blocks_the_monitor(system, monkeypatch):
    gated = system.spawn(lane_actors.Gated, name="gated")
    other = system.spawn(lane_actors.Gated, name="other")
    assert gated.ask({"echo": 0}, timeout=20) == 0 and other.ask({"echo": 0}, timeout=20) == 0
    reported, resume = threading.Event(), threading.Event()
    original = lanes_module.Lanes.ready

    def ready_then_preempted(self):
        found = original(self)
        if found and not reported.is_set():
            reported.set()
            resume.wait(20)  # the monitor is preempted right after the report
        return found

    monkeypatch.setattr(lanes_module.Lanes, "ready", ready_then_preempted)
    first = gated.ask_async({"echo": 1})
    assert reported.wait(20)  # its reply is in the pipe, reported to the monitor
    assert gated.ask({"echo": 2}, timeout=20) == 2  # this asker read both replies meanwhile
    assert first.result(20) == 1
    resume.set()
    # The monitor goes on to a pipe that is empty now; it must not wait on it.
    assert other.ask_async({"echo": 3}).result(20) == 3


def test_an_ask_while_a_dead_worker_s_pipe_is_being_closed_is_answered_by_its_next_worker(system, tmp_path,
                                                                                         monkeypatch):
    forker = system.spawn(lane_actors.Forker, name="forker")
    release = str(tmp_path / "release")
    held_by = forker.ask({"fork": release}, timeout=20)  # keeps the worker's end of the pipe open
    closing, go_on = threading.Event(), threading.Event()
    original = monitor_module._inflight_id

    def slow_inflight_id(sup, address):
        closing.set()  # the pipe is closed now; the death is being judged
        go_on.wait(20)
        return original(sup, address)

    monkeypatch.setattr(monitor_module, "_inflight_id", slow_inflight_id)
    try:
        original_take = lanes_module.Lane.take.__func__

        def take_then_go_on(cls, sup, actor_id):
            lane = original_take(cls, sup, actor_id)
            if closing.is_set():
                go_on.set()  # the ask looked for the pipe while the death was being judged
            return lane

        monkeypatch.setattr(lanes_module.Lane, "take", classmethod(take_then_go_on))
        os.kill(system.pid_of(forker), signal.SIGKILL)
        assert closing.wait(20)
        assert forker.ask({"echo": "still here"}, timeout=30) == "still here"
        assert forker.ask({"echo": "and again"}, timeout=20) == "and again"
    finally:
        go_on.set()
        open(release, "w").close()
        wait_until(lambda: not os.path.exists(f"/proc/{held_by}") or _zombie(held_by), timeout=20)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_an_asker_interrupted_while_reading_a_reply_leaves_a_worker_that_answers_again(system, monkeypatch):
    gated = system.spawn(lane_actors.Gated, name="gated")
    assert gated.ask({"echo": 0}, timeout=20) == 0
    pid = system.pid_of(gated)
    original = lanes_module.read_one
    interrupted: list[bool] = []

    def cut_short(sup, child, conn):
        if not interrupted and threading.current_thread() is threading.main_thread():
            interrupted.append(True)
            os.read(conn.fileno(), 4)  # the reply's length is read ...
            raise KeyboardInterrupt  # ... and Ctrl-C lands before its body is
        return original(sup, child, conn)

    monkeypatch.setattr(lanes_module, "read_one", cut_short)
    with pytest.raises(KeyboardInterrupt):
        gated.ask({"echo": 1}, timeout=20)
    # The pipe was given up and its worker killed; supervision starts a new one.
    wait_until(lambda: system.pid_of(gated) not in (None, pid), timeout=20)
    assert gated.ask({"echo": 2}, timeout=20) == 2
    assert gated.ask({"echo": 3}, timeout=20) == 3
