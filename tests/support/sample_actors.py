"""Actor classes the tests spawn (a light module, so workers import it quickly)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from dataclasses_json import dataclass_json

from actors import Actor, ActorRef, receive


class Counter(Actor):
    def on_start(self):
        self.state.setdefault("count", 0)

    def on_task(self, body, msg):
        self.state["count"] += body.get("n", 1)

    def on_ask(self, question, msg):
        if question == "pid":
            return os.getpid()
        if question == "bump":  # a state change made while answering
            self.state["count"] += 1
        return self.state["count"]


class Echo(Actor):
    """Answers with what it was asked; remembers what it was told."""

    def on_task(self, body, msg):
        self.state.setdefault("told", []).append(body)

    def on_ask(self, question, msg):
        return question


class Ponger(Actor):
    def on_ask(self, question, msg):
        self.state["pongs"] = self.state.get("pongs", 0) + 1
        return question + 1


class Pinger(Actor):
    """Asks its peer ``rounds`` times from inside one handler (actor-to-actor ask)."""

    def on_ask(self, question, msg):
        peer, rounds = question["peer"], question["rounds"]
        value = 0
        for _ in range(rounds):
            value = self.ask(peer, value, timeout=10)
        return value


class Failing(Actor):
    def on_task(self, body, msg):
        self.state["seen"] = self.state.get("seen", 0) + 1

    def on_ask(self, question, msg):
        if question == "boom":
            raise ValueError("boom requested")
        return "fine"

    def on_failure(self, exc, msg):
        self.state["failures"] = self.state.get("failures", 0) + 1


class Sleeper(Actor):
    def on_ask(self, question, msg):
        if isinstance(question, dict) and "sleep" in question:
            time.sleep(question["sleep"])
            return "slept"
        if question == "spin":
            while True:
                pass
        return self.state.get("cancelled", 0)

    def on_failure(self, exc, msg):
        pass


@dataclass_json
@dataclass
class Deposit:
    amount: int


@dataclass_json
@dataclass
class Balance:
    pass


@dataclass_json
@dataclass
class Statement:
    balance: int
    owner: str


class Account(Actor):
    @receive
    def deposit(self, deposit: Deposit, msg):
        self.state["balance"] = self.state.get("balance", 0) + deposit.amount

    @receive
    def balance(self, query: Balance, msg) -> Statement:
        return Statement(balance=self.state.get("balance", 0), owner=self.name)


class Forwarder(Actor):
    """Told {"reply_to": ref, "value": v}: tells the ref {"n": v} (a ref travelled in a message)."""

    def on_task(self, body, msg):
        target = body["reply_to"]
        assert isinstance(target, ActorRef), type(target)
        if body.get("async"):  # inside an actor: a tell, durable before the Future is returned
            sent = target.tell_async({"n": body["value"]})
            self.state["async_done_at_once"] = sent.done() and isinstance(sent.result(), str)
        else:
            self.tell(target, {"n": body["value"]})

    def on_ask(self, question, msg):
        return self.ref


class HostUser(Actor):
    def on_ask(self, question, msg):
        return self.call_host(question["tool"], **question.get("kwargs", {}))


class Parent(Actor):
    def on_ask(self, question, msg):
        child = self.spawn(Counter, name=question["child"])
        self.tell(child, {"n": 5})  # held until this turn commits
        return self.ask(child, "count")  # a question leaves at once: it sees no tell yet


class Poison(Actor):
    """Dies (os._exit) on {"die": True}; counts everything else."""

    def on_start(self):
        self.state.setdefault("count", 0)

    def on_task(self, body, msg):
        if body.get("die"):
            os._exit(1)
        self.state["count"] += 1

    def on_ask(self, question, msg):
        if question == "die":
            os._exit(1)
        return self.state["count"]


class CrashOnStart(Actor):
    def on_start(self):
        raise RuntimeError("cannot start")


class BadState(Actor):
    """Puts a set (not JSON) into its state on {"bad": True}; counts everything else."""

    def on_start(self):
        self.state.setdefault("count", 0)

    def on_task(self, body, msg):
        if body.get("bad"):
            self.state["oops"] = {1, 2}
        self.state["count"] += 1

    def on_ask(self, question, msg):
        return self.state["count"]

    def on_failure(self, exc, msg):
        self.state["failures"] = self.state.get("failures", 0) + 1


class DiesOnAsk(Actor):
    def on_ask(self, question, msg):
        os._exit(3)


class ModulesLoaded(Actor):
    """Answers which of the named modules its worker has imported, and whether the
    fork server's codec warm-up ran (``server_warmup.WARMED``, None if not imported)."""

    def on_ask(self, question, msg):
        import sys

        warmup = sys.modules.get("actors_runtime.worker.server_warmup")
        return {"loaded": {name: name in sys.modules for name in question},
                "warmed": getattr(warmup, "WARMED", None)}
