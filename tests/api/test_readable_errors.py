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
