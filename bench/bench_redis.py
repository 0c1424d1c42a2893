"""The redis row of ``make bench``: one Counter on a local redis-server over a unix
socket (AOF on, appendfsync everysec), started here in a temp dir and stopped after.

Timed like the maildir ``tell`` and ``ask`` rows (bench/run.py): from the first send
until an ``ask("count")`` queued behind the last one answers N; ``tell_async`` also
waits for every Future; ask p50/p99 over sequential round trips after 50 warm-ups.
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


def main() -> int:
    if shutil.which("redis-server") is None:
        print("redis row skipped: no redis-server")
        return 0
    from sample_actors import Counter

    from actors import ActorSystem

    n = int(os.environ.get("BENCH_REDIS_N", "5000"))
    root = tempfile.mkdtemp(prefix="bench-redis-")
    server = start_server(root)
    rows = []
    try:
        url = f"unix://{root}/redis.sock"
        with ActorSystem(home=os.path.join(root, "home"), project=root, backend=url, durability="process") as system:
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
            rows.append(("tell", finish(start, n), "msg/s"))
            start = time.perf_counter()
            futures = [counter.tell_async({"n": 1}) for _ in range(n)]
            for future in futures:
                future.result(120)
            rows.append(("tell_async", finish(start, n), "msg/s"))
            start = time.perf_counter()
            for _ in range(n // 100):
                counter.tell_many([{"n": 1}] * 100)
            rows.append(("tell_many x100", finish(start, n // 100 * 100), "msg/s"))
            for _ in range(50):
                counter.ask("count")
            times = []
            for _ in range(500):
                t0 = time.perf_counter()
                counter.ask("count")
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            rows.append(("ask p50", statistics.median(times), "ms"))
            rows.append(("ask p99", times[int(len(times) * 0.99) - 1], "ms"))
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    print(f"redis (unix socket, AOF everysec), n={n}")
    print("| row | value | unit | target | met |")
    print("|---|---|---|---|---|")
    for name, value, unit in rows:
        target = TARGETS.get(name)
        met = "-" if target is None else ("yes" if (value <= target if unit == "ms" else value >= target) else "no")
        shown = f"{value:,.0f}" if unit == "msg/s" else f"{value:.2f}"
        print(f"| {name} | {shown} | {unit} | {'-' if target is None else target} | {met} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
