"""Errors a new user meets read as one line that says what happened and what to do."""

from __future__ import annotations

import pickle
import subprocess
import sys
import traceback

import pytest
import sample_actors
from conftest import support_env

from actors import ActorFailed

# -- ActorFailed ----------------------------------------------------------------------------------


def test_actor_failed_is_one_line_and_keeps_the_remote_traceback_apart(system):
    failing = system.spawn(sample_actors.Failing, name="failing")
    with pytest.raises(ActorFailed) as caught:
        failing.ask("boom")
    error = caught.value
    assert str(error) == "'failing' failed: ValueError: boom requested"
    assert "raise ValueError" in error.traceback and "sample_actors.py" in error.traceback
    # Printed uncaught (or logged with exc_info), the remote traceback follows the local one.
    printed = "".join(traceback.format_exception(error))
    assert "Remote traceback:" in printed and 'raise ValueError("boom requested")' in printed


def test_actor_failed_joins_a_message_of_several_lines_and_still_pickles():
    error = ActorFailed("x", "ValueError", "first\n  second\n", "Traceback ...\nValueError: first\n")
    assert str(error) == "'x' failed: ValueError: first; second"
    assert str(ActorFailed("x", "KeyError", "")) == "'x' failed: KeyError"
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.message == "first\n  second\n"
    assert copy.traceback == error.traceback and copy.__notes__ == error.__notes__ == [
        "Remote traceback:\nTraceback ...\nValueError: first"]


UNCAUGHT = '''
import sys
from actors import ActorSystem
import sample_actors

if __name__ == "__main__":
    with ActorSystem(home=sys.argv[1], project=sys.argv[2], durability="process") as system:
        system.spawn(sample_actors.Failing, name="failing").ask("boom")
'''


def test_an_uncaught_actor_failed_shows_both_tracebacks_and_one_error_line(tmp_path, home, project):
    script = tmp_path / "uncaught.py"
    script.write_text(UNCAUGHT)
    result = subprocess.run([sys.executable, str(script), str(home), str(project)], capture_output=True,
                            text=True, env=support_env(), timeout=120)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines.count("actors_runtime.errors.ActorFailed: 'failing' failed: ValueError: boom requested") == 1
    assert "Remote traceback:" in lines and 'raise ValueError("boom requested")' in result.stderr


# -- a script without the __main__ guard ----------------------------------------------------------

UNGUARDED = '''
import sys
from actors import Actor, ActorSystem

class Greeter(Actor):
    def on_ask(self, question, msg):
        return f"hello {question}"

print("top level ran", flush=True)
system = ActorSystem(home=sys.argv[1], project=sys.argv[2], durability="process", start_method=sys.argv[3])
print(system.spawn(Greeter, name="greeter").ask("you", timeout=30))
system.shutdown()
'''


def _run_unguarded(tmp_path, home, project, start_method):
    script = tmp_path / f"unguarded_{start_method}.py"
    script.write_text(UNGUARDED)
    return script, subprocess.run([sys.executable, str(script), str(home), str(project), start_method],
                                  capture_output=True, text=True, env=support_env(), timeout=120)


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_a_script_without_the_main_guard_fails_at_once_with_one_error_naming_the_guard(
        tmp_path, home, project, start_method):
    script, result = _run_unguarded(tmp_path, home, project, start_method)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "Error" in line and not line.startswith(" ")]
    assert errors == [
        f"actors_runtime.errors.SpawnError: could not start 'greeter': its worker re-ran this program's main "
        f"script {script}, which creates an ActorSystem at its top level: put the script's entry point (the "
        f"ActorSystem and what uses it) under `if __name__ == \"__main__\":`"], result.stderr
    assert "already running" not in result.stderr and "exited before registering" not in result.stderr
    assert result.stdout.count("top level ran") >= 1  # the worker re-ran it; nothing else came of that


def test_a_script_without_the_main_guard_works_under_fork(tmp_path, home, project):
    _, result = _run_unguarded(tmp_path, home, project, "fork")  # fork re-runs nothing
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["top level ran", "hello you"]


def test_the_same_script_with_the_guard_works_under_forkserver(tmp_path, home, project):
    top, _, entry = UNGUARDED.partition('print("top level ran"')
    guarded = top + 'if __name__ == "__main__":\n' + "".join(
        "    " + line + "\n" for line in ('print("top level ran"' + entry).strip().splitlines())
    script = tmp_path / "guarded.py"
    script.write_text(guarded)
    result = subprocess.run([sys.executable, str(script), str(home), str(project), "forkserver"],
                            capture_output=True, text=True, env=support_env(), timeout=120)
    assert result.returncode == 0, (guarded, result.stderr)
    assert result.stdout.splitlines() == ["top level ran", "hello you"]
