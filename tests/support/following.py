"""``actors logs --follow`` run as a real program: it prints what comes, and ends
cleanly on a signal (tests/observe/test_logging.py on maildir, tests/redis_backend
on Redis)."""

from __future__ import annotations

import subprocess
import sys
from typing import Callable


def follow_until_signal(cli_args: list[str], env: dict[str, str], cwd: str, first: str,
                        make_next: Callable[[], None], second: str, signum: int) -> tuple[int, str, str]:
    """Run ``actors <cli_args>`` (a ``logs ... --follow``), check that it prints a line
    ending with ``first``, then, after ``make_next()``, one ending with ``second``;
    send it ``signum`` and return its exit code, stdout and stderr after that. Each
    line read has pytest's timeout; the program is killed if it outlives the test."""
    process = subprocess.Popen([sys.executable, "-m", "actors.cli", *cli_args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().endswith(first)
        make_next()
        assert process.stdout.readline().endswith(second)
        process.send_signal(signum)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out, err
