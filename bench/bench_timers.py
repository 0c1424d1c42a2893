"""The timers row: 10,000 reminders over 100 actors, fired by the actors' own workers.

Two runs, each on a fresh system at durability "process":

- "spread": the 10,000 due times are spread evenly over ``window`` seconds (2,500/s
  offered at the quick size); lateness = the time the tick's handler started minus
  its due time, per tick (p50/p99/max).
- "burst": all 10,000 are due at one instant; fires/s = 10,000 / (the last handler's
  start - the due time): how fast a fleet works off a backlog of due ticks.

Lateness on this machine is mostly waiting for a CPU (docs/benchmarks.md, "timers"),
so each run also records, over its firing window (first due time to 0.5 s after the
last): the fleet's CPU per tick (utime + stime of the 100 workers / ticks), the cores
the whole machine was busy (``/proc/stat``, everyone's work) and the load average at
both ends.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from bench_actors import Reminded
from common import CLK_TCK, cpu_ticks, machine_cpu, percentile, temp_system, wait_until


def run_timers(cfg: dict[str, Any], row: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
    actors, per_actor, window = cfg["timer_actors"], cfg["timer_per_actor"], cfg["timer_window"]
    total = actors * per_actor
    spread, spread_load = _fire(actors, per_actor, lambda i: i * window / total)
    lateness = sorted(handled - due for due, handled, _ in spread)
    burst, burst_load = _fire(actors, per_actor, lambda i: 0.0)
    due = burst[0][0]
    span = max(handled for _, handled, _ in burst) - due
    return [
        row("timers", "process", "lateness p99", "ms", percentile(lateness, 99) * 1000, None, total,
            p50_ms=percentile(lateness, 50) * 1000, max_ms=lateness[-1] * 1000,
            window_s=window, offered_per_s=total / window, **spread_load),
        row("timers", "process", "fires/s", "fires/s", total / span, None, total,
            burst_span_s=span, burst_p99_lateness_ms=percentile(sorted(h - d for d, h, _ in burst), 99) * 1000,
            **burst_load),
    ]


def _fire(actors: int, per_actor: int, offset: Callable[[int], float]) -> tuple[list[list[float]], dict[str, Any]]:
    """Set ``actors * per_actor`` reminders due at start + offset(i), wait for every tick;
    returns [due, handled, coalesced] of each, and what the firing window cost (see above)."""
    total = actors * per_actor
    with temp_system(durability="process", pool_size=4) as system:
        refs = [system.spawn(Reminded, name=f"timer-{j}") for j in range(actors)]
        pids = [pid for pid in (system.pid_of(ref) for ref in refs) if pid is not None]
        start = time.time() + 5.0  # every reminder is set before the first is due
        for j, ref in enumerate(refs):
            ats = [start + offset(j + k * actors) for k in range(per_actor)]  # interleaved over actors
            assert ref.ask({"at": ats}, mode="steer", timeout=60) == per_actor
        assert time.time() < start, "setting the reminders took longer than the lead"
        # Asking 100 actors while they fire would load the machine the ticks run on:
        # sleep past the last due time first, then collect (polling slowly).
        last_due = max(start + offset(i) for i in range(total))
        time.sleep(max(0.0, start - time.time()))
        load_before, fleet_before, machine_before = os.getloadavg(), _fleet_ticks(pids), machine_cpu()
        opened = time.perf_counter()
        time.sleep(max(0.0, last_due - time.time()) + 0.5)
        elapsed = time.perf_counter() - opened
        load_after, fleet_after, machine_after = os.getloadavg(), _fleet_ticks(pids), machine_cpu()
        fired: list[list[float]] = []

        def all_fired() -> bool:
            fired.clear()
            for ref in refs:
                fired.extend(ref.ask("fired", timeout=60))
            return len(fired) >= total

        wait_until(all_fired, 120, "every reminder to fire", interval=0.5)
    assert len(fired) == total, f"{len(fired)} ticks for {total} reminders (a tick fired twice?)"
    assert all(c == 1 for _, _, c in fired)
    fleet_s = (fleet_after - fleet_before) / CLK_TCK
    busy = machine_after[0] - machine_before[0]
    load = {
        "window_elapsed_s": round(elapsed, 2),
        "fleet_cpu_per_tick_us": round(fleet_s / total * 1e6, 1),
        "fleet_cores": round(fleet_s / elapsed, 3),
        "machine_busy_cores": round(busy / CLK_TCK / elapsed, 3),
        "others_cores": round(busy / CLK_TCK / elapsed - fleet_s / elapsed, 3),
        "loadavg_before": list(load_before),
        "loadavg_after": list(load_after),
    }
    return fired, load


def _fleet_ticks(pids: list[int]) -> int:
    """utime + stime of the workers still alive (one that went is counted as 0 from then)."""
    ticks = 0
    for pid in pids:
        try:
            ticks += cpu_ticks(pid)
        except OSError:
            pass
    return ticks
