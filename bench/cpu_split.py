"""CPU per ask and per tell, each process apart (user and system time from /proc).

Usage::

    .venv/bin/python bench/cpu_split.py [--n-ask 3000] [--n-tell 20000] [--durability process]
                                        [--rounds 3] [--tmp-root /dev/shm]

An ask is sequential: the parent and the worker take turns, so its wall-clock time is
the two processes' CPU plus the wake-ups between them (the rest). A busy machine
stretches the wake-ups and the CPU both; the split says which of the two an
optimisation must attack. The parent's figure covers all its threads (the asking
thread, the monitor that reads the reply off the pipe, the callback thread).
Prints, per round, the medians of the ask latency and the CPU per message; the
median over rounds at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import common  # noqa: F401  (sets PYTHONPATH for the workers; must come first)
from bench_actors import Counter
from common import median, temp_system


def _worker_cpu(pid: int) -> tuple[float, float]:
    """(user, system) seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _own_cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _measure(system: object, counter: object, pid: int, n: int, what: str) -> dict[str, float]:
    own0, worker0 = _own_cpu(), _worker_cpu(pid)
    latencies = []
    start = time.perf_counter()
    if what == "ask":
        for _ in range(n):
            began = time.perf_counter()
            counter.ask("count", timeout=60)  # type: ignore[attr-defined]
            latencies.append(time.perf_counter() - began)
    else:
        for _ in range(n):
            counter.tell({"n": 1})  # type: ignore[attr-defined]
        counter.ask("count", timeout=60)  # type: ignore[attr-defined]  # all handled
    wall = time.perf_counter() - start
    own1, worker1 = _own_cpu(), _worker_cpu(pid)
    per = 1e6 / n
    return {
        "wall_us": wall * per,
        "p50_us": median(latencies) * 1e6 if latencies else 0.0,
        "parent_user_us": (own1[0] - own0[0]) * per, "parent_sys_us": (own1[1] - own0[1]) * per,
        "worker_user_us": (worker1[0] - worker0[0]) * per, "worker_sys_us": (worker1[1] - worker0[1]) * per,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-ask", type=int, default=3000)
    parser.add_argument("--n-tell", type=int, default=20000)
    parser.add_argument("--durability", default="process")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tmp-root", default=None)
    args = parser.parse_args()
    common.TMP_ROOT = args.tmp_root
    rows: dict[str, list[dict[str, float]]] = {"ask": [], "tell": []}
    for _ in range(args.rounds):
        with temp_system(durability=args.durability) as system:
            counter = system.spawn(Counter, name="counter")
            for _ in range(200):  # warm up
                counter.ask("count", timeout=60)
            pid = system.pid_of(counter)
            for what, n in (("ask", args.n_ask), ("tell", args.n_tell)):
                row = _measure(system, counter, pid, n, what)
                rows[what].append(row)
                print(f"{what:4s} load {os.getloadavg()[0]:4.1f}  " + "  ".join(f"{k} {v:7.1f}" for k, v in row.items()))
    for what, found in rows.items():
        summary = {key: median([row[key] for row in found]) for key in found[0]}
        print(f"median {what}: " + "  ".join(f"{k} {v:.1f}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
