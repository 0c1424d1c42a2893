"""Actors whose handlers kill their own worker on chosen messages (poison), for the
supervision tests."""

from __future__ import annotations

import os
import signal

from actors import Actor


class SelfKiller(Actor):
    """Dies on {"exit": ...} (``os._exit``), on {"kill": ...} (SIGKILL of itself) and
    on {"exit_unless": PATH} while no file PATH exists; counts every other task (and
    a cured "exit_unless"), and answers asks with the count (or its pid); an ask of
    {"exit": ...} kills it too."""

    def on_start(self):
        self.state.setdefault("count", 0)

    def on_task(self, body, msg):
        if "exit" in body:
            os._exit(1)
        if "kill" in body:
            os.kill(os.getpid(), signal.SIGKILL)
        if "exit_unless" in body and not os.path.exists(body["exit_unless"]):
            os._exit(1)
        self.state["count"] += 1

    def on_ask(self, question, msg):
        if isinstance(question, dict) and "exit" in question:
            os._exit(1)
        if question == "pid":
            return os.getpid()
        return self.state["count"]
