"""A project system and processes that speak only the crate's formats: a crate reader
drains a ``mailbox="maildir"`` actor's mailbox, a crate asker gets its reply where the
crate expects it (or the reply is dead-lettered with why), and the crate's MCP
manifest request is answered."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime, timedelta, timezone

import sample_actors
from conftest import mailbox_dir, wait_until

from actors import Actor

from .test_golden import crate


def _crate_mailbox(root: str) -> str:
    for sub in ("new", "cur", "corrupt"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    return root


def _publish(fabric: str, agent_id: str, endpoint: str) -> None:
    now = datetime.now(timezone.utc)
    os.makedirs(fabric, exist_ok=True)
    crate.atomic_write(os.path.join(fabric, f"{agent_id}.json"), json.dumps({
        "agent_id": agent_id, "role": "orchestrator", "labels": [], "endpoint": endpoint, "pid": os.getpid(),
        "version": "0.1.0", "started_at": crate.chrono(now),
        "lease_expires_at": crate.chrono(now + timedelta(seconds=60))}).encode())


def _ask(target_mailbox: str, sender: str, question: object) -> str:
    ask_id = str(uuid.uuid4())
    crate.deliver(target_mailbox, {"id": ask_id, "from": {"session_id": sender}, "kind": "ask",
                                   "body": {"question": question, "mode": "query"},
                                   "created_at": crate.chrono(datetime.now(timezone.utc))})
    return ask_id


def test_a_crate_reader_drains_a_maildir_format_actors_mailbox(system):
    ref = system.spawn(sample_actors.Echo, "echo", mailbox="maildir")
    system.stop(ref)
    system.tell(ref, {"n": 1})
    system.tell(ref, {"n": 2})
    root = mailbox_dir(ref.address)
    assert not any(n.endswith(".seg") for n in os.listdir(os.path.join(root, "log")))
    drained = crate.drain(root)  # the crate's reader: new/ -> cur/, serde's checks, ack
    assert [m["kind"] for m in drained] == ["task", "task"] and os.listdir(os.path.join(root, "corrupt")) == []


def test_a_maildir_format_actor_handles_its_files(system):
    ref = system.spawn(sample_actors.Counter, "counter", mailbox="maildir")
    for _ in range(3):
        system.tell(ref, {"n": 2})
    assert system.ask(ref, "count", timeout=20) == 6


def test_a_crate_asker_gets_its_reply_in_its_own_mailbox_found_through_its_record(system):
    ref = system.spawn(sample_actors.Echo, "echo")
    layout_sessions = os.path.join(ref.address.home, "projects", ref.address.project_key, "sessions")
    own = _crate_mailbox(os.path.join(layout_sessions, "rust-parent", "children", "rust-child", "mailbox"))
    _publish(os.path.join(ref.address.home, "projects", ref.address.project_key, "fabric"), "rust-child", own)
    ask_id = _ask(mailbox_dir(ref.address), "rust-child", [1, "two"])
    replies = wait_until(lambda: crate.drain(own), timeout=20)
    assert replies[0]["correlation_id"] == ask_id and replies[0]["body"] == {"answer": '[1,"two"]'}


def test_a_reply_to_an_asker_that_cannot_be_found_is_dead_lettered_with_why(system):
    ref = system.spawn(sample_actors.Echo, "echo")
    _ask(mailbox_dir(ref.address), "ghost", "anyone?")
    letters = wait_until(lambda: system.dead_letters(ref), timeout=20)
    assert letters[0].message.kind == "reply" and "ghost" in letters[0].reason
    assert "no live fabric record" in letters[0].reason


class ToolLister(Actor):
    def on_ask(self, question, msg):
        return self.host_tools()


def lookup(topic: str, depth: int = 1) -> str:
    """Look a topic up."""
    return f"{topic}:{depth}"


def test_an_actor_lists_its_parents_tools(system):
    system.expose("lookup", lookup)
    ref = system.spawn(ToolLister, "lister")
    assert system.ask(ref, "tools", timeout=20) == [
        {"name": "lookup", "signature": "lookup(topic: str, depth: int = 1) -> str", "doc": "Look a topic up."}]


def test_a_crate_worker_fetches_the_manifest_and_calls_a_tool(system):
    system.expose("lookup", lookup)
    sessions = os.path.join(system.address.home, "projects", system.address.project_key, "sessions")
    own = _crate_mailbox(os.path.join(sessions, "rust-worker", "mailbox"))
    _publish(os.path.join(sessions, "..", "fabric"), "rust-worker", "ws://127.0.0.1:9")
    inbox = mailbox_dir(system.address)
    for body in ({"op": "manifest"}, {"op": "call", "tool": "lookup", "arguments": '{"topic": "x"}'}):
        crate.deliver(inbox, {"id": str(uuid.uuid4()), "from": {"session_id": "rust-worker"}, "kind": "mcp_request",
                              "body": body, "created_at": crate.chrono(datetime.now(timezone.utc))})
        time.sleep(0.002)  # distinct names, in order
    got: list = []
    wait_until(lambda: got.extend(crate.drain(own)) or len(got) >= 2, timeout=20)
    bodies = sorted((m["body"] for m in got), key=lambda b: "result" in b)
    schema = bodies[0]["manifest"][0]
    assert schema["type"] == "function" and schema["function"]["name"] == "lookup"
    assert schema["function"]["parameters"]["required"] == ["topic"]
    assert bodies[1] == {"result": {"success": True, "result": "x:1"}}
