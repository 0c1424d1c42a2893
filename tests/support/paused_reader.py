"""A Redis mailbox reader that stalls past its lease, for the fencing tests.

``paused_reader(then)`` is a program (for ``python -c``, argv: server URL, project
key) that claims actor "main/actor" with a one-second reader lease, takes what waits,
prints ``handed N``, waits for a line on stdin (the test lets a successor take over
meanwhile), then runs ``then``: code that uses ``backend``, ``box`` and ``batch`` and
prints its outcome as JSON. ``paused_past_lease`` runs such a program and stops it
(SIGSTOP) once it has claimed; ``resume`` lets it go on.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import textwrap
from typing import Any, Iterator

from conftest import support_env

_CLAIM = """\
import json, sys
from actors_runtime.admitted import AdmittedSet
from actors_runtime.backends.redis import RedisBackend
from actors_runtime.errors import StoreError
backend = RedisBackend(sys.argv[1], sys.argv[2], "process", reader_lease=1.0)
box = backend.mailbox(backend.address("main", "actor"))
box.claim(5)
batch = box.recover()
print("handed", len(batch), flush=True)
sys.stdin.readline()
"""


def paused_reader(then: str) -> str:
    """The program described in the module docstring."""
    return _CLAIM + textwrap.dedent(then)


class PausedReader:
    """A ``paused_reader`` program stopped after its claim (see ``paused_past_lease``)."""

    def __init__(self, process: "subprocess.Popen[str]") -> None:
        self.process = process

    def resume(self) -> tuple[dict[str, Any], int]:
        """Let it go on: its outcome (the JSON it printed) and its exit code."""
        process = self.process
        assert process.stdin is not None and process.stdout is not None
        process.send_signal(signal.SIGCONT)
        process.stdin.write("go\n")
        process.stdin.flush()
        outcome = json.loads(process.stdout.readline())
        return outcome, process.wait(30)


@contextlib.contextmanager
def paused_past_lease(program: str, url: str, project_key: str, handed: int) -> Iterator[PausedReader]:
    """Run ``program`` (a ``paused_reader``), check it was handed ``handed`` messages,
    and stop it there: it cannot renew its lease while stopped. It is killed on the way
    out if it still runs."""
    with subprocess.Popen([sys.executable, "-c", program, url, project_key], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True, env=support_env()) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().split() == ["handed", str(handed)]
            process.send_signal(signal.SIGSTOP)
            yield PausedReader(process)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait(10)
