"""Actors for the chaos tests (tests/chaos): they keep the sequence number of every
message they apply, so a test can tell a lost message from a doubled one.

``Ledger`` applies {"seq": n} tells and steer asks by appending ``n`` to
``state["seqs"]`` (and the applying worker's pid to ``state["pids"]``, once); the
query "seqs" returns the list. With ``secrets={"hold_dir": path}`` its ``on_start``
holds while the file ``path/hold`` exists: it first writes ``path/holding-<pid>``,
then waits (up to ``HOLD_LIMIT`` seconds) for ``hold`` to go or ``path/released``
to appear, so a test can kill the worker, or its parent, while ``on_start`` runs.
A task {"seq": n, "hold": true} holds the same way inside its handler, after the
number is applied and before the commit, unless ``path/released`` exists.
"""

from __future__ import annotations

import os
import time

from actors import Actor

#: Seconds a held on_start waits at most (a backstop; tests release it).
HOLD_LIMIT = 30.0


class Ledger(Actor):
    def on_start(self):
        self.state.setdefault("seqs", [])
        self.state.setdefault("pids", [])
        hold_dir = self.secrets.get("hold_dir")
        if hold_dir and os.path.exists(os.path.join(hold_dir, "hold")):
            _hold(hold_dir, "hold")

    def on_task(self, body, msg):
        self._apply(body["seq"])
        if body.get("hold"):
            _hold(self.secrets["hold_dir"])

    def on_ask(self, question, msg):
        if question == "seqs":
            return self.state["seqs"]
        if question == "pids":
            return self.state["pids"]
        self._apply(question["seq"])  # a steer ask: its change is kept
        return question["seq"]

    def _apply(self, seq):
        self.state["seqs"].append(seq)
        if os.getpid() not in self.state["pids"]:
            self.state["pids"].append(os.getpid())


def _hold(hold_dir, while_exists=None):
    """Wait until ``hold_dir/released`` exists (or ``while_exists`` is gone)."""
    released = os.path.join(hold_dir, "released")
    if os.path.exists(released):
        return
    with open(os.path.join(hold_dir, f"holding-{os.getpid()}"), "w") as handle:
        handle.write(str(os.getpid()))
    deadline = time.monotonic() + HOLD_LIMIT
    while time.monotonic() < deadline:
        if os.path.exists(released):
            return
        if while_exists is not None and not os.path.exists(os.path.join(hold_dir, while_exists)):
            return
        time.sleep(0.01)
