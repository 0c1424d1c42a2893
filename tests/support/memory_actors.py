"""Actor classes for tests/worker/test_worker_in_memory.py (a Worker on the memory backend)."""

from __future__ import annotations

from actors import Actor


class Raiser(Actor):
    """A task {"raise": text} raises ``RuntimeError(text)``; other tasks are counted
    in ``n``. ``on_failure`` records which message failed, and with what."""

    def on_task(self, body, msg):
        if isinstance(body, dict) and "raise" in body:
            raise RuntimeError(body["raise"])
        self.state["n"] = self.state.get("n", 0) + 1

    def on_ask(self, question, msg):
        return self.state.get("n", 0)

    def on_failure(self, exc, msg):
        self.state.setdefault("failures", []).append({"id": msg.id, "error": f"{type(exc).__name__}: {exc}"})
