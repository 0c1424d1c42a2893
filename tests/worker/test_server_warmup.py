"""What a worker forked from the fork server starts with: its codecs run once in the
server (``server_warmup``), and no ``filelock`` (whose fork hooks ran in every child).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import sample_actors
from actors_runtime.worker import server_warmup

SUPPORT = os.path.dirname(sample_actors.__file__)


def test_a_cold_worker_starts_with_the_codecs_warmed_in_the_fork_server_and_without_filelock(home, project):
    # In a fresh interpreter: the fork server is one per process, and one an earlier
    # test started (plain multiprocessing, no preload) would serve this system's
    # workers too.
    program = textwrap.dedent(f"""
        import json, sample_actors
        from actors import ActorSystem
        with ActorSystem(home={str(home)!r}, project={str(project)!r}, durability="process") as system:
            ref = system.spawn(sample_actors.ModulesLoaded, name="modules")
            print(json.dumps(ref.ask(["actors_runtime.worker.server_warmup", "filelock"], timeout=30)))
        """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SUPPORT, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"loaded": {"actors_runtime.worker.server_warmup": True, "filelock": False}, "warmed": True}


def test_a_failing_warm_up_is_swallowed_so_it_cannot_take_the_fork_server_down(monkeypatch):
    # The fork server imports its preload catching ImportError only.
    def broken() -> None:
        raise ValueError("a codec changed")

    monkeypatch.setattr(server_warmup, "warm_codecs", broken)
    assert server_warmup.warm() is False
    monkeypatch.undo()
    assert server_warmup.warm() is True
