"""Durable timers end to end: reminders and delayed tells in real worker processes.

What a tick did is read from the actor's committed session (``committed``), so a test
never activates the actor it watches by asking it.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone

import pytest
import timer_actors
from conftest import ON_EVERY_BACKEND, open_project, wait_until

from actors import ActorSystem, InvalidSpec


def committed(ref):
    """(state, meta) of the actor's last commit."""
    backend = open_project(ref.address)
    try:
        doc = backend.store.load_session(ref.address.system_id, ref.name)
        return (doc.state, doc.meta) if doc is not None else ({}, {})
    finally:
        backend.close()


def ticks(ref):
    return committed(ref)[0].get("ticks", [])


@ON_EVERY_BACKEND
def test_a_reminder_fires_on_a_running_actor_as_a_tell_with_msg_reminder(system):
    ref = system.spawn(timer_actors.Ticker, name="ticker")
    before = time.time()
    assert ref.ask({"remind": {"name": "nudge", "due": 0.2, "payload": {"p": 1}}}, mode="steer") == "set"
    [[name, due, period, payload]] = ref.ask("reminders")
    assert (name, period, payload) == ("nudge", None, {"p": 1}) and before + 0.2 <= due <= time.time() + 0.2
    [[name, tick_due, coalesced, _, body]] = wait_until(lambda: ticks(ref), 10)
    assert (name, coalesced, body) == ("nudge", 1, {"p": 1}) and tick_due == pytest.approx(due, abs=1e-6)
    assert ref.ask("reminders") == []  # a one-shot reminder goes once it fired
    assert "reminders" not in committed(ref)[1]


@ON_EVERY_BACKEND
def test_a_reminder_wakes_an_actor_deactivated_by_idle_timeout(system):
    ref = system.spawn(timer_actors.Ticker, name="sleeper", idle_timeout=0.2)
    ref.ask({"remind": {"name": "alarm", "due": 1.0}}, mode="steer")
    wait_until(lambda: system.inspect(ref).status == "idle", 10)
    assert ticks(ref) == []
    [[name, due, coalesced, _, _]] = wait_until(lambda: ticks(ref), 10)
    assert (name, coalesced) == ("alarm", 1)
    wait_until(lambda: system.inspect(ref).status == "idle", 10)  # and it goes idle again


def test_a_periodic_reminder_survives_a_full_restart_and_missed_ticks_coalesce_into_one(home, project):
    with ActorSystem(home=home, project=project, durability="process", name="sys") as system:
        ref = system.spawn(timer_actors.Ticker, name="beat")
        ref.ask({"remind": {"name": "beat", "due": 0.2, "period": 0.2}}, mode="steer")
        wait_until(lambda: ticks(ref), 10)
    before = ticks(ref)
    pending = committed(ref)[1]["reminders"]["beat"]["due"]
    # Down long enough that at least three due times pass.
    wait_until(lambda: time.time() > pending + 0.45, 5)
    with ActorSystem(home=home, project=project, durability="process", name="sys") as system:
        ref = system.ref("beat")
        wait_until(lambda: len(ticks(ref)) > len(before) + 1, 10)
    after = ticks(ref)
    assert after[:len(before)] == before
    [_, due, coalesced, _, _] = after[len(before)]
    assert due == pytest.approx(pending, abs=1e-6) and coalesced >= 3  # one tick for the whole downtime, with the count
    following = after[len(before) + 1]
    assert following[1] == pytest.approx(pending + coalesced * 0.2)  # back on its grid
    ids = [t[3] for t in after]
    assert len(ids) == len(set(ids)), "a tick was applied twice"
    assert all(a[1] < b[1] for a, b in zip(after, after[1:]))


@pytest.mark.parametrize("point", ["handle", "commit"])
# maildir only: crash_actors reaches into the maildir reader to die right after its ack.
def test_a_worker_killed_around_a_ticks_commit_applies_the_tick_exactly_once(system, tmp_path, point):
    plan = tmp_path / "plan"
    plan.mkdir()
    ref = system.spawn(timer_actors.KilledAfterTick, name="killed",
                       secrets={"plan_dir": str(plan), "kill_at": {point: 1}})
    ref.ask({"remind": {"name": "once", "due": 0.2, "payload": {"n": 1}}}, mode="steer")
    wait_until(lambda: (plan / f"{point}.done").exists(), 10)  # SIGKILLed right there
    wait_until(lambda: committed(ref)[0].get("count") == 1, 15)
    assert ref.ask("count") == 1
    state, meta = committed(ref)
    assert state["count"] == 1 and len(state["seqs"]) == 1
    assert "reminders" not in meta


@ON_EVERY_BACKEND
def test_forget_in_a_handler_that_then_raises_keeps_the_reminder(system):
    ref = system.spawn(timer_actors.Ticker, name="keeper")
    ref.ask({"remind": {"name": "kept", "due": 60}}, mode="steer")
    with pytest.raises(Exception):
        ref.ask({"forget": "kept", "then_raise": True}, mode="steer")
    assert [r[0] for r in ref.ask("reminders")] == ["kept"]
    assert "kept" in committed(ref)[1].get("reminders", {})


@ON_EVERY_BACKEND
def test_a_delayed_tell_is_durable_at_once_and_handled_not_before_its_time(system):
    ref = system.spawn(timer_actors.Ticker, name="later")
    sent = time.time()
    ref.tell({"by": "delay"}, delay=0.4)
    ref.tell({"by": "at"}, at=datetime.now(timezone.utc) + timedelta(seconds=0.2))
    ref.tell({"by": "now"})
    wait_until(lambda: len(committed(ref)[0].get("told", [])) == 3, 10)
    assert [t["by"] for t in committed(ref)[0]["told"]] == ["now", "at", "delay"]
    assert time.time() - sent >= 0.4
    assert "delayed" not in committed(ref)[1]


@ON_EVERY_BACKEND
def test_a_delayed_tell_activates_a_cold_actor_which_keeps_it_and_is_woken_for_it(system):
    ref = system.spawn(timer_actors.Ticker, name="cold", idle_timeout=0.2)
    wait_until(lambda: system.inspect(ref).status == "idle", 10)
    due = time.time() + 2.0
    system.tell(ref, {"late": 1}, delay=2.0)
    wait_until(lambda: committed(ref)[1].get("delayed"), 10)  # kept in its session
    wait_until(lambda: system.inspect(ref).status == "idle", 10)
    told = committed(ref)[0]["told"]
    if time.time() < due:  # read before it was due (a loaded machine may get here later)
        assert told == []
    wait_until(lambda: committed(ref)[0]["told"] == [{"late": 1}], 10)


@ON_EVERY_BACKEND
def test_a_handler_can_tell_with_a_delay(system):
    ref = system.spawn(timer_actors.Ticker, name="self-teller")
    assert ref.ask({"tell_self": {"x": 1}, "delay": 0.2}, mode="steer") == "sent"
    wait_until(lambda: committed(ref)[0]["told"] == [{"x": 1}], 10)


@ON_EVERY_BACKEND
def test_bad_delays_and_naive_datetimes_are_invalid_spec_before_anything_is_sent(system):
    ref = system.spawn(timer_actors.Ticker, name="strict")
    for kwargs in ({"delay": -1}, {"delay": math.nan}, {"at": datetime(2030, 1, 1)},
                   {"delay": 1, "at": datetime.now(timezone.utc)}):
        with pytest.raises(InvalidSpec):
            ref.tell({"x": 1}, **kwargs)
    with pytest.raises(Exception, match="InvalidSpec|invalid due"):
        ref.ask({"remind": {"name": "x", "due": -5}}, mode="steer")
    assert committed(ref)[0]["told"] == []
