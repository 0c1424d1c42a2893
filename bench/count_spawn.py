"""Instructions of a cold spawn, counted by callgrind (not timed), each process apart.

    .venv/bin/python bench/count_spawn.py [--few 2] [--many 6] [--root /dev/shm]

A system (durability "process") spawns one actor to start the fork server, then
``n`` cold ones (``bench_actors:Counter``, no pool), asks each once and stops it,
all under ``valgrind --tool=callgrind --trace-children=yes``. Reported:

- ``worker``: the median, over the cold workers, of one worker's instructions from
  its fork off the fork server to its exit (bootstrap, any re-run of the main script,
  imports, activation, the first ask, the stop);
- ``parent``: the parent's instructions per cold spawn, (I(many) - I(few)) /
  (many - few), which cancels the interpreter's start and the system's.

(The fork server's share, a fork and a few system calls per spawn, is not counted:
it is stopped with the system, and its callgrind output is not always written.)

Wall clock on the shared machine moved 2-5x with the neighbours' load; these counts
move by about a per cent. The main script here is this file (small); a bigger
script costs a worker that re-runs it more. ``PYTHONPATH`` picks another tree (see
docs/benchmarks.md for the before/after method).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def _spawns(root: str, n: int, pids_file: str) -> None:
    from bench_actors import Counter

    from actors import ActorSystem

    with ActorSystem(home=root, project=root, durability="process", spawn_timeout=300) as system:
        first = system.spawn(Counter, name="warm-up")  # starts the fork server
        first.ask("count", timeout=300)
        first.stop()
        pids = []
        for i in range(n):
            ref = system.spawn(Counter, name=f"cold-{i}")
            ref.ask("count", timeout=300)
            pids.append(system.pid_of(ref))
            ref.stop()
    with open(pids_file, "w") as f:
        json.dump(pids, f)


def _count(path: str) -> tuple[int, str]:
    with open(path, errors="replace") as handle:
        text = handle.read()
    found = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    cmd = re.search(r"^cmd: (.*)$", text, re.M)
    return (int(found.group(1)) if found else 0), (cmd.group(1) if cmd else "")


def run(root: str, n: int, out_dir: str) -> dict[str, Any]:
    for path in glob.glob(os.path.join(out_dir, "cg.*")):
        os.unlink(path)
    pids_file = os.path.join(out_dir, "pids.json")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([BENCH_DIR, os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(dir=root) as home:
        # Counts are inherited across a fork: zeroed where a forked child starts, so a
        # worker counts from its fork on (no other process here forks without exec).
        subprocess.run(["valgrind", "--tool=callgrind", "--trace-children=yes", "--zero-before=PyOS_AfterFork_Child",
                        f"--callgrind-out-file={out_dir}/cg.%p", sys.executable, __file__, "--_spawns", home,
                        str(n), pids_file], check=True, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    with open(pids_file) as f:
        workers = set(json.load(f))
    result: dict[str, Any] = {"workers": [], "parent": 0}
    for path in glob.glob(os.path.join(out_dir, "cg.*")):
        pid = int(path.rsplit(".", 1)[1])
        total, cmd = _count(path)
        if pid in workers:
            result["workers"].append(total)
        elif "--_spawns" in cmd:
            result["parent"] = total
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--few", type=int, default=2)
    parser.add_argument("--many", type=int, default=6)
    parser.add_argument("--root", default=None, help="where the temp homes go (default: the temp dir)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--_spawns", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._spawns:
        home, n, pids_file = args._spawns
        _spawns(home, int(n), pids_file)
        return 0
    with tempfile.TemporaryDirectory() as out_dir:
        few = run(args.root or tempfile.gettempdir(), args.few, out_dir)
        many = run(args.root or tempfile.gettempdir(), args.many, out_dir)
    extra = args.many - args.few
    workers = few["workers"] + many["workers"]
    report = {
        "worker": round(statistics.median(workers)),
        "worker_min_max": [min(workers), max(workers)],
        "parent": round((many["parent"] - few["parent"]) / extra),
        "n_workers": len(workers),
    }
    print(json.dumps(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
