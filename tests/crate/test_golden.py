"""The crate's exact serde output (golden files in tests/crate/golden) is read by this
project, and what this project writes satisfies the crate's types."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import time
from pathlib import Path

import pytest
from actors_runtime.backends.maildir.fabric import MaildirFabric
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.backends.maildir.quarantine import STALE_TEMP_AGE
from actors_runtime.errors import InvalidSpec
from actors_runtime.messages import AgentRef, InboxKind, InboxMessage
from actors_runtime.records import AgentRecord, record_from_doc
from actors_runtime.spec import read_spec
from actors_runtime.stamps import parse_ns
from actors_runtime.worker.replies import unwrap_reply
from conftest import Clock

GOLDEN = Path(__file__).parent / "golden"
_spec = importlib.util.spec_from_file_location("crate_process", Path(__file__).parent / "crate_process.py")
assert _spec is not None and _spec.loader is not None
crate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(crate)


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def crate_reads_record(doc: dict) -> None:
    """serde's requirements for the crate's AgentRecord (extra fields are ignored)."""
    for key, kind in (("agent_id", str), ("role", str), ("endpoint", str), ("pid", int),
                      ("started_at", str), ("lease_expires_at", str)):
        assert isinstance(doc[key], kind), key
    assert isinstance(doc.get("labels", []), list) and isinstance(doc.get("version", ""), str)
    crate.parse_chrono(doc["started_at"]), crate.parse_chrono(doc["lease_expires_at"])


# -- messages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["inbox_task.json", "inbox_ask.json", "inbox_reply.json"])
def test_the_crates_messages_are_read(name):
    message = InboxMessage.from_wire(golden(name))
    doc = json.loads(golden(name))
    assert (message.id, message.kind, message.sender.session_id) == (doc["id"], doc["kind"], doc["from"]["session_id"])
    assert message.sender.system_id is None and message.correlation_id == doc.get("correlation_id")
    assert message.file_name().startswith(f"{parse_ns(doc['created_at']):020d}-")


def test_the_crates_reply_body_is_an_answer():
    assert unwrap_reply(InboxMessage.from_wire(golden("inbox_reply.json")), "child") == "found X"


def test_a_message_the_project_writes_is_one_the_crate_reads(tmp_path):
    message = InboxMessage.create(AgentRef("a", None, "sys"), InboxKind.ASK.value, {"question": "q", "mode": "query"},
                                  correlation_id=None)
    path = tmp_path / message.file_name()
    path.write_bytes(message.to_wire())
    doc = crate.read_msg(str(path))
    assert doc["id"] == message.id and doc["body"]["question"] == "q"


def test_a_crate_file_and_a_logged_message_merge_by_time_not_by_text(tmp_path):
    box = MaildirMailbox(tmp_path / "mailbox", durability="process")
    later = InboxMessage(id="b" * 8 + "-0000-4000-8000-" + "0" * 12, sender=AgentRef("p", None, "s"), kind="task",
                         body=2, created_at="2026-03-01T12:00:05.000001Z")
    box.deliver([later])  # to this process's segment log
    crate.deliver(str(tmp_path / "mailbox"), json.loads(golden("inbox_ask.json")))  # 12:00:05Z: earlier
    box.claim()
    assert [d.message.kind for d in box.drain()] == ["ask", "task"]
    box.close()


def test_a_crashed_crate_senders_temp_file_is_swept_once_stale(tmp_path):
    box = MaildirMailbox(tmp_path / "mailbox", durability="process")
    temp = tmp_path / "mailbox" / "new" / ".00000000000000000001-x.json.tmp.8c1f"
    temp.write_bytes(b"{")
    box.claim()
    box.recover()
    assert temp.exists()  # might be a sender still writing
    old = time.time() - STALE_TEMP_AGE - 1
    os.utime(temp, (old, old))
    assert box.recover() == [] and not temp.exists()
    box.close()


# -- fabric records ------------------------------------------------------------------------------


def test_the_crates_record_is_read_and_its_lease_respected(tmp_path):
    record = record_from_doc(json.loads(golden("agent_record.json")))
    assert (record.agent_id, record.role, record.pid, record.version) == ("rust-parent", "service", 4242, 0)
    assert record.lease_expires_at == parse_ns("2026-03-01T12:01:00Z") / 1e9
    clock = Clock(record.lease_expires_at - 1)
    fabric = MaildirFabric(tmp_path / "fabric", clock=clock)
    os.makedirs(fabric.root)
    (tmp_path / "fabric" / "rust-parent.json").write_bytes(golden("agent_record.json"))
    assert fabric.resolve("rust-parent") is not None
    assert fabric.gc() == [] and fabric.resolve("rust-parent") is not None  # live: never removed
    clock.advance(2)
    assert fabric.resolve("rust-parent") is None and fabric.gc() == ["rust-parent"]


def test_a_record_the_project_writes_is_one_the_crate_reads_and_old_ones_still_read(tmp_path):
    fabric = MaildirFabric(tmp_path / "fabric")
    fabric.publish(AgentRecord(agent_id="a1", role=None, endpoint="/x", pid=os.getpid(), started_at=time.time(),
                               system_id="sys", actor_class="m:C"))
    doc = json.loads((tmp_path / "fabric" / "a1.json").read_bytes())
    crate_reads_record(doc)
    assert crate.resolve(str(tmp_path / "fabric"), "a1") is not None  # live for the crate's reader too
    assert fabric.resolve("a1").system_id == "sys"
    old = {"agent_id": "a2", "role": None, "labels": [], "endpoint": "", "pid": 7, "version": 1,
           "started_at": time.time(), "lease_expires_at": time.time() + 60, "system_id": "s", "actor_class": "m:C"}
    (tmp_path / "fabric" / "a2.json").write_text(json.dumps(old))
    assert fabric.resolve("a2").pid == 7 and "a2" not in fabric.gc()


# -- the ProvisionSpec ---------------------------------------------------------------------------


def _spec_stream(home: Path, key: str, text: bytes | None = None) -> io.BytesIO:
    data = (text or golden("provision_spec.json")).replace(b"KEY", key.encode()).replace(
        b"FABRIC", str(home / "projects" / key / "fabric").encode())
    return data


def _read(tmp_path: Path, data: bytes, **kwargs):
    path = tmp_path / "spec.json"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        return read_spec(handle, timeout=5, **kwargs)


def test_the_crates_provision_spec_becomes_a_project_spec(tmp_path):
    spec = _read(tmp_path, _spec_stream(tmp_path / "home", "proj-0000abcd"), actor_class="sample_actors:Echo")
    ident = spec.identity
    assert (ident.child_id, ident.system_id, ident.project_key, ident.role, ident.depth) == (
        "c1", "p1", "proj-0000abcd", "researcher", 1)
    assert spec.home == str(tmp_path / "home") and spec.actor_class == "sample_actors:Echo"
    assert spec.limits.idle_timeout == 300
    assert spec.secrets == {"provider_credentials": [{"provider": "anthropic", "api_key": "sk-test"}]}


def test_a_pretty_printed_crate_spec_is_read_too(tmp_path):
    doc = json.loads(_spec_stream(tmp_path / "home", "proj-0000abcd"))
    spec = _read(tmp_path, json.dumps(doc, indent=2).encode(), actor_class="m:C")
    assert spec.identity.child_id == "c1"


@pytest.mark.parametrize("change, error", [
    (lambda d: d, "actor_class"),                                          # the crate cannot name a class
    (lambda d: {**d, "fabric_dir": "/elsewhere/fabric", "actor_class": "m:C"}, "fabric_dir"),
    (lambda d: {**d, "identity": {"child_id": "c1"}}, "parent_id"),
    (lambda d: {**d, "identity": {"child_id": "../x", "parent_id": "p"}}, "child_id"),
])
def test_a_crate_spec_that_cannot_run_here_is_refused_with_a_reason(tmp_path, change, error):
    doc = change(json.loads(_spec_stream(tmp_path / "home", "proj-0000abcd")))
    with pytest.raises(InvalidSpec, match=error):
        _read(tmp_path, json.dumps(doc).encode())
