"""The CLI against a fleet on Redis (``--backend URL`` and ``ACTORS_BACKEND``): ps,
tell, ask, inbox, dead and stop, as real processes beside a running system."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import poison_actors
import sample_actors
from conftest import TESTS_DIR, support_env, wait_until

from actors import ActorSystem


def actors(home, project, url, *args, through_env=False):
    """``python -m actors.cli`` as its own process, the backend given by flag or by env."""
    env = support_env()
    env.pop("ACTORS_HOME", None)
    backend = []
    if through_env:
        env["ACTORS_BACKEND"] = url
    else:
        backend = ["--backend", url]
    return subprocess.run([sys.executable, "-m", "actors.cli", "--home", str(home), "--project", str(project),
                           *backend, *map(str, args)], capture_output=True, text=True, env=env, cwd=TESTS_DIR,
                          timeout=120)


def test_ps_tell_ask_inbox_dead_and_stop_work_on_a_fleet_on_redis(redis_server, home, project):
    url = redis_server.url
    with ActorSystem(home=home, project=project, durability="process", backend=url) as system:
        counter = system.spawn(sample_actors.Counter, name="counter")
        victim = system.spawn(poison_actors.SelfKiller, name="victim", max_attempts=1)
        victim.tell({"kill": True})
        wait_until(lambda: len(system.dead_letters(victim)) == 1, timeout=60)

        told = actors(home, project, url, "tell", "counter", '{"n": 5}')
        assert told.returncode == 0, told.stderr
        asked = actors(home, project, url, "ask", "counter", '"count"', through_env=True)
        assert (asked.returncode, asked.stdout.strip()) == (0, "5"), asked.stderr

        rows = json.loads(actors(home, project, url, "ps", "--json").stdout)
        by_id = {row["id"]: row for row in rows}
        assert by_id["counter"]["status"] == "running" and by_id["counter"]["pid"] == system.pid_of(counter)

        inbox = actors(home, project, url, "inbox", "counter")
        assert inbox.returncode == 0, inbox.stderr
        dead = actors(home, project, url, "dead", "victim")
        assert dead.returncode == 0 and "the worker died while handling it 1 times" in dead.stdout, dead.stdout

        pid = system.pid_of(counter)
        stopped = actors(home, project, url, "stop", "counter")
        assert stopped.returncode == 0, stopped.stderr
        wait_until(lambda: not os.path.exists(f"/proc/{pid}") or system.pid_of(counter) is None, timeout=30)
        assert counter.ask("count", timeout=30) == 5  # a message brings it back, with its state
