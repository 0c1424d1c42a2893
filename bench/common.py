"""Shared helpers of the benchmark scripts: systems in temp homes, waits, stats, /proc.

Importing this module puts ``bench/`` on ``PYTHONPATH`` so that worker processes
(started by the fork server, which in CPython 3.11 does not get the parent's
``sys.path``) can import ``bench_actors``. Import it before the first ActorSystem.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterator

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
RESULTS_DIR = os.path.join(BENCH_DIR, "results")

if BENCH_DIR not in sys.path:
    sys.path.insert(0, BENCH_DIR)
_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
if BENCH_DIR not in _paths:
    os.environ["PYTHONPATH"] = os.pathsep.join([BENCH_DIR, *_paths])

CLK_TCK = os.sysconf("SC_CLK_TCK")

#: Parent directory of the temp homes (None: ``tempfile.gettempdir()``); ``--tmp-root``.
TMP_ROOT: str | None = None


@contextlib.contextmanager
def temp_system(**kwargs: Any) -> Iterator[Any]:
    """An ActorSystem under a fresh ``tempfile.mkdtemp`` home, removed afterwards.

    The system is shut down and the home deleted even when the body raises.
    """
    from actors import ActorSystem

    home = tempfile.mkdtemp(prefix="actors-bench-", dir=TMP_ROOT)
    system = None
    try:
        system = ActorSystem(home=home, project=home, **kwargs)
        yield system
    finally:
        try:
            if system is not None:
                system.shutdown(timeout=10.0)
        finally:
            shutil.rmtree(home, ignore_errors=True)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.005) -> Any:
    """Poll ``predicate`` until it is truthy; ``TimeoutError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


def create_probe_us(count: int = 200) -> float:
    """Median µs to create, write (300 B), rename and unlink a file under the temp root.

    A thermometer for the file system's state, recorded next to every row: ext4
    without a journal does not reuse an inode freed in the last 60 s and each create
    walks past such inodes (MEASUREMENTS.md), so the cost of a create depends on how
    many files anyone on the machine deleted in the last minute.
    """
    directory = tempfile.mkdtemp(prefix="actors-probe-", dir=TMP_ROOT)
    data = b"x" * 300
    times = []
    try:
        for i in range(count):
            tmp, final = os.path.join(directory, f".tmp-{i}"), os.path.join(directory, f"{i:020d}")
            start = time.perf_counter_ns()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data)
            os.close(fd)
            os.rename(tmp, final)
            os.unlink(final)
            times.append((time.perf_counter_ns() - start) / 1000.0)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return statistics.median(times)


# -- /proc ------------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks (``/proc/<pid>/stat`` fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        text = handle.read().decode()
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    return int(fields[11]) + int(fields[12])


def machine_cpu() -> tuple[int, int]:
    """(busy, total) clock ticks of every CPU since boot (``/proc/stat``; idle and iowait
    are not busy, steal is)."""
    with open("/proc/stat") as handle:
        fields = [int(f) for f in handle.readline().split()[1:9]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def status_kb(pid: int, key: str) -> int | None:
    """A ``kB`` line of ``/proc/<pid>/status`` (e.g. ``VmRSS``, ``RssAnon``)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def pss_kb(pid: int) -> int | None:
    """Proportional set size (shared pages divided among their users), if readable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# -- the machine ------------------------------------------------------------------------


def code_fingerprint() -> dict[str, Any]:
    """Which library code was measured: where it was imported from, its git HEAD, and a
    hash of every ``.py`` file of the two packages (the tree may have local edits)."""
    import importlib

    import actors

    try:
        machinery = importlib.import_module("actors_runtime")
    except ImportError:  # a tree from before the package was renamed
        machinery = importlib.import_module("runtime")
    digest = hashlib.sha1()
    for package in (actors, machinery):
        top = os.path.dirname(os.path.abspath(package.__file__ or ""))
        for directory, subdirs, names in sorted(os.walk(top)):
            subdirs.sort()
            for name in sorted(names):
                if name.endswith(".py"):
                    digest.update(os.path.relpath(os.path.join(directory, name), top).encode())
                    with open(os.path.join(directory, name), "rb") as handle:
                        digest.update(handle.read())
    root = os.path.dirname(os.path.dirname(os.path.abspath(actors.__file__ or "")))
    head = None
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"root": root, "git_head": head, "sources_sha1": digest.hexdigest()[:12]}


def machine_info() -> dict[str, Any]:
    """What the results were measured on."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    fs = "unknown"
    try:
        out = subprocess.run(["df", "-T", TMP_ROOT or tempfile.gettempdir()], capture_output=True, text=True,
                             timeout=5).stdout.splitlines()
        if len(out) > 1:
            fs = out[1].split()[1]
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {
        "code": code_fingerprint(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "tmp_fs": fs,
        "loadavg_at_start": [round(x, 2) for x in load],
        "clk_tck": CLK_TCK,
    }
