"""The capacity row: many actors, Zipf-distributed asks, ``ActorSystem(max_active=64)``.

1. Enrol: the actors are made cold, as a first spawn would leave them after its
   worker exited, but without starting one: each gets its storage
   (``Backend.provision``), a session committed with its spec (what a worker's first
   commit writes) and an index entry "stopped". Timed on its own (``enrol_s``):
   spawning 10,000 real workers on 2 cores would take minutes and is the spawn
   row's subject.
2. Drive: ``clients`` threads ask actors drawn from Zipf(s) over the ids (rank 1 =
   the hottest; each thread its own seeded generator) until ``asks`` are answered.
   Every ask is a message handled by the actor; an ask to a cold actor waits for its
   activation, which waits for room (passivating the least recently used idle one).
3. Measured: messages/s (answered asks / wall time), ask p50/p99, peak RSS of the
   fleet = the system's process + every live descendant (workers, pool, fork
   server), VmRSS from ``/proc/<pid>/status`` summed, sampled every 0.25 s; the most
   workers alive at once; activations seen (distinct (actor, worker pid) answers);
   the fleet's CPU time over the drive (the system's process, and every descendant's
   own and reaped children's: a worker that exited was reaped by the fork server)
   per activation, which a busy machine inflates much less than the wall clock; the
   load average before and after.
"""

from __future__ import annotations

import bisect
import json
import os
import random
import threading
import time
from typing import Any, Callable

from common import percentile, status_kb, temp_system

from actors import Actor


class PidCounter(Actor):
    """Counts the asks it answered; answers ``[count, worker pid]``."""

    def on_start(self) -> None:
        self.state.setdefault("count", 0)

    def on_ask(self, question: Any, msg: Any) -> Any:
        self.state["count"] += 1
        return [self.state["count"], os.getpid()]


def zipf_sampler(n: int, s: float, seed: int) -> Callable[[], int]:
    """A draw of ranks 0..n-1 with P(k) proportional to 1/(k+1)**s."""
    weights = [1.0 / (k + 1) ** s for k in range(n)]
    total = sum(weights)
    cumulative, acc = [], 0.0
    for w in weights:
        acc += w / total
        cumulative.append(acc)
    rng = random.Random(seed)
    return lambda: min(n - 1, bisect.bisect_left(cumulative, rng.random()))


def _descendants(root: int) -> list[int]:
    table: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    fields = handle.read().decode(errors="replace").rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                table[int(entry)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        kids = [pid for pid, ppid in table.items() if ppid == parent]
        found.extend(kids)
        frontier.extend(kids)
    return found


def _cpu_s(pid: int, reaped: bool) -> float:
    """CPU seconds of ``pid`` (user + system), with its reaped children's if ``reaped``."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().decode(errors="replace").rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if reaped else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def fleet_cpu_s() -> float:
    """CPU seconds used so far by this process and its live descendants, with what
    each descendant reaped (workers are the fork server's children)."""
    total = _cpu_s(os.getpid(), reaped=False)
    for pid in _descendants(os.getpid()):
        try:
            total += _cpu_s(pid, reaped=True)
        except (OSError, IndexError, ValueError):
            pass
    return total


class FleetSampler:
    """Peak summed VmRSS of this process and its descendants, and the most processes."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.peak_kb = 0
        self.most_children = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._done.is_set():
            pids = _descendants(me)
            total = 0
            for pid in [me, *pids]:
                try:
                    total += status_kb(pid, "VmRSS") or 0
                except OSError:
                    pass
            self.peak_kb = max(self.peak_kb, total)
            self.most_children = max(self.most_children, len(pids))
            self._done.wait(self.interval)

    def __enter__(self) -> "FleetSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(10)


def enrol(system: Any, names: list[str]) -> None:
    """Make ``names`` known, cold actors of ``system`` (see the module docstring)."""
    from actors_runtime.records import STOPPED, ChildEntry
    from actors_runtime.spec import Limits

    from actors._options import spawn_spec

    backend = system._backend  # the bench reaches into the system: no public call does this
    entries = []
    for name in names:
        spec = spawn_spec(system, PidCounter, name, role=None, labels=(), restart="on-failure", secrets=None,
                          parent_id=None, depth=1, limits=Limits(max_pending=system.max_pending))
        backend.provision(backend.address(system.name, name), spec.limits.max_pending)
        meta = {"id": name, "actor_class": spec.actor_class, "role": None, "labels": [], "parent_id": None,
                "restart": spec.restart, "depth": 1, "spec": spec.public_dict()}
        session = backend.store.session(system.name, name)
        try:
            session.commit(json.dumps({"count": 0}), json.dumps(meta), [], [])
        finally:
            session.close()
        entries.append(ChildEntry.for_spec(spec, status=STOPPED))
        if len(entries) >= 500:
            backend.store.record_children(system.name, entries)
            entries = []
    if entries:
        backend.store.record_children(system.name, entries)


def run_capacity(cfg: dict[str, Any], row: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
    actors, asks, clients = cfg["capacity_actors"], cfg["capacity_asks"], cfg["capacity_clients"]
    max_active, s = cfg["capacity_max_active"], cfg["capacity_zipf_s"]
    names = [f"z-{k:05d}" for k in range(actors)]
    latencies: list[float] = []
    seen: set[tuple[str, int]] = set()
    lock = threading.Lock()
    with temp_system(durability="process", max_active=max_active, pool_size=cfg["capacity_pool"]) as system:
        start = time.perf_counter()
        enrol(system, names)
        enrol_s = time.perf_counter() - start
        refs = [system.ref(name) for name in names]
        per_client = asks // clients

        def client(seed: int) -> None:
            draw = zipf_sampler(actors, s, seed)
            mine: list[float] = []
            got: set[tuple[str, int]] = set()
            for _ in range(per_client):
                ref = refs[draw()]
                began = time.perf_counter()
                _, pid = ref.ask("count", timeout=120)
                mine.append((time.perf_counter() - began) * 1000)
                got.add((ref.name, pid))
            with lock:
                latencies.extend(mine)
                seen.update(got)

        with FleetSampler() as sampler:
            threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
            load_before, cpu_before = os.getloadavg(), fleet_cpu_s()
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - began
            load_after, cpu = os.getloadavg(), fleet_cpu_s() - cpu_before
        warm_at_end = len(system._supervisor.capacity.warm())
    answered = len(latencies)
    n = f"{actors} actors, {answered} asks"
    extra = dict(max_active=max_active, zipf_s=s, clients=clients, enrol_s=enrol_s,
                 activations=len(seen), distinct_actors=len({name for name, _ in seen}),
                 most_processes=sampler.most_children, warm_at_end=warm_at_end, elapsed_s=elapsed,
                 fleet_cpu_s=cpu, cpu_ms_per_activation=cpu * 1000 / max(1, len(seen)),
                 loadavg_before=[round(x, 2) for x in load_before], loadavg_after=[round(x, 2) for x in load_after])
    return [
        row("capacity", "process", "messages/s", "msg/s", answered / elapsed, None, n, **extra),
        row("capacity", "process", "ask p99", "ms", percentile(latencies, 99), None, n,
            p50_ms=percentile(latencies, 50), max_ms=max(latencies)),
        row("capacity", "process", "peak fleet RSS", "MB", sampler.peak_kb / 1024, None, n,
            most_processes=sampler.most_children),
    ]
