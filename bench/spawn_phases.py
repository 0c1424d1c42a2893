"""Where a cold spawn's milliseconds go: both processes, one timeline per spawn.

    .venv/bin/python bench/spawn_phases.py [--n 15] [--durability process] [--tmp-root DIR]
                                           [--actor bench_actors:Counter] [--json PATH] [--events]
                                           [--profile DIR]

Each spawn is a cold one (fork server warm, no pool), timed from ``spawn()`` to the
first ``ask`` reply. The parent's side is timed around the launcher's
``start`` (wrapped on the instance); the worker's side by ``spawn_probe``, which the
fork server imports and which makes every worker log its imports, opens and renames
with the same clock. Phases (medians over the spawns, ms):

- ``prepare``: ``spawn()`` until the launcher is called (the actor's storage made, its record queued);
- ``launch``: the launcher's ``start`` (connect to the fork server, send the preparation data, fork);
- ``bootstrap``: fork until the worker has unpickled its target (multiprocessing's
  preparation, including any re-run of the main script);
- ``to ready``: from there until the parent read "ready" (the spec on the pipe, the
  actor's class imported, the backend opened, the activation, registration);
- ``first reply``: ``spawn()`` returned until the first ``ask`` answered.

Also per spawn: the worker's CPU up to its first reply (``/proc/<pid>/task/*/schedstat``,
ns on CPU: what the load of the machine changes least) and the parent's (all its
threads, over the same window). ``--events`` prints one spawn's whole worker timeline.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import sys
import tempfile
import time
from typing import Any

import common  # noqa: F401  (bench/ on PYTHONPATH for the workers)
from common import median, temp_system

PROBE_MODULE = "spawn_probe"


def _cpu_ns(pid: int | str) -> int:
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


#: One event of a worker's timeline: clock (ns), the worker's CPU so far (ns), event, detail.
Event = tuple[int, int, str, str]


def _read_events(path: str) -> dict[int, list[Event]]:
    events: dict[int, list[Event]] = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 4)
            if len(parts) == 5:
                events.setdefault(int(parts[0]), []).append((int(parts[1]), int(parts[2]), parts[3], parts[4]))
    return events


def _first(events: list[Event], kind: str, contains: str = "") -> int | None:
    for t, _, event, detail in events:
        if event == kind and contains in detail:
            return t
    return None


def run(n: int, durability: str, actor: str, probe_file: str) -> dict[str, Any]:
    module_name, _, qualname = actor.partition(":")
    cls = getattr(importlib.import_module(module_name), qualname)
    samples = []
    with temp_system(durability=durability) as system:
        from multiprocessing import forkserver

        # The system's own preload list (the launcher's), and the probe: before the
        # first spawn starts the server.
        preload = list(forkserver._forkserver._preload_modules)  # type: ignore[attr-defined]
        forkserver.set_forkserver_preload(preload + [PROBE_MODULE])
        launcher = system._supervisor.launcher
        real_start = launcher.start
        marks: dict[str, int] = {}

        def timed_start(*args: Any, **kwargs: Any) -> Any:
            marks["launch_call"] = time.perf_counter_ns()
            started = real_start(*args, **kwargs)
            marks["launch_return"] = time.perf_counter_ns()
            return started

        launcher.start = timed_start
        ref = system.spawn(cls, name="warm-up")  # starts the fork server
        ref.ask("count", timeout=60)
        ref.stop()
        me = os.getpid()
        for i in range(n):
            marks.clear()
            cpu0 = _cpu_ns(me)
            t0 = time.perf_counter_ns()
            ref = system.spawn(cls, name=f"cold-{i}")
            t_spawned = time.perf_counter_ns()
            ref.ask("count", timeout=60)
            t_reply = time.perf_counter_ns()
            pid = system.pid_of(ref)
            worker_cpu = _cpu_ns(pid)
            parent_cpu = _cpu_ns(me) - cpu0
            samples.append({"pid": pid, "t0": t0, "spawned": t_spawned, "reply": t_reply,
                            "launch_call": marks.get("launch_call"), "launch_return": marks.get("launch_return"),
                            "worker_cpu_ms": worker_cpu / 1e6, "parent_cpu_ms": parent_cpu / 1e6})
            ref.stop()
    events = _read_events(probe_file) if os.path.exists(probe_file) else {}
    for sample in samples:
        timeline = sorted(events.get(sample["pid"], []))
        sample["events"] = timeline
        fork = _first(timeline, "fork")
        target = _first(timeline, "pickle.find_class", "pipe_main")
        ms = 1e6
        sample["phases"] = {
            "total": (sample["reply"] - sample["t0"]) / ms,
            "prepare": (sample["launch_call"] - sample["t0"]) / ms if sample["launch_call"] else None,
            "launch": ((sample["launch_return"] - sample["launch_call"]) / ms
                       if sample["launch_call"] and sample["launch_return"] else None),
            "bootstrap": (target - fork) / ms if fork and target else None,
            "to ready": (sample["spawned"] - target) / ms if target else None,
            "first reply": (sample["reply"] - sample["spawned"]) / ms,
            "fork after launch call": (fork - sample["launch_call"]) / ms if fork and sample["launch_call"] else None,
            "worker imports": sum(1 for _, _, event, _ in timeline if event == "import"),
        }
    return {"samples": samples}


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    keys = list(samples[0]["phases"])
    out: dict[str, Any] = {}
    for key in keys:
        values = [s["phases"][key] for s in samples if s["phases"][key] is not None]
        out[key] = median(values) if values else None
    out["worker cpu"] = median([s["worker_cpu_ms"] for s in samples])
    out["parent cpu"] = median([s["parent_cpu_ms"] for s in samples])
    return out


def print_events(sample: dict[str, Any]) -> None:
    fork = _first(sample["events"], "fork") or sample["t0"]
    print(f"\nworker {sample['pid']}: ms after fork, and its CPU ms so far (parent: spawn() at "
          f"{(sample['t0'] - fork) / 1e6:+.2f}, ready read at {(sample['spawned'] - fork) / 1e6:+.2f}, "
          f"reply at {(sample['reply'] - fork) / 1e6:+.2f})")
    for t, cpu, event, detail in sample["events"]:
        print(f"  {(t - fork) / 1e6:8.2f} {cpu / 1e6:6.2f}  {event:18s} {detail[:100]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=15)
    parser.add_argument("--durability", default="process", choices=("process", "machine"))
    parser.add_argument("--actor", default="bench_actors:Counter")
    parser.add_argument("--tmp-root", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--events", action="store_true", help="print the fastest spawn's worker timeline")
    parser.add_argument("--profile", metavar="DIR", default=None,
                        help="also cProfile each worker's main thread (fork to stop) into DIR/<pid>.prof "
                             "and print the top functions of them all (times inflated by the profiler)")
    args = parser.parse_args(argv)
    if args.tmp_root:
        common.TMP_ROOT = args.tmp_root
    probe_file = tempfile.mktemp(prefix="spawn-probe-", suffix=".log")
    os.environ["SPAWN_PROBE_FILE"] = probe_file  # the fork server inherits it
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
        os.environ["SPAWN_PROBE_PROFILE"] = args.profile
    try:
        result = run(args.n, args.durability, args.actor, probe_file)
    finally:
        if os.path.exists(probe_file):
            os.unlink(probe_file)
    samples = result["samples"]
    summary = summarise(samples)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"cold spawns: {len(samples)}, durability {args.durability}, load average {' '.join(load)}")
    for key, value in summary.items():
        print(f"  {key:24s} {'-' if value is None else f'{value:.2f}'}")
    if args.events:
        ordered = sorted(samples, key=lambda s: s["phases"]["total"])
        print_events(ordered[0])
    if args.profile:
        import pstats

        paths = [os.path.join(args.profile, f"{s['pid']}.prof") for s in samples]
        paths = [p for p in paths if os.path.exists(p)]
        if paths:
            print(f"\nworkers' main threads, {len(paths)} profiles, cumulative (per worker: divide by {len(paths)})")
            pstats.Stats(*paths).sort_stats("cumulative").print_stats(40)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "load": load, "code": common.code_fingerprint(),
                       "samples": [{k: v for k, v in s.items() if k != "events"} for s in samples]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
