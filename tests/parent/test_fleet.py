"""Fleet management: supervision, poison messages, backpressure, warm pool, virtual actors."""

from __future__ import annotations

import os
import signal
import threading

import fleet_actors
import pytest
import sample_actors
from actors_runtime.backends.maildir import delivery
from actors_runtime.backends.maildir.skeletons import ready_skeletons
from conftest import ON_EVERY_BACKEND, descendants, handling, open_project, sleeps_observed, wait_until

from actors import ActorFailed, ActorSystem, Cancelled, MailboxFull


def _status(system, name):
    return {c.name: c for c in system.children()}[name]


def _recorded_status(ref):
    """The status the system's records on disk give an actor (as `actors ps` reads them)."""
    backend = open_project(ref.address)
    try:
        return backend.store.child_entry(ref.name)[1].status
    finally:
        backend.close()


def _skeletons(system):
    """The ready-made actor directories a system's project holds for it."""
    backend = open_project(system.address)
    try:
        return ready_skeletons(backend.layout, system.name)
    finally:
        backend.close()


def test_a_crashing_actor_restarts_with_backoff_until_the_cap_then_fails_while_a_sibling_serves(
        home, project, tmp_path):
    flag = tmp_path / "die-on-start"
    failures = []
    with ActorSystem(home=home, project=project, durability="process", restart_limit=3,
                     on_failed=lambda name, reason: failures.append((name, reason))) as system:
        sibling = system.spawn(sample_actors.Counter, name="sibling")
        crasher = system.spawn(fleet_actors.DiesOnStartWhenFlagged, name="crasher",
                               secrets={"flag": str(flag)})
        flag.touch()
        os.kill(system.pid_of(crasher), signal.SIGKILL)
        for n in range(1, 20):  # the sibling keeps answering throughout
            sibling.tell({"n": 1})
            assert sibling.ask("count") == n
            if _status(system, "crasher").status == "failed":
                break
        wait_until(lambda: _status(system, "crasher").status == "failed", timeout=30)
        info = _status(system, "crasher")
        assert info.restarts == 3 and info.pid is None
        wait_until(lambda: failures)  # on_failed runs on the system's callback thread
        assert failures[0][0] == "crasher" and "within" in failures[0][1]
        # Its messages stay on disk; a failed actor is not activated by them.
        crasher.tell({"kept": True})
        assert system.inspect(crasher).pending == 1
        # On disk too, once the recorder thread wrote it (memory is updated first).
        wait_until(lambda: _recorded_status(crasher) == "failed")
        assert sibling.ask("count") >= 1


@ON_EVERY_BACKEND
def test_a_message_that_kills_the_worker_goes_to_dead_letters_after_three_attempts(system, tmp_path):
    cure = tmp_path / "cure"
    poison = system.spawn(fleet_actors.Poison, name="poison", secrets={"cure": str(cure)})
    poison_id = poison.tell({"die": True})
    for _ in range(3):
        poison.tell({"n": 1})
    wait_until(lambda: poison.ask("count", timeout=20)["count"] == 3, timeout=60)
    letters = system.dead_letters(poison)
    assert [letter.message.id for letter in letters] == [poison_id]
    assert letters[0].attempts == 3 and "died" in letters[0].reason
    assert _status(system, "poison").status == "running"
    # Requeue once the cause is fixed: it is handled, once.
    cure.touch()
    assert system.requeue(poison, poison_id)
    wait_until(lambda: poison.ask("count")["cured"] == 1)
    assert system.dead_letters(poison) == []


@ON_EVERY_BACKEND
def test_the_asker_of_a_poison_message_gets_an_error_not_a_hang(system, tmp_path):
    poison = system.spawn(fleet_actors.Poison, name="poison", secrets={"cure": str(tmp_path / "none")})
    with pytest.raises(ActorFailed) as caught:
        poison.ask("die", timeout=60)
    assert "dead letter" in caught.value.message
    assert poison.ask("count")["count"] == 0


@ON_EVERY_BACKEND
def test_a_handler_that_raises_leaves_no_state_change_and_is_retried_only_when_asked(system):
    once = system.spawn(fleet_actors.Flaky, name="once")
    with pytest.raises(ActorFailed):
        once.ask("go", mode="steer")  # a steer's changes persist, unless it raises
    assert once.ask("count") == 1  # the failed turn left nothing: this is the first attempt
    thrice = system.spawn(fleet_actors.Flaky, name="thrice", retries=2, retry_backoff=0.01)
    with pytest.raises(ActorFailed) as caught:
        thrice.ask("go", mode="steer")
    # Three attempts, each from the state before the message.
    assert "attempt 1 failed" in caught.value.message
    assert thrice.ask("count") == 1


@ON_EVERY_BACKEND
def test_a_full_mailbox_refuses_and_a_blocking_tell_waits_for_room(system):
    sleeper = system.spawn(sample_actors.Sleeper, name="sleeper", max_pending=5)
    busy = sleeper.ask_async({"sleep": 60})
    wait_until(lambda: handling(sleeper))
    for _ in range(5):
        sleeper.tell("queued")
    with pytest.raises(MailboxFull) as caught:
        sleeper.tell("one too many")
    assert caught.value.limit == 5
    with pytest.raises(MailboxFull):
        sleeper.tell("still full", block_timeout=0.2)
    result = {}

    def blocked_tell():
        result["id"] = sleeper.tell("waited", block_timeout=30)

    teller = threading.Thread(target=blocked_tell)
    teller.start()
    sleeper.cancel()  # frees the actor, which drains the queue
    teller.join(timeout=60)
    assert "id" in result
    with pytest.raises(Cancelled):
        busy.result(timeout=10)


# maildir only: it watches the maildir delivery module's sleeps.
def test_a_tell_waiting_for_room_holds_up_no_other_send(system, monkeypatch):
    sleeper = system.spawn(sample_actors.Sleeper, name="sleeper", max_pending=1)
    counter = system.spawn(sample_actors.Counter, name="counter")
    busy = sleeper.ask_async({"sleep": 60})
    wait_until(lambda: handling(sleeper))
    sleeper.tell("queued")  # now full
    waiting_for_room = sleeps_observed(monkeypatch, delivery)  # only a sender waiting for room sleeps there
    teller = threading.Thread(target=lambda: sleeper.tell("waited", block_timeout=60))
    teller.start()
    assert waiting_for_room.wait(30)
    answered = {}
    other = threading.Thread(target=lambda: answered.update(count=(counter.tell({"n": 2}), counter.ask("count"))[1]))
    other.start()
    other.join(10)  # a send lock held by the waiting tell would keep this waiting 60 s
    assert answered == {"count": 2}
    sleeper.cancel()  # frees the sleeper, which drains its mailbox and lets the tell in
    teller.join(60)
    assert not teller.is_alive()
    with pytest.raises(Cancelled):
        busy.result(timeout=10)


def test_warm_spawns_come_from_the_pool_which_refills_and_is_gone_after_shutdown(home, project):
    system = ActorSystem(home=home, project=project, durability="process", pool_size=2)
    try:
        pool = system._supervisor.pool
        pooled = set(wait_until(lambda: len(pool.pids()) == 2 and pool.pids()))
        counter = system.spawn(sample_actors.Counter, name="warm")
        assert system.pid_of(counter) in pooled
        assert counter.ask("pid") == system.pid_of(counter)
        refilled = wait_until(lambda: len(pool.pids()) == 2 and set(pool.pids()))
        assert system.pid_of(counter) not in refilled
        all_pids = refilled | {system.pid_of(counter)}
    finally:
        system.shutdown()
    assert not (all_pids & descendants())
    assert pool.pids() == []


@ON_EVERY_BACKEND
def test_an_actor_deactivated_by_idle_timeout_comes_back_on_tell_with_its_state(system):
    counter = system.spawn(sample_actors.Counter, name="idler", idle_timeout=0.3)
    counter.tell({"n": 3})
    assert counter.ask("count") == 3
    first_pid = system.pid_of(counter)
    wait_until(lambda: _status(system, "idler").status == "idle", timeout=10)
    assert system.pid_of(counter) is None and not system.inspect(counter).live
    counter.tell({"n": 2})
    assert counter.ask("count", timeout=30) == 5
    assert system.pid_of(counter) not in (None, first_pid)


@ON_EVERY_BACKEND
def test_an_actor_told_by_another_actor_while_idle_is_activated(system):
    counter = system.spawn(sample_actors.Counter, name="idler", idle_timeout=0.3)
    forwarder = system.spawn(sample_actors.Forwarder, name="forwarder")
    wait_until(lambda: _status(system, "idler").status == "idle", timeout=10)
    forwarder.tell({"reply_to": counter, "value": 4})
    wait_until(lambda: _status(system, "idler").status == "running", timeout=10)
    assert counter.ask("count", timeout=30) == 4


def test_a_second_system_run_asks_an_actor_the_first_spawned_and_stopped(home, project):
    with ActorSystem(home=home, project=project, durability="process") as first:
        counter = first.spawn(sample_actors.Counter, name="keeper")
        counter.tell({"n": 7})
        assert counter.ask("count") == 7
        counter.stop()
        counter.tell({"n": 1})  # delivered while nothing runs: kept, not lost
    with ActorSystem(home=home, project=project, durability="process") as second:
        assert second.ask("keeper", "count", timeout=30) == 8
        assert _status(second, "keeper").status == "running"


@ON_EVERY_BACKEND
def test_handler_timeout_cancels_a_handler_that_runs_too_long(system):
    sleeper = system.spawn(sample_actors.Sleeper, name="sleeper", handler_timeout=0.3)
    with pytest.raises(Cancelled):
        sleeper.ask({"sleep": 30}, timeout=20)
    assert sleeper.ask({"sleep": 0.01}) == "slept"


@ON_EVERY_BACKEND
def test_nested_spawn_is_capped_at_depth_four(system):
    root = system.spawn(fleet_actors.Nester, name="nest")
    assert root.ask(3, timeout=60) == 4
    with pytest.raises(ActorFailed) as caught:
        system.spawn(fleet_actors.Nester, name="deep").ask(4, timeout=60)
    assert "depth 5 exceeds the cap of 4" in str(caught.value)


@ON_EVERY_BACKEND
def test_stopping_an_actor_stops_its_children_first(system):
    parent = system.spawn(sample_actors.Parent, name="parent")
    assert parent.ask({"child": "kid"}, timeout=30) == 0
    parent.stop()
    assert _status(system, "kid").status == "stopped"
    assert _status(system, "parent").status == "stopped"
    assert system.pid_of("kid") is None


@ON_EVERY_BACKEND
def test_stop_and_kill_are_not_restarted_and_a_kill_is_not_blamed_as_poison(system):
    sleeper = system.spawn(sample_actors.Sleeper, name="sleeper")
    future = sleeper.ask_async({"sleep": 60})
    wait_until(lambda: handling(sleeper))
    system.kill(sleeper)
    assert _status(system, "sleeper").status == "stopped"
    assert system.pid_of(sleeper) is None
    # Spawning it again redelivers the interrupted ask; the kill was not an attempt.
    system.spawn(sample_actors.Sleeper, name="sleeper")
    wait_until(lambda: handling(sleeper))
    system.cancel(sleeper)
    with pytest.raises(Cancelled):
        future.result(timeout=30)
    assert system.dead_letters(sleeper) == []


def test_a_warm_spawn_claims_a_ready_made_directory_and_later_runs_reuse_leftovers(home, project):
    with ActorSystem(home=home, project=project, durability="process", pool_size=1) as system:
        skeletons = wait_until(lambda: _skeletons(system))
        inode = os.stat(skeletons[0]).st_ino
        counter = system.spawn(sample_actors.Counter, name="warm")
        backend = open_project(counter.address)
        try:
            child_dir = backend.layout.child_dir(system.name, "warm")
        finally:
            backend.close()
        assert os.stat(child_dir).st_ino == inode  # renamed into place, not built
        for _ in range(3):
            counter.tell({"n": 1})
        assert counter.ask("count") == 3
        leftover = set(wait_until(lambda: _skeletons(system)))
    with ActorSystem(home=home, project=project, durability="process", pool_size=1) as again:
        assert set(_skeletons(again)) == leftover  # reused, not rebuilt
        again.spawn(sample_actors.Counter, name="warm-2")
        assert again.ref("warm").ask("count") == 3
        assert [c.name for c in again.children()] == ["warm", "warm-2"]  # skeletons are not actors
