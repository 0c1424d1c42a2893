"""Actors for the hosts-and-placement tests (tests/redis_backend/test_hosts.py)."""

from __future__ import annotations

import os
import time

from actors import Actor


class Counter(Actor):
    """Counts tasks; asked, says its count and which host (``ACTORS_HOST_ID``) runs it."""

    def on_start(self):
        self.state.setdefault("count", 0)

    def on_task(self, body, msg):
        """``{"hold": PATH}``: writes ``PATH.held`` and waits while ``PATH`` exists."""
        hold = body.get("hold") if isinstance(body, dict) else None
        if hold:
            open(hold + ".held", "w").close()
            while os.path.exists(hold):
                time.sleep(0.01)
        self.state["count"] += 1

    def on_ask(self, question, msg):
        return {"count": self.state["count"], "host": os.environ.get("ACTORS_HOST_ID", ""), "pid": os.getpid()}


class FailsOnStart(Actor):
    """Its on_start always raises."""

    def on_start(self):
        raise RuntimeError("no start today")
