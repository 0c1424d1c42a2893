"""Actors for the fleet-management tests (supervision, poison, limits)."""

from __future__ import annotations

import os

from actors import Actor


class DiesOnStartWhenFlagged(Actor):
    """Starts normally until the file ``secrets["flag"]`` exists, then dies in on_start."""

    def on_start(self):
        if os.path.exists(self.secrets["flag"]):
            os._exit(1)

    def on_ask(self, question, msg):
        return os.getpid()


class Poison(Actor):
    """Dies on {"die": True} unless the file ``secrets["cure"]`` exists; counts the rest."""

    def on_start(self):
        self.state.setdefault("count", 0)
        self.state.setdefault("cured", 0)

    def on_task(self, body, msg):
        if body.get("die"):
            if not os.path.exists(self.secrets["cure"]):
                os._exit(1)
            self.state["cured"] += 1
            return
        self.state["count"] += 1

    def on_ask(self, question, msg):
        if question == "die" and not os.path.exists(self.secrets["cure"]):
            os._exit(1)
        return {"count": self.state["count"], "cured": self.state["cured"]}


class Flaky(Actor):
    """Raises on every ask, counting attempts in its state."""

    def on_ask(self, question, msg):
        self.state["attempts"] = self.state.get("attempts", 0) + 1
        if question == "count":
            return self.state["attempts"]
        raise RuntimeError(f"attempt {self.state['attempts']} failed")


class Nester(Actor):
    """Asked n: spawns a child Nester and asks it n - 1; answers its own depth at 0."""

    def on_ask(self, question, msg):
        if question == 0:
            return self._context.spec.identity.depth
        child = self.spawn(Nester, name=f"{self.name}-n")
        return child.ask(question - 1, timeout=60)
