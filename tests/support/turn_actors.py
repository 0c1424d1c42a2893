"""Actor classes for tests/worker/test_turns.py (handlers caught at the edges of a turn)."""

from __future__ import annotations

import os
import time

from sample_actors import Counter

from actors import Actor


class HoldBeforeHandler(Actor):
    """Told {"hold": dir}: the next query ask, once ``dir/arm`` exists, stops in the
    runtime's pre-handler snapshot (after the message was claimed for handling; taken
    when no query left the state's text since the last turn) until a cancel has been
    requested; ``dir/holding`` says it got there."""

    def on_task(self, body, msg):
        self._hold = body["hold"]

    def snapshot_state(self):
        hold = getattr(self, "_hold", None)
        if hold and os.path.exists(os.path.join(hold, "arm")):
            os.unlink(os.path.join(hold, "arm"))
            open(os.path.join(hold, "holding"), "w").close()
            deadline = time.monotonic() + 10
            while not self.cancelled and time.monotonic() < deadline:
                time.sleep(0.005)
        return super().snapshot_state()

    def on_ask(self, question, msg):
        if isinstance(question, dict) and "sleep" in question:
            time.sleep(question["sleep"])
            return "slept"
        return "pong"

    def on_failure(self, exc, msg):
        pass


class FailsOnRestart(Counter):
    """Starts the first time; a later activation writes ``dir/starting``, waits for
    ``dir/go`` and then fails in on_start (the directory comes in secrets, kept in the
    state so every activation knows it)."""

    def on_start(self):
        if "dir" not in self.state:
            self.state["dir"] = self.secrets["dir"]
            self.state["count"] = 0
            return
        directory = self.state["dir"]
        open(os.path.join(directory, "starting"), "w").close()
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(directory, "go")) and time.monotonic() < deadline:
            time.sleep(0.005)
        raise RuntimeError("cannot restart")


class SlowSink(Actor):
    """Keeps what it is told (asked "got", answers the list); asked {"hold": dir}, stays
    in its handler (its message taken, not yet acked) until ``dir/go`` exists (at most
    30 s)."""

    def on_start(self):
        self.state.setdefault("got", [])

    def on_task(self, body, msg):
        self.state["got"].append(body)

    def on_ask(self, question, msg):
        if isinstance(question, dict) and "hold" in question:
            deadline = time.monotonic() + 30
            while not os.path.exists(os.path.join(question["hold"], "go")) and time.monotonic() < deadline:
                time.sleep(0.005)
            return "held"
        return self.state["got"]
