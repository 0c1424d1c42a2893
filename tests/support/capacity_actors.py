"""Actors of the capacity tests: each message is counted once per id, and one can be
held mid-message by a file."""

from __future__ import annotations

import os
import time

from actors import Actor


class Tally(Actor):
    """Counts tells by their ``seq`` (a repeat would show as a count of 2) and the
    worker pids that handled them; ``{"hold": DIR}`` writes ``DIR/holding`` and
    waits, mid-message, until ``DIR/released`` exists."""

    def on_start(self):
        self.state.setdefault("seen", {})
        self.state.setdefault("pids", [])

    def on_task(self, body, msg):
        if "hold" in body:
            with open(os.path.join(body["hold"], "holding"), "w") as handle:
                handle.write(str(os.getpid()))
            released = os.path.join(body["hold"], "released")
            deadline = time.monotonic() + 60
            while not os.path.exists(released) and time.monotonic() < deadline:
                time.sleep(0.01)
        key = str(body["seq"])
        self.state["seen"][key] = self.state["seen"].get(key, 0) + 1
        if os.getpid() not in self.state["pids"]:
            self.state["pids"].append(os.getpid())

    def on_ask(self, question, msg):
        return self.state


class SlowToLeave(Tally):
    """A ``Tally`` whose ``on_stop`` (once told ``{"hold_stop": DIR}``) writes
    ``DIR/stopping`` and waits until ``DIR/go`` exists: a worker on its way out."""

    def on_task(self, body, msg):
        if "hold_stop" in body:
            self.state["hold_stop"] = body["hold_stop"]
            return
        super().on_task(body, msg)

    def on_stop(self):
        hold = self.state.get("hold_stop")
        if hold is None:
            return
        with open(os.path.join(hold, "stopping"), "w") as handle:
            handle.write(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(hold, "go")) and time.monotonic() < deadline:
            time.sleep(0.01)
