"""Actors for the timer tests (tests/api/test_timers.py).

``Ticker`` records every tick it handles in ``state["ticks"]`` as
``[name, due unix seconds, coalesced, message id]`` and every plain tell in
``state["told"]``; asks drive it: {"remind": {...}} sets a reminder, {"forget": name}
forgets one, "ticks" / "told" / "reminders" read back.
"""

from __future__ import annotations

import os
import signal
from datetime import datetime

from crash_actors import Killable

from actors import Actor


class Ticker(Actor):
    def on_start(self):
        self.state.setdefault("ticks", [])
        self.state.setdefault("told", [])

    def on_task(self, body, msg):
        tick = msg.reminder
        if tick is None:
            self.state["told"].append(body)
            return
        self.state["ticks"].append([tick.name, tick.due.timestamp(), tick.coalesced, msg.id, body])
        if isinstance(body, dict) and body.get("then_forget"):
            self.forget(tick.name)
        if isinstance(body, dict) and body.get("then_raise"):
            raise RuntimeError("the tick's handler raised")

    def on_ask(self, question, msg):
        if isinstance(question, dict) and "remind" in question:
            spec = dict(question["remind"])
            if "at" in spec:
                spec["due"] = datetime.fromisoformat(spec.pop("at"))
            self.remind(spec.pop("name"), spec.pop("due"), **spec)
            return "set"
        if isinstance(question, dict) and "forget" in question:
            forgot = self.forget(question["forget"])
            if question.get("then_raise"):
                raise RuntimeError("raised after forget")
            return forgot
        if isinstance(question, dict) and "tell_self" in question:
            self.tell(self.ref, question["tell_self"], delay=question["delay"])
            return "sent"
        if question == "reminders":
            return [[r.name, r.due.timestamp(), r.period, r.payload] for r in self.reminders()]
        if question == "pid":
            return os.getpid()
        return self.state[question]

    def on_failure(self, exc, msg):
        pass


class KilledAfterTick(Killable):
    """A Killable that also takes reminder ticks: a tick adds its payload's "n" to the
    count and appends its due time to ``seqs``; the kill plan's "commit"/"handle"
    points apply to ticks as to tells. Asked {"remind": ...} it sets a reminder."""

    def on_task(self, body, msg):
        if msg.reminder is not None:
            body = {"n": body["n"], "seq": [msg.reminder.name, msg.reminder.due.timestamp(), msg.id]}
        super().on_task(body, msg)

    def on_ask(self, question, msg):
        if isinstance(question, dict) and "remind" in question:
            spec = dict(question["remind"])
            self.remind(spec.pop("name"), spec.pop("due"), **spec)
            return "set"
        return super().on_ask(question, msg)


def die_now():
    os.kill(os.getpid(), signal.SIGKILL)
