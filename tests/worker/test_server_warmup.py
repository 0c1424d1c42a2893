"""What a worker forked from the fork server starts with: its codecs run once in the
server (``server_warmup``), and no ``filelock`` (whose fork hooks ran in every child).
"""

from __future__ import annotations

import sample_actors
from actors_runtime.worker import server_warmup

from actors import ActorSystem


def test_a_cold_worker_starts_with_the_codecs_warmed_in_the_fork_server_and_without_filelock(home, project):
    with ActorSystem(home=home, project=project, durability="process") as system:
        ref = system.spawn(sample_actors.ModulesLoaded, name="modules")
        answer = ref.ask(["actors_runtime.worker.server_warmup", "filelock"])
    assert answer == {"loaded": {"actors_runtime.worker.server_warmup": True, "filelock": False}, "warmed": True}


def test_a_failing_warm_up_is_swallowed_so_it_cannot_take_the_fork_server_down(monkeypatch):
    # The fork server imports its preload catching ImportError only.
    def broken() -> None:
        raise ValueError("a codec changed")

    monkeypatch.setattr(server_warmup, "warm_codecs", broken)
    assert server_warmup.warm() is False
    monkeypatch.undo()
    assert server_warmup.warm() is True
