"""An orchestrator agent and its specialists: plan, hand off, steer, cancel.

::

    parent (operator)              orchestrator                 specialists (spawned by it)
    -----------------              ------------                 ---------------------------
    expose lookup, notify
    tell {goal} ---------------->  plan 4 steps, spawn -------> researcher, writer,
                                   assign tasks                 reviewer, linkcheck
                                                                researcher --call_host("lookup")--> parent
                                                                researcher --handoff notes--> writer
                                                                writer --handoff draft--> reviewer
                                   <-- reports (refs travel in the tasks) --
    ask "status"      (query)  -> orchestrator, writer          linkcheck: stuck on a URL
    ask {replan}      (query)  -> writer: a what-if, discarded
    ask {replan}      (steer)  -> writer: new plan, draft v2 --handoff--> reviewer
    ask "status" times out     -> linkcheck is busy; cancel it; it keeps serving
                                   re-assigns the link check, skipping the stuck URL
    wait for "done"; ask "summary"

The agent logic is deterministic (no network, no model) but shaped like real agent
code: a plan of steps, tools called through the parent (which holds the "API key"),
results reported back. Agents post transcript lines through the ``notify`` host tool,
so all output comes from this process.

Run it with ``python examples/agents.py`` (``--home`` to keep the state afterwards).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import threading
import time

from actors import Actor, ActorError, ActorSystem, AskTimeout, Cancelled

GOAL = "Write the release note for durable-actors 0.1"
TOPICS = ["mailbox", "exactly-once", "supervision", "ask-modes"]
URLS = ["https://docs.example.org/guide", "https://slow-mirror.example.org/archive",
        "https://docs.example.org/cli"]
#: The simulated web: which URLs answer. The mirror never does.
WEB = {"https://docs.example.org/guide": 200, "https://docs.example.org/cli": 200}
#: What the parent's knowledge base knows (the lookup tool; agents never see it directly).
KNOWLEDGE = {
    "mailbox": "every message is a file in the actor's Maildir, durable before tell() returns",
    "exactly-once": "state and the ids of applied messages are committed together, so a "
                    "redelivered message is dropped",
    "supervision": "a crashed worker is restarted with backoff; too many restarts mark it failed",
    "ask-modes": "a query answers from the state and discards changes; a steer is a real turn",
}


def _log(agent: Actor, event: str, text: str) -> None:
    """Post a transcript line (and an event the operator can wait for) to the parent."""
    agent.call_host("notify", agent=agent.name, event=event, text=text)


class Orchestrator(Actor):
    """Plans the job, spawns specialists, assigns steps, tracks their reports."""

    STEPS = [("research", "researcher"), ("draft", "writer"), ("review", "reviewer"), ("links", "linkcheck")]

    def on_task(self, body, msg):
        if "goal" in body:
            self._start(body)
        elif "report" in body:
            self._on_report(body)

    def _start(self, body):
        self.state.clear()
        self.state.update(goal=body["goal"], done=False, reports=0,
                          steps={step: {"agent": agent, "status": "pending"} for step, agent in self.STEPS})
        plan = "; ".join(f"{i}. {step} -> {agent}" for i, (step, agent) in enumerate(self.STEPS, 1))
        _log(self, "plan", f"goal {body['goal']!r}; plan: {plan}")
        kinds = {"researcher": Researcher, "writer": Writer, "reviewer": Reviewer, "linkcheck": LinkChecker}
        for name, cls in kinds.items():
            self.spawn(cls, name=name, role="specialist")
        _log(self, "spawned", f"spawned {', '.join(kinds)} (each its own process)")
        # Refs travel inside messages: each specialist learns where to report.
        self.tell("writer", {"task": "plan", "audience": "developers",
                             "sections": ["What it is", "Guarantees", "Getting started"]})
        self.tell("researcher", {"task": "research", "topics": body["topics"], "handoff_to": "writer",
                                 "review_by": "reviewer", "report_to": self.ref})
        self.tell("linkcheck", {"task": "check_links", "urls": body["urls"], "skip": [],
                                "report_to": self.ref})
        for step in self.state["steps"].values():
            step["status"] = "assigned"

    def _on_report(self, body):
        steps = self.state["steps"]
        step = steps[body["report"]]
        self.state["reports"] += 1
        if body["report"] == "links" and body.get("status") == "cancelled":
            # The link checker was cancelled while stuck: re-assign without that URL.
            step.update(status="reassigned", note=f"skipping {body['stuck_on']}")
            _log(self, "reassign", f"link check was cancelled on {body['stuck_on']}; re-assigning without it")
            self.tell("linkcheck", {"task": "check_links", "urls": body["urls"], "skip": [body["stuck_on"]],
                                    "report_to": self.ref})
            return
        step.update(status="done", result=body["result"])
        if "version" in body:
            step["version"] = body["version"]
        if body["report"] == "draft" and steps["review"].get("version") != body["version"]:
            steps["review"]["status"] = "assigned"  # a new draft needs a new review
        reviewed = steps["review"].get("version") == steps["draft"].get("version")
        if not self.state["done"] and reviewed and all(s["status"] == "done" for s in steps.values()):
            self.state["done"] = True
            _log(self, "done", f"all {len(steps)} steps done after {self.state['reports']} reports")

    def on_ask(self, question, msg):
        if question == "status":
            return {"done": self.state.get("done"),
                    "steps": {k: v["status"] + (f" (v{v['version']})" if "version" in v else "")
                              for k, v in self.state.get("steps", {}).items()}}
        if question == "summary":
            return self.state
        raise ValueError(f"unknown question {question!r}")


class Researcher(Actor):
    """Looks topics up with the parent's tool, then hands the notes to the writer."""

    def on_task(self, body, msg):
        notes = []
        for topic in body["topics"]:
            found = self.call_host("lookup", topic=topic, agent=self.name)
            notes.append({"topic": topic, "fact": found["fact"], "source": found["source"]})
            _log(self, "lookup", f"lookup({topic!r}) -> {found['source']} (ran in the parent, pid {found['pid']})")
        self.state["notes"] = notes
        self.tell(body["report_to"], {"report": "research", "result": f"{len(notes)} notes"})
        _log(self, "handoff", f"handing {len(notes)} notes off to {body['handoff_to']}")
        self.handoff(body["handoff_to"], {"notes": notes, "review_by": body["review_by"],
                                          "report_to": body["report_to"]})


class Writer(Actor):
    """Keeps a plan (audience, sections) and drafts from the notes it is handed."""

    def on_task(self, body, msg):
        self.state.update(plan={"audience": body["audience"], "sections": body["sections"]},
                          version=0, draft=None)

    def on_handoff(self, body, msg):
        # self.state must stay JSON data: keep the ref's name (an id of this system).
        self.state.update(notes=body["notes"], review_by=body["review_by"], report_to=body["report_to"].name)
        _log(self, "notes", f"received {len(body['notes'])} notes from {self.sender.name}")
        self._draft_and_submit()

    def _draft(self):
        plan, notes = self.state["plan"], self.state["notes"]
        self.state["version"] += 1
        sections = {}
        for i, title in enumerate(plan["sections"]):
            facts = [n["fact"] for n in notes[i::len(plan["sections"])]] or ["see the guide"]
            sections[title] = f"For {plan['audience']}: " + "; ".join(facts) + "."
        self.state["draft"] = sections
        return sections

    def _draft_and_submit(self):
        sections = self._draft()
        version = self.state["version"]
        self.tell(self.state["report_to"], {"report": "draft", "version": version,
                                            "result": f"{len(sections)} sections"})
        _log(self, "draft", f"draft v{version} for {self.state['plan']['audience']} "
                            f"({len(sections)} sections), handing it to {self.state['review_by']}")
        self.handoff(self.state["review_by"], {"draft": sections, "version": version,
                                               "audience": self.state["plan"]["audience"],
                                               "report_to": self.state["report_to"]})

    def on_ask(self, question, msg):
        if question == "status":
            return {"plan": self.state.get("plan"), "version": self.state.get("version")}
        if question == "draft":
            return self.state.get("draft")
        if isinstance(question, dict) and "replan" in question:
            # Changes the plan and re-drafts. Asked in "query" mode this is a what-if:
            # the runtime discards the state changes after answering. Asked in "steer"
            # mode it is a real turn, and with resubmit the new draft goes for review.
            change = question["replan"]
            plan = self.state["plan"]
            plan["audience"] = change.get("audience", plan["audience"])
            if change.get("add_section"):
                plan["sections"].append(change["add_section"])
            if question.get("resubmit"):
                self._draft_and_submit()
            else:
                self._draft()
            return {"plan": plan, "version": self.state["version"],
                    "first_section": next(iter(self.state["draft"].values()))}
        raise ValueError(f"unknown question {question!r}")


class Reviewer(Actor):
    """Checks each draft handed to it and reports a verdict."""

    def on_handoff(self, body, msg):
        draft, version = body["draft"], body["version"]
        problems = [title for title, text in draft.items() if body["audience"] not in text]
        verdict = "approved" if not problems else f"changes requested: {', '.join(problems)}"
        self.state.setdefault("reviews", []).append({"version": version, "verdict": verdict})
        # Report first, then post the event: once the operator sees the event, the
        # report is already waiting in the orchestrator's mailbox.
        self.tell(body["report_to"], {"report": "review", "version": version, "result": verdict})
        _log(self, f"reviewed-v{version}", f"v{version} handed over by {self.sender.name}: {verdict}")


class LinkChecker(Actor):
    """Fetches each URL; one server never answers, so this handler gets stuck."""

    def on_task(self, body, msg):
        results = self.state["results"] = {}
        for url in body["urls"]:
            if url in body["skip"]:
                results[url] = "skipped"
                continue
            if url not in WEB:
                try:
                    _log(self, "stuck", f"fetching {url} ... no answer")
                    while True:  # a fetch with no timeout, as real code too often has
                        time.sleep(0.05)
                except Cancelled:
                    # A turn that raises (a cancel too) changes nothing and sends
                    # nothing: to keep a note of the cancel and tell the orchestrator,
                    # this turn ends normally instead.
                    self.state["cancelled"] = self.state.get("cancelled", 0) + 1
                    results[url] = "cancelled"
                    self.tell(body["report_to"], {"report": "links", "status": "cancelled",
                                                  "stuck_on": url, "urls": body["urls"]})
                    return
            results[url] = WEB[url]
        checked = {u: results[u] for u in body["urls"]}
        _log(self, "links", f"checked {len(checked)} links: {checked}")
        self.tell(body["report_to"], {"report": "links", "result": checked})

    def on_ask(self, question, msg):
        return {"results": self.state.get("results", {}), "cancelled": self.state.get("cancelled", 0),
                "pid": os.getpid()}


class Operator:
    """The parent's side: host tools, the transcript, and events to wait for."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        # A real lookup would send this with each request; it never leaves this process.
        self._api_key = "kb-secret-held-by-the-parent"

    def _event(self, key: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(key, threading.Event())

    def say(self, who: str, text: str) -> None:
        with self._lock:
            print(f"  {who:>12} | {text}", flush=True)

    def lookup(self, topic: str, agent: str) -> dict:
        """Host tool: the knowledge base; only the parent holds its key."""
        with self._lock:
            self.calls["lookup"] += 1
        return {"fact": KNOWLEDGE[topic], "source": f"kb://release-notes/{topic}", "pid": os.getpid()}

    def notify(self, agent: str, event: str, text: str) -> None:
        """Host tool: an agent posts a transcript line and an event."""
        with self._lock:
            self.calls["notify"] += 1
        self.say(agent, text)
        self._event(f"{agent}:{event}").set()

    def wait(self, *keys: str) -> None:
        deadline = time.monotonic() + self.timeout
        for key in keys:
            if not self._event(key).wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"no {key!r} event within {self.timeout} s")


def run(home: str, timeout: float) -> int:
    op = Operator(timeout)
    print(f"ACTORS_HOME = {home}; operator (parent) pid {os.getpid()}")
    with ActorSystem(home=home, project=".") as system:
        system.expose("lookup", op.lookup)
        system.expose("notify", op.notify)
        orchestrator = system.spawn(Orchestrator, name="orchestrator", role="orchestrator")
        op.say("operator", f"spawned orchestrator (pid {system.pid_of(orchestrator)}); goal: {GOAL!r}")
        orchestrator.tell({"goal": GOAL, "topics": TOPICS, "urls": URLS})

        op.wait("reviewer:reviewed-v1", "linkcheck:stuck")
        status = orchestrator.ask("status", mode="query", timeout=timeout)
        op.say("operator", f"status (query) mid-run: {status['steps']}, done={status['done']}")
        writer, linkcheck = system.ref("writer"), system.ref("linkcheck")
        op.say("operator", f"writer status (query): {writer.ask('status', timeout=timeout)}")

        preview = writer.ask({"replan": {"audience": "executives"}}, mode="query", timeout=timeout)
        op.say("operator", f"what-if (query) for executives: v{preview['version']} would open "
                           f"{preview['first_section'][:48]!r}...")
        after = writer.ask("status", timeout=timeout)
        op.say("operator", f"writer after the query: audience {after['plan']['audience']!r}, "
                           f"v{after['version']} (query changes discarded)")

        steered = writer.ask({"replan": {"audience": "operators", "add_section": "Upgrading"},
                              "resubmit": True}, mode="steer", timeout=timeout)
        op.say("operator", f"steer: writer now targets {steered['plan']['audience']!r} with sections "
                           f"{steered['plan']['sections']}, draft v{steered['version']} (kept)")

        try:
            linkcheck.ask("status", timeout=0.5)
            op.say("operator", "linkcheck answered; it was not stuck")
        except AskTimeout:
            op.say("operator", "linkcheck did not answer within 0.5 s: its handler is stuck; cancelling it")
        linkcheck.cancel()
        answer = linkcheck.ask("status", timeout=timeout)
        op.say("operator", f"linkcheck after cancel (same pid {answer['pid']}) keeps serving: handlers "
                           f"cancelled so far {answer['cancelled']}, results {answer['results']}")

        op.wait("orchestrator:done")
        summary = orchestrator.ask("summary", mode="query", timeout=timeout)
        plan = writer.ask("status", timeout=timeout)["plan"]
        text = writer.ask("draft", timeout=timeout)
        children = system.children()

    review = summary["steps"]["review"]
    print(f"\nrelease note v{review['version']} for {plan['audience']} "
          f"(review: {review['result']}):")
    for title, body in text.items():
        print(f"  ## {title}\n     {body}")
    print("\nsummary:")
    for step, info in summary["steps"].items():
        version = f" (v{info['version']})" if "version" in info else ""
        print(f"  {step:<9} {info['agent']:<11} {info['status']:<6} {info.get('result')}{version}")
    print(f"  host tool calls served by the parent: {dict(op.calls)}")
    print("  agents:")
    for child in children:
        print(f"    {child.name:<12} pid={child.pid!s:<7} role={child.role:<12} "
              f"parent={str(child.parent_id):<12} restarts={child.restarts}")
    ok = (summary["done"] and review["version"] == 2 and review["result"] == "approved"
          and plan["audience"] == "operators" and list(text) == plan["sections"]
          and summary["steps"]["links"]["result"].get(URLS[1]) == "skipped")
    print("check: OK" if ok else "check: FAILED")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", help="ACTORS_HOME to use (default: a temporary directory)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before giving up")
    args = parser.parse_args(argv)
    try:
        if args.home:
            return run(os.path.abspath(args.home), args.timeout)
        with tempfile.TemporaryDirectory(prefix="actors-agents-") as home:
            return run(home, args.timeout)
    except (ActorError, TimeoutError) as exc:  # AskTimeout is both
        print(f"check: FAILED ({type(exc).__name__}: {exc})")
        return 1


if __name__ == "__main__":
    sys.exit(main())
