"""Kills for tests: a stream of tells through an actor that SIGKILLs its own worker at
planned points (``crash_actors``), checked for nothing lost and nothing applied twice
(tests/worker on maildir, tests/redis_backend on Redis); and a writer process killed
at a random moment of its loop (tests/maildir)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Any, Callable

from conftest import wait_until


def stream_through_kills(system: Any, actor_class: type, plan_dir: Any, kill_at: dict[str, int],
                         stream: int, ask_every: int = 0) -> Any:
    """Spawn ``actor_class`` with the plan, tell it ``stream`` messages, wait until all
    are handled and none waits, and check each was applied once and every planned
    point fired; returns the actor's entry in ``system.children()``. With
    ``ask_every``, a query follows every that many tells and is waited for: the
    worker then takes the stream in batches of at most that many, whatever the speed
    of the sender (a planned point that needs small batches fires)."""
    ref = system.spawn(actor_class, name="killable", secrets={"plan_dir": str(plan_dir), "kill_at": kill_at})
    for seq in range(stream):
        ref.tell({"n": 1, "seq": seq})
        if ask_every and seq % ask_every == ask_every - 1:
            ref.ask("count", timeout=30)
    wait_until(lambda: ref.ask("count", timeout=10) >= stream and system.inspect(ref).pending == 0, timeout=60)
    seqs = ref.ask("seqs", timeout=10)
    assert sorted(seqs) == list(range(stream)), "a message was lost or applied twice"
    assert ref.ask("count", timeout=10) == stream
    assert sorted(p.name for p in plan_dir.iterdir()) == sorted(f"{point}.done" for point in kill_at)
    assert system.dead_letters(ref) == []
    return {c.name: c for c in system.children()}["killable"]


#: Where ``run_then_kill`` starts its processes (make their shared values here too).
CONTEXT = multiprocessing.get_context("forkserver")


def run_then_kill(target: Callable[..., None], args: tuple[Any, ...], ready: Callable[[], bool]) -> None:
    """Run ``target(*args)`` in a new process and SIGKILL it, wherever it is, once
    ``ready()`` holds (within 30 s)."""
    process = CONTEXT.Process(target=target, args=args)
    process.start()
    try:
        wait_until(ready, timeout=30)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.join()
