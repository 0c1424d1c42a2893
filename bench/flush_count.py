"""Flushes per blocking tell at durability "machine", counted with strace (not timed).

On a shared disk a flush costs 55 us on a quiet day and a millisecond on a busy one,
so the timed "machine" rows move 2-5x between runs; the number of flushes a tell
causes does not. Each figure is (calls over ``n`` tells from ``threads`` threads to
``actors`` Counters) / (all tells), strace attached only while the tells are sent
and handled: in the sending process (``fdatasync`` of the segments) and in the
workers (the commit's ``fdatasync``, its ``renameat2`` exchange and any ``fsync`` of a
directory).

With ``perf`` at hand (tracepoints readable), also the block requests the sending
process issued per tell, by kind (``block:block_rq_issue``: ``WS`` a synchronous data
write, ``WSM`` a metadata one, the inode's): what a flush had to write, not how long
it took.

Usage::

    .venv/bin/python bench/flush_count.py [--n 1000] [--threads 1] [--actors 1] [--tmp-root DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Any

import common
from bench_actors import Counter

#: The calls counted (what can reach the disk at a tell, or name a file on it).
CALLS = ("fdatasync", "fsync", "renameat2")


def _trace(pids: list[int]) -> subprocess.Popen[str]:
    """strace -c on every thread of ``pids`` (with -f: the threads they have and start)."""
    args = ["strace", "-f", "-c", "-e", "trace=" + ",".join(CALLS)]
    for pid in pids:
        args += ["-p", str(pid)]
    tracer = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    assert tracer.stderr is not None
    for _ in pids:  # "strace: Process N attached [with M threads]": tracing from here on
        if "attached" not in tracer.stderr.readline():
            tracer.kill()
            raise RuntimeError("strace could not attach (ptrace not permitted?)")
    return tracer


def _calls(tracer: subprocess.Popen[str]) -> dict[str, int]:
    tracer.send_signal(signal.SIGINT)
    summary = tracer.communicate(timeout=60)[1]
    found = {name: 0 for name in CALLS}
    for match in re.finditer(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", summary, re.MULTILINE):
        if match.group(2) in found:
            found[match.group(2)] = int(match.group(1))
    return found


def _record_blocks(pid: int, path: str) -> subprocess.Popen[str] | None:
    """perf recording the block requests ``pid``'s threads issue, or None without perf."""
    if shutil.which("perf") is None:
        return None
    recorder = subprocess.Popen(["perf", "record", "-q", "-e", "block:block_rq_issue", "-p", str(pid), "-o", path],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        recorder.wait(0.5)  # it exits at once when it cannot trace
    except subprocess.TimeoutExpired:
        return recorder
    return None


def _blocks(recorder: subprocess.Popen[str] | None, path: str) -> dict[str, int]:
    if recorder is None:
        return {}
    recorder.send_signal(signal.SIGINT)
    recorder.wait(60)
    script = subprocess.run(["perf", "script", "-i", path], capture_output=True, text=True).stdout
    found: dict[str, int] = {}
    for match in re.finditer(r"block:block_rq_issue: \d+,\d+ (\w+) ", script):
        found[match.group(1)] = found.get(match.group(1), 0) + 1
    return found


def count(n: int, threads: int, actors: int) -> dict[str, dict[str, float]]:
    """Calls per tell, in the sender and in the workers (see the module docstring)."""
    with common.temp_system(durability="machine") as system:
        refs = [system.spawn(Counter, name=f"flush-{k}") for k in range(actors)]
        for ref in refs:
            ref.ask("count", timeout=30)
        workers = [pid for pid in map(system.pid_of, refs) if pid is not None]
        receivers = _trace(workers)
        perf_data = tempfile.mktemp(prefix="flush-count-", suffix=".perf")
        blocks = _record_blocks(os.getpid(), perf_data)
        sender = _trace([os.getpid()])  # last: with -f it would trace the other strace too

        def send(group: list[Any]) -> None:
            for i in range(n):
                for ref in group:
                    ref.tell({"n": 1, "i": i})

        senders = [threading.Thread(target=send, args=(refs[k::threads],)) for k in range(threads)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
        for ref in refs:
            common.wait_until(lambda ref=ref: ref.ask("count", timeout=60) >= n, 600, "all handled")
        sent, handled = _calls(sender), _calls(receivers)
        requests = _blocks(blocks, perf_data)
        if os.path.exists(perf_data):
            os.unlink(perf_data)
    tells = n * actors
    found = {"sender": {k: v / tells for k, v in sent.items()}, "workers": {k: v / tells for k, v in handled.items()}}
    if requests:
        found["sender device requests"] = {k: v / tells for k, v in sorted(requests.items())}
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="tells per actor")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--tmp-root", default=None, help="where homes are made (default: the temp dir)")
    args = parser.parse_args(argv)
    if shutil.which("strace") is None:
        print("strace is not installed", file=sys.stderr)
        return 1
    if args.tmp_root:
        common.TMP_ROOT = args.tmp_root
    found = count(args.n, args.threads, args.actors)
    print(f"{args.n} tells x {args.actors} actors from {args.threads} thread(s), "
          f"load {' '.join(open('/proc/loadavg').read().split()[:3])}")
    for side, calls in found.items():
        print(f"  {side:8} per tell: " + ", ".join(f"{name} {value:.3f}" for name, value in calls.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
