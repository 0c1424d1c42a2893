"""A death while a message is handled is the message's fault: poison deaths never use
up an actor's restart budget; deaths with nothing in flight still do."""

from __future__ import annotations

import os
import signal

import poison_actors
from actors_runtime.messages import AgentRef, InboxMessage
from conftest import handling, wait_until

from actors import ActorSystem


def test_poison_messages_among_good_ones_are_buried_and_the_actor_keeps_serving(home, project):
    failures = []
    with ActorSystem(home=home, project=project, durability="process", restart_limit=1,
                     on_failed=lambda name, reason: failures.append((name, reason))) as system:
        victim = system.spawn(poison_actors.SelfKiller, name="victim", max_attempts=1)
        poison_ids = []
        for n, deadly in enumerate([{"exit": 0}, {"kill": 1}, {"exit": 2}]):
            victim.tell({"n": n})
            poison_ids.append(victim.tell(deadly))
        victim.tell({"n": 3})
        # Three deaths within the window, against a limit of one: every one was a
        # message's fault, so the actor was restarted each time and answers.
        assert victim.ask("count", timeout=60) == 4
        assert sorted(letter.message.id for letter in system.dead_letters(victim)) == sorted(poison_ids)
        wait_until(lambda: system.inspect(victim).claimed == 0)  # the last batch is acked after its answer
        info = system.inspect(victim)
        assert (info.status, info.last_failure, info.pending) == ("running", "", 0)
        assert info.restarts == 3
        assert failures == []


def test_requeued_dead_letters_that_kill_again_are_buried_again_without_failing_the_actor(home, project):
    with ActorSystem(home=home, project=project, durability="process", restart_limit=1) as system:
        victim = system.spawn(poison_actors.SelfKiller, name="victim", max_attempts=1)
        deadly = victim.tell({"kill": True})
        assert victim.ask("count", timeout=60) == 0
        for round_ in range(1, 3):
            assert system.requeue(victim, deadly)
            victim.tell({"n": round_})
            assert victim.ask("count", timeout=60) == round_
            assert [letter.message.id for letter in system.dead_letters(victim)] == [deadly]
        assert system.inspect(victim).status == "running"


def test_deaths_with_no_message_in_flight_still_use_up_the_restart_budget(home, project):
    with ActorSystem(home=home, project=project, durability="process", restart_limit=1) as system:
        idle = system.spawn(poison_actors.SelfKiller, name="idle")
        first = idle.ask("pid")
        wait_until(lambda: not handling(idle))  # the answer leaves before the handler returns
        os.kill(first, signal.SIGKILL)  # idle: nothing in flight
        wait_until(lambda: system.pid_of(idle) not in (None, first), timeout=30)
        second = idle.ask("pid", timeout=30)
        wait_until(lambda: not handling(idle))
        os.kill(second, signal.SIGKILL)
        wait_until(lambda: system.inspect(idle).status == "failed", timeout=30)
        reason = system.inspect(idle).last_failure
        assert reason.startswith("died 2 times within 60 s") and "while handling" not in reason


def test_a_poison_death_is_reported_with_the_message_that_was_running(home, project):
    with ActorSystem(home=home, project=project, durability="process") as system:
        fragile = system.spawn(poison_actors.SelfKiller, name="fragile", restart="never")
        deadly = fragile.tell({"exit": True})
        wait_until(lambda: system.inspect(fragile).status == "failed", timeout=30)
        assert system.inspect(fragile).last_failure == f"died: exit code 1 while handling message {deadly}"


def test_every_backend_shows_the_message_the_inflight_marker_names(backend):
    address = backend.address("main", "marked")
    backend.provision(address, 100)
    reader = backend.mailbox(address, create=True)
    view = backend.view(address)
    try:
        message = InboxMessage.create(AgentRef("tester"), "task", {})
        assert view.inflight_id() is None
        reader.inflight.set(message.id)
        assert view.inflight_id() == message.id, "another handle must see the marked message"
        reader.inflight.clear()
        assert view.inflight_id() is None, "a cleared marker names nothing"
    finally:
        view.close()
        reader.close()
