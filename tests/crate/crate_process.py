"""A stand-in for a bamboo-subagent parent process: it knows only the crate's formats.

It imports nothing of this project. What it does is what the crate's code does
(fleet.rs, mailbox.rs, discovery.rs), with the crate's serde shapes written out by
hand:

1. make its own mailbox ``<home>/projects/<key>/sessions/<me>/mailbox/{new,cur,corrupt}``
   (the crate store's place for a root session) and publish its own record in the
   fabric (RFC 3339 times, string version);
2. start the worker command given on its command line with fixed arguments only,
   write one compact ``ProvisionSpec`` JSON document to its stdin and close it;
3. poll ``fabric_dir`` every 20 ms until ``<child>.json`` parses as an
   ``AgentRecord`` with a lease in the future;
4. deliver a task and an ask into ``sessions/<me>/children/<child>/mailbox/new``
   (pretty JSON, nine fraction digits, hidden temp file + rename, as the crate's
   ``atomic_write`` does), then drain its own ``new/`` (rename to ``cur/``, parse,
   ack) until the reply whose ``correlation_id`` is the ask's id arrives;
5. print one JSON line with what it saw, stop the worker (SIGTERM), withdraw.

Usage: crate_process.py <home> <project key> <me> <child> <question JSON> -- <worker command...>
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

REQUIRED_MESSAGE = {"id": str, "from": dict, "kind": str, "created_at": str}
CRATE_KINDS = {"task", "ask", "handoff", "reply", "mcp_request", "mcp_reply", "run", "event", "outcome",
               "steer", "approval_request", "approval_reply"}


def chrono(when: datetime) -> str:
    """chrono's serde form of a DateTime<Utc>: nine fraction digits here, and Z."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond * 1000 + 123:09d}Z"


def parse_chrono(text: str) -> datetime:
    """What chrono accepts for DateTime<Utc> (RFC 3339); raises on anything else."""
    head, _, frac = text.rstrip("Z").partition(".")
    if not text.endswith("Z") and "+" not in text:
        raise ValueError(f"not RFC 3339: {text!r}")
    stamp = datetime.strptime(head[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return stamp + timedelta(microseconds=int((frac.split("+")[0] or "0")[:6].ljust(6, "0")))


def atomic_write(path: str, data: bytes) -> None:
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.tmp.{uuid.uuid4()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(tmp, path)


def deliver(mailbox: str, msg: dict) -> None:
    created = parse_chrono(msg["created_at"])
    nanos = int((created - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds()) * 10**9 \
        + int(msg["created_at"].rstrip("Z").partition(".")[2].ljust(9, "0")[:9])
    atomic_write(os.path.join(mailbox, "new", f"{nanos:020d}-{msg['id']}.json"),
                 json.dumps(msg, indent=2).encode())


def read_msg(path: str) -> dict:
    """serde's strictness for InboxMessage: required fields, their types, a known kind,
    an RFC 3339 created_at, correlation_id a string if present."""
    with open(path, "rb") as handle:
        doc = json.loads(handle.read())
    for key, kind in REQUIRED_MESSAGE.items():
        if not isinstance(doc.get(key), kind):
            raise ValueError(f"{key} missing or of the wrong type")
    if doc["kind"] not in CRATE_KINDS or not isinstance(doc["from"].get("session_id"), str):
        raise ValueError("bad kind or from")
    parse_chrono(doc["created_at"])
    if doc.get("correlation_id") is not None and not isinstance(doc["correlation_id"], str):
        raise ValueError("bad correlation_id")
    return doc


def drain(mailbox: str) -> list[dict]:
    """mailbox.rs drain: sorted *.json names not starting with '.', new/ -> cur/."""
    out = []
    for name in sorted(n for n in os.listdir(os.path.join(mailbox, "new")) if not n.startswith(".") and n.endswith(".json")):
        src, dst = os.path.join(mailbox, "new", name), os.path.join(mailbox, "cur", name)
        try:
            os.rename(src, dst)
        except OSError:
            continue
        try:
            out.append(read_msg(dst))
        except (ValueError, KeyError):
            os.rename(dst, os.path.join(mailbox, "corrupt", name))
            continue
        os.unlink(dst)  # ack
    return out


def resolve(fabric: str, agent_id: str) -> dict | None:
    try:
        with open(os.path.join(fabric, f"{agent_id}.json"), "rb") as handle:
            record = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    for key, kind in (("agent_id", str), ("role", str), ("endpoint", str), ("pid", int),
                      ("started_at", str), ("lease_expires_at", str)):
        if not isinstance(record.get(key), kind):
            return None
    if not isinstance(record.get("version", ""), str):
        return None
    return record if parse_chrono(record["lease_expires_at"]) > datetime.now(timezone.utc) else None


def main() -> int:
    home, key, me, child, question = sys.argv[1:6]
    command = sys.argv[sys.argv.index("--") + 1:]
    project = os.path.join(home, "projects", key)
    fabric = os.path.join(project, "fabric")
    own = os.path.join(project, "sessions", me, "mailbox")
    for sub in ("new", "cur", "corrupt"):
        os.makedirs(os.path.join(own, sub), exist_ok=True)
    os.makedirs(fabric, exist_ok=True)
    now = datetime.now(timezone.utc)
    atomic_write(os.path.join(fabric, f"{me}.json"), json.dumps({
        "agent_id": me, "role": "orchestrator", "labels": [], "endpoint": "ws://127.0.0.1:9", "pid": os.getpid(),
        "version": "0.1.0", "started_at": chrono(now), "lease_expires_at": chrono(now + timedelta(seconds=60))},
        indent=2).encode())
    spec = {"version": 1, "identity": {"child_id": child, "parent_id": me, "project_key": key, "role": "", "depth": 1},
            "executor": {"kind": "echo"}, "fabric_dir": fabric, "limits": {"idle_timeout_secs": 300, "max_rounds": 4},
            "secrets": {"provider_credentials": [{"provider": "anthropic", "api_key": "sk-test"}]},
            "reusable": False, "placement": {"kind": "local"}, "capabilities": {"enforce_permissions": False}}
    worker = subprocess.Popen(command, stdin=subprocess.PIPE)
    assert worker.stdin is not None
    worker.stdin.write(json.dumps(spec, separators=(",", ":")).encode())
    worker.stdin.close()
    seen: dict = {"registered": False}
    try:
        deadline = time.monotonic() + 30
        record = None
        while record is None:
            record = resolve(fabric, child)
            if record is None:
                if worker.poll() is not None:
                    seen["exit"] = worker.returncode
                    return 1
                if time.monotonic() > deadline:
                    return 1
                time.sleep(0.02)
        seen["registered"] = True
        seen["record_version"] = record["version"]
        theirs = os.path.join(project, "sessions", me, "children", child, "mailbox")
        sender = {"session_id": me, "role": "orchestrator"}
        deliver(theirs, {"id": str(uuid.uuid4()), "from": sender, "kind": "task", "body": {"note": "hello"},
                         "created_at": chrono(datetime.now(timezone.utc))})
        ask_id = str(uuid.uuid4())
        deliver(theirs, {"id": ask_id, "from": sender, "kind": "ask",
                         "body": {"question": json.loads(question), "mode": "query"},
                         "created_at": chrono(datetime.now(timezone.utc))})
        deadline = time.monotonic() + 30
        while "reply" not in seen and time.monotonic() < deadline:
            for msg in drain(own):
                if msg["kind"] == "reply" and msg.get("correlation_id") == ask_id:
                    seen["reply"] = msg
            time.sleep(0.02)
        seen["corrupt"] = sorted(os.listdir(os.path.join(own, "corrupt")))
        print(json.dumps(seen), flush=True)
        return 0 if "reply" in seen else 1
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        try:
            os.unlink(os.path.join(fabric, f"{me}.json"))
        except FileNotFoundError:
            pass


if __name__ == "__main__":
    sys.exit(main())
