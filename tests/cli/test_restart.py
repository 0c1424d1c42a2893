"""``actors restart``, and why an actor failed: recorded, shown by ``ps`` and
``inspect()``, and kept by the next run of its system."""

from __future__ import annotations

import json

import poison_actors
import pytest
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend
from conftest import wait_until

from actors import ActorFailed, ActorSystem
from actors.cli.exit_codes import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE

from .running import invoke, run_cli_process


def recorded(home, project, actor_id):
    backend = open_backend("maildir", str(home), project_key(project), "process")
    try:
        return backend.store.child_entry(actor_id)[1]
    finally:
        backend.close()


def fail_on_poison(system, cure):
    """Spawn an actor that dies (restart="never") on a message while ``cure`` is missing."""
    fragile = system.spawn(poison_actors.SelfKiller, name="fragile", restart="never")
    deadly = fragile.tell({"exit_unless": str(cure)})
    wait_until(lambda: system.inspect(fragile).status == "failed", timeout=30)
    return fragile, deadly


def test_a_failure_is_recorded_shown_by_ps_kept_by_the_next_run_and_reset_by_restart(home, project, tmp_path):
    cure = tmp_path / "cure"
    with ActorSystem(home=home, project=project, durability="process") as first:
        fragile, deadly = fail_on_poison(first, cure)
        reason = first.inspect(fragile).last_failure
    assert reason == f"died: exit code 1 while handling message {deadly}"
    assert (recorded(home, project, "fragile").status, recorded(home, project, "fragile").last_error) == \
        ("failed", reason)

    shown = invoke(home, project, "ps")
    assert shown.exit_code == EXIT_OK, shown.output
    assert f"fragile failed: {reason}" in shown.stdout.splitlines()
    rows = {row["id"]: row for row in json.loads(invoke(home, project, "ps", "--json").stdout)}
    assert (rows["fragile"]["status"], rows["fragile"]["last_error"]) == ("failed", reason)

    with ActorSystem(home=home, project=project, durability="process") as second:
        info = second.inspect("fragile")
        assert (info.status, info.last_failure) == ("failed", reason)
        with pytest.raises(ActorFailed, match="actors restart fragile"):
            second.ask("fragile", "count", timeout=30)  # at once, not at the timeout
        second.tell("fragile", {"n": 1})  # kept; a message does not bring a failed actor back
        assert not second.inspect("fragile").live

    cure.touch()
    restarted = invoke(home, project, "restart", "fragile")
    assert restarted.exit_code == EXIT_OK, restarted.output
    assert restarted.stdout.startswith("reset 'fragile' from failed")
    entry = recorded(home, project, "fragile")
    assert (entry.status, entry.last_error) == ("stopped", "")

    with ActorSystem(home=home, project=project, durability="process") as third:
        # The restart queued an activation, which the system serves as it starts.
        wait_until(lambda: third.inspect("fragile").live, timeout=30)
        assert third.ask("fragile", "count", timeout=30) == 2  # the cured message and the kept one
        assert third.inspect("fragile").status == "running"


def test_restart_goes_through_the_running_system_and_reports_a_second_failure(home, project, system, tmp_path):
    cure = tmp_path / "cure"
    fragile, _ = fail_on_poison(system, cure)
    fragile.tell({"n": 1})

    again = run_cli_process(home, project, "restart", "fragile")
    assert again.returncode == EXIT_FAILED, again.stderr
    assert again.stderr.startswith("actors: 'fragile' failed again: died: exit code 1 while handling")
    assert len(again.stderr.strip().splitlines()) == 1

    cure.touch()
    restarted = run_cli_process(home, project, "restart", "fragile")
    assert restarted.returncode == EXIT_OK, restarted.stderr
    assert restarted.stdout.startswith("restarted 'fragile' (pid ")
    assert fragile.ask("count", timeout=30) == 2
    info = system.inspect(fragile)
    assert (info.status, info.last_failure) == ("running", "")

    running = run_cli_process(home, project, "restart", "fragile")
    assert running.returncode == EXIT_OK and "is running" in running.stdout


def test_restart_refuses_unknown_and_invalid_ids_in_one_line(home, project, system):
    system.spawn(poison_actors.SelfKiller, name="known")
    for args, code, fragment in ((("restart", "nobody"), EXIT_NOT_FOUND, "no actor 'nobody'"),
                                 (("restart", "../x"), EXIT_USAGE, "../x")):
        result = invoke(home, project, *args)
        assert result.exit_code == code, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("actors: ") and fragment in lines[0], lines
