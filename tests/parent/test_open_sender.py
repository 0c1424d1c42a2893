"""A spawn opens the parent's sender segment while the worker starts (maildir).

The first message to a new actor (usually the caller's first ask, right after
``spawn`` returns) then only writes: the segment it goes to, made, locked and renamed
into place (and at "machine" its directory flushed), was opened during the spawn.
Until that message comes the segment is empty, which is also what a parent killed
right after a spawn leaves behind: the next run must read past it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sample_actors
from conftest import process_gone, support_env, wait_until

from actors import ActorSystem


def _segments(system: ActorSystem, name: str) -> list[str]:
    backend = system._backend
    log_dir = Path(backend.mailbox_root(backend.address(system.name, name))) / "log"
    return sorted(p.name for p in log_dir.iterdir() if p.name.endswith(".seg"))


@pytest.mark.parametrize("durability", ["process", "machine"])
def test_a_spawn_opens_the_segment_its_first_message_goes_to(home, project, durability):
    with ActorSystem(home=home, project=project, durability=durability) as system:
        counter = system.spawn(sample_actors.Counter, name="counter")
        opened = [name for name in _segments(system, "counter") if f"-{os.getpid()}-" in name]
        assert len(opened) == 1  # before any message
        counter.tell({"n": 2})
        assert counter.ask("count") == 2
        # The messages went to that segment: no second one was opened for them.
        assert [name for name in _segments(system, "counter") if f"-{os.getpid()}-" in name] == opened


KILLED_AFTER_SPAWN = '''
import sys, time
import sample_actors
from actors import ActorSystem

system = ActorSystem(home=sys.argv[1], project=sys.argv[2], durability="machine")
counter = system.spawn(sample_actors.Counter, name="counter")
counter.tell({"n": 5})
assert counter.ask("count") == 5
fresh = system.spawn(sample_actors.Counter, name="fresh")  # its segment: opened, empty
print(system.pid_of(counter), system.pid_of(fresh), flush=True)
time.sleep(300)
'''


def test_a_parent_killed_right_after_a_spawn_leaves_an_empty_segment_the_next_run_reads_past(
        tmp_path, home, project):
    script = tmp_path / "killed.py"
    script.write_text(KILLED_AFTER_SPAWN)
    parent = subprocess.Popen([sys.executable, str(script), str(home), str(project)], stdout=subprocess.PIPE,
                              text=True, env=support_env())
    try:
        line = parent.stdout.readline() if parent.stdout else ""
        workers = [int(pid) for pid in line.split()]
        assert len(workers) == 2, line
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        if parent.stdout:
            parent.stdout.close()
    wait_until(lambda: all(process_gone(pid) for pid in workers), timeout=30)  # they see the pipe's EOF and stop
    with ActorSystem(home=home, project=project, durability="machine") as system:
        left = [name for name in _segments(system, "fresh") if f"-{parent.pid}-" in name]
        assert len(left) == 1  # what the killed parent opened for "fresh", unsealed
        fresh = system.spawn(sample_actors.Counter, name="fresh")
        fresh.tell({"n": 1})
        assert fresh.ask("count") == 1
        counter = system.spawn(sample_actors.Counter, name="counter")
        assert counter.ask("count") == 5  # nothing it committed was lost
        counter.tell({"n": 1})
        assert counter.ask("count") == 6
