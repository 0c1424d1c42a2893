"""Instructions per message of the hot paths, counted by callgrind (not timed).

Wall-clock asks on this machine do not settle 10% between runs (docs/benchmarks.md,
"Noise"); an instruction count is the same from run to run, so a cost of a few per
cent (metrics, say) can be seen. Each figure is (I(n + extra) - I(n)) / extra, which
cancels the start-up and every other fixed cost.

Usage::

    .venv/bin/python bench/count_instructions.py [--extra 1000] [--base 300] [--root /dev/shm]

Rows:

- ``worker tell``: an in-process ``Worker`` (``bench_actors:Counter``, durability
  "process") handles messages delivered beforehand, in batches of the loop's size:
  the instructions of ``drain -> dispatch -> commit -> ack`` per message (the
  delivering is counted by a run that only delivers, and subtracted).
- ``ask``: a system asks one Counter ``n`` times (``--trace-children=yes``); the
  parent's and the worker's instructions per ask, apart.
- ``tell``: the tell row of ``bench/run.py`` at "process": a system tells one Counter
  ``n`` small payloads, then asks until it has counted them all; the parent's and the
  worker's instructions per tell, apart (the worker's batches depend on timing, so
  its figure moves a little from run to run).

It runs the code of the interpreter's ``actors`` (``PYTHONPATH`` picks another tree:
see docs/benchmarks.md for the before/after method).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def _deliver_and_process(root: str, n: int, process: bool) -> None:
    from actors_runtime.messages import AgentRef, InboxKind, InboxMessage
    from actors_runtime.spec import Identity, Limits, ProvisionSpec
    from actors_runtime.worker import Worker

    spec = ProvisionSpec(identity=Identity(child_id="counter", system_id="main", project_key="bench-12345678"),
                         actor_class="bench_actors:Counter", home=root, durability="process",
                         limits=Limits()).validate()
    worker = Worker(spec)
    batch = worker.activate()
    sender = AgentRef(session_id="bench")
    messages = [InboxMessage.create(sender, InboxKind.TASK.value, {"n": 1}) for _ in range(n)]
    for start in range(0, n, 100):
        worker.backend.deliver(worker.address, messages[start:start + 100])
    if process:
        while True:
            worker.process(batch)
            batch = worker.mailbox.drain(worker.spec.limits.batch_size)
            if not batch:
                break
    worker.finish()


def _asks(root: str, n: int) -> None:
    from bench_actors import Counter

    from actors import ActorSystem

    with ActorSystem(home=root, project=root, durability="process") as system:
        counter = system.spawn(Counter, name="counter")
        for _ in range(n):
            counter.ask("count", timeout=60)


def _tells(root: str, n: int) -> None:
    from bench_actors import Counter

    from actors import ActorSystem

    with ActorSystem(home=root, project=root, durability="process") as system:
        counter = system.spawn(Counter, name="counter")
        counter.ask("count", timeout=60)
        for i in range(n):
            counter.tell({"n": 1, "i": i})
        while counter.ask("count", timeout=600) < n:
            pass


def _callgrind(args: list[str], out_dir: str, children: bool) -> tuple[int, list[int]]:
    """Run this script's ``args`` under callgrind; the instructions of this script's
    process, and of each other process it started (largest first)."""
    for path in glob.glob(os.path.join(out_dir, "cg.*")):
        os.unlink(path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([BENCH_DIR, os.environ.get("PYTHONPATH", "")])}
    subprocess.run(["valgrind", "--tool=callgrind", f"--trace-children={'yes' if children else 'no'}",
                    f"--callgrind-out-file={out_dir}/cg.%p", sys.executable, __file__, *args],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    own, others = 0, []
    for path in glob.glob(os.path.join(out_dir, "cg.*")):
        with open(path, errors="replace") as handle:
            text = handle.read()
        found = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        cmd = re.search(r"^cmd: (.*)$", text, re.M)
        if found is None:
            continue
        if cmd is not None and args[0] in cmd.group(1):
            own = int(found.group(1))
        else:
            others.append(int(found.group(1)))
    return own, sorted(others, reverse=True)


def _per_message(root: str, out_dir: str, extra: int, base: int) -> dict[str, Any]:
    def worker_run(n: int, process: bool) -> int:
        with tempfile.TemporaryDirectory(dir=root) as home:
            return _callgrind(["--_worker", home, str(n), "1" if process else "0"], out_dir, False)[0]

    delivered = (worker_run(base + extra, False) - worker_run(base, False)) / extra
    handled = (worker_run(base + extra, True) - worker_run(base, True)) / extra
    result = {"worker_tell": round(handled - delivered), "deliver": round(delivered)}
    for row, flag in (("ask", "--_asks"), ("tell", "--_tells")):
        runs = []
        for n in (base, base + extra):
            with tempfile.TemporaryDirectory(dir=root) as home:
                runs.append(_callgrind([flag, home, str(n)], out_dir, True))
        parent = [own for own, _ in runs]
        worker = [others[0] for _, others in runs]  # the busiest child: the actor's worker
        result[f"{row}_parent"] = round((parent[1] - parent[0]) / extra)
        result[f"{row}_worker"] = round((worker[1] - worker[0]) / extra)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extra", type=int, default=1000)
    parser.add_argument("--base", type=int, default=300)
    parser.add_argument("--root", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    parser.add_argument("--_worker", nargs=3, dest="worker_args", help=argparse.SUPPRESS)
    parser.add_argument("--_asks", nargs=2, dest="ask_args", help=argparse.SUPPRESS)
    parser.add_argument("--_tells", nargs=2, dest="tell_args", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_args:
        home, n, process = args.worker_args
        _deliver_and_process(home, int(n), process == "1")
        return 0
    if args.ask_args:
        _asks(args.ask_args[0], int(args.ask_args[1]))
        return 0
    if args.tell_args:
        _tells(args.tell_args[0], int(args.tell_args[1]))
        return 0
    import actors

    with tempfile.TemporaryDirectory(dir=args.root) as out_dir:
        result = _per_message(args.root, out_dir, args.extra, args.base)
    print(f"code: {os.path.dirname(os.path.dirname(os.path.abspath(actors.__file__)))}")
    for name, value in result.items():
        print(f"{name:12s} {value:>10,d} instructions per message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
