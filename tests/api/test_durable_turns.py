"""Durable turns with real worker processes: journaled steps across a SIGKILL, atomic
turns, the output gate (and its committed outbox across a crash), asks fanned out
from one turn, and handler retries with backoff that cancel and stop still reach."""

from __future__ import annotations

import json
import os
import time

import durable_turn_actors as turns
import pytest
from conftest import ON_EVERY_BACKEND, wait_until

from actors import ActorFailed, Cancelled


def _lines(path) -> list:
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _restarts(system, name) -> int:
    return next(info.restarts for info in system.children() if info.name == name)


@ON_EVERY_BACKEND
def test_a_sigkill_right_after_a_step_returned_does_not_call_its_function_again(system, tmp_path):
    ledger, marker = tmp_path / "ledger", tmp_path / "died"
    charger = system.spawn(turns.Charger, name="charger",
                           secrets={"ledger": str(ledger), "marker": str(marker)})
    charger.tell({"amount": 5})
    wait_until(lambda: charger.ask("receipts") != [], timeout=30)
    assert marker.exists()  # the worker died once, after the step
    receipts = charger.ask("receipts")
    calls = _lines(ledger)
    assert len(calls) == 1  # the charge happened once ...
    assert len(receipts) == 1 and receipts[0]["receipt"] == "r-5"  # ... and the turn completed once
    # The step's key was the same in both runs, and names the actor and the step.
    assert receipts[0]["key"] == calls[0]["key"]
    assert calls[0]["key"].startswith("charger/") and calls[0]["key"].endswith("/charge/0")
    assert _restarts(system, "charger") == 1


@ON_EVERY_BACKEND
def test_a_step_that_raised_raises_again_on_the_re_run_without_being_called(system, tmp_path):
    ledger, marker = tmp_path / "ledger", tmp_path / "died"
    actor = system.spawn(turns.ErrorRecorder, name="recorder",
                         secrets={"ledger": str(ledger), "marker": str(marker)})
    actor.tell({})
    wait_until(lambda: marker.exists() and actor.ask("declined") == 1, timeout=30)
    assert len(_lines(ledger)) == 1


@ON_EVERY_BACKEND
def test_a_handler_that_raises_keeps_the_state_and_sends_nothing(system):
    peer = system.spawn(turns.Listener, name="peer")
    spender = system.spawn(turns.Spender, name="spender")
    spender.tell({"amount": 10, "peer": "peer", "note": "failed", "fail": True})
    spender.tell({"amount": 1, "peer": "peer", "note": "kept"})
    wait_until(lambda: peer.ask("told") != [])
    # Sends leave in order: had the failed turn's tell left, it would come first.
    assert peer.ask("told") == [{"from": "spender", "note": "kept"}]
    assert spender.ask("spent") == 1


@ON_EVERY_BACKEND
def test_what_a_turn_sends_is_visible_only_once_the_turn_commits(system, tmp_path):
    ledger, hold = tmp_path / "ledger", tmp_path / "go"
    peer = system.spawn(turns.Listener, name="peer")
    spender = system.spawn(turns.Spender, name="spender", secrets={"ledger": str(ledger)})
    spender.tell({"amount": 1, "peer": "peer", "note": "held", "hold": str(hold)})
    wait_until(lambda: ledger.exists())  # the handler made its tell and now waits
    # A tell that had left would be handled before this ask, which comes after it.
    assert peer.ask("told") == []
    hold.touch()
    wait_until(lambda: peer.ask("told") == [{"from": "spender", "note": "held"}])


@ON_EVERY_BACKEND
def test_a_crash_between_the_commit_and_the_release_delivers_each_message_once(system, tmp_path):
    peer = system.spawn(turns.Listener, name="peer")
    relay = system.spawn(turns.Relay, name="relay", secrets={"marker": str(tmp_path / "died")})
    for seq in range(5):
        relay.tell({"peer": "peer", "seq": seq})
    wait_until(lambda: len(peer.ask("told")) >= 5, timeout=30)
    assert (tmp_path / "died").exists()
    assert peer.ask("told") == [{"seq": seq} for seq in range(5)]
    assert _restarts(system, "relay") == 1


@ON_EVERY_BACKEND
def test_one_turn_asks_several_actors_at_once_and_gathers_the_answers(system, tmp_path):
    names = ["north", "south", "east"]
    for name in names:
        system.spawn(turns.Rendezvous, name=name)
    coordinator = system.spawn(turns.Coordinator, name="coordinator")
    room = tmp_path / "room"
    room.mkdir()
    # Each peer answers only once all three are asked: asked one by one, none would.
    question = {"peers": names, "q": {"room": str(room), "expected": 3}, "failing": ["east"]}
    answers = coordinator.ask(question, timeout=60)
    assert answers == ["north", "south", "error: ActorFailed"]


@ON_EVERY_BACKEND
def test_a_turn_that_fanned_out_and_died_gets_the_same_answers_without_asking_twice(system, tmp_path):
    names = ["a1", "a2"]
    peers = [system.spawn(turns.Rendezvous, name=name) for name in names]
    coordinator = system.spawn(turns.Coordinator, name="coordinator")
    room = tmp_path / "room"
    room.mkdir()
    question = {"peers": names, "q": {"room": str(room), "expected": 2}, "die_marker": str(tmp_path / "died")}
    future = coordinator.ask_async(question)
    assert future.result(timeout=60) == names
    assert (tmp_path / "died").exists()
    # The re-run's asks had the same ids: each peer met once (steer: counted in state).
    assert [peer.ask({"count": True}) for peer in peers] == [1, 1]


@ON_EVERY_BACKEND
def test_a_failing_handler_is_retried_with_growing_waits(system, tmp_path):
    ledger = tmp_path / "ledger"
    actor = system.spawn(turns.Stubborn, name="stubborn", retries=3, retry_backoff=0.05,
                         secrets={"ledger": str(ledger)})
    assert actor.ask({"fail": 2}, mode="steer", timeout=30) == 3
    stamps = _lines(ledger)
    assert len(stamps) == 3
    # Jitter keeps each wait between half and all of 0.05 s, then of 0.1 s.
    assert stamps[1] - stamps[0] >= 0.025
    assert stamps[2] - stamps[1] >= 0.05
    assert actor.ask("done") == 1


@ON_EVERY_BACKEND
def test_retry_on_limits_the_retries_to_the_named_exceptions(system, tmp_path):
    ledger = tmp_path / "ledger"
    actor = system.spawn(turns.Stubborn, name="picky", retries=3, retry_backoff=0.01, retry_on=(ValueError,),
                         secrets={"ledger": str(ledger)})
    with pytest.raises(ActorFailed) as caught:
        actor.ask({"fail": 5, "error": "TypeError"}, mode="steer", timeout=30)
    assert caught.value.type_name.endswith("TypeError")
    assert len(_lines(ledger)) == 1  # not retried


@ON_EVERY_BACKEND
def test_a_cancel_reaches_a_handler_waiting_out_its_retry_backoff(system, tmp_path):
    ledger = tmp_path / "ledger"
    actor = system.spawn(turns.Stubborn, name="patient", retries=5, retry_backoff=30,
                         secrets={"ledger": str(ledger)})
    future = actor.ask_async({"fail": 10}, mode="steer")
    wait_until(lambda: len(_lines(ledger)) == 1)
    started = time.monotonic()
    system.cancel(actor)
    with pytest.raises(Cancelled):
        future.result(timeout=20)
    assert time.monotonic() - started < 20
    assert len(_lines(ledger)) == 1
    assert actor.ask("done") == 0


@ON_EVERY_BACKEND
def test_a_stop_during_a_retry_backoff_leaves_the_message_for_the_next_activation(system, tmp_path):
    ledger = tmp_path / "ledger"
    actor = system.spawn(turns.Stubborn, name="later", retries=5, retry_backoff=30,
                         secrets={"ledger": str(ledger)})
    actor.tell({"fail": 1})
    wait_until(lambda: len(_lines(ledger)) == 1)
    system.stop(actor, timeout=20)
    # Spawned again by name, it handles the message it had not finished: once.
    actor = system.spawn(turns.Stubborn, name="later", retries=5, retry_backoff=0.01,
                         secrets={"ledger": str(ledger)})
    wait_until(lambda: actor.ask("done") == 1, timeout=30)
    assert len(_lines(ledger)) == 2


@ON_EVERY_BACKEND
def test_a_retry_runs_the_failed_step_again_and_keeps_what_the_others_returned(system, tmp_path):
    ledger = tmp_path / "ledger"
    actor = system.spawn(turns.StepRetrier, name="retrier", retries=2, retry_backoff=0.01,
                         secrets={"ledger": str(ledger)})
    actor.tell({})
    wait_until(lambda: actor.ask("?")["paid"] == 1)
    assert _lines(ledger) == ["reserve", "pay", "pay"]
    assert actor.ask("?") == {"paid": 1, "receipt": "paid seat-1"}


@ON_EVERY_BACKEND
def test_a_step_result_that_is_not_json_is_an_error_the_handler_sees(system, tmp_path):
    actor = system.spawn(turns.StepRetrier, name="odd", secrets={"ledger": str(tmp_path / "ledger")})
    assert "is not JSON" in actor.ask("not json")


def _batch_of_two_on_activation(system, cls, name, first, second, **options):
    """Spawn ``name``, stop it, tell it ``first`` and ``second`` while it is cold, and
    spawn it again: the two come back as one recovered batch."""
    ref = system.spawn(cls, name=name, **options)
    system.stop(ref, timeout=20)
    ref.tell(first)
    ref.tell(second)
    return system.spawn(cls, name=name, **options)


def test_a_stop_during_a_backoff_behind_a_committed_message_still_leaves_it_for_the_next_activation(
        system, tmp_path):
    ledger = tmp_path / "ledger"
    options = dict(retries=1, retry_backoff=30, secrets={"ledger": str(ledger)})
    # The first succeeds; the second fails (the ledger's second line), the first is applied
    # again from the last commit (its ledger line is an effect outside a step: a third
    # line), committed, and the second waits 30 s to retry.
    actor = _batch_of_two_on_activation(system, turns.Stubborn, "behind", {"fail": 0}, {"fail": 2}, **options)
    wait_until(lambda: len(_lines(ledger)) == 3)
    system.stop(actor, timeout=20)  # during the backoff (an ask would wait it out)
    # That commit did not count the second as applied: it comes again, and is handled once.
    actor = system.spawn(turns.Stubborn, name="behind", retries=1, retry_backoff=0.01,
                         secrets={"ledger": str(ledger)})
    wait_until(lambda: actor.ask("done") == 2, timeout=30)
    assert len(_lines(ledger)) == 4


def test_a_retry_behind_a_committed_message_keeps_the_steps_that_succeeded(system, tmp_path):
    ledger = tmp_path / "ledger"
    actor = _batch_of_two_on_activation(system, turns.StepRetrier, "keeper", {"noop": True}, {},
                                        retries=2, retry_backoff=0.01, secrets={"ledger": str(ledger)})
    wait_until(lambda: actor.ask("?")["paid"] == 1)
    assert _lines(ledger) == ["reserve", "pay", "pay"]
