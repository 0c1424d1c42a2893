"""Actors the observability tests watch: one that fails on request, one that blocks."""

from __future__ import annotations

import os
import time

from actors import Actor


class Flaky(Actor):
    """Counts its tells; a tell ``{"fail": true}`` raises instead (and changes nothing)."""

    def on_start(self):
        self.state.setdefault("seen", 0)

    def on_task(self, body, msg):
        if body.get("fail"):
            raise RuntimeError(f"asked to fail ({body.get('n')})")
        self.state["seen"] += 1
        if body.get("block_while"):  # a file: the handler waits while it exists
            while os.path.exists(body["block_while"]):
                time.sleep(0.01)

    def on_ask(self, question, msg):
        if question == "pid":
            return os.getpid()
        return self.state["seen"]
