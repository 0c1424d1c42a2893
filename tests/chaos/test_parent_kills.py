"""SIGKILL the parent: mid-stream, and while a spawn's on_start runs. Its workers see
the pipe close and exit by themselves; a new system on the same home resumes the
actors by name, and every message whose tell returned is applied exactly once."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import textwrap

import chaos_actors
import pytest
from conftest import descendants, support_env, wait_until

from actors import ActorSystem

from .book import alive, applied, check_exactly_once, seeded

pytestmark = pytest.mark.chaos

#: The parent a test kills. argv: home, project, out dir, actors, sending threads,
#: and a hold dir ("" for none). It keeps two warm workers, spawns ledger-0 ..
#: ledger-<actors-1>, writes their worker pids to out/pids, then each thread t tells
#: every actor in turn the numbers t * 1_000_000 + 1, + 2, ... and appends
#: "<actor> <seq>" to out/sent-<t> once each tell returned (flushed at once). With a
#: hold dir, it also spawns "held" (whose on_start holds while hold_dir/hold exists)
#: and thread 0 tells it too, from the moment its on_start runs.
PARENT_SCRIPT = textwrap.dedent("""
    import os, sys, threading
    import chaos_actors
    from actors import ActorSystem


    def main():
        home, project, out, actors, threads, hold_dir = sys.argv[1:]
        system = ActorSystem(home=home, project=project, durability="process", pool_size=2)
        names = [f"ledger-{i}" for i in range(int(actors))]
        for name in names:
            system.spawn(chaos_actors.Ledger, name=name)
        with open(os.path.join(out, "pids.tmp"), "w") as handle:
            handle.write(" ".join(str(system.pid_of(name)) for name in names))
        os.rename(os.path.join(out, "pids.tmp"), os.path.join(out, "pids"))
        if hold_dir:
            def spawn_held():
                system.spawn(chaos_actors.Ledger, name="held", secrets={"hold_dir": hold_dir})
            threading.Thread(target=spawn_held, daemon=True).start()

        def stream(t):
            targets = list(names)
            with open(os.path.join(out, f"sent-{t}"), "a") as sent:
                i = 0
                while True:
                    if hold_dir and t == 0 and "held" not in targets and any(
                            n.startswith("holding-") for n in os.listdir(hold_dir)):
                        targets.append("held")  # known to the system while it starts
                    i += 1
                    name = targets[i % len(targets)]
                    system.tell(name, {"seq": t * 1_000_000 + i})
                    sent.write(f"{name} {t * 1_000_000 + i}\\n")
                    sent.flush()

        for t in range(int(threads)):
            threading.Thread(target=stream, args=(t,), daemon=True).start()
        threading.Event().wait()  # SIGKILLed here


    if __name__ == "__main__":  # the fork server imports this file too
        main()
""")


def _recorded(out, threads):
    """What the parent recorded: actor -> the numbers whose tell returned, and
    thread -> its last recorded number."""
    confirmed: dict[str, set[int]] = {}
    last = {t: t * 1_000_000 for t in range(threads)}
    for t in range(threads):
        path = out / f"sent-{t}"
        if not path.exists():
            continue
        for line in path.read_text().splitlines(keepends=True):
            if not line.endswith("\n"):
                continue  # a line cut short by the kill: not recorded
            name, seq = line.split()
            confirmed.setdefault(name, set()).add(int(seq))
            last[t] = int(seq)
    return confirmed, last


def _uncertain(last, names):
    """The number each thread may have sent after its last recorded one (to whichever
    actor was next in turn): applied or not, but at most once."""
    return {name: {seq + 1 for seq in last.values()} for name in names}


def _count_sent(out, threads):
    return sum(len((out / f"sent-{t}").read_text().splitlines())
               for t in range(threads) if (out / f"sent-{t}").exists())


@contextlib.contextmanager
def _parent(tmp_path, home, project, actors, threads, hold_dir=""):
    """Run the parent script; yields it, its output directory and the pids of the
    workers it started. A parent the test did not kill is killed at the end."""
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "parent.py"
    script.write_text(PARENT_SCRIPT)
    with open(tmp_path / "parent.log", "wb") as log:
        parent = subprocess.Popen([sys.executable, str(script), str(home), str(project), str(out), str(actors),
                                   str(threads), str(hold_dir)], env=support_env(), stdout=log, stderr=log)
    try:
        wait_until(lambda: (out / "pids").exists() or parent.poll() is not None, timeout=60)
        assert parent.poll() is None, (tmp_path / "parent.log").read_text()
        yield parent, out, [int(p) for p in (out / "pids").read_text().split()]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _kill_parent(parent, pids):
    """SIGKILL the parent; returns its descendants (workers, fork server, resource
    tracker) as they were, which must then exit by themselves."""
    family = descendants(parent.pid)
    assert set(pids) <= family
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    return family


@pytest.mark.timeout(90)
@pytest.mark.parametrize("restart", ["once_its_workers_are_gone", "at_once"])
def test_a_parent_killed_mid_stream_leaves_no_worker_and_the_next_system_applies_each_recorded_tell_once(
        tmp_path, home, project, restart):
    rng = seeded(14_101)
    actors, threads = 3, 2
    with _parent(tmp_path, home, project, actors, threads) as (parent, out, pids):
        mark = rng.randrange(200, 800)
        wait_until(lambda: _count_sent(out, threads) >= mark, timeout=60)
        family = _kill_parent(parent, pids)
        if restart == "once_its_workers_are_gone":
            wait_until(lambda: not any(alive(pid) for pid in family), timeout=30)
    confirmed, last = _recorded(out, threads)
    names = [f"ledger-{i}" for i in range(actors)]
    assert set(confirmed) == set(names)
    # At once: the new system's workers may have to wait for the old ones to let go.
    with ActorSystem(home=home, project=project, durability="process") as system:
        for name in names:
            system.spawn(chaos_actors.Ledger, name=name)
        wait_until(lambda: not any(alive(pid) for pid in family), timeout=30)
        seqs = applied(system, names, confirmed)
        check_exactly_once(seqs, confirmed, _uncertain(last, names))
        for name in names:
            assert system.inspect(name).status == "running"
            assert system.dead_letters(name) == []


@pytest.mark.timeout(90)
def test_a_parent_killed_while_a_spawn_runs_on_start_leaves_no_worker_and_the_actor_resumes_cleanly(
        tmp_path, home, project):
    rng = seeded(14_102)
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir()
    (hold_dir / "hold").touch()
    actors, threads = 1, 2
    with _parent(tmp_path, home, project, actors, threads, hold_dir) as (parent, out, pids):
        holding = wait_until(lambda: list(hold_dir.glob("holding-*")), timeout=30)
        held = int(holding[0].name.removeprefix("holding-"))
        # Some tells to "held" while its on_start runs, then the kill.
        mark = rng.randrange(20, 200)
        wait_until(lambda: (out / "sent-0").exists()
                   and (out / "sent-0").read_text().count("held ") >= mark, timeout=60)
        family = _kill_parent(parent, [*pids, held])
        (hold_dir / "released").touch()  # on_start returns: the worker must see its parent gone
        wait_until(lambda: not any(alive(pid) for pid in family), timeout=30)
    confirmed, last = _recorded(out, threads)
    names = ["ledger-0", "held"]
    assert set(confirmed) == set(names)
    with ActorSystem(home=home, project=project, durability="process") as system:
        for name in names:
            system.spawn(chaos_actors.Ledger, name=name)
        seqs = applied(system, names, confirmed)
        check_exactly_once(seqs, confirmed, _uncertain(last, names))
        for name in names:
            assert system.inspect(name).status == "running"
            assert system.dead_letters(name) == []
