"""A Redis mailbox reader that stalls past its lease, for the fencing tests.

``paused_reader(then)`` is a program (for ``python -c``, argv: server URL, project
key) that claims actor "main/actor" with a one-second reader lease, takes what waits,
prints ``handed N``, waits for a line on stdin (the test lets a successor take over
meanwhile), then runs ``then``: code that uses ``backend``, ``box`` and ``batch`` and
prints its outcome as JSON.
"""

from __future__ import annotations

import textwrap

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
