"""A research agent whose model calls are journaled steps: SIGKILL it mid-turn and
every call it had made is made once, the one it was inside is billed once.

::

    parent                              researcher (worker)                 "LLM" (HTTP, in the parent)
    ------                              -------------------                 ---------------------------
    tell {question} ------------------> step "plan"   -> POST /complete --> request 1 (billed)
                                        step "search" -> POST /complete --> request 2 (billed)
                                        step "answer" -> POST /complete --> request 3: held ...
    SIGKILL the worker -----------X     (dies inside the step: nothing of the turn committed)
                                        supervisor restarts it; the turn runs again:
                                        "plan", "search": from the journal, no request
                                        step "answer" -> POST (same key) -> request 4: same
                                                                            Idempotency-Key,
                                                                            billed once
                                        remind "follow-up" in 1 s (committed with the turn)
    ... 1 s later the reminder fires -> step "follow-up" -> POST ----------> billed
    ask "report" (query)            <-- the answer, the follow-up, the step keys

A step's function runs at most once per turn, unless the process dies inside it (after
its effect, before its result is stored); then it runs again with the same
``self.step_key``, which the function passes on as an idempotency key so the
service does the work once. The model here is a stand-in that answers from its
prompt and counts requests and bills per key.

Run it with ``python examples/research_agent.py`` (``--home``). It exits non-zero
unless each step was billed exactly once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from actors import Actor, ActorError, ActorSystem

QUESTION = "what does a durable turn promise?"
#: Seconds the model holds the first "answer" request while the parent kills the worker.
HOLD_FOR = 20.0


class Researcher(Actor):
    """Plans, searches and answers with three model calls; follows up on a reminder."""

    def on_start(self):
        self.state.setdefault("reports", {})

    def on_task(self, body, msg):
        if msg.reminder is not None:
            self._follow_up(body["question"], msg.reminder.name)
            return
        question = body["question"]
        plan = self.step("plan", self._complete, f"plan research: {question}")
        notes = self.step("search", self._complete, f"search, following {plan}")
        answer = self.step("answer", self._complete, f"answer {question!r} from {notes}")
        self.state["reports"][question] = {"answer": answer, "follow_up": None}
        # Committed with this turn: a turn that died before its commit set nothing.
        self.remind("follow-up", 1.0, payload={"question": question})

    def _follow_up(self, question, reminder_name):
        text = self.step("follow-up", self._complete, f"anything new on {question!r}?")
        self.state["reports"][question]["follow_up"] = f"{reminder_name}: {text}"

    def _complete(self, prompt):
        """One model call. The step's key is stable across re-runs of the turn: the
        service uses it to do (and bill) the work once."""
        request = urllib.request.Request(
            self.secrets["llm"] + "/complete", data=json.dumps({"prompt": prompt}).encode(),
            headers={"Content-Type": "application/json", "Idempotency-Key": self.step_key}, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["text"]

    def on_ask(self, question, msg):
        return self.state["reports"]


class StandInModel:
    """A local stand-in for a model API: deterministic answers, requests counted,
    billing once per idempotency key. It holds the first "answer" request until told
    to let it go, so the parent can kill the worker waiting inside that step."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[str] = []  # idempotency keys, in arrival order
        self.billed: dict[str, str] = {}  # key -> the text it was billed for
        self.answer_arrived = threading.Event()
        self.let_go = threading.Event()
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the stdlib's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                text = model.complete(key, body["prompt"])
                payload = json.dumps({"text": text}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except OSError:
                    pass  # the caller was killed while waiting

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="stand-in-model", daemon=True)

    def complete(self, key: str, prompt: str) -> str:
        with self.lock:
            self.requests.append(key)
            first_answer = key.endswith("/answer/0") and not self.answer_arrived.is_set()
            if first_answer:
                self.answer_arrived.set()
        if first_answer:
            self.let_go.wait(HOLD_FOR)
        with self.lock:
            if key not in self.billed:
                self.billed[key] = "summary-" + hashlib.sha256(prompt.encode()).hexdigest()[:8]
            return self.billed[key]

    def __enter__(self) -> "StandInModel":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.let_go.set()
        self.server.shutdown()
        self.server.server_close()


def step_of(key: str) -> str:
    """The step name in a step key ``<actor>/<message id>/<name>/<n>``."""
    return key.split("/")[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", help="ACTORS_HOME to use (default: a temporary directory)")
    args = parser.parse_args(argv)
    home = args.home or tempfile.mkdtemp(prefix="research-agent-")
    project = os.path.join(home, "project")
    os.makedirs(project, exist_ok=True)
    with StandInModel() as model, ActorSystem(home=home, project=project) as system:
        name = f"researcher-{uuid.uuid4().hex[:6]}"
        agent = system.spawn(Researcher, name=name, secrets={"llm": model.url})
        first_pid = system.pid_of(agent)
        print(f"researcher {name} (pid {first_pid}); model at {model.url}")
        agent.tell({"question": QUESTION})
        if not model.answer_arrived.wait(60):
            print("check: FAILED (the agent never reached its answer step)")
            return 1
        print(f"model: 'answer' request arrived after {len(model.requests) - 1} others; "
              f"SIGKILL worker pid {first_pid} inside the step")
        os.kill(first_pid, signal.SIGKILL)
        model.let_go.set()
        deadline = time.monotonic() + 60
        report = {}
        while time.monotonic() < deadline:
            try:
                report = agent.ask("report", timeout=10).get(QUESTION) or {}
            except ActorError:
                report = {}
            if report.get("follow_up"):
                break
            time.sleep(0.05)
        info = next(i for i in system.children() if i.name == name)
        print(f"worker pid {first_pid} -> {system.pid_of(agent)}, restarts {info.restarts}")
        requests: dict[str, int] = {}
        for key in model.requests:
            requests[step_of(key)] = requests.get(step_of(key), 0) + 1
        billed = sorted(step_of(key) for key in model.billed)
        print("requests per step: " + ", ".join(f"{step} {n}" for step, n in requests.items()))
        print("billed: " + ", ".join(billed))
        print(f"answer: {report.get('answer')}")
        print(f"follow-up: {report.get('follow_up')}")
    expected_requests = {"plan": 1, "search": 1, "answer": 2, "follow-up": 1}
    ok = (requests == expected_requests and billed == sorted(expected_requests) and info.restarts == 1
          and bool(report.get("answer")) and str(report.get("follow_up", "")).startswith("follow-up: "))
    if ok:
        print("check: OK (plan and search made once, the interrupted answer billed once, one follow-up)")
        return 0
    print(f"check: FAILED (requests {requests}, billed {billed}, restarts {info.restarts}, report {report})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
