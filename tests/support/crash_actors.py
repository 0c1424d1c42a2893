"""Actors that SIGKILL their own worker at chosen points of the worker loop.

The kill plan comes through ``secrets`` ({"plan_dir": ..., "kill_at": {point: count}})
and each point fires once (a marker file records it), so the restarted worker goes on.
Points: "handle" (inside a handler, before the batch commits), "commit" (right after
the commit, before any ack), "ack" (once acking a batch has written the first
segment's cursor). ``CommitAckKillable`` has the points of a commit and ack made in
one step (Redis).
A task's "seq", when it has one, is appended to ``state["seqs"]`` (the query
"seqs" returns them), so a test can see a doubled message, not only a count.
"""

from __future__ import annotations

import os
import signal

from actors import Actor


class Killable(Actor):
    def on_start(self):
        self.state.setdefault("count", 0)
        self.state.setdefault("seqs", [])
        worker = self._context._worker  # the runtime object driving this actor
        state = worker.state
        original_commit = state.commit
        reader = worker.mailbox._reader  # the maildir mailbox's reading half
        original_ack, original_settle = reader.ack, reader._settle
        acking = []

        def commit(*args):
            original_commit(*args)
            self._maybe_die("commit")

        def ack(batch):
            acking.append(True)
            try:
                return original_ack(batch)
            finally:
                acking.pop()

        def settle(path, segment):
            original_settle(path, segment)
            if acking:
                self._maybe_die("ack")

        state.commit = commit
        reader.ack, reader._settle = ack, settle

    def _maybe_die(self, point):
        plan = self.secrets.get("kill_at", {})
        if point not in plan or self.state.get("count", 0) < plan[point]:
            return
        marker = os.path.join(self.secrets["plan_dir"], f"{point}.done")
        if os.path.exists(marker):
            return
        with open(marker, "w") as handle:
            handle.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)

    def on_task(self, body, msg):
        self.state["count"] += body["n"]
        if "seq" in body:
            self.state["seqs"].append(body["seq"])
        self._maybe_die("handle")

    def on_ask(self, question, msg):
        if question == "seqs":
            return self.state["seqs"]
        return self.state["count"]


class CommitAckKillable(Killable):
    """Killable on a mailbox that commits and acks in one step (Redis): the points are
    "handle", "before" (the batch ran; its commit+ack is about to be written) and
    "after" (it was written: between two batches)."""

    def on_start(self):
        self.state.setdefault("count", 0)
        self.state.setdefault("seqs", [])
        reader = self._context._worker.mailbox._reader  # the Redis mailbox's reading half
        original = reader.commit_and_ack

        def commit_and_ack(*args):
            self._maybe_die("before")
            retired = original(*args)
            self._maybe_die("after")
            return retired

        reader.commit_and_ack = commit_and_ack
