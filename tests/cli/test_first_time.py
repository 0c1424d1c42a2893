"""The CLI as a new user meets it: an empty home, an empty project, the projects a
home holds, an ask that cannot be answered, a script's output under ``actors run``."""

from __future__ import annotations

import json
import os
import signal
import time

import sample_actors
from conftest import wait_until

from actors import ActorSystem
from actors.cli.exit_codes import EXIT_FAILED, EXIT_NOT_RUNNING, EXIT_OK

from .test_cli import invoke, open_store, run_cli_process

HEADER = "ID  SYSTEM  CLASS  ROLE  HOST  PID  STATUS  PENDING  RESTARTS  LEASE"


# -- ps on nothing ------------------------------------------------------------------------------


def test_ps_on_an_empty_home_prints_the_header_and_json_an_empty_list_and_exits_0(tmp_path, project):
    home = tmp_path / "never-used"
    table = run_cli_process(home, project, "ps")
    assert table.returncode == EXIT_OK, table.stderr
    assert table.stdout.splitlines() == [HEADER]
    assert "no actors in project" in table.stderr and "'actors projects'" in table.stderr
    listed = run_cli_process(home, project, "ps", "--json")
    assert listed.returncode == EXIT_OK, listed.stderr
    assert json.loads(listed.stdout) == []
    assert not home.exists()  # looking never creates anything


def test_ps_on_a_project_whose_system_has_no_actors_prints_the_header(home, project):
    with ActorSystem(home=home, project=project, durability="process"):
        pass
    result = invoke(home, project, "ps")
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.splitlines() == [HEADER]
    assert json.loads(invoke(home, project, "ps", "--json").stdout) == []


def test_ps_of_a_system_without_actors_says_which_system(home, project, system):
    system.spawn(sample_actors.Counter, name="counter")
    result = invoke(home, project, "--system", "other", "ps")
    assert result.exit_code == EXIT_OK and result.stdout.splitlines() == [HEADER]
    assert "no actors in system 'other'" in result.stderr


# -- projects -------------------------------------------------------------------------------------


def test_projects_of_an_empty_home_is_an_empty_list(tmp_path, project):
    result = invoke(tmp_path / "never-used", project, "projects")
    assert result.exit_code == EXIT_OK
    assert result.stdout.split() == ["KEY", "DIRECTORY", "ACTORS", "SYSTEMS", "RUNNING"]
    assert "no projects under" in result.stderr
    assert json.loads(invoke(tmp_path / "never-used", project, "projects", "--json").stdout) == []


def test_projects_lists_each_directory_with_its_actors_systems_and_the_running_system(home, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    with ActorSystem(home=home, project=first, durability="process") as old:
        old.spawn(sample_actors.Counter, name="a")
        old.spawn(sample_actors.Counter, name="b")
    with ActorSystem(home=home, project=second, name="fleet", durability="process") as running:
        running.spawn(sample_actors.Counter, name="c")
        result = run_cli_process(home, tmp_path, "projects", "--json")  # from a directory of neither
        table = run_cli_process(home, tmp_path, "projects")
    assert result.returncode == EXIT_OK, result.stderr
    rows = {row["directory"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {str(first), str(second)}
    assert rows[str(first)]["actors"] == 2 and rows[str(first)]["systems"] == ["main"]
    assert rows[str(first)]["running"] == []
    assert rows[str(second)]["actors"] == 1 and rows[str(second)]["systems"] == ["fleet"]
    assert rows[str(second)]["running"] == [{"system": "fleet", "pid": os.getpid()}]
    assert not any(row["current"] for row in rows.values())
    assert table.returncode == EXIT_OK
    line = next(line for line in table.stdout.splitlines() if str(second) in line)
    assert f"fleet (pid {os.getpid()})" in line and rows[str(second)]["key"] in line
    # Once that system is shut down, nothing of the project runs.
    after = {row["directory"]: row for row in json.loads(invoke(home, tmp_path, "projects", "--json").stdout)}
    assert after[str(second)]["running"] == []


def test_projects_marks_a_directory_that_is_gone(home, tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    with ActorSystem(home=home, project=gone, durability="process"):
        pass
    gone.rmdir()
    result = invoke(home, tmp_path, "projects")
    assert result.exit_code == EXIT_OK
    assert f"{gone} (gone)" in result.stdout
    [row] = json.loads(invoke(home, tmp_path, "projects", "--json").stdout)
    assert row["directory_exists"] is False


# -- ask and tell to an actor nothing can start -----------------------------------------------------


def test_ask_to_an_actor_whose_system_does_not_run_fails_at_once_and_sends_nothing(home, project):
    with ActorSystem(home=home, project=project, durability="process") as owner:
        owner.spawn(sample_actors.Counter, name="counter")
    started = time.monotonic()
    result = run_cli_process(home, project, "ask", "counter", '"count"', "--timeout", "60")
    assert time.monotonic() - started < 30  # the process's own start-up; not the 60 s timeout
    assert result.returncode == EXIT_NOT_RUNNING, result.stderr
    assert result.stderr.splitlines() == [
        "actors: 'counter' is not running and its system 'main' is not running, so nothing can start it "
        "now (run the program that owns it). The question was not sent"]
    assert pending(home, project, "counter") == 0


def test_ask_to_an_actor_marked_failed_fails_at_once_while_its_system_runs(home, project, system):
    counter = system.spawn(sample_actors.Counter, name="counter", restart="never")
    os.kill(system.pid_of(counter), signal.SIGKILL)
    wait_until(lambda: system.inspect(counter).status == "failed", timeout=30)
    result = run_cli_process(home, project, "ask", "counter", '"count"', "--timeout", "60")
    assert result.returncode == EXIT_FAILED, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("actors: 'counter' is marked failed (died: killed by SIGKILL")
    assert "'actors restart counter'" in line and "not sent" in line
    assert pending(home, project, "counter") == 0


def test_tell_to_an_actor_nothing_runs_is_queued_and_says_what_will_start_it(home, project):
    with ActorSystem(home=home, project=project, durability="process") as owner:
        owner.spawn(sample_actors.Counter, name="counter")
    result = invoke(home, project, "tell", "counter", '{"n": 2}')
    assert result.exit_code == EXIT_OK
    assert "is not running and neither is its system 'main'" in result.stdout
    assert pending(home, project, "counter") == 1
    with ActorSystem(home=home, project=project, durability="process") as owner:  # its next run starts it
        wait_until(lambda: owner.inspect("counter").live, timeout=30)
        assert owner.ask("counter", "count", timeout=30) == 2


def pending(home, project, actor_id):
    backend = open_store(home, project)
    try:
        view = backend.view(backend.address("main", actor_id))
        try:
            return view.pending_count()
        finally:
            view.close()
    finally:
        backend.close()
