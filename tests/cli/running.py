"""Running the CLI from a test: in this process (click's runner) or as a real process."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner
from conftest import TESTS_DIR, support_env

from actors.cli import cli


def invoke(home, project, *args, input=None):
    """Run ``actors --home HOME --project PROJECT ARGS...`` in this process."""
    argv = ["--home", str(home), "--project", str(project), *map(str, args)]
    return CliRunner().invoke(cli, argv, input=input)


def run_cli_process(home, project, *args):
    """``python -m actors.cli ...`` as a real process (a system of the test may hold its lock)."""
    env = support_env()
    env.pop("ACTORS_HOME", None)
    return subprocess.run([sys.executable, "-m", "actors.cli", "--home", str(home), "--project", str(project),
                           *map(str, args)], capture_output=True, text=True, env=env, cwd=TESTS_DIR, timeout=120)


def assert_one_line_error(result, code, *fragments):
    """The CLI failed with ``code`` and one line on stderr holding every fragment."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("actors: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
