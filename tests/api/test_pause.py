"""Pause instead of dead-letter (``on_poison="pause"``): a message that killed the
worker ``max_attempts`` times stays first in line, the actor is paused and its later
messages wait; ``resume`` tries the message again or skips it to the dead letters."""

from __future__ import annotations

import poison_actors
import pytest
from actors_runtime.worker.pausing import PAUSED_KEY, read_pause
from conftest import open_project, wait_until

from actors import ActorFailed, ActorNotFound, ActorSystem, InvalidSpec, NotPaused


def row(system, name):
    return next(info for info in system.children() if info.name == name)


def pause_on(system, message, name="victim", max_attempts=2):
    """Spawn a SelfKiller with on_poison="pause", send it ``message`` (which kills it)
    after one good tell, and wait until it is paused; returns the ref and the message id."""
    victim = system.spawn(poison_actors.SelfKiller, name=name, on_poison="pause", max_attempts=max_attempts)
    victim.tell({"n": 0})
    deadly = victim.tell(message)
    wait_until(lambda: row(system, name).status == "paused", timeout=60)
    return victim, deadly


def session_meta(ref):
    backend = open_project(ref.address)
    try:
        return backend.store.load_session(ref.address.system_id, ref.name).meta
    finally:
        backend.close()


def test_a_poison_message_pauses_the_actor_later_tells_wait_and_skip_buries_it(home, project):
    with ActorSystem(home=home, project=project, durability="process") as system:
        victim, deadly = pause_on(system, {"kill": True})
        later = [victim.tell({"n": n}) for n in range(1, 4)]  # durable; they do not wake it
        reason = f"message {deadly} killed the worker 2 times"
        info = system.inspect(victim)
        assert (info.status, info.paused_message, info.paused_reason) == ("paused", deadly, reason)
        assert (row(system, "victim").status, row(system, "victim").reason) == ("paused", reason)
        assert not info.live and system.pid_of(victim) is None
        assert info.pending + info.claimed >= 1 + len(later), "the poison message and the later ones wait"
        assert system.dead_letters(victim) == []
        recorded = session_meta(victim)[PAUSED_KEY]
        assert (recorded["msg_id"], recorded["reason"], recorded["attempts"]) == (deadly, reason, 2)
        restarts = info.restarts

        assert system.resume(victim, skip=True) == deadly
        assert victim.ask("count", timeout=60) == 4  # {"n": 0} and the three later ones, once each
        letters = system.dead_letters(victim)
        assert [letter.message.id for letter in letters] == [deadly]
        assert letters[0].reason.startswith("skipped by an operator") and reason in letters[0].reason
        info = system.inspect(victim)
        assert (info.status, info.paused_message, info.restarts) == ("running", None, restarts)
        assert PAUSED_KEY not in session_meta(victim)


def test_resume_without_skip_tries_the_message_again_and_it_pauses_again_while_it_still_kills(
        home, project, tmp_path):
    cure = tmp_path / "cure"
    with ActorSystem(home=home, project=project, durability="process") as system:
        victim, deadly = pause_on(system, {"exit_unless": str(cure)})
        first = read_pause(open_project(victim.address).store, "main", "victim")
        victim.tell({"n": 1})

        assert system.resume("victim") == deadly  # an id works like a ref
        # Its attempts start again from none: two more deaths, then it pauses again.
        wait_until(lambda: (p := session_meta(victim).get(PAUSED_KEY)) and p["since"] > first.since, timeout=60)
        wait_until(lambda: row(system, "victim").status == "paused", timeout=30)
        assert system.inspect(victim).paused_message == deadly

        cure.touch()
        assert system.resume(victim) == deadly
        assert victim.ask("count", timeout=60) == 3  # {"n": 0}, the cured message, {"n": 1}
        assert system.dead_letters(victim) == []
        assert system.inspect(victim).status == "running"


def test_an_asker_whose_question_is_skipped_gets_the_dead_letter_error(home, project):
    with ActorSystem(home=home, project=project, durability="process") as system:
        victim = system.spawn(poison_actors.SelfKiller, name="victim", on_poison="pause", max_attempts=1)
        question = victim.ask_async({"exit": True})
        wait_until(lambda: row(system, "victim").status == "paused", timeout=60)
        assert not question.done()  # it waits with the actor
        system.resume(victim, skip=True)
        with pytest.raises(ActorFailed, match="dead letter: skipped by an operator"):
            question.result(timeout=30)
        assert victim.ask("count", timeout=60) == 0


def test_a_paused_actor_stays_paused_across_a_new_system_a_spawn_by_name_and_messages(home, project):
    with ActorSystem(home=home, project=project, durability="process") as first:
        _, deadly = pause_on(first, {"kill": True})
        first.tell("victim", {"n": 1})
    reason = f"message {deadly} killed the worker 2 times"
    with ActorSystem(home=home, project=project, durability="process") as second:
        info = second.inspect("victim")
        assert (info.status, info.paused_message, info.paused_reason) == ("paused", deadly, reason)
        second.tell("victim", {"n": 2})  # waits: a tell does not wake a paused actor
        assert (row(second, "victim").status, row(second, "victim").reason) == ("paused", reason)
        # A spawn by name starts a worker, which finds the pause and exits at once.
        again = second.spawn(poison_actors.SelfKiller, name="victim", on_poison="pause", max_attempts=2)
        wait_until(lambda: row(second, "victim").status == "paused" and second.pid_of(again) is None, timeout=30)
        assert second.dead_letters(again) == []
        second.resume(again, skip=True)
        assert again.ask("count", timeout=60) == 3
    with ActorSystem(home=home, project=project, durability="process") as third:
        assert third.inspect("victim").status in ("stopped", "idle")
        assert third.ask("victim", "count", timeout=60) == 3  # nothing ran twice


def test_resume_refuses_an_actor_that_is_not_paused_and_an_unknown_one(home, project):
    with ActorSystem(home=home, project=project, durability="process") as system:
        healthy = system.spawn(poison_actors.SelfKiller, name="healthy", on_poison="pause")
        with pytest.raises(NotPaused, match="'healthy' is not paused"):
            system.resume(healthy)
        with pytest.raises(ActorNotFound):
            system.resume("nobody")
        assert healthy.ask("count", timeout=30) == 0


def test_on_poison_takes_only_dead_letter_or_pause(home, project):
    with ActorSystem(home=home, project=project, durability="process") as system:
        with pytest.raises(InvalidSpec, match="on_poison: 'retry' is not one of 'dead-letter', 'pause'"):
            system.spawn(poison_actors.SelfKiller, name="odd", on_poison="retry")
        assert system.children() == []
