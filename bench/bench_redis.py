"""The redis row of ``make bench``: one Counter on a local redis-server over a unix
socket (AOF on, appendfsync everysec), started here in a temp dir and stopped after.

Timed like the maildir ``tell`` and ``ask`` rows (bench/run.py): from the first send
until an ``ask("count")`` queued behind the last one answers N; ``tell_async`` also
waits for every Future; ask p50/p99 over sequential round trips after 50 warm-ups.
Each run also measures the same rows on maildir (the reference, in the same run);
``BENCH_REDIS_RUNS`` runs (default 1) give the median and the range.
Prints a table (and skips when redis-server is missing).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))

#: Targets of the issue (msg/s, msg/s, ms).
TARGETS = {"tell": 5_000, "tell_async": 20_000, "tell_many x100": 20_000, "ask p50": 1.0}


def start_server(root: str) -> subprocess.Popen[bytes]:
    import redis

    sock = os.path.join(root, "redis.sock")
    process = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
                                "--appendonly", "yes", "--appendfsync", "everysec", "--dir", root, "--save", ""],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(unix_socket_path=sock)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    client.close()
    return process


def measure(n: int, root: str, backend: str | None) -> dict[str, float]:
    """One run of every row on ``backend`` (None: maildir, the reference)."""
    from sample_actors import Counter

    from actors import ActorSystem

    rows: dict[str, float] = {}
    extra = {} if backend is None else {"backend": backend}
    with ActorSystem(home=os.path.join(root, "home"), project=root, durability="process", **extra) as system:
        counter = system.spawn(Counter, name="counter")
        expected = 0

        def finish(start: float, sent: int) -> float:
            nonlocal expected
            expected += sent
            assert counter.ask("count", timeout=120) == expected
            return sent / (time.perf_counter() - start)

        start = time.perf_counter()
        for _ in range(n):
            counter.tell({"n": 1})
        rows["tell"] = finish(start, n)
        start = time.perf_counter()
        futures = [counter.tell_async({"n": 1}) for _ in range(n)]
        for future in futures:
            future.result(120)
        rows["tell_async"] = finish(start, n)
        start = time.perf_counter()
        for _ in range(n // 100):
            counter.tell_many([{"n": 1}] * 100)
        rows["tell_many x100"] = finish(start, n // 100 * 100)
        for _ in range(50):
            counter.ask("count")
        times = []
        for _ in range(500):
            t0 = time.perf_counter()
            counter.ask("count")
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        rows["ask p50"] = statistics.median(times)
        rows["ask p99"] = times[int(len(times) * 0.99) - 1]
    return rows


def main() -> int:
    if shutil.which("redis-server") is None:
        print("redis row skipped: no redis-server")
        return 0
    n = int(os.environ.get("BENCH_REDIS_N", "5000"))
    runs = int(os.environ.get("BENCH_REDIS_RUNS", "1"))
    results: dict[str, list[dict[str, float]]] = {"redis": [], "maildir": []}
    loads = [os.getloadavg()[0]]
    for _ in range(runs):
        root = tempfile.mkdtemp(prefix="bench-redis-")
        server = start_server(root)
        try:
            results["redis"].append(measure(n, root, f"unix://{root}/redis.sock"))
        finally:
            server.terminate()
            server.wait(10)
            shutil.rmtree(root, ignore_errors=True)
        root = tempfile.mkdtemp(prefix="bench-maildir-")
        try:
            results["maildir"].append(measure(n, root, None))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        loads.append(os.getloadavg()[0])
    print(f"redis (unix socket, AOF everysec) and maildir (the reference, same runs), durability 'process', "
          f"n={n}, median of {runs} run(s) (min-max), load average {min(loads):.1f}-{max(loads):.1f}")
    print("| row | redis | redis min-max | maildir | unit | target (redis) | met |")
    print("|---|---|---|---|---|---|---|")
    for name in results["redis"][0]:
        unit = "ms" if name.startswith("ask") else "msg/s"
        values = sorted(run[name] for run in results["redis"])
        value = statistics.median(values)
        reference = statistics.median(run[name] for run in results["maildir"])
        target = TARGETS.get(name)
        met = "-" if target is None else ("yes" if (value <= target if unit == "ms" else value >= target) else "no")

        def shown(x: float) -> str:
            return f"{x:,.0f}" if unit == "msg/s" else f"{x:.2f}"

        print(f"| {name} | {shown(value)} | {shown(values[0])}-{shown(values[-1])} | {shown(reference)} | {unit} "
              f"| {'-' if target is None else target} | {met} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
