"""The steps row: what one journaled step (``self.step(name, fn)``) adds to a turn.

Per durability, one ``Stepper`` actor is asked (mode "steer", so every ask is a turn
with its own commit) in blocks of ``n`` sequential asks, alternating a turn without
steps and the same turn with ``k`` steps (the order flips every round). A block's
cost is its median ask round trip; per step = (median with k - median without) / k.
The row reports the median over the rounds (min-max in the JSON).

Baseline, measured in the same run on a file under the same temp root, with a record
of the size a step writes: "process": its ``os.write`` append (what the journal does
at that durability); "machine": the target's "one fsync", a record written in place
and ``fsync``ed (``per step / fsync``), and for the record ``fdatasync`` alone after
such a write (``per_step_over_fdatasync`` in the JSON: the journal flushes with
``fdatasync``, so this ratio is the step's cost above its own flush) and append +
``fdatasync`` (a growing file). ``flushes per step`` counts with strace (when it
is installed) the ``fsync``/``fdatasync`` calls the worker makes per step: what "one
fsync" promises, without the machine's noise.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any, Callable

import common
from bench_actors import Stepper
from common import median, temp_system

#: A journal record of one step of ``Stepper`` (its size is what matters).
_RECORD = b'{"msg":"0f6e3f5c-9a41-4c1e-8b7d-2f0a6c9e1b34","key":"s/0","ok":{"i":0}}\n'


def run_steps(cfg: dict[str, Any], row: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
    k, n, rounds = cfg["step_k"], cfg["step_asks"], cfg["step_rounds"]
    rows = []
    for durability in ("process", "machine"):
        per_step, plain, stepped, flushes = _measure(durability, k, n, rounds)
        write_us, fdatasync_us, append_fdatasync_us, write_fsync_us = _file_baselines(n)
        extra = dict(k=k, rounds=rounds, per_step_min_us=min(per_step), per_step_max_us=max(per_step),
                     turn_p50_us=median(plain), turn_with_k_steps_p50_us=median(stepped),
                     write_us=write_us, fdatasync_us=fdatasync_us, append_fdatasync_us=append_fdatasync_us,
                     write_fsync_us=write_fsync_us, per_step_over_fdatasync=median(per_step) / fdatasync_us)
        if durability == "process":
            rows.append(row("steps", durability, "per step", "us", median(per_step), write_us,
                            f"{rounds}x{n}x2", **extra))
        else:
            rows.append(row("steps", durability, "per step", "us", median(per_step), write_fsync_us,
                            f"{rounds}x{n}x2", **extra))
            rows.append(row("steps", durability, "per step / fsync", "x", median(per_step) / write_fsync_us,
                            None, f"{rounds}x{n}x2", per_step_over_fdatasync=median(per_step) / fdatasync_us))
            if flushes is not None:
                rows.append(row("steps", durability, "flushes per step", "fsync", flushes, None, f"{n}x{k}"))
    return rows


def _measure(durability: str, k: int, n: int,
             rounds: int) -> tuple[list[float], list[float], list[float], float | None]:
    per_step, plain, stepped = [], [], []
    with temp_system(durability=durability) as system:
        ref = system.spawn(Stepper, name=f"stepper-{durability}")
        for steps in (0, k) * 2:  # warm-up of both kinds
            _block(ref, steps, 20)
        for r in range(rounds):
            order = (0, k) if r % 2 == 0 else (k, 0)
            cost = {steps: _block(ref, steps, n) for steps in order}
            plain.append(cost[0])
            stepped.append(cost[k])
            per_step.append((cost[k] - cost[0]) / k)
        flushes = _flushes_per_step(ref, system.pid_of(ref), k, n) if durability == "machine" else None
    return per_step, plain, stepped, flushes


def _flushes_per_step(ref: Any, pid: int | None, k: int, n: int) -> float | None:
    """``fsync``/``fdatasync`` calls the worker makes per step, counted with strace
    (the same ``n`` turns with ``k`` steps and with none); None without strace."""
    if pid is None or shutil.which("strace") is None:
        return None
    counts = {steps: _flush_calls(ref, pid, steps, n) for steps in (0, k)}
    if counts[0] is None or counts[k] is None:
        return None
    return (counts[k] - counts[0]) / (n * k)


def _flush_calls(ref: Any, pid: int, steps: int, n: int) -> int | None:
    tracer = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-p", str(pid)],
                              stderr=subprocess.PIPE, text=True)
    assert tracer.stderr is not None
    attached = tracer.stderr.readline()  # "strace: Process N attached": tracing from here on
    if "attached" not in attached:
        tracer.kill()
        tracer.wait()
        return None
    _block(ref, steps, n)
    tracer.send_signal(signal.SIGINT)
    summary = tracer.communicate(timeout=30)[1]
    calls = [int(m.group(1)) for m in re.finditer(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?f(?:data)?sync$",
                                                  summary, re.MULTILINE)]
    return sum(calls)


def _block(ref: Any, steps: int, n: int) -> float:
    """Median µs of ``n`` sequential asks with ``steps`` steps each."""
    times = []
    question = {"steps": steps}
    for _ in range(n):
        start = time.perf_counter()
        ref.ask(question, mode="steer", timeout=30)
        times.append((time.perf_counter() - start) * 1e6)
    return median(times)


def _file_baselines(n: int) -> tuple[float, float, float, float]:
    """Median µs of: an append of ``_RECORD``; ``fdatasync`` after overwriting it in
    place; an append + ``fdatasync`` (the file emptied every 10 appends, like a journal
    emptied at each commit); overwriting it in place + ``fsync`` ("one fsync")."""
    directory = tempfile.mkdtemp(prefix="actors-steps-", dir=common.TMP_ROOT)
    try:
        path = os.path.join(directory, "journal.jsonl")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        other = os.open(os.path.join(directory, "record"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.pwrite(other, _RECORD, 0)
        os.fdatasync(other)
        appends, syncs, appended_syncs, fsyncs = [], [], [], []
        try:
            for i in range(n):
                start = time.perf_counter()
                os.write(fd, _RECORD)
                appends.append((time.perf_counter() - start) * 1e6)
                os.pwrite(other, _RECORD, 0)
                start = time.perf_counter()
                os.fdatasync(other)
                syncs.append((time.perf_counter() - start) * 1e6)
                start = time.perf_counter()
                os.pwrite(other, _RECORD, 0)
                os.fsync(other)
                fsyncs.append((time.perf_counter() - start) * 1e6)
            os.ftruncate(fd, 0)
            for i in range(n):
                if i % 10 == 0:
                    os.ftruncate(fd, 0)
                start = time.perf_counter()
                os.write(fd, _RECORD)
                os.fdatasync(fd)
                appended_syncs.append((time.perf_counter() - start) * 1e6)
        finally:
            os.close(fd)
            os.close(other)
        return median(appends), median(syncs), median(appended_syncs), median(fsyncs)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
