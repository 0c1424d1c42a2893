"""Profile the hot paths at durability "process": tell throughput and ask round trip
(and, with ``--only``, warm-pool spawn and resume after SIGKILL).

Usage::

    .venv/bin/python bench/profile_hot.py [--n-tell N] [--n-ask N] [--top K] [--py-spy]
    .venv/bin/python bench/profile_hot.py --only spawn [--n-spawn K] [--py-spy]
    .venv/bin/python bench/profile_hot.py --only resume [--n-resume N]

Both sides are profiled with cProfile in one run:

- the sender: the parent's main thread around the tell / ask loop, and for asks also
  the system's inbox and monitor threads (whichever claims the reply and resolves the
  future), through a ``threading.setprofile`` hook installed before the ActorSystem
  starts its threads;
- the worker: ``bench_actors.Profiled`` enables cProfile inside the handler of a
  ``{"profile": "start"}`` tell and dumps it on ``{"profile": "stop"}``, so the worker
  loop between the two (drain, dispatch, commit, ack, waits) is what is recorded.
  For resume, ``bench_actors.ProfiledResumer`` starts it in ``on_start``.

Costs are printed per message (µs): total time divided by the number of messages
(per spawn for spawn). cProfile adds roughly 0.3-1 µs per Python call, so profiled
runs are slower than the unprofiled reference measured first in the same run.
``--py-spy`` (needs ``pip install py-spy`` in the venv; not a project dependency)
adds a sampling profile of unprofiled loops across all processes: wall-clock samples
whose innermost line is a blocking call (select, wait, recv, ...) count as blocked,
the rest as active.

The ``.prof`` files and a JSON summary go to ``bench/results/profile/``.
"""

from __future__ import annotations

import argparse
import cProfile
import collections
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import threading
import time
from typing import Any

import common  # noqa: F401  (sets PYTHONPATH for the workers; must come first)
from common import BENCH_DIR, RESULTS_DIR, median, percentile, temp_system, wait_until

from bench_actors import Counter, Profiled, ProfiledResumer

OUT_DIR = os.path.join(RESULTS_DIR, "profile")

#: Functions that only wait (their time is idle, not cost); shown apart.
WAITS = {
    ("~", "<built-in method select.select>"),
    ("~", "<method 'acquire' of '_thread.lock' objects>"),
    ("~", "<built-in method time.sleep>"),
    ("~", "<built-in method select.poll>"),
    ("~", "<method 'poll' of 'select.poll' objects>"),
}

#: Steps to show by cumulative time per message: (label, file suffix, function name).
#: The machinery's sources live under ``runtime/`` (installed as ``actors_runtime``).
STEPS = {
    "parent": [
        ("ActorSystem.tell", "actors/_system.py", "tell"),
        ("ActorSystem.ask", "actors/_system.py", "ask"),
        ("  ask_async", "actors/_system.py", "ask_async"),
        ("  Future.result (wait for reply)", "concurrent/futures/_base.py", "result"),
        ("  _address (ref -> Address)", "actors/_system.py", "_address"),
        ("  encode (payload)", "actors/_codec.py", "encode"),
        ("  AskBody.to_dict (dataclasses-json)", "dataclasses_json/api.py", "to_dict"),
        ("  InboxMessage.create", "runtime/messages.py", "create"),
        ("    _next_stamp_us (clock)", "runtime/messages.py", "_next_stamp_us"),
        ("    new_msg_id (uuid4)", "runtime/messages.py", "new_msg_id"),
        ("  MaildirBackend.deliver", "runtime/backends/maildir/__init__.py", "deliver"),
        ("    Router.on (cached handle)", "runtime/backends/maildir/router.py", "on"),
        ("      MaildirMailbox.deliver", "runtime/backends/maildir/mailbox.py", "deliver"),
        ("        Sender.deliver", "runtime/backends/maildir/delivery.py", "deliver"),
        ("          to_wire (json.dumps)", "runtime/messages.py", "to_wire"),
        ("          SegmentWriter.append (one write)", "runtime/backends/maildir/segment_writer.py", "append"),
        ("            frame_batch (length, crc32)", "runtime/backends/maildir/segment_format.py", "frame_batch"),
        ("          Ringer.ring (doorbell write)", "runtime/backends/maildir/doorbell.py", "ring"),
        ("  ensure_active", "runtime/parent/activation.py", "ensure_active"),
        ("system threads: MaildirMailbox.drain", "runtime/backends/maildir/mailbox.py", "drain"),
        ("system threads:   Reader._load (Maildir file: read+parse)", "runtime/backends/maildir/reading.py",
         "_load"),
        ("system threads:   SegmentReader.read", "runtime/backends/maildir/segment_reader.py", "read"),
        ("system threads: Doorbell.clear", "runtime/backends/maildir/doorbell.py", "clear"),
        ("system threads: Inbox.resolve", "runtime/parent/inbox.py", "resolve"),
        ("system threads:   Inbox.resolve_wire (reply on the pipe)", "runtime/parent/inbox.py", "resolve_wire"),
        ("system threads:   Future.set_result", "concurrent/futures/_base.py", "set_result"),
        ("system threads: Reader.ack (cursor)", "runtime/backends/maildir/reading.py", "ack"),
    ],
    "spawn": [
        ("ActorSystem.spawn", "actors/_system.py", "spawn"),
        ("  Supervisor.spawn", "runtime/parent/supervisor.py", "spawn"),
        ("    _check_not_elsewhere (fabric)", "runtime/parent/supervisor.py", "_check_not_elsewhere"),
        ("    prepare (mailbox + index)", "runtime/parent/starting.py", "prepare"),
        ("      MaildirBackend.provision", "runtime/backends/maildir/__init__.py", "provision"),
        ("      MaildirStore.record_children (filelock)", "runtime/backends/maildir/store.py", "record_children"),
        ("    launch", "runtime/parent/starting.py", "launch"),
        ("      Pool.take", "runtime/parent/pool.py", "take"),
        ("      Launcher.start (cold)", "runtime/parent/launcher.py", "start"),
        ("      _await_ready (for 'ready')", "runtime/parent/starting.py", "_await_ready"),
        ("    Supervisor.record (status, filelock)", "runtime/parent/supervisor.py", "record"),
        ("ActorSystem.ask (first reply)", "actors/_system.py", "ask"),
    ],
    "worker": [
        ("loop.process (one batch)", "runtime/worker/loop.py", "process"),
        ("  dispatch", "runtime/worker/dispatch.py", "dispatch"),
        ("    Actor.dispatch (decode + handler)", "actors/_actor.py", "dispatch"),
        ("    Cancellation.region", "runtime/worker/cancellation.py", "region"),
        ("    Outbox.reply (ask only)", "runtime/worker/replies.py", "reply"),
        ("      ReplyBody.to_dict (dataclasses-json)", "dataclasses_json/api.py", "to_dict"),
        ("      MaildirBackend.deliver", "runtime/backends/maildir/__init__.py", "deliver"),
        ("  ActorState.admit", "runtime/worker/state.py", "admit"),
        ("    AdmittedSet.insert", "runtime/admitted.py", "insert"),
        ("  MmapMarker.set (in-flight marker)", "runtime/backends/maildir/inflight.py", "set"),
        ("  ActorState.commit", "runtime/worker/state.py", "commit"),
        ("    json.dumps", "json/__init__.py", "dumps"),
        ("    MaildirSession.commit", "runtime/backends/maildir/sessions.py", "commit"),
        ("      atomic_write", "runtime/backends/maildir/durable.py", "atomic_write"),
        ("      Rewriter.write", "runtime/backends/maildir/durable.py", "write"),
        ("        exchange (renameat2)", "runtime/backends/maildir/durable.py", "exchange"),
        ("  MaildirMailbox.ack", "runtime/backends/maildir/mailbox.py", "ack"),
        ("    Reader.ack (cursor)", "runtime/backends/maildir/reading.py", "ack"),
        ("MaildirMailbox.drain", "runtime/backends/maildir/mailbox.py", "drain"),
        ("  Reader.drain", "runtime/backends/maildir/reading.py", "drain"),
        ("    SegmentReader.read (pread + parse records)", "runtime/backends/maildir/segment_reader.py", "read"),
        ("    Reader._load (Maildir file: read + parse)", "runtime/backends/maildir/reading.py", "_load"),
        ("      InboxMessage.from_wire", "runtime/messages.py", "from_wire"),
        ("        _us_from_rfc3339", "runtime/messages.py", "_us_from_rfc3339"),
        ("Doorbell.clear", "runtime/backends/maildir/doorbell.py", "clear"),
    ],
}


# -- collecting ------------------------------------------------------------------------------


class ThreadProfiles:
    """cProfile in the ActorSystem's own threads, installed before they start.

    The inbox thread claims replies from the system mailbox; the monitor thread reads
    the children's pipes (where a runtime may also return replies). Both are profiled,
    their waits are reported apart.
    """

    def __init__(self, *prefixes: str) -> None:
        self.prefixes = prefixes
        self.profiles: dict[str, cProfile.Profile] = {}

    def _boot(self, frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)
        name = threading.current_thread().name
        if name.startswith(self.prefixes):
            profile = cProfile.Profile()
            self.profiles[name] = profile
            profile.enable()

    def __enter__(self) -> "ThreadProfiles":
        threading.setprofile(self._boot)
        return self

    def __exit__(self, *exc: object) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]


def _worker_profile(system: Any, name: str, path: str) -> None:
    ref = system.ref(name)
    ref.tell({"profile": "stop", "path": path})
    wait_until(lambda: os.path.exists(path), 60, "the worker's profile dump")


def profile_tell(n: int) -> dict[str, Any]:
    with temp_system(durability="process") as system:
        ref = system.spawn(Counter, name="plain")
        ref.ask("count", timeout=30)
        start = time.perf_counter()
        for i in range(n):
            ref.tell({"n": 1, "i": i})
        sent = time.perf_counter()
        ref.ask("count", timeout=600)
        done = time.perf_counter()
        reference = {"throughput": n / (done - start), "tell_call_rate": n / (sent - start)}

        ref = system.spawn(Profiled, name="prof-tell")
        ref.ask("count", timeout=30)
        ref.tell({"profile": "start"})
        parent = cProfile.Profile()
        start = time.perf_counter()
        parent.enable()
        for i in range(n):
            ref.tell({"n": 1, "i": i})
        parent.disable()
        sent = time.perf_counter()
        worker_path = os.path.join(OUT_DIR, "tell-worker.prof")
        _worker_profile(system, "prof-tell", worker_path)
        ref.ask("count", timeout=600)
        done = time.perf_counter()
        profiled = {"throughput": n / (done - start), "tell_call_rate": n / (sent - start)}
    parent_path = os.path.join(OUT_DIR, "tell-parent.prof")
    parent.dump_stats(parent_path)
    return {"n": n, "reference": reference, "profiled": profiled,
            "files": {"parent": [parent_path], "worker": [worker_path]}}


def profile_ask(n: int) -> dict[str, Any]:
    with temp_system(durability="process") as system:
        ref = system.spawn(Counter, name="plain")
        times = []
        for i in range(50 + n):
            start = time.perf_counter_ns()
            ref.ask("count", timeout=30)
            if i >= 50:
                times.append((time.perf_counter_ns() - start) / 1000)
        reference = {"p50_us": median(times), "p99_us": percentile(times, 99)}

    with ThreadProfiles("actors-inbox", "actors-monitor") as threads, \
            temp_system(durability="process") as system:
        ref = system.spawn(Profiled, name="prof-ask")
        for _ in range(50):
            ref.ask("count", timeout=30)
        ref.tell({"profile": "start"})
        parent = cProfile.Profile()
        times = []
        parent.enable()
        for _ in range(n):
            start = time.perf_counter_ns()
            ref.ask("count", timeout=30)
            times.append((time.perf_counter_ns() - start) / 1000)
        parent.disable()
        worker_path = os.path.join(OUT_DIR, "ask-worker.prof")
        _worker_profile(system, "prof-ask", worker_path)
        profiled = {"p50_us": median(times), "p99_us": percentile(times, 99)}
    parent_path = os.path.join(OUT_DIR, "ask-parent.prof")
    parent.dump_stats(parent_path)
    inbox_paths = []
    for name, profile in threads.profiles.items():
        path = os.path.join(OUT_DIR, f"ask-parent-{name}.prof")
        profile.create_stats()
        profile.dump_stats(path)
        inbox_paths.append(path)
    return {"n": n, "reference": reference, "profiled": profiled,
            "files": {"parent": [parent_path, *inbox_paths], "worker": [worker_path]}}


def profile_resume(n: int) -> dict[str, Any]:
    """The worker draining ``n`` pending messages after a SIGKILL, from ``on_start`` on.

    Worker side only (the parent just waits). py-spy is not used here: a SIGKILL sent
    to a process py-spy is sampling can leave it stopped under ptrace.
    """
    worker_path = os.path.join(OUT_DIR, "resume-worker.prof")
    with temp_system(durability="process") as system:
        flag = os.path.join(system.home, "block.flag")
        started = os.path.join(system.home, "block.started")
        with open(flag, "w"):
            pass
        ref = system.spawn(ProfiledResumer, name="resume")
        ref.tell({"profile_path": worker_path})
        ref.ask("stats", timeout=30)
        ref.tell({"block_while": flag, "started": started})
        wait_until(lambda: os.path.exists(started), 30, "the actor to get stuck")
        for i in range(n):
            ref.tell({"seq": i})
        system.kill(ref)
        os.unlink(flag)
        start = time.time()
        ref = system.spawn(ProfiledResumer, name="resume")
        state = ref.ask("stats", timeout=900)
        wait_until(lambda: os.path.exists(worker_path), 60, "the worker's profile dump")
    profiled = {"first_handled_s": state["first_at"] - start, "all_handled_s": state["last_at"] - start,
                "drain_rate": n / max(1e-9, state["last_at"] - state["first_at"])}
    return {"n": n, "reference": {}, "profiled": profiled, "files": {"parent": [], "worker": [worker_path]}}


def profile_spawn(k: int, pool_size: int = 2) -> dict[str, Any]:
    """Warm-pool spawn + first reply, parent side only (the worker side is py-spy's)."""
    with temp_system(durability="process", pool_size=pool_size) as system:
        parent = cProfile.Profile()
        times = []
        for i in range(k):
            wait_until(lambda: len(system._supervisor.pool.pids()) >= pool_size, 30, "the warm pool to fill")
            start = time.perf_counter()
            parent.enable()
            ref = system.spawn(Counter, name=f"spawn-{i}")
            ref.ask("count", timeout=30)
            parent.disable()
            times.append((time.perf_counter() - start) * 1000)
            ref.stop()
    parent_path = os.path.join(OUT_DIR, "spawn-parent.prof")
    parent.dump_stats(parent_path)
    return {"n": k, "reference": {}, "profiled": {"p50_ms": median(times)},
            "files": {"parent": [parent_path], "worker": []}}


# -- reporting -------------------------------------------------------------------------------


def _short(key: tuple[str, int, str]) -> str:
    filename, line, func = key
    if filename == "~":
        return func
    parts = filename.replace(os.sep, "/").split("/")
    return f"{'/'.join(parts[-2:])}:{line}({func})"


def summarise(paths: list[str], n: int, side: str, top: int) -> dict[str, Any]:
    stats = pstats.Stats(*paths)
    raw = stats.stats  # type: ignore[attr-defined]
    total_self = sum(v[2] for v in raw.values())
    waits = sum(v[2] for k, v in raw.items() if (k[0], k[2]) in WAITS)
    rows = []
    for key, (cc, nc, tt, ct, _) in raw.items():
        if (key[0], key[2]) in WAITS:
            continue
        rows.append({"function": _short(key), "calls_per_msg": nc / n, "self_us": tt / n * 1e6,
                     "cum_us": ct / n * 1e6})
    rows.sort(key=lambda r: -r["self_us"])
    steps = []
    for label, suffix, func in STEPS.get(side, []):
        matches = [(k, v) for k, v in raw.items()
                   if k[2] == func and k[0].replace(os.sep, "/").endswith(suffix)]
        if not matches:
            continue
        calls = sum(v[1] for _, v in matches)
        cum = sum(v[3] for _, v in matches)
        steps.append({"step": label, "calls_per_msg": calls / n, "cum_us": cum / n * 1e6})
    return {"busy_us": (total_self - waits) / n * 1e6, "wait_us": waits / n * 1e6,
            "top_self": rows[:top], "steps": steps}


def print_summary(title: str, summary: dict[str, Any]) -> None:
    print(f"\n== {title}: {summary['busy_us']:.1f} us busy + {summary['wait_us']:.1f} us waiting "
          "per message (under cProfile)")
    print(f"  {'self us/msg':>11}  {'cum us/msg':>10}  {'calls/msg':>9}  function")
    for row in summary["top_self"]:
        print(f"  {row['self_us']:11.2f}  {row['cum_us']:10.2f}  {row['calls_per_msg']:9.2f}  {row['function']}")
    print("  -- steps (cumulative, us per message) --")
    for step in summary["steps"]:
        print(f"  {step['cum_us']:11.2f}  {'':10}  {step['calls_per_msg']:9.2f}  {step['step']}")


# -- py-spy cross-check --------------------------------------------------------------------------


_IDLE_LINE = re.compile(r"select\.select\(|\.wait\(|recv|sleep\(|\.acquire\(|\.poll\(|waitpid|"
                        r"\.select\(|accept\(|readinto\(")
#: Innermost frames that only wait, whatever their source line says.
_IDLE_FUNCS = {"Connection._recv", "Connection._poll", "Condition.wait", "Event.wait", "Thread.join",
               "_PollLikeSelector.select", "wait", "Popen.wait", "_recv_bytes", "Connection._recv_bytes"}
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def _source_line(short: str, line: int, cache: dict[tuple[str, int], str]) -> str:
    key = (short, line)
    if key not in cache:
        text = ""
        import actors  # the sources actually imported (a frozen copy when PYTHONPATH says so)

        package_root = os.path.dirname(os.path.dirname(os.path.abspath(actors.__file__ or "")))
        roots = [package_root, BENCH_DIR, os.path.dirname(os.__file__),
                 os.path.join(os.path.dirname(os.__file__), "site-packages"), *sys.path]
        for root in roots:
            path = os.path.join(root, short)
            if os.path.isfile(path):
                try:
                    with open(path) as handle:
                        lines = handle.readlines()
                    text = lines[line - 1] if 0 < line <= len(lines) else ""
                except OSError:
                    pass
                break
        cache[key] = text
    return cache[key]


def run_py_spy(what: str, n: int, rate: int) -> dict[str, Any] | None:
    """Sample an unprofiled run of ``what`` in every process; active µs per message.

    py-spy's own idle detection does not work in this container, so a sample counts
    as idle when its innermost Python line is a blocking call (select, wait, recv,
    sleep, ...): those are dropped and reported as ``idle_us_per_msg``.
    """
    exe = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")
    if exe is None:
        print("py-spy not installed (pip install py-spy into the venv); skipping", file=sys.stderr)
        return None
    out = os.path.join(OUT_DIR, f"{what}-pyspy.txt")
    cmd = [exe, "record", "--subprocesses", "--threads", "--idle", "--format", "raw", "--rate", str(rate),
           "-o", out, "--", sys.executable, os.path.join(BENCH_DIR, "profile_hot.py"), "--_plain", what,
           {"tell": "--n-tell", "ask": "--n-ask", "spawn": "--n-spawn"}[what], str(n)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    marks = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not os.path.exists(out) or not marks:
        print(f"py-spy failed: {proc.stderr[-1500:]}", file=sys.stderr)
        return None
    window = json.loads(marks[-1])
    loop_marker = "ActorSystem.tell" if what == "tell" else "ActorSystem.ask"
    counters: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    idle: collections.Counter[str] = collections.Counter()
    cache: dict[tuple[str, int], str] = {}
    with open(out) as handle:
        for line in handle:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            # With --subprocesses a stack starts with one "process PID:cmd" frame per
            # ancestor (parent;forkserver;worker): the innermost one owns the sample.
            pids = [int(m.group(1)) for f in frames if (m := re.match(r"process (\d+):", f))]
            pid = pids[-1] if pids else -1
            owner = next((f for f in reversed(frames) if f.startswith("process ")), "")
            if "resource_tracker" in owner:
                continue
            if what == "spawn":
                if pid == window["parent_pid"]:
                    if "ActorSystem.spawn" not in stack and "ActorSystem.ask" not in stack:
                        continue
                    role = "parent main thread (spawn + first ask)"
                elif len(pids) == 2 and "forkserver" in owner:
                    role = "forkserver"
                elif "pipe_main" in stack and "Worker.run" not in stack:
                    role = "worker (spec -> activation -> ready)"
                else:
                    continue
            elif pid == window["parent_pid"]:
                if "Inbox._serve" in stack:
                    role = "parent inbox thread"
                elif loop_marker in stack:
                    role = "parent main thread (in the loop)"
                else:
                    continue  # start-up, shutdown, other threads
            elif pid == window["worker_pid"]:
                if "Worker.run" not in stack:
                    continue  # activation, lease thread, control thread
                role = "worker (in Worker.run)"
            else:
                continue
            leaf = frames[-1]
            match = _FRAME.match(leaf)
            if match and (match["func"] in _IDLE_FUNCS
                          or _IDLE_LINE.search(_source_line(match["file"], int(match["line"]), cache))):
                idle[role] += count
                continue
            counters[role][leaf] += count
    result: dict[str, Any] = {"rate": rate, "n": n, "file": out, "window": window, "roles": {}}
    for role, counter in counters.items():
        total = sum(counter.values())
        result["roles"][role] = {
            "active_us_per_msg": total / rate / n * 1e6,
            "idle_us_per_msg": idle[role] / rate / n * 1e6,
            "top": [(leaf, c / rate / n * 1e6) for leaf, c in counter.most_common(12)],
        }
    return result


def _plain(what: str, n: int) -> None:
    """The unprofiled loop py-spy samples."""
    if what == "spawn":
        with temp_system(durability="process", pool_size=2) as system:
            start = time.perf_counter()
            for i in range(n):
                wait_until(lambda: len(system._supervisor.pool.pids()) >= 2, 30, "the warm pool to fill")
                ref = system.spawn(Counter, name=f"spawn-{i}")
                ref.ask("count", timeout=30)
                ref.stop()
            print(json.dumps({"seconds": time.perf_counter() - start, "parent_pid": os.getpid()}))
        return
    with temp_system(durability="process") as system:
        ref = system.spawn(Counter, name="plain")
        ref.ask("count", timeout=30)
        start = time.perf_counter()
        if what == "tell":
            for i in range(n):
                ref.tell({"n": 1, "i": i})
            ref.ask("count", timeout=600)
        else:
            for _ in range(n):
                ref.ask("count", timeout=30)
        print(json.dumps({"seconds": time.perf_counter() - start, "parent_pid": os.getpid(),
                          "worker_pid": system.pid_of(ref)}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-tell", type=int, default=10_000)
    parser.add_argument("--n-ask", type=int, default=2_000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--n-spawn", type=int, default=20)
    parser.add_argument("--n-resume", type=int, default=10_000)
    parser.add_argument("--only", choices=("tell", "ask", "spawn", "resume"),
                        help="one path (default: tell and ask; spawn only when named)")
    parser.add_argument("--py-spy", action="store_true", help="also sample unprofiled runs with py-spy")
    parser.add_argument("--py-spy-rate", type=int, default=500)
    parser.add_argument("--_plain", dest="plain", choices=("tell", "ask", "spawn"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain:
        _plain(args.plain, {"tell": args.n_tell, "ask": args.n_ask, "spawn": args.n_spawn}[args.plain])
        return 0
    os.makedirs(OUT_DIR, exist_ok=True)
    report: dict[str, Any] = {"machine": common.machine_info(), "fs_create_probe_us": common.create_probe_us()}
    for what in (args.only,) if args.only else ("tell", "ask"):
        if what == "tell":
            result = profile_tell(args.n_tell)
        elif what == "ask":
            result = profile_ask(args.n_ask)
        elif what == "resume":
            result = profile_resume(args.n_resume)
        else:
            result = profile_spawn(args.n_spawn)
        n = result["n"]
        print(f"\n######## {what} x {n} at durability 'process'" + (" (µs per spawn)" if what == "spawn" else ""))
        print(f"unprofiled reference: {json.dumps({k: round(v, 1) for k, v in result['reference'].items()})}")
        print(f"under cProfile:       {json.dumps({k: round(v, 1) for k, v in result['profiled'].items()})}")
        for side in ("parent", "worker"):
            if not result["files"][side]:
                continue
            summary = summarise(result["files"][side], n, "spawn" if what == "spawn" else side, args.top)
            result[side] = summary
            print_summary(f"{what} / {side} ({', '.join(os.path.basename(p) for p in result['files'][side])})",
                          summary)
        if args.py_spy and what != "resume":
            sampled = run_py_spy(what, n, args.py_spy_rate)
            result["py_spy"] = sampled
            if sampled:
                print(f"\n== {what}: py-spy, unprofiled run, {sampled['rate']} Hz, µs of active (non-idle) "
                      f"samples per message; window {sampled['window']}")
                for role, data in sampled["roles"].items():
                    print(f"  [{role}] {data['active_us_per_msg']:.1f} us/msg active, "
                          f"{data['idle_us_per_msg']:.1f} us/msg blocked")
                    for leaf, us in data["top"]:
                        print(f"    {us:8.2f}  {leaf}")
        report[what] = result
    name = f"summary-{args.only}.json" if args.only else "summary.json"
    with open(os.path.join(OUT_DIR, name), "w") as handle:
        json.dump(report, handle, indent=1)
    print(f"\nprofiles and {name} in {OUT_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
