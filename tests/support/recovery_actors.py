"""Actors for tests/test_worker_mailbox.py (imported by name inside worker processes)."""

from __future__ import annotations

from actors_runtime.address import Address

from actors import Actor


class StopCounter(Actor):
    """Counts its tasks, and its stops in ``on_stop``; a query answers the stops."""

    def on_start(self):
        self.state.setdefault("stops", 0)

    def on_task(self, body, msg):
        self.state["tasks"] = self.state.get("tasks", 0) + 1

    def on_ask(self, question, msg):
        return self.state["stops"]

    def on_stop(self):
        self.state["stops"] += 1


class PeerAsker(Actor):
    """A task {"ask": true} asks the actor "peer" of its system and keeps the answer;
    other tasks are counted. A query "peer?" asks the peer and returns its answer."""

    def _ask_peer(self, timeout):
        me = self._context.address
        return self._context.ask(Address(me.home, me.project_key, me.system_id, "peer"), "question",
                                 timeout=timeout)

    def on_task(self, body, msg):
        if isinstance(body, dict) and body.get("ask"):
            self.state["answer"] = self._ask_peer(body.get("timeout", 10))
        else:
            self.state["n"] = self.state.get("n", 0) + 1

    def on_ask(self, question, msg):
        return self._ask_peer(10) if question == "peer?" else self.state.get("n", 0)
