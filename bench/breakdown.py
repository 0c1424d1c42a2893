"""Where an ask's and a tell's instructions go, step by step (callgrind, not timed).

Usage::

    .venv/bin/python bench/breakdown.py [--n 500] [--root /dev/shm] [--only build,encode,...]

Each step runs ``n`` times in one process, against a real maildir backend and an
in-process ``Worker`` (``bench_actors:Counter``, durability "process"), and is counted
as (I(n) - I(0)) / n, which cancels start-up and setup. The steps are the pieces an
ask goes through; what the two processes run per ask beyond their sum (the loop, the
turn's bookkeeping, the parent's threads and futures) is what ``count_instructions``
finds for the whole path less these. Kernel time (the syscalls, the wake-ups) is not
in an instruction count: ``bench/cpu_split.py`` gives each process's system time.

Steps (parent = the asking process, worker = the actor's process):

- ``build``      parent: ``InboxMessage.create`` of an ask body + its traceparent
- ``encode``     parent: ``checked_wire`` (id check, ``to_wire``) + ``frame_batch``
- ``deliver``    parent: ``Backend.deliver`` of a built message (encode + room + write + doorbell)
- ``ring``       parent: the doorbell alone (``Ringer.ring``, nobody waiting)
- ``drain``      ``deliver`` + the worker's ``Mailbox.drain`` of that one ask (listings, read,
                 decode, settle) + its ``ack``: the drain is this less ``deliver``
- ``decode``     worker: ``InboxMessage.from_wire`` of the ask alone
- ``turn``       ``deliver`` + ``drain`` + ``loop.process`` of the ask (admit, marker, turn,
                 answer, release of the reply on a pipe, ack) + the reply read off the pipe
                 (so it never fills): the turn is this less ``drain`` and ``pipe``
- ``reply``      worker: holding the answer (``Outbox.answer``: its pipe frame); a tree from
                 before that change: building the reply (derived id, create, traceparent, ``to_wire``)
- ``pipe``       both: ``send_bytes`` of the reply + ``recv_bytes`` on the other end
- ``resolve``    parent: ``Inbox.resolve_frame`` (decode the reply, resolve the Future;
                 ``resolve_wire`` in a tree from before it)
"""

from __future__ import annotations

import argparse
import gc
import glob
import os
import re
import subprocess
import sys
import tempfile
from typing import Any, Callable

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
STEPS = ("build", "encode", "deliver", "ring", "drain", "decode", "turn", "reply", "pipe", "resolve")


def _setup(root: str) -> dict[str, Any]:
    from multiprocessing import Pipe

    from actors_runtime.spec import Identity, Limits, ProvisionSpec
    from actors_runtime.worker import Worker

    spec = ProvisionSpec(identity=Identity(child_id="counter", system_id="main", project_key="bench-12345678"),
                         actor_class="bench_actors:Counter", home=root, durability="process",
                         limits=Limits()).validate()
    worker = Worker(spec)
    worker.activate()
    lane_end, parent_end = Pipe(duplex=True)
    from actors_runtime import control

    if hasattr(control, "ANSWER_PREFIX"):  # the lane takes whole frames
        worker.outbox.gate.parent_lane = lambda frame: lane_end.send_bytes(frame) or True
    else:  # a tree from before the compact answer: the lane adds the prefix
        worker.outbox.gate.parent_lane = lambda wire: lane_end.send_bytes(b"R" + wire) or True
    return {"worker": worker, "parent_end": parent_end, "lane_end": lane_end}


def _run_step(root: str, step: str, n: int, prepare: int) -> None:
    from actors_runtime import tracing
    from actors_runtime.backends.maildir.delivery import checked_wire
    from actors_runtime.backends.maildir.doorbell import Ringer
    from actors_runtime.backends.maildir.segment_format import frame_batch
    from actors_runtime.messages import AskBody, InboxKind, InboxMessage, ReplyBody, derived_msg_id
    from actors_runtime.parent.inbox import Inbox
    from actors_runtime.worker import loop

    env = _setup(root)
    worker, parent_end, lane_end = env["worker"], env["parent_end"], env["lane_end"]
    backend, address, mailbox = worker.backend, worker.address, worker.mailbox
    sender = worker.address.system_inbox.agent_ref()
    create, ask_body, outgoing = InboxMessage.create, AskBody, tracing.outgoing

    def build() -> Any:
        message = create(sender, InboxKind.ASK, ask_body("count", "query").to_body())
        message.traceparent = outgoing(message, None)
        return message

    ask = build()
    wire = ask.to_wire()
    steps: dict[str, Callable[[], Any]] = {}
    steps["build"] = build
    steps["encode"] = lambda: frame_batch([checked_wire(ask)])
    built = [build() for _ in range(prepare)]  # in both runs: only the step differs
    steps["deliver"] = lambda: backend.deliver(address, [built.pop()], block_timeout=0.0)
    ringer = Ringer(mailbox.paths.bell) if hasattr(mailbox, "paths") else None
    steps["ring"] = lambda: ringer.ring() if ringer is not None else None
    # One ask waits at a time, as in the ask row: the drain reads just its record.
    def drain() -> None:
        backend.deliver(address, [built.pop()], block_timeout=0.0)
        mailbox.ack(mailbox.drain(1))

    steps["drain"] = drain

    def turn() -> None:
        backend.deliver(address, [built.pop()], block_timeout=0.0)
        loop.process(worker, mailbox.drain(1))
        parent_end.recv_bytes()

    steps["turn"] = turn
    steps["decode"] = lambda: InboxMessage.from_wire(wire)

    def reply() -> bytes:
        message = InboxMessage.create(worker.outbox.sender, "reply", ReplyBody(answer=0).to_body(),
                                      msg_id=derived_msg_id(ask.id, -1), correlation_id=ask.id)
        message.traceparent = tracing.outgoing(message, ask.traceparent)
        return message.to_wire()

    reply_wire = reply()
    frame = b"R" + reply_wire
    compact = hasattr(Inbox, "resolve_frame")
    if compact:  # the answer is held as its pipe frame (the turn's own path: ``Outbox.answer``)
        held = worker.outbox.gate.held

        def reply() -> bytes:  # noqa: F811
            worker.outbox.answer(ask, 0)
            return held.pop().frame

        frame = reply()
    steps["reply"] = reply
    steps["pipe"] = lambda: (lane_end.send_bytes(frame), parent_end.recv_bytes())
    from concurrent.futures import Future

    inbox = Inbox(backend, address.system_inbox, lambda answer: answer, lambda message: None)
    correlation = ask.id

    def resolve() -> None:
        inbox.expect(correlation, Future(), "counter")
        if compact:
            inbox.resolve_frame(frame)
        else:
            inbox.resolve_wire(reply_wire)

    steps["resolve"] = resolve
    run = steps[step]
    gc.collect()
    gc.freeze()  # as a worker does at its entry: the collector stays off what setup made
    for _ in range(n):
        run()
    worker.finish()


def _count(root: str, out_dir: str, step: str, n: int, prepare: int) -> int:
    for path in glob.glob(os.path.join(out_dir, "cg.*")):
        os.unlink(path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([BENCH_DIR, os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(dir=root) as home:
        subprocess.run(["valgrind", "--tool=callgrind", "--trace-children=no",
                        f"--callgrind-out-file={out_dir}/cg.%p", sys.executable, __file__, "--_step", home, step,
                        str(n), str(prepare)], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    total = 0
    for path in glob.glob(os.path.join(out_dir, "cg.*")):
        with open(path, errors="replace") as handle:
            found = re.search(r"^(?:summary|totals): (\d+)", handle.read(), re.M)
        total += int(found.group(1)) if found else 0
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--root", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    parser.add_argument("--only", default=",".join(STEPS))
    parser.add_argument("--_step", nargs=4, dest="step_args", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step_args:
        home, step, n, prepare = args.step_args
        _run_step(home, step, int(n), int(prepare))
        return 0
    import actors

    print(f"code: {os.path.dirname(os.path.dirname(os.path.abspath(actors.__file__)))}")
    with tempfile.TemporaryDirectory(dir=args.root) as out_dir:
        for step in args.only.split(","):
            per = (_count(args.root, out_dir, step, args.n, args.n) - _count(args.root, out_dir, step, 0, args.n)) / args.n
            print(f"{step:10s} {per:>10,.0f} instructions", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
