"""Kill -9 a worker in the middle of a stream and lose nothing.

::

    parent                                   counter (worker process, durability "machine")
    ------                                   -------------------------------------------
    tell {seq: 1..n} -- file in new/ ----->  drain -> apply -> commit state + ids -> ack
    os.kill(pid, SIGKILL) half-way   ---X    (dies mid-batch: claims left in cur/)
    tell goes on: files pile up in new/      supervisor: restart after a backoff
                                             recover cur/ -> ids already committed are
                                             dropped, the rest applied -> drain new/
    ask "state" (answered after every tell)  count == n, sum == n(n+1)/2, in order

Run it with ``python examples/crash_recovery.py`` (``--increments``, ``--kills``,
``--home``). It exits non-zero if the final count is not exactly what was sent.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import uuid

from actors import Actor, ActorError, ActorRef, ActorSystem


class Counter(Actor):
    """Applies numbered increments; remembers enough to prove none was lost or doubled."""

    def on_start(self):
        self.state.setdefault("count", 0)
        self.state.setdefault("sum", 0)
        self.state.setdefault("streams", {})  # stream id -> last seq applied
        self.state.setdefault("out_of_order", 0)
        self.state["activations"] = self.state.get("activations", 0) + 1

    def on_task(self, body, msg):
        streams = self.state["streams"]
        last = streams.get(body["stream"], 0)
        if body["seq"] != last + 1:
            self.state["out_of_order"] += 1
        streams[body["stream"]] = body["seq"]
        self.state["count"] += 1
        self.state["sum"] += body["seq"]

    def on_ask(self, question, msg):
        return {**self.state, "pid": os.getpid()}


def mailbox_counts(system: ActorSystem, ref: ActorRef) -> dict[str, int]:
    """The actor's mailbox right now, read from disk without taking anything
    (``system.inspect``, what ``actors inbox`` shows): messages waiting, taken by the
    worker and not yet acked, and dead."""
    info = system.inspect(ref)
    return {"new": info.pending, "cur": info.claimed, "dead": info.dead}


def run(home: str, increments: int, kills: int, timeout: float) -> int:
    print(f"ACTORS_HOME = {home}")
    with ActorSystem(home=home, project=".", durability="machine") as system:
        counter = system.spawn(Counter, name="counter", restart="on-failure")
        before = counter.ask("state", timeout=timeout)
        print(f"spawned counter, worker pid {system.pid_of(counter)}, durability 'machine' "
              f"(count so far: {before['count']})")

        stream = uuid.uuid4().hex[:8]
        kill_at = {increments * (k + 1) // (kills + 1) for k in range(kills)}
        first_pid = system.pid_of(counter)
        killed: set[int] = set()
        started = time.monotonic()
        print(f"streaming {increments} increments (stream {stream}); each tell returns once "
              "the message is on disk")
        for seq in range(1, increments + 1):
            counter.tell({"stream": stream, "seq": seq})
            if seq in kill_at:
                pid = system.pid_of(counter)
                if pid is None or pid in killed:  # not restarted yet: wait until it answers
                    pid = counter.ask("state", timeout=timeout)["pid"]
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
                disk = mailbox_counts(system, counter)
                print(f"  after increment {seq}: SIGKILL worker pid {pid} "
                      f"(on disk now: {disk['new']} waiting, {disk['cur']} taken and not yet acked)")
        print(f"sent {increments} increments in {time.monotonic() - started:.2f} s; "
              "the increments sent while the worker was down waited on disk")

        # The ask is queued behind every increment, so its answer comes from a worker
        # that has handled them all: the restarted one.
        after = counter.ask("state", timeout=timeout)
        info = next(c for c in system.children() if c.name == "counter")
        print(f"supervisor restarted it: worker pid {first_pid} -> {after['pid']}, "
              f"restarts {info.restarts}, status {info.status}")

        applied = after["count"] - before["count"]
        expected_sum = increments * (increments + 1) // 2
        got_sum = after["sum"] - before["sum"]
        disk = mailbox_counts(system, counter)
        print(f"final count = {after['count']} (this run: {applied} applied, {increments} sent); "
              f"sum of seq = {got_sum} (expected {expected_sum}); out of order: {after['out_of_order']}; "
              f"dead letters: {disk['dead']}")
        ok = (applied == increments and got_sum == expected_sum and after["out_of_order"] == 0
              and after["streams"].get(stream) == increments and after["pid"] != first_pid
              and info.restarts >= 1)
    if ok:
        print("check: OK (nothing lost, nothing applied twice)")
        return 0
    print("check: FAILED")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--increments", type=int, default=600, help="how many to send (default 600)")
    parser.add_argument("--kills", type=int, default=1, help="SIGKILLs during the stream (default 1)")
    parser.add_argument("--home", help="ACTORS_HOME to use (default: a temporary directory)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before giving up")
    args = parser.parse_args(argv)
    if args.increments < 2 or args.kills < 1 or args.kills >= args.increments:
        parser.error("need --increments >= 2 and 1 <= --kills < --increments")
    try:
        if args.home:
            return run(os.path.abspath(args.home), args.increments, args.kills, args.timeout)
        with tempfile.TemporaryDirectory(prefix="actors-crash-") as home:
            return run(home, args.increments, args.kills, args.timeout)
    except (ActorError, TimeoutError) as exc:  # AskTimeout is both
        print(f"check: FAILED ({type(exc).__name__}: {exc})")
        return 1


if __name__ == "__main__":
    sys.exit(main())
