"""Actor classes for tests/api/test_races.py (reproductions of races and crash windows)."""

from __future__ import annotations

import os
import signal
import time

from sample_actors import Counter

from actors import Actor


class AskThenRaiseOnce(Actor):
    """Asks its peer, then raises on the first attempt only (spawned with retries=1).

    The retry re-sends the ask with the same derived id; the peer drops it as a
    duplicate, so the retry can only succeed if the first reply is still available.
    """

    attempts = 0

    def on_ask(self, question, msg):
        answer = self.ask(question["peer"], 41, timeout=question.get("timeout", 3))
        type(self).attempts += 1
        if type(self).attempts == 1:
            raise RuntimeError("transient failure after the nested ask")
        return answer


class AskingBadState(Actor):
    """Tasks: {"ask": peer} stores peer's answer; {"bad": True} makes the state unencodable."""

    def on_start(self):
        self.state.setdefault("answers", [])
        self.state.setdefault("failures", 0)

    def on_task(self, body, msg):
        if "ask" in body:
            self.state["answers"].append(self.ask(body["ask"], 1, timeout=body.get("timeout", 3)))
        elif body.get("bad"):
            self.state["oops"] = {1, 2}

    def on_ask(self, question, msg):
        return {"answers": self.state["answers"], "failures": self.state["failures"]}

    def on_failure(self, exc, msg):
        self.state["failures"] += 1
        self.state.setdefault("errors", []).append(type(exc).__name__)


class SlowStart(Counter):
    """on_start sleeps secrets["sleep"] seconds (default 4)."""

    def on_start(self):
        time.sleep(self.secrets.get("sleep", 4.0))
        self.state.setdefault("count", 0)


class SlowRestart(Actor):
    """Starts at once the first time; every later activation sleeps 4 s in on_start
    (secrets are not recorded for reactivation, so the delay is keyed on the state)."""

    def on_start(self):
        if self.state.get("started"):
            time.sleep(4.0)
        self.state["started"] = True
        self.state.setdefault("count", 0)

    def on_task(self, body, msg):
        self.state["count"] += 1

    def on_ask(self, question, msg):
        return self.state["count"]


class SlowFailingStart(Actor):
    """on_start sleeps, then raises: every activation fails."""

    def on_start(self):
        time.sleep(0.7)
        raise RuntimeError("cannot start (slowly)")


class CrashRecoverStop(Actor):
    """Handles [M0, M] in one batch; M asks the peer, then the worker SIGKILLs itself
    right after its reply was claimed (before the commit). The next activation asks
    itself to stop while handling M0, so its recovered batch is cut short after M0.

    secrets: plan_dir.
    Tasks: {"n": k} (M0) | {"ask": peer} (M).
    """

    def on_start(self):
        self.state.setdefault("count", 0)
        self.state.setdefault("answers", [])
        self.state.setdefault("errors", [])
        plan = self.secrets["plan_dir"]
        self._recovering = (os.path.exists(os.path.join(plan, "killed"))
                            and not os.path.exists(os.path.join(plan, "stopped")))

    def on_task(self, body, msg):
        plan = self.secrets["plan_dir"]
        if "n" in body:
            self.state["count"] += body["n"]
            if self._recovering:  # a stop request lands while the recovered batch runs
                with open(os.path.join(plan, "stopped"), "w") as handle:
                    handle.write(str(os.getpid()))
                self._context._worker.request_stop("review: stop the recovering activation")
        elif "ask" in body:
            answer = self.ask(body["ask"], 1, timeout=body.get("timeout", 3))
            if not os.path.exists(os.path.join(plan, "killed")):
                with open(os.path.join(plan, "killed"), "w") as handle:
                    handle.write(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            self.state["answers"].append(answer)

    def on_ask(self, question, msg):
        return {"count": self.state["count"], "answers": self.state["answers"],
                "errors": self.state["errors"]}

    def on_failure(self, exc, msg):
        self.state["errors"].append(type(exc).__name__)


class CancelDuringScan(Actor):
    """Simulates a cancel landing while await_reply's shielded scan for replies runs."""

    def on_start(self):
        worker = self._context._worker
        outbox = worker.outbox
        original = outbox._take_replies

        def scan(correlation_id):
            found = original(correlation_id)
            if found is not None:
                worker.cancellation.request()  # inside the shield: raised as it ends
            return found

        outbox._take_replies = scan

    def on_ask(self, question, msg):
        if question == "pending":
            return self._context._worker.mailbox.pending_count()
        return self.ask(question["peer"], 1, timeout=5)

    def on_failure(self, exc, msg):
        pass


class Dier(Actor):
    """Exits abnormally on the ask "die"."""

    def on_ask(self, question, msg):
        if question == "die":
            os._exit(7)
        return os.getpid()
