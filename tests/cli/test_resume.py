"""``actors resume ID [--skip]``: with its system running (asked through its inbox)
and without (done on disk, handled when the system next runs); ``ps`` shows a pause."""

from __future__ import annotations

import json

import poison_actors
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend
from actors_runtime.worker.pausing import read_pause
from conftest import wait_until

from actors import ActorSystem
from actors.cli.exit_codes import EXIT_NOT_FOUND, EXIT_NOT_PAUSED, EXIT_NOT_RUNNING, EXIT_OK, EXIT_USAGE

from .running import assert_one_line_error, invoke, run_cli_process


def paused_in_session(home, project, actor_id="victim"):
    backend = open_backend("maildir", str(home), project_key(project), "process")
    try:
        return read_pause(backend.store, "main", actor_id)
    finally:
        backend.close()


def pause_victim(system, message, later=2):
    """A paused SelfKiller ("victim") with ``later`` tells waiting behind its poison message."""
    victim = system.spawn(poison_actors.SelfKiller, name="victim", on_poison="pause", max_attempts=2)
    deadly = victim.tell(message)
    wait_until(lambda: system.inspect(victim).status == "paused", timeout=60)
    for n in range(later):
        victim.tell({"n": n})
    return victim, deadly


def test_ps_shows_the_pause_and_resume_skip_without_a_running_system_is_done_on_disk(home, project):
    with ActorSystem(home=home, project=project, durability="process") as system:
        _, deadly = pause_victim(system, {"kill": True})
    reason = f"message {deadly} killed the worker 2 times"
    rows = {row["id"]: row for row in json.loads(invoke(home, project, "ps", "--json").stdout)}
    assert (rows["victim"]["status"], rows["victim"]["last_error"]) == ("paused", reason)
    shown = invoke(home, project, "ps")
    assert f"victim paused: {reason} ('actors resume victim [--skip]')" in shown.stdout.splitlines()
    # An ask would only wait: it is refused at once, and nothing is sent.
    assert_one_line_error(invoke(home, project, "ask", "victim", '"count"'), EXIT_NOT_RUNNING,
                   "'victim' is paused")

    resumed = invoke(home, project, "resume", "victim", "--skip")
    assert resumed.exit_code == EXIT_OK, resumed.output
    assert resumed.stdout.startswith(f"resumed 'victim' at message {deadly}; skipped it")
    assert "its system 'main' is not running" in resumed.stdout
    assert paused_in_session(home, project) is None
    assert json.loads(invoke(home, project, "ps", "--json").stdout)[0]["status"] == "stopped"
    assert_one_line_error(invoke(home, project, "resume", "victim"), EXIT_NOT_PAUSED, "'victim' is not paused")

    with ActorSystem(home=home, project=project, durability="process") as system:
        # The activation request the CLI queued starts it; the later tells are handled once.
        wait_until(lambda: system.inspect("victim").pending == 0, timeout=60)
        assert system.ask("victim", "count", timeout=60) == 2
        assert [letter.message.id for letter in system.dead_letters("victim")] == [deadly]


def test_resume_without_skip_while_the_system_runs_goes_through_the_system(home, project, tmp_path):
    cure = tmp_path / "cure"
    with ActorSystem(home=home, project=project, durability="process") as system:
        victim, deadly = pause_victim(system, {"exit_unless": str(cure)})
        cure.touch()
        resumed = run_cli_process(home, project, "resume", "victim")
        assert resumed.returncode == EXIT_OK, resumed.stderr
        assert resumed.stdout.strip() == (f"resumed 'victim' at message {deadly} through its system 'main'; "
                                          "it is tried again")
        assert victim.ask("count", timeout=60) == 3
        assert system.dead_letters(victim) == []
        refused = run_cli_process(home, project, "resume", "victim")
        assert refused.returncode == EXIT_NOT_PAUSED
        assert refused.stderr.strip().splitlines() == ["actors: 'victim' is not paused (it is running); "
                                                        "nothing to resume"]


def test_resume_skip_while_the_system_runs_buries_the_message_and_the_actor_goes_on(home, project):
    with ActorSystem(home=home, project=project, durability="process") as system:
        victim, deadly = pause_victim(system, {"exit": True}, later=3)
        resumed = run_cli_process(home, project, "resume", "victim", "--skip")
        assert resumed.returncode == EXIT_OK, resumed.stderr
        assert "through its system 'main'; skipped it" in resumed.stdout
        assert victim.ask("count", timeout=60) == 3
        assert [letter.message.id for letter in system.dead_letters(victim)] == [deadly]


def test_resume_of_an_unknown_or_invalid_id_is_one_line_with_its_code(home, project):
    with ActorSystem(home=home, project=project, durability="process") as system:
        system.spawn(poison_actors.SelfKiller, name="healthy")
    assert_one_line_error(invoke(home, project, "resume", "nobody"), EXIT_NOT_FOUND, "nobody")
    assert_one_line_error(invoke(home, project, "resume", "../x"), EXIT_USAGE, "invalid")
    assert_one_line_error(invoke(home, project, "resume", "healthy", "--skip"), EXIT_NOT_PAUSED,
                   "'healthy' is not paused (it is stopped)")
