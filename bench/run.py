"""The benchmark suite: durable-actors against a multiprocessing.Pipe baseline.

Usage::

    .venv/bin/python bench/run.py [--quick] [--json PATH] [--only NAME,...] [--tmp-root DIR] [--settle S]

Rows (``--only`` names): ``tell``, ``ask``, ``spawn``, ``fanout``, ``idle``, ``resume``,
``timers``, ``steps``, ``capacity``, ``trace`` (the tell stream and ask p50 at "process" with tracing off, with the
OpenTelemetry API and no provider, and with the SDK recording in every process).
``tell`` also times the same stream sent with ``tell_many`` (batches of 100) when the
library has it.
Each runs at durability "process" and "machine" where that matters, and runs its
Pipe baseline in the same run; the table shows ``ratio = actor / Pipe``. Results go
to ``bench/results/latest.json`` unless ``--json`` says otherwise. See
docs/benchmarks.md for what each row measures and how to read it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Callable

import common  # noqa: F401  (sets PYTHONPATH for the workers; must come first)
from common import (
    BENCH_DIR,
    CLK_TCK,
    RESULTS_DIR,
    cpu_ticks,
    machine_info,
    median,
    percentile,
    pss_kb,
    status_kb,
    temp_system,
    wait_until,
)

import baselines
from bench_actors import Counter, Resumer, TracedCounter
from bench_capacity import run_capacity
from bench_steps import run_steps
from bench_timers import run_timers

ROWS = ("tell", "ask", "spawn", "fanout", "idle", "resume", "timers", "steps", "capacity", "trace")
#: The tracing modes of the trace row: off (``ACTORS_TRACING=off``: the path taken
#: without opentelemetry), the API's no-op tracer, the SDK recording spans.
TRACE_MODES = ("off", "api", "sdk")
DURABILITIES = ("process", "machine")

#: Sizes per mode. Quick mode keeps the whole suite to a couple of minutes.
CONFIG: dict[str, dict[str, Any]] = {
    "quick": {
        "tell_n": {"process": 5_000, "machine": 1_000},
        "tell_many_n": {"process": 5_000, "machine": 5_000},
        "tell_many_batch": 100,
        "ask_n": {"process": 1_000, "machine": 300},
        "ask_warmup": 50,
        "trace_tell_n": 3_000,
        "trace_ask_n": 500,
        "trace_rounds": 2,
        "spawn_k": 10,
        "spawn_first_runs": 3,
        "pool_size": 2,
        "fanout_actors": 8,
        "fanout_per_actor": {"process": 1_000, "machine": 150},
        "idle_actors": 20,
        "idle_seconds": 4.0,
        "resume_n": {"process": 10_000, "machine": 10_000},
        "timer_actors": 100,
        "timer_per_actor": 100,
        "timer_window": 10.0,
        "step_k": 10,
        "step_asks": 100,
        "step_rounds": 5,
        "capacity_actors": 1_000,
        "capacity_asks": 2_000,
        "capacity_clients": 8,
        "capacity_max_active": 64,
        "capacity_zipf_s": 1.1,
        "capacity_pool": 4,
        "pipe_tell_n": 50_000,
        "pipe_fanout_per_child": 10_000,
        "pipe_spawn_k": 10,
    },
    "full": {
        "tell_n": {"process": 20_000, "machine": 3_000},
        "tell_many_n": {"process": 20_000, "machine": 20_000},
        "tell_many_batch": 100,
        "ask_n": {"process": 2_000, "machine": 2_000},
        "ask_warmup": 100,
        "trace_tell_n": 10_000,
        "trace_ask_n": 1_000,
        "trace_rounds": 3,
        "spawn_k": 20,
        "spawn_first_runs": 5,
        "pool_size": 4,
        "fanout_actors": 8,
        "fanout_per_actor": {"process": 10_000, "machine": 1_000},
        "idle_actors": 20,
        "idle_seconds": 10.0,
        "resume_n": {"process": 10_000, "machine": 10_000},
        "timer_actors": 100,
        "timer_per_actor": 100,
        "timer_window": 10.0,
        "step_k": 10,
        "step_asks": 100,
        "step_rounds": 5,
        "capacity_actors": 10_000,
        "capacity_asks": 10_000,
        "capacity_clients": 8,
        "capacity_max_active": 64,
        "capacity_zipf_s": 1.1,
        "capacity_pool": 4,
        "pipe_tell_n": 100_000,
        "pipe_fanout_per_child": 10_000,
        "pipe_spawn_k": 20,
    },
}

#: Targets from the issue: (row, durability, metric) -> (op, bound, text).
TARGETS: dict[tuple[str, str, str], tuple[str, float, str]] = {
    ("tell", "process", "throughput"): (">=", 15_000, ">= 15,000 msg/s"),
    ("tell", "process", "ratio"): (">=", 0.10, ">= 10% of Pipe"),
    ("tell", "machine", "throughput"): (">=", 3_000, ">= 3,000 msg/s"),
    ("ask", "process", "p50"): ("<=", 250, "<= 250 us"),
    ("ask", "process", "p99"): ("<=", 1_000, "<= 1 ms"),
    ("ask", "machine", "p50"): ("<=", 2_000, "<= 2 ms"),
    ("spawn", "process", "warm p50"): ("<=", 5, "<= 5 ms"),
    ("spawn", "machine", "warm p50"): ("<=", 5, "<= 5 ms"),
    ("spawn", "process", "cold p50"): ("<=", 80, "<= 80 ms"),
    ("spawn", "machine", "cold p50"): ("<=", 80, "<= 80 ms"),
    ("fanout", "process", "throughput"): (">=", 15_000, ">= 15,000 msg/s"),
    ("fanout", "machine", "throughput"): (">=", 15_000, ">= 15,000 msg/s"),
    # The same target met with group commit from one thread (docs/benchmarks.md).
    ("fanout", "machine", "tell_async"): (">=", 15_000, ">= 15,000 msg/s"),
    ("idle", "machine", "cpu/actor"): ("<", 0.5, "< 0.5 % of a core"),
    ("idle", "machine", "rss/actor"): ("<=", 25, "<= 25 MB"),
    ("resume", "process", "first handled"): ("<=", 1.0, "<= 1 s"),
    ("resume", "machine", "first handled"): ("<=", 1.0, "<= 1 s"),
    ("timers", "process", "lateness p99"): ("<=", 100, "<= 100 ms"),
    ("timers", "process", "fires/s"): (">=", 2_000, ">= 2,000 fires/s"),
    ("steps", "process", "per step"): ("<=", 50, "<= 50 us"),
    ("steps", "machine", "flushes per step"): ("<=", 1.0, "<= one fsync"),
    ("capacity", "process", "peak fleet RSS"): ("<=", 2_048, "<= 2 GB"),
}


def _row(row: str, durability: str, metric: str, unit: str, value: float, baseline: float | None,
         n: Any = None, **extra: Any) -> dict[str, Any]:
    ratio = None if baseline in (None, 0) else value / baseline
    target = TARGETS.get((row, durability, metric))
    met = None
    if target is not None:
        op, bound, _ = target
        met = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
    result = {"row": row, "durability": durability, "metric": metric, "unit": unit, "value": value,
              "baseline": baseline, "ratio": ratio, "target": target[2] if target else None, "met": met,
              "n": n}
    result.update(extra)
    return result


def _ratio_row(row: str, durability: str, ratio: float) -> dict[str, Any]:
    target = TARGETS[(row, durability, "ratio")]
    return {"row": row, "durability": durability, "metric": "ratio", "unit": "x", "value": ratio,
            "baseline": None, "ratio": ratio, "target": target[2], "met": ratio >= target[1], "n": None}


# -- 1. tell throughput ------------------------------------------------------------------


def bench_tell(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """One sender (this process) -> one actor, from the first tell until all are handled.

    Then the same stream with ``tell_async`` (each send returns once written; the
    clock also waits for every Future, i.e. until all are durable) and with
    ``tell_many`` in batches (one flush per batch); both informational.
    """
    pipe = baselines.tell(cfg["pipe_tell_n"])
    rows = []
    for durability in DURABILITIES:
        n = cfg["tell_n"][durability]
        elapsed, sending = _stream(durability, n, "tell", 1)
        rate = n / elapsed
        rows.append(_row("tell", durability, "throughput", "msg/s", rate, pipe, n,
                         tell_call_rate=n / sending, drain_after_last_tell_s=elapsed - sending))
        if durability == "process":
            rows.append(_ratio_row("tell", durability, rate / pipe))
    batch = cfg["tell_many_batch"]
    for how, size, metric in (("tell_async", 1, "tell_async"), ("tell_many", batch, f"tell_many x{batch}")):
        for durability in DURABILITIES:
            n = cfg["tell_many_n"][durability]
            timed = _stream(durability, n, how, size)
            if timed is not None:  # None: a tree without that call
                elapsed, sending = timed
                rows.append(_row("tell", durability, metric, "msg/s", n / elapsed, pipe, n,
                                 tell_call_rate=n / sending, drain_after_last_tell_s=elapsed - sending))
    return rows


def _stream(durability: str, n: int, how: str, batch: int) -> tuple[float, float] | None:
    """Send ``n`` messages to one Counter with ``how`` ("tell", "tell_async", or
    "tell_many" in batches of ``batch``). Returns seconds until all were handled (and,
    for ``tell_async``, all Futures resolved), and seconds spent sending."""
    with temp_system(durability=durability) as system:
        ref = system.spawn(Counter, name=f"stream-{how}")
        if not hasattr(ref, how):
            return None
        ref.ask("count", timeout=30)
        futures = []
        start = time.perf_counter()
        if how == "tell_many":
            for first in range(0, n, batch):
                ref.tell_many([{"n": 1, "i": i} for i in range(first, min(n, first + batch))])
        else:
            send = getattr(ref, how)
            futures = [send({"n": 1, "i": i}) for i in range(n)]
        sent = time.perf_counter()
        if how == "tell_async":
            for future in futures:
                future.result(600)
        count = ref.ask("count", timeout=600)  # queued behind every message
        while count < n:
            count = ref.ask("count", timeout=600)
        done = time.perf_counter()
    return done - start, sent - start


# -- 2. ask round trip ---------------------------------------------------------------------


def bench_ask(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Sequential asks from this process to one idle actor; per-ask wall time, and the
    CPU time per ask of this process and of the worker (polling before sleeping spends
    CPU for the time it saves: this says how much)."""
    rows = []
    for durability in DURABILITIES:
        n = cfg["ask_n"][durability]
        pipe = baselines.ask(n, cfg["ask_warmup"])
        times = []
        with temp_system(durability=durability) as system:
            ref = system.spawn(Counter, name="ask")
            pid = system.pid_of(ref)
            for i in range(cfg["ask_warmup"] + n):
                if i == cfg["ask_warmup"]:
                    worker_before, parent_before = cpu_ticks(pid), os.times()
                start = time.perf_counter_ns()
                ref.ask("count", timeout=30)
                if i >= cfg["ask_warmup"]:
                    times.append((time.perf_counter_ns() - start) / 1000.0)
            worker_us = (cpu_ticks(pid) - worker_before) / CLK_TCK * 1e6 / n
            parent_after = os.times()
            parent_us = (parent_after.user + parent_after.system - parent_before.user - parent_before.system) * 1e6 / n
        for metric, q in (("p50", 50), ("p99", 99)):
            rows.append(_row("ask", durability, metric, "us", percentile(times, q), percentile(pipe, q), n,
                             mean_us=sum(times) / len(times), max_us=max(times)))
        rows.append(_row("ask", durability, "cpu/ask", "us", parent_us + worker_us, None, n,
                         parent_us=parent_us, worker_us=worker_us))
    # The Pipe waiting as the ask waits: the floor of that strategy, for comparison.
    polled = baselines.ask(cfg["ask_n"]["process"], cfg["ask_warmup"], poll_us=300)
    rows.append(_row("ask", "-", "Pipe p50, polling 300 us", "us", percentile(polled, 50), None,
                     cfg["ask_n"]["process"]))
    return rows


# -- 2b. the cost of tracing ---------------------------------------------------------------


def _trace_helper(mode: str, tell_n: int, ask_n: int) -> None:
    """Child-interpreter mode: a tell stream and sequential asks with tracing ``mode``
    (the environment was set before this interpreter started the fork server)."""
    actor: type = Counter
    if mode == "sdk":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())  # no processor: spans recorded, then dropped
        actor = TracedCounter
    with temp_system(durability="process") as system:
        ref = system.spawn(actor, name=f"trace-{mode}")
        for _ in range(50):
            ref.ask("count", timeout=30)
        start = time.perf_counter()
        for i in range(tell_n):
            ref.tell({"n": 1, "i": i})
        while ref.ask("count", timeout=600) < tell_n:
            pass
        tell_s = time.perf_counter() - start
        times = []
        for _ in range(ask_n):
            begin = time.perf_counter_ns()
            ref.ask("count", timeout=30)
            times.append((time.perf_counter_ns() - begin) / 1000.0)
    print(json.dumps({"tell_rate": tell_n / tell_s, "ask_p50": percentile(times, 50)}))


def _otel_parts() -> set[str]:
    import importlib.util

    found = set()
    for mode, module in (("api", "opentelemetry.trace"), ("sdk", "opentelemetry.sdk.trace")):
        try:
            if importlib.util.find_spec(module) is not None:
                found.add(mode)
        except ImportError:
            pass
    return found


def bench_trace(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Tell throughput and ask p50 at "process" per tracing mode, each mode in its own
    interpreter (a fork server per mode), the modes alternating over rounds; the
    median over rounds, and each mode's ratio to "off"."""
    tell_n, ask_n = cfg["trace_tell_n"], cfg["trace_ask_n"]
    present = _otel_parts()
    modes = [m for m in TRACE_MODES if m == "off" or m in present]
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for _ in range(cfg["trace_rounds"]):
        for mode in modes:
            env_mode = "off" if mode == "off" else "on"
            runs[mode].append(_run_helper(["--_trace", mode, str(tell_n), str(ask_n)],
                                          env={"ACTORS_TRACING": env_mode}))
    rows = []
    base_tell = median([r["tell_rate"] for r in runs["off"]])
    base_ask = median([r["ask_p50"] for r in runs["off"]])
    for mode in modes:
        tell = median([r["tell_rate"] for r in runs[mode]])
        ask = median([r["ask_p50"] for r in runs[mode]])
        # The baseline column is "off" here (not a Pipe): the ratio is the mode's cost.
        rows.append(_row("trace", "process", f"tell {mode}", "msg/s", tell, base_tell, tell_n,
                         runs=[r["tell_rate"] for r in runs[mode]]))
        rows.append(_row("trace", "process", f"ask p50 {mode}", "us", ask, base_ask, ask_n,
                         runs=[r["ask_p50"] for r in runs[mode]]))
    return rows


# -- 3. spawn to first reply --------------------------------------------------------------------


def _first_spawn_helper(durability: str) -> None:
    """Child-interpreter mode: the very first spawn of a process (starts the fork server)."""
    with temp_system(durability=durability) as system:
        start = time.perf_counter()
        ref = system.spawn(Counter, name="first")
        spawned = time.perf_counter()
        ref.ask("count", timeout=30)
        done = time.perf_counter()
    print(json.dumps({"first_ms": (done - start) * 1000, "spawn_ms": (spawned - start) * 1000}))


def _first_raw_helper(k: int) -> None:
    """Child-interpreter mode: raw forkserver (same preload as ActorSystem) + Pipe reply."""
    import multiprocessing

    from actors_runtime.parent.launcher import PRELOAD

    multiprocessing.set_forkserver_preload(PRELOAD)
    times = baselines.spawn(k + 1, "forkserver")
    print(json.dumps({"first_ms": times[0], "warm_ms": times[1:]}))


def _run_helper(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, os.path.join(BENCH_DIR, "run.py"), *args],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"helper {args} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _spawn_and_reply(system: Any, name: str) -> tuple[float, float, Any]:
    start = time.perf_counter()
    ref = system.spawn(Counter, name=name)
    spawned = time.perf_counter()
    ref.ask("count", timeout=30)
    done = time.perf_counter()
    return (done - start) * 1000, (spawned - start) * 1000, ref


def bench_spawn(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Spawn to first reply: first ever (fork server start), cold, and warm pool."""
    k = cfg["spawn_k"]
    fork = baselines.spawn(cfg["pipe_spawn_k"], "fork")
    fork_p50 = median(fork)
    spawn_method = median(baselines.spawn(3, "spawn"))  # for the start-method comparison
    raw = [_run_helper(["--_first-raw", str(k)]) for _ in range(cfg["spawn_first_runs"])]
    raw_first = median([r["first_ms"] for r in raw])
    raw_warm = median([t for r in raw for t in r["warm_ms"]])
    rows = []
    for durability in DURABILITIES:
        firsts = [_run_helper(["--_first-spawn", durability]) for _ in range(cfg["spawn_first_runs"])]
        first = median([f["first_ms"] for f in firsts])
        rows.append(_row("spawn", durability, "first cold", "ms", first, fork_p50, len(firsts),
                         raw_forkserver_first_ms=raw_first,
                         spawn_return_ms=median([f["spawn_ms"] for f in firsts])))

        cold, cold_spawn = [], []
        with temp_system(durability=durability) as system:
            _, _, ref = _spawn_and_reply(system, "cold-warmup")  # fork server warm from here on
            ref.stop()
            for i in range(k):
                total, spawned, ref = _spawn_and_reply(system, f"cold-{i}")
                cold.append(total)
                cold_spawn.append(spawned)
                ref.stop()
        rows.append(_row("spawn", durability, "cold p50", "ms", median(cold), fork_p50, k,
                         p90_ms=percentile(cold, 90), spawn_return_ms=median(cold_spawn),
                         raw_forkserver_p50_ms=raw_warm, raw_spawn_method_p50_ms=spawn_method))

        warm, warm_spawn, hits = [], [], 0
        size = cfg["pool_size"]
        with temp_system(durability=durability, pool_size=size) as system:
            for i in range(k):
                warm_pool = system._supervisor.pool  # the system's warm Pool (private)
                pool = wait_until(lambda: len(warm_pool.pids()) >= size and warm_pool.pids(),
                                  30, "the warm pool to fill")
                total, spawned, ref = _spawn_and_reply(system, f"warm-{i}")
                hits += system.pid_of(ref) in pool
                warm.append(total)
                warm_spawn.append(spawned)
                ref.stop()
        rows.append(_row("spawn", durability, "warm p50", "ms", median(warm), fork_p50, k,
                         p90_ms=percentile(warm, 90), spawn_return_ms=median(warm_spawn),
                         pool_hits=hits, pool_size=size))
    return rows


# -- 4. fan-out ------------------------------------------------------------------------------


def bench_fanout(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """One sender, round-robin to 8 actors; aggregate msgs/s until all are handled.

    Then, informational: the same from one sending thread per actor (their flushes
    overlap), with ``tell_async`` from one thread (the clock also waits for every
    Future), and with ``tell_many`` (one flush per batch); these two at the "process"
    size at both durabilities.
    """
    actors, batch = cfg["fanout_actors"], cfg["tell_many_batch"]
    pipe = baselines.fanout(actors, cfg["pipe_fanout_per_child"])
    rows = []
    shapes = (("tell", 1, 1, "throughput"), ("tell", 1, actors, f"{actors} threads"),
              ("tell_async", 1, 1, "tell_async"), ("tell_many", batch, 1, f"tell_many x{batch}"))
    for how, size, threads, metric in shapes:
        for durability in DURABILITIES:
            # Group commit makes "machine" fast enough for the "process" size.
            per = cfg["fanout_per_actor"]["process" if how != "tell" else durability]
            timed = _fan_out(durability, actors, per, how, size, threads)
            if timed is None:  # a tree without that call
                continue
            elapsed, sending = timed
            extra = {"tell_call_rate": actors * per / sending} if metric == "throughput" else {}
            rows.append(_row("fanout", durability, metric, "msg/s", actors * per / elapsed, pipe,
                             f"{actors}x{per}", **extra))
    return rows


def _fan_out(durability: str, actors: int, per: int, how: str, batch: int,
             threads: int) -> tuple[float, float] | None:
    """Send ``per`` messages to each of ``actors`` Counters, round-robin, with ``how``
    ("tell", "tell_async", or "tell_many" ``batch`` at a time), from ``threads``
    threads that split the actors between them. Returns seconds until all were
    handled (and all Futures resolved), and seconds spent sending."""
    with temp_system(durability=durability) as system:
        refs = [system.spawn(Counter, name=f"fan-{j}") for j in range(actors)]
        if not hasattr(refs[0], how):
            return None
        for ref in refs:
            ref.ask("count", timeout=30)
        futures: list[Any] = []

        def send(group: list[Any]) -> None:
            for first in range(0, per, batch):
                for ref in group:
                    if how == "tell_many":
                        ref.tell_many([{"n": 1, "i": i} for i in range(first, min(per, first + batch))])
                    elif how == "tell_async":
                        futures.append(ref.tell_async({"n": 1, "i": first}))
                    else:
                        ref.tell({"n": 1, "i": first})

        start = time.perf_counter()
        if threads == 1:
            send(refs)
        else:
            senders = [threading.Thread(target=send, args=(refs[k::threads],)) for k in range(threads)]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
        sent = time.perf_counter()
        for future in futures:
            future.result(600)
        counts = [ref.ask("count", timeout=600) for ref in refs]
        done = time.perf_counter()
    assert counts == [per] * actors, counts
    return done - start, sent - start


# -- 5. idle cost ----------------------------------------------------------------------------


def bench_idle(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """CPU and memory of idle actors (and of idle Pipe children, in the same window)."""
    count, seconds = cfg["idle_actors"], cfg["idle_seconds"]
    durability = "machine"  # the default; nothing is written while idle
    with baselines.idle_children(count) as pipe_pids, temp_system(durability=durability) as system:
        refs = [system.spawn(Counter, name=f"idle-{j}") for j in range(count)]
        for ref in refs:
            ref.ask("count", timeout=30)
        pids = [system.pid_of(ref) for ref in refs]
        time.sleep(0.5)  # let the last replies settle
        before = {pid: cpu_ticks(pid) for pid in pids + pipe_pids}
        parent_before = os.times()
        start = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        after = {pid: cpu_ticks(pid) for pid in pids + pipe_pids}
        parent_after = os.times()
        rss = {pid: status_kb(pid, "VmRSS") for pid in pids + pipe_pids}
        anon = {pid: status_kb(pid, "RssAnon") for pid in pids + pipe_pids}
        pss = {pid: pss_kb(pid) for pid in pids + pipe_pids}

    def cpu_pct(group: list[int]) -> float:
        return sum(after[p] - before[p] for p in group) / CLK_TCK / elapsed / len(group) * 100

    def mb(values: dict[int, int | None], group: list[int]) -> float | None:
        got = [values[p] for p in group if values[p] is not None]
        return median(got) / 1024 if got else None

    parent_cpu = ((parent_after.user + parent_after.system) - (parent_before.user + parent_before.system))
    actor_cpu, pipe_cpu = cpu_pct(pids), cpu_pct(pipe_pids)
    return [
        _row("idle", durability, "cpu/actor", "% core", actor_cpu, pipe_cpu, f"{count} x {seconds:g}s",
             max_pct=max((after[p] - before[p]) / CLK_TCK / elapsed * 100 for p in pids),
             resolution_pct=100 / CLK_TCK / elapsed / count,
             parent_cpu_pct=parent_cpu / elapsed * 100),
        _row("idle", durability, "rss/actor", "MB", mb(rss, pids), mb(rss, pipe_pids), count,
             max_mb=max(rss[p] for p in pids) / 1024, pss_mb=mb(pss, pids), pipe_pss_mb=mb(pss, pipe_pids),
             rss_anon_mb=mb(anon, pids), pipe_rss_anon_mb=mb(anon, pipe_pids)),
    ]


# -- 6. resume after SIGKILL -------------------------------------------------------------------


def bench_resume(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """An actor stuck in a handler gets N tells, is SIGKILLed, and is spawned again."""
    rows = []
    for durability in DURABILITIES:
        n = cfg["resume_n"][durability]
        pipe = baselines.resume(n)
        with temp_system(durability=durability) as system:
            flag = os.path.join(system.home, "block.flag")
            started = os.path.join(system.home, "block.started")
            with open(flag, "w"):
                pass
            ref = system.spawn(Resumer, name="resume")
            ref.tell({"block_while": flag, "started": started})
            wait_until(lambda: os.path.exists(started), 30, "the actor to get stuck")
            fill_start = time.perf_counter()
            for i in range(n):
                ref.tell({"seq": i})
            fill_s = time.perf_counter() - fill_start
            pid = system.pid_of(ref)
            system.kill(ref)
            assert system.pid_of(ref) is None, "the worker survived SIGKILL"
            os.unlink(flag)
            start = time.time()
            ref = system.spawn(Resumer, name="resume")
            spawned = time.time()
            state = ref.ask("stats", timeout=900)  # queued behind the N pending messages
            assert state["count"] == n, state
        first = state["first_at"] - start
        everything = state["last_at"] - start
        rows.append(_row("resume", durability, "first handled", "s", first, pipe["first_s"], n,
                         spawn_return_s=spawned - start, fill_s=fill_s, killed_pid=pid))
        rows.append(_row("resume", durability, "all handled", "s", everything, pipe["all_s"], n,
                         drain_rate=n / max(1e-9, state["last_at"] - state["first_at"])))
    return rows


BENCHES: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
    "tell": bench_tell,
    "ask": bench_ask,
    "trace": bench_trace,
    "spawn": bench_spawn,
    "fanout": bench_fanout,
    "idle": bench_idle,
    "resume": bench_resume,
    "timers": lambda cfg: run_timers(cfg, _row),
    "steps": lambda cfg: run_steps(cfg, _row),
    "capacity": lambda cfg: run_capacity(cfg, _row),
}


# -- output ----------------------------------------------------------------------------------


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.3f}"
    if unit == "MB":
        return f"{value:.2f}"  # the RSS target sits at 25 MB; one decimal hides the verdict
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio * 100:.1f}%" if ratio < 1 else f"{ratio:.1f}x"


def table(rows: list[dict[str, Any]]) -> str:
    header = ("row", "durability", "metric", "value", "unit", "Pipe", "ratio", "n", "target", "met")
    lines = [header]
    for r in rows:
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        lines.append((r["row"], r["durability"], r["metric"], fmt(r["value"], r["unit"]), r["unit"],
                      fmt(r["baseline"], r["unit"]), fmt_ratio(r["ratio"]) if r["metric"] != "ratio" else "-",
                      str(r["n"] if r["n"] is not None else "-"), r["target"] or "-", met))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = []
    for j, line in enumerate(lines):
        out.append("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 1-3 minutes)")
    parser.add_argument("--json", default=os.path.join(RESULTS_DIR, "latest.json"), help="where to write results")
    parser.add_argument("--only", default="", help=f"comma-separated rows of {','.join(ROWS)}")
    parser.add_argument("--tmp-root", help="parent of the temp homes (default: the system temp dir); "
                        "e.g. /dev/shm to take ext4 out of the picture")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds to wait before each row, so inodes freed by the previous row "
                             "age past ext4's 60 s reuse window (default 0)")
    parser.add_argument("--_first-spawn", dest="first_spawn", help=argparse.SUPPRESS)
    parser.add_argument("--_first-raw", dest="first_raw", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_trace", dest="trace", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tmp_root:
        common.TMP_ROOT = os.path.abspath(args.tmp_root)
        os.environ["BENCH_TMP_ROOT"] = common.TMP_ROOT  # for the helper interpreters
    elif os.environ.get("BENCH_TMP_ROOT"):
        common.TMP_ROOT = os.environ["BENCH_TMP_ROOT"]
    if args.first_spawn:
        _first_spawn_helper(args.first_spawn)
        return 0
    if args.first_raw is not None:
        _first_raw_helper(args.first_raw)
        return 0
    if args.trace:
        _trace_helper(args.trace[0], int(args.trace[1]), int(args.trace[2]))
        return 0

    selected = [name.strip() for name in args.only.split(",") if name.strip()] or list(ROWS)
    unknown = [name for name in selected if name not in BENCHES]
    if unknown:
        parser.error(f"unknown rows {', '.join(unknown)} (choose from {', '.join(ROWS)})")
    mode = "quick" if args.quick else "full"
    cfg = CONFIG[mode]
    results: dict[str, Any] = {"mode": mode, "started_at": time.time(), "machine": machine_info(),
                               "tmp_root": common.TMP_ROOT, "settle_s": args.settle, "config": cfg,
                               "rows": [], "errors": {}, "seconds": {}, "fs_create_probe_us": {}}
    failed = False
    for name in ROWS:
        if name not in selected:
            continue
        if args.settle > 0:
            time.sleep(args.settle)
        probe = common.create_probe_us()
        results["fs_create_probe_us"][name] = round(probe, 1)
        print(f"[bench] {name} (fs create probe {probe:.0f} us) ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            rows = BENCHES[name](cfg)
            for row in rows:
                row["fs_create_probe_us"] = round(probe, 1)
            results["rows"].extend(rows)
        except Exception as exc:  # report it, go on with the other rows
            failed = True
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        results["seconds"][name] = round(time.perf_counter() - start, 2)
        print(f"[bench] {name} done in {results['seconds'][name]:.1f} s", file=sys.stderr, flush=True)

    print(table(results["rows"]))
    if results["errors"]:
        for name, error in results["errors"].items():
            print(f"ERROR in {name}: {error}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as handle:
        json.dump(results, handle, indent=1)
    print(f"results written to {args.json} ({sum(results['seconds'].values()):.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
