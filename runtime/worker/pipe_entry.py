"""The entry of a worker started by its system over a ``multiprocessing`` pipe.

A warm-pool worker sits in ``pipe_main``, started and imported, until a spec
arrives. Its one helper thread is started at once and reads the pipe from then on
(modules to preload while it waits, the spec, then control commands), and also
renews the lease: an activation starts no thread. EOF on the pipe, at any time,
means the parent is gone: the worker stops cleanly. See ``runtime.control`` for
the bytes on the pipe.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from typing import Any

from .. import control
from ..admitted import DEFAULT_CAPACITY, AdmittedSet
from ..errors import InvalidSpec
from ..messages import AgentRef, AskBody, AskMode, InboxKind, InboxMessage, ReplyBody, derived_msg_id
from ..records import AgentRecord
from ..spec import Identity, ProvisionSpec
from ..threads import start_thread
from . import logs
from .activation import Worker, serve
from .seed_entry import configure_logging

log = logging.getLogger(__name__)


def pipe_main(conn: Any) -> None:
    """Entry of a multiprocessing worker: spec first on ``conn``, then control."""
    # What the worker inherited (the fork server's preloaded modules, or the parent's
    # objects under "fork") is never garbage the worker made: keep the collector off
    # it. A full collection would walk all of it, and writing to each object it visits
    # copies every inherited page (some 3 MB and 15-20 ms when one fell during a
    # resume's recovery of 10,000 messages). Freezing moves list heads only.
    gc.freeze()
    configure_logging()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    lane = ParentLane(conn)
    specs: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    workers: queue.SimpleQueue[Worker] = queue.SimpleQueue()
    start_thread(_control_loop, "control", conn, lane, specs, workers)
    raw = specs.get()
    try:
        spec = ProvisionSpec.from_wire(raw).validate()
    except InvalidSpec as exc:
        lane.event(control.ERROR, error=str(exc))
        os._exit(control.EXIT_BAD_SPEC)

    def attach(worker: Worker) -> None:
        worker.install_signal_handlers()
        logs.install(worker, forward=lane.log)  # records go to the actor's log file and the parent
        workers.put(worker)

    # A placed actor's parent is a host, not the system its askers wait in: its
    # replies go through the backend, durable, never over the pipe.
    reply_lane = lane.reply if spec.placement is None else None
    code = serve(spec, notify=lane.event, on_worker=attach, parent_lane=reply_lane, supervised=True,
                 lease_renewed_elsewhere=True)
    logs.close()  # os._exit skips logging's own shutdown
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class ParentLane:
    """The worker's side of its pipe to the parent: events and replies, one at a time."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def event(self, kind: str, **fields: Any) -> None:
        """Send an event (see ``control``); a gone parent is not an error."""
        with self.lock:
            try:
                self.conn.send_bytes(control.event(kind, **fields))
            except (OSError, ValueError):
                pass  # the control loop sees EOF and stops us

    def log(self, record: bytes) -> bool:
        """Forward a log record (JSON) to the parent; returns whether it could."""
        with self.lock:
            try:
                self.conn.send_bytes(control.LOG_PREFIX + record)
                return True
            except (OSError, ValueError):
                return False

    def reply(self, frame: bytes) -> bool:
        """Send a reply to one of the parent's asks (its frame: ``control``); returns
        whether it could."""
        with self.lock:
            try:
                self.conn.send_bytes(frame)
                return True
            except (OSError, ValueError):
                return False


def _preload(modules: list[str]) -> None:
    """Import modules while waiting in the pool, so an activation finds them loaded."""
    for module in modules:
        try:
            importlib.import_module(module)
        except BaseException as exc:  # even SystemExit: the activation reports it, if it matters
            log.debug("pool worker: preloading %s failed: %s", module, exc)


def _warm_up() -> None:
    """Run the codecs an activation and its first message use, once, while in the pool.

    A forked worker's first pass through any code is several times slower than later
    ones (copy-on-write page faults, cold caches, the interpreter specialising its
    bytecode): decoding the spec took ~0.3 ms in a fresh worker, ~14 us once warm.
    """
    warm_codecs()
    _own_code()


def warm_codecs() -> None:
    """One pass through the codecs an activation and its first message use (the
    spec, an ask and its reply, the admitted set, the lease record). Touches no file
    or descriptor; run by pool workers while parked, and by the fork server
    (``server_warmup``) so that every worker forked from it inherits them warm."""
    identity = Identity(child_id="warm-up", system_id="pool", project_key="pool-00000000")
    spec = ProvisionSpec(identity=identity, actor_class="pool:WarmUp", home=os.sep, project_dir=os.sep)
    spec = ProvisionSpec.from_wire(spec.to_wire())
    spec.validate().public_dict()
    sender = AgentRef(session_id="pool", role="system")
    ask = InboxMessage.create(sender, InboxKind.ASK.value, AskBody("warm-up", AskMode.QUERY.value).to_body())
    ask = InboxMessage.from_wire(ask.to_wire())
    reply = InboxMessage.create(sender, InboxKind.REPLY.value, ReplyBody(answer=0).to_body(),
                                msg_id=derived_msg_id(ask.id, 0), correlation_id=ask.id)
    InboxMessage.from_wire(reply.to_wire())
    AdmittedSet.from_list([ask.id], DEFAULT_CAPACITY)
    record = AgentRecord(agent_id="warm-up", role=None, labels=[], endpoint="", pid=os.getpid(),
                         started_at=time.time(), system_id="pool", actor_class=spec.actor_class)
    json.loads(json.dumps(dataclasses.asdict(record), separators=(",", ":")))


def _own_code() -> None:
    """Write to every function and code object of this library once, while parked.

    They were inherited from the fork server: the first call of each in a new worker
    writes its reference count, and the page holding it is copied then, in the middle
    of an activation. Taking a reference to each here moves those copies into the
    time the worker waits in the pool.
    """
    held = []
    for name, module in list(sys.modules.items()):
        if name not in ("actors", "actors_runtime") and not name.startswith(("actors.", "actors_runtime.")):
            continue
        for value in list(vars(module).values()):
            members = vars(value).values() if isinstance(value, type) else (value,)
            for member in members:
                code = getattr(member, "__code__", None)
                if code is not None:
                    held.append((member, code))
    held.clear()


def _apply_levels(raw: bytes) -> None:
    try:
        levels = json.loads(raw)
    except ValueError:
        return
    if isinstance(levels, dict):
        logs.apply_levels(levels)


def _control_loop(conn: Any, lane: ParentLane, specs: "queue.SimpleQueue[bytes]",
                  workers: "queue.SimpleQueue[Worker]") -> None:
    """The pipe reader of a multiprocessing worker (see ``pipe_main``)."""
    warm = False
    while True:  # in the pool: imports, each answered with "preloaded", until the spec comes
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            os._exit(control.EXIT_OK)  # parent gone before provisioning: nothing to clean up
        if raw[:1] == control.LEVELS_PREFIX:  # the parent's logging levels, then the spec
            _apply_levels(raw[1:])
            continue
        if raw[:1] != control.PRELOAD_PREFIX:
            break
        _preload(json.loads(raw[1:]))
        if not warm:  # once: later preloads only add modules
            warm = True
            try:
                _warm_up()
            except Exception as exc:  # only a lost speed-up; the activation reports real trouble
                log.debug("pool worker: warm-up failed: %s", exc)
        lane.event(control.PRELOADED)
    specs.put(raw)
    worker = workers.get()
    every = worker.lease.renewal_interval
    renew_at = time.monotonic() + every
    while True:
        now = time.monotonic()
        if now >= renew_at:
            worker.lease.renew()
            renew_at = now + every
        if not conn.poll(renew_at - now):
            continue
        try:
            command = conn.recv_bytes()
        except (EOFError, OSError):
            worker.request_stop("parent gone")
            return
        if command == control.STOP:
            worker.request_stop()
        elif command == control.CANCEL:
            worker.request_cancel()
        else:
            log.warning("actor %s: unknown control command %r", worker.actor_id, command[:40])
