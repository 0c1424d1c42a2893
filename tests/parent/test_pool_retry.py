"""A warm worker that died while parked in the pool never costs a spawn: the spawn
starts a new process instead, and the dead one is reaped."""

from __future__ import annotations

import os
import signal

import sample_actors
from conftest import process_gone, wait_until

from actors import ActorSystem


def test_a_spawn_that_takes_a_warm_worker_which_just_died_starts_the_actor_on_a_new_one(
        home, project, monkeypatch):
    with ActorSystem(home=home, project=project, durability="process", pool_size=1) as system:
        pool = system._supervisor.pool
        parked = wait_until(lambda: pool.pids(), timeout=30)[0]
        take = pool.take
        taken = []

        def take_one_that_dies():
            warm = take()
            if warm is not None:  # dies after checkout, before it is handed the spec
                taken.append(warm[0])
                os.kill(warm[0].pid, signal.SIGKILL)
                wait_until(lambda: process_gone(warm[0].pid))
            return warm

        monkeypatch.setattr(pool, "take", take_one_that_dies)
        counter = system.spawn(sample_actors.Counter, name="counter")
        assert [process.pid for process in taken] == [parked], "the spawn must have taken the parked worker"
        counter.tell({"n": 2})
        assert counter.ask("count") == 2
        info = system.inspect(counter)
        assert (info.status, info.last_failure) == ("running", "")
        assert info.pid not in (None, parked)
        assert taken[0].exitcode == -signal.SIGKILL  # reaped; the no-leak fixture checks nothing is left


def test_a_spawn_after_the_parked_pool_worker_was_killed_succeeds(home, project):
    with ActorSystem(home=home, project=project, durability="process", pool_size=1) as system:
        pool = system._supervisor.pool
        parked = wait_until(lambda: pool.pids(), timeout=30)[0]
        os.kill(parked, signal.SIGKILL)
        counter = system.spawn(sample_actors.Counter, name="counter")
        assert counter.ask("count") == 0
        assert system.inspect(counter).status == "running"
        assert system.pid_of(counter) != parked
