"""Actors for the durable-turn tests: steps, atomic turns, the output gate, fan-out
asks and handler retries.

External effects are lines appended to files named in ``secrets`` (a "ledger"), so a
test counts how often an effect really happened, whatever the actor's state says.
A "die once" point SIGKILLs the worker the first time it is reached (a marker file
records it), so the restarted worker goes on.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import time

from actors import Actor


def append_line(path: str, record: object) -> int:
    """Append one JSON line to ``path``; returns how many lines it holds now."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
    with open(path) as handle:
        return sum(1 for _ in handle)


def die_once(marker: str) -> None:
    """SIGKILL this worker, unless ``marker`` says it was done before."""
    if os.path.exists(marker):
        return
    with open(marker, "w") as handle:
        handle.write(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)


def wait_for_file(path: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.01)


class Charger(Actor):
    """Charges through a step, then dies once right after the step returned."""

    def on_start(self):
        self.state.setdefault("receipts", [])

    def on_task(self, body, msg):
        def charge(amount):
            append_line(self.secrets["ledger"], {"amount": amount, "key": self.step_key})
            return {"receipt": f"r-{amount}", "key": self.step_key}

        receipt = self.step("charge", charge, body["amount"])
        die_once(self.secrets["marker"])
        self.state["receipts"].append(receipt)

    def on_ask(self, question, msg):
        return self.state["receipts"]


class Declined(Exception):
    """What the payment service says the first time."""


class ErrorRecorder(Actor):
    """A step that raises; the error is journaled, then the worker dies once."""

    def on_start(self):
        self.state.setdefault("declined", 0)

    def on_task(self, body, msg):
        def charge():
            append_line(self.secrets["ledger"], "called")
            raise Declined("card declined")

        try:
            self.step("charge", charge)
        except Declined:
            self.state["declined"] += 1
        die_once(self.secrets["marker"])

    def on_ask(self, question, msg):
        return self.state["declined"]


class Spender(Actor):
    """Changes its state and tells a peer, then raises when told to."""

    def on_start(self):
        self.state.setdefault("spent", 0)

    def on_task(self, body, msg):
        self.state["spent"] += body["amount"]
        self.tell(body["peer"], {"from": "spender", "note": body["note"]})
        if body.get("fail"):
            raise RuntimeError("the turn fails after its changes")
        if body.get("hold"):
            append_line(self.secrets["ledger"], "told")  # the tell above was made
            wait_for_file(body["hold"])

    def on_ask(self, question, msg):
        return self.state["spent"]


class Relay(Actor):
    """Tells a peer each task; dies once right after a commit, before the release."""

    def on_start(self):
        self.state.setdefault("relayed", 0)
        worker = self._context._worker  # the runtime object driving this actor
        original = worker.commit

        def commit(*args, **options):
            acked = original(*args, **options)
            if self.state["relayed"] >= 1:
                die_once(self.secrets["marker"])
            return acked

        worker.commit = commit

    def on_task(self, body, msg):
        self.state["relayed"] += 1
        self.tell(body["peer"], {"seq": body["seq"]})


class Rendezvous(Actor):
    """Answers "meet" only once every expected peer is in the room (a file each):
    asked one at a time, the first would wait for ever."""

    def on_start(self):
        self.state.setdefault("met", 0)

    def on_ask(self, question, msg):
        if question.get("count"):
            return self.state["met"]
        room, expected = question["room"], question["expected"]
        open(os.path.join(room, self.name), "w").close()
        deadline = time.monotonic() + 20
        while len(os.listdir(room)) < expected:
            if time.monotonic() > deadline:
                raise TimeoutError("the others never came")
            time.sleep(0.01)
        if question.get("fail"):
            raise ValueError(f"{self.name} refuses")
        self.state["met"] += 1
        return self.name


class Coordinator(Actor):
    """Fans a question out to several actors in one turn and gathers the answers."""

    def on_ask(self, question, msg):
        futures = [self.ask_async(name, {**question["q"], "fail": name in question.get("failing", [])},
                                  mode="steer", timeout=30) for name in question["peers"]]
        concurrent.futures.wait(futures, timeout=30)
        answers = []
        for future in futures:
            error = future.exception()
            answers.append(f"error: {type(error).__name__}" if error else future.result())
        if question.get("die_marker"):
            die_once(question["die_marker"])
        return answers


class Stubborn(Actor):
    """Fails its first ``fail`` attempts at each message (attempts counted in a file:
    the state is rolled back with each failed attempt), raising ``error``."""

    def on_start(self):
        self.state.setdefault("done", 0)

    def on_task(self, body, msg):
        self._attempt(body)

    def on_ask(self, question, msg):
        if question == "done":
            return self.state["done"]
        return self._attempt(question)

    def _attempt(self, body):
        attempts = append_line(self.secrets["ledger"], time.monotonic())
        if attempts <= body["fail"]:
            raise {"ValueError": ValueError, "TypeError": TypeError}[body.get("error", "ValueError")](
                f"attempt {attempts} failed")
        self.state["done"] += 1
        return attempts


class Listener(Actor):
    """Keeps what it is told, in order; asked anything, returns the list."""

    def on_task(self, body, msg):
        self.state.setdefault("told", []).append(body)

    def on_ask(self, question, msg):
        return self.state.get("told", [])


class StepRetrier(Actor):
    """Two steps per turn: "reserve" always works, "pay" fails its first call. With
    ``retries`` the turn runs again: "reserve" answers from the journal, "pay" runs."""

    def on_start(self):
        self.state.setdefault("paid", 0)

    def on_task(self, body, msg):
        if body.get("noop"):  # a message that succeeds, to share a batch with the next
            self.state["noops"] = self.state.get("noops", 0) + 1
            return
        ledger = self.secrets["ledger"]

        def reserve():
            append_line(ledger, "reserve")
            return "seat-1"

        def pay(seat):
            if append_line(ledger, "pay") == 2:  # the first "pay" is the second line
                raise ConnectionError("payment service unavailable")
            return f"paid {seat}"

        seat = self.step("reserve", reserve)
        self.state["receipt"] = self.step("pay", pay, seat)
        self.state["paid"] += 1

    def on_ask(self, question, msg):
        if question == "not json":
            try:
                self.step("odd", lambda: {1, 2})
            except TypeError as exc:
                return str(exc)
        return {"paid": self.state["paid"], "receipt": self.state.get("receipt")}
