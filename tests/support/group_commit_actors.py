"""Actors that watch or cut the worker's group commit at durability "machine"
(runtime/worker/group_commit.py) from inside their own worker process.

``StagedKillable`` adds two kill points to ``crash_actors.Killable``: "staged" (right
after a commit the session left unflushed) and "flushed" (right after the session's
flush, before the acks that waited for it). ``FlushOrderRecorder`` writes what its
worker does, in order, to a file (secrets {"log": path}): the session's commits
(staged or not), every ``fdatasync`` of the session's files, every ack, and every
message that leaves (through the backend, or back to the parent on the pipe).
"""

from __future__ import annotations

import json
import os

from actors_runtime.backends.maildir import durable
from crash_actors import Killable

from actors import Actor


class StagedKillable(Killable):
    def on_start(self):
        super().on_start()
        worker = self._context._worker
        session = worker.state.session
        original_stage, original_flush = session.commit_unflushed, session.flush

        def commit_unflushed(*args):
            original_stage(*args)
            if session.unflushed:
                self._maybe_die("staged")

        def flush():
            staged = session.unflushed
            original_flush()
            if staged:
                self._maybe_die("flushed")

        session.commit_unflushed, session.flush = commit_unflushed, flush


class FlushOrderRecorder(Actor):
    """Counts {"n": k}; told {"forward": ref} it tells the ref {"n": 1} (output held for
    the commit). Asked anything, answers the count (a query)."""

    def on_start(self):
        self.state.setdefault("count", 0)
        worker = self._context._worker
        log = open(self.secrets["log"], "a", buffering=1)  # one line per event, in order

        def record(*event):
            log.write(json.dumps(event) + "\n")

        session = worker.state.session
        original_commit, original_stage = session.commit, session.commit_unflushed
        original_sync = durable.sync_data

        def commit(*args):
            original_commit(*args)
            record("commit")

        def commit_unflushed(*args):
            original_stage(*args)
            record("staged" if session.unflushed else "commit")

        def sync_data(fd):
            original_sync(fd)
            record("sync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))

        reader = worker.mailbox._reader  # the maildir mailbox's reading half
        original_ack = reader.ack

        def ack(batch):
            batch = list(batch)
            if batch:
                record("ack", [d.message.id for d in batch])
            return original_ack(batch)

        backend, gate = worker.backend, worker.outbox.gate
        original_deliver, original_lane = backend.deliver, gate.parent_lane

        def deliver(target, messages, **options):
            record("deliver", [m.kind for m in messages])
            return original_deliver(target, messages, **options)

        def lane(wire):
            record("deliver", ["reply"])
            return original_lane(wire)

        session.commit, session.commit_unflushed = commit, commit_unflushed
        durable.sync_data = sync_data
        reader.ack = ack
        backend.deliver = deliver
        if original_lane is not None:
            gate.parent_lane = lane

    def on_task(self, body, msg):
        if "forward" in body:
            self.tell(body["forward"], {"n": 1})
        else:
            self.state["count"] += body["n"]

    def on_ask(self, question, msg):
        return self.state["count"]
