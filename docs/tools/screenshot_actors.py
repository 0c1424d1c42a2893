"""Actors of the fleet that ``dashboard_screenshot.py`` photographs."""

from __future__ import annotations

import os
import time

from actors import Actor


class Orders(Actor):
    """Counts orders; an order without an amount raises."""

    def on_task(self, body, msg):
        if "amount" not in body:
            raise KeyError("amount")
        self.state["total"] = self.state.get("total", 0) + body["amount"]

    def on_ask(self, question, msg):
        return self.state.get("total", 0)


class Mailer(Actor):
    """Sends slowly: waits while a gate file exists (so its mailbox fills up)."""

    def on_task(self, body, msg):
        while os.path.exists(body.get("gate", "")):
            time.sleep(0.05)
