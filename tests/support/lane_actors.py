"""Actors for tests/parent/test_lanes.py (an ask whose reply the asking thread reads).

``Gated`` answers ``{"echo": x}`` with ``x``; ``{"hold": path, "go": path}`` makes
its first delivery create ``hold`` and wait until ``go`` exists before answering
"late" (a delivery that finds ``hold`` already there answers "again" at once);
``{"log": word}`` logs a warning to the logger "lanes" and answers ``word``.
"""

from __future__ import annotations

import logging
import os

from durable_turn_actors import wait_for_file

from actors import Actor

log = logging.getLogger("lanes")


class Gated(Actor):
    def on_ask(self, question, msg):
        if "echo" in question:
            return question["echo"]
        if "log" in question:
            log.warning("asked about %s", question["log"])
            return question["log"]
        if os.path.exists(question["hold"]):
            return "again"
        with open(question["hold"], "w"):
            pass
        wait_for_file(question["go"])
        return "late"


class Forker(Actor):
    """``{"fork": path}``: forks a process that keeps the worker's pipe open (as a
    process an actor starts does) until ``path`` exists, and answers its pid."""

    def on_ask(self, question, msg):
        if "fork" in question:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the forked process
                try:
                    wait_for_file(question["fork"])
                finally:
                    os._exit(0)
            return pid
        return question.get("echo")
