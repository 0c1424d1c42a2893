"""Timer logic with an injected clock: the table, firing, coalescing, settling at
admission, delayed messages kept until due, rollback, and the parent's wake schedule.
Workers run in this process on the memory backend; time moves only by hand."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import pytest
from actors_runtime.backends import open_backend
from actors_runtime.backends.base import Backend
from actors_runtime.backends.memory import forget_all
from actors_runtime.due import deliver_at, due_from, period_of
from actors_runtime.errors import InvalidSpec
from actors_runtime.messages import AgentRef, AskBody, InboxMessage
from actors_runtime.parent.wakes import Wakes, next_due_in
from actors_runtime.spec import Identity, ProvisionSpec
from actors_runtime.worker import Worker
from actors_runtime.worker.loop import run
from actors_runtime.worker.timers import TimerTable, tick_id, with_due
from conftest import Clock

KEY = "proj-12345678"
SYSTEM = AgentRef(session_id="main", system_id="main")


@pytest.fixture
def location() -> Iterator[str]:
    yield f"memory://timers-{uuid.uuid4().hex}"
    forget_all()


@pytest.fixture
def sender(location: str, home: Path) -> Iterator[Backend]:
    backend = open_backend(location, str(home), KEY, "process")
    yield backend
    backend.close()


@pytest.fixture
def new_worker(location: str, home: Path, clock: Clock) -> Iterator[Callable[[], Worker]]:
    """Makes a Worker of actor "a" (a Ticker) with the test's clock, activated."""
    made: list[tuple[Worker, Backend]] = []

    def make() -> Worker:
        spec = ProvisionSpec(
            identity=Identity(child_id="a", system_id="main", project_key=KEY),
            actor_class="timer_actors:Ticker", home=str(home), backend=location, durability="process",
        ).validate()
        backend = open_backend(location, str(home), KEY, "process")
        worker = Worker(spec, backend=backend, clock=clock)
        made.append((worker, backend))
        worker.process(worker.activate())
        return worker

    yield make
    for worker, backend in made:
        worker.close()
        backend.close()


def ask(sender: Backend, worker: Worker, question, mode: str = "steer") -> None:
    """Deliver an ask and let the worker handle what waits (the answer is not read)."""
    message = InboxMessage.create(SYSTEM, "ask", AskBody(question, mode).to_body())
    sender.deliver(sender.address("main", "a"), [message])
    worker.process(worker.mailbox.drain())


def fire(worker: Worker) -> int:
    """Handle whatever is due by the worker's clock; returns how many ticks."""
    ticks = with_due(worker, [])
    if ticks:
        worker.process(ticks)
    return len(ticks)


def committed_meta(sender: Backend) -> dict:
    return sender.store.load_session("main", "a").meta


def test_a_one_shot_reminder_fires_once_at_its_due_time_and_is_gone(new_worker, sender, clock):
    worker = new_worker()
    ask(sender, worker, {"remind": {"name": "wake", "due": 10, "payload": {"p": 1}}})
    due = clock.now + 10
    assert committed_meta(sender)["reminders"] == {"wake": {"due": due, "period": None, "payload": {"p": 1}}}
    clock.advance(9.99)
    assert fire(worker) == 0
    clock.advance(0.01)
    assert fire(worker) == 1
    assert worker.handler.state["ticks"] == [["wake", due, 1, tick_id("a", "wake", due), {"p": 1}]]
    assert "reminders" not in committed_meta(sender)
    clock.advance(100)
    assert fire(worker) == 0


def test_a_periodic_reminder_found_late_fires_once_with_the_count_and_stays_on_its_grid(new_worker, sender, clock):
    worker = new_worker()
    ask(sender, worker, {"remind": {"name": "beat", "due": 10, "period": 10}})
    first = clock.now + 10
    clock.advance(10)
    assert fire(worker) == 1
    clock.advance(35)  # now = first + 35: due times first+10, +20, +30 passed
    assert fire(worker) == 1
    ticks = worker.handler.state["ticks"]
    assert [t[2] for t in ticks] == [1, 3]
    assert ticks[1][1] == first + 10  # the tick stands for the first due time it missed
    assert committed_meta(sender)["reminders"]["beat"]["due"] == first + 40  # the next after now, no drift
    assert fire(worker) == 0


def test_a_tick_handled_again_after_a_crash_before_its_commit_is_applied_once(new_worker, sender, clock):
    worker = new_worker()
    ask(sender, worker, {"remind": {"name": "once", "due": 5}})
    clock.advance(5)
    ticks = with_due(worker, [])
    # The crash: the tick ran but nothing was committed. The next activation finds the
    # committed table as it was and fires the same tick, with the same id.
    worker.mailbox.close()
    worker.close()
    again = new_worker()
    assert fire(again) == 1
    assert [t[3] for t in again.handler.state["ticks"]] == [ticks[0].id]
    # A worker that somehow handed it out once more (a repeat) drops it as applied.
    again.process(ticks)
    assert len(again.handler.state["ticks"]) == 1


def test_a_rollback_restores_a_forgotten_reminder_but_keeps_what_admission_settled(new_worker, sender, clock):
    worker = new_worker()
    ask(sender, worker, {"remind": {"name": "r", "due": 1, "period": 1}})
    ask(sender, worker, {"remind": {"name": "s", "due": 100}})
    table = worker.state.timers
    clock.advance(1)
    ticks = with_due(worker, [])
    table.settle(ticks[0].receipt)  # what loop.process does at admission
    table.forget("s")  # what a handler did in the turn that then raised
    worker.state.restore_committed()
    assert set(table.reminders) == {"r", "s"}
    assert table.reminders["r"]["due"] == clock.now + 1  # advanced past the tick, kept
    worker.state.commit()
    assert committed_meta(sender)["reminders"]["r"]["due"] == clock.now + 1


def test_a_delayed_message_is_committed_before_its_ack_and_handled_at_its_time_with_its_id(new_worker, sender, clock):
    worker = new_worker()
    message = InboxMessage.create(SYSTEM, "task", {"late": True}, deliver_at=clock.now + 30)
    sender.deliver(sender.address("main", "a"), [message])
    worker.process(worker.mailbox.drain())
    assert worker.handler.state["told"] == []
    kept = committed_meta(sender)["delayed"]
    assert [(e["due"], e["message"]["id"]) for e in kept] == [(clock.now + 30, message.id)]
    view = sender.view(sender.address("main", "a"))
    assert view.counts()["new"] + view.counts()["cur"] == 0  # acked once stored
    view.close()
    # A copy redelivered (a crash between the commit and the ack) is not kept twice.
    sender.deliver(sender.address("main", "a"), [message])
    worker.process(worker.mailbox.drain())
    assert len(committed_meta(sender)["delayed"]) == 1
    clock.advance(30)
    assert fire(worker) == 1
    assert worker.handler.state["told"] == [{"late": True}]
    assert message.id in sender.store.load_session("main", "a").admitted
    assert "delayed" not in committed_meta(sender)


def test_the_loop_waits_no_longer_than_the_next_due_time(new_worker, sender, clock, monkeypatch):
    worker = new_worker()
    ask(sender, worker, {"remind": {"name": "soon", "due": 0.5}})
    waits: list[float] = []

    def wait(timeout):
        waits.append(timeout)
        clock.advance(timeout)
        worker.request_stop() if len(waits) > 1 else None
        return False

    monkeypatch.setattr(worker.mailbox, "wait", wait)
    run(worker, [])
    assert waits[0] == pytest.approx(0.5)
    assert [t[0] for t in worker.handler.state["ticks"]] == ["soon"]


def test_a_reminder_set_while_answering_a_query_is_refused(new_worker, sender, clock):
    worker = new_worker()
    ask(sender, worker, {"remind": {"name": "q", "due": 1}}, mode="query")
    assert worker.state.timers.reminders == {}


def test_the_table_drops_unreadable_entries_and_reports_the_earliest_due():
    meta = {"reminders": {"ok": {"due": 50.0, "period": None, "payload": 1}, "bad": {"due": "soon"},
                          "neg": {"due": 1.0, "period": -1}},
            "delayed": [{"due": 20.0, "message": {"id": "m"}}, {"due": math.inf, "message": {}}, "junk"]}
    table = TimerTable()
    table.load(meta, "a")
    assert set(table.reminders) == {"ok"} and len(table.delayed) == 1
    assert table.next_due == 20.0 == next_due_in(meta, "a")


def test_due_times_refuse_naive_datetimes_negative_and_nan_delays_with_invalid_spec():
    now = 1000.0
    assert due_from(2.5, now) == 1002.5
    aware = datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    assert due_from(aware, now) == aware.timestamp()
    for bad in (-1, math.nan, math.inf, True, "5", datetime(2030, 1, 1)):
        with pytest.raises(InvalidSpec):
            due_from(bad, now)
    assert deliver_at(None, None, now) is None
    assert deliver_at(3, None, now) == 1003.0
    for delay, at in ((1, aware), (-0.1, None), (math.nan, None), (None, datetime(2030, 1, 1)), (aware, None)):
        with pytest.raises(InvalidSpec):
            deliver_at(delay, at, now)
    assert period_of(None) is None and period_of(2) == 2.0
    for bad in (0, -1, math.nan, 0.0001):
        with pytest.raises(InvalidSpec):
            period_of(bad)


def test_the_wake_schedule_hands_out_due_actors_once_and_the_latest_report_wins(clock):
    woken: list[str] = []
    wakes = Wakes(woken.append, "test-wakes", clock=clock)
    wakes.schedule("a", clock.now + 10)
    wakes.schedule("b", clock.now + 5)
    wakes.schedule("a", clock.now + 20)  # a later report replaces the earlier one
    assert wakes.next_at() == clock.now + 5
    assert wakes.pop_due(clock.now + 10) == ["b"]
    assert wakes.pop_due(clock.now + 19) == []
    assert wakes.next_at() == clock.now + 20
    assert wakes.pop_due(clock.now + 20) == ["a"]
    assert wakes.pop_due(clock.now + 100) == [] and wakes.next_at() is None
    wakes.schedule("c", clock.now)
    wakes.cancel("c")
    assert wakes.pop_due(clock.now) == []
