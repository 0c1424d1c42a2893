"""An actor that logs through the standard library, for the logging tests.

Its records go to the logger "chatty" at INFO (a task), WARNING (a task with "warn")
and, for a task with "fail", the handler raises ``ValueError`` after its INFO line.
"""

from __future__ import annotations

import logging

from actors import Actor

log = logging.getLogger("chatty")


class Chatty(Actor):
    def on_task(self, body, msg):
        log.info("handling %s", body.get("word"))
        if body.get("warn"):
            log.warning("careful with %s", body.get("word"))
        if body.get("fail"):
            raise ValueError(f"cannot take {body.get('word')!r}")

    def on_ask(self, question, msg):
        return "ok"
