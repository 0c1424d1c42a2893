"""The maildir fabric: leased records, moved through time with a fake clock (no sleeping)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from actors_runtime.backends.maildir.fabric import DEFAULT_LEASE, MaildirFabric
from actors_runtime.records import AgentRecord
from conftest import Clock  # the ``clock`` fixture's: moved by hand


@pytest.fixture
def fabric(tmp_path: Path, clock: Clock) -> MaildirFabric:
    return MaildirFabric(tmp_path / "fabric", clock=clock)


def record(agent_id: str, role: str | None = None, labels: tuple[str, ...] = (), pid: int = 4242) -> AgentRecord:
    return AgentRecord(agent_id=agent_id, role=role, labels=list(labels), endpoint=f"/mbox/{agent_id}",
                       pid=pid, started_at=5.0, system_id="sys", actor_class="mod:Cls")


def ids(records: list[AgentRecord]) -> list[str]:
    return [r.agent_id for r in records]


def test_publish_then_resolve_returns_the_record_with_its_lease(fabric: MaildirFabric,
                                                                 clock: Clock) -> None:
    published = fabric.publish(record("worker-1", role="planner", labels=("a",)), lease=30.0)
    assert published.lease_expires_at == clock.now + 30.0
    found = fabric.resolve("worker-1")
    assert found == published
    assert found is not published, "resolve reads the file, not a cached object"
    assert (found.endpoint, found.pid, found.system_id, found.actor_class) == ("/mbox/worker-1", 4242, "sys", "mod:Cls")
    assert os.path.exists(os.path.join(fabric.root, "worker-1.json"))


def test_the_default_lease_is_sixty_seconds(fabric: MaildirFabric, clock: Clock) -> None:
    assert DEFAULT_LEASE == 60.0
    assert fabric.publish(record("w")).lease_expires_at == clock.now + 60.0


def test_resolve_of_an_unknown_id_is_none(fabric: MaildirFabric) -> None:
    assert fabric.resolve("nobody") is None
    assert fabric.read("nobody") is None


def test_discover_is_sorted_and_filters_by_role_and_label(fabric: MaildirFabric) -> None:
    fabric.publish(record("charlie", role="coder", labels=("py", "fast")))
    fabric.publish(record("alpha", role="planner", labels=("py",)))
    fabric.publish(record("bravo", role="coder", labels=("rust",)))
    fabric.publish(record("delta"))
    assert ids(fabric.discover()) == ["alpha", "bravo", "charlie", "delta"]
    assert ids(fabric.discover(role="coder")) == ["bravo", "charlie"]
    assert ids(fabric.discover(label="py")) == ["alpha", "charlie"]
    assert ids(fabric.discover(role="coder", label="py")) == ["charlie"]
    assert fabric.discover(role="nobody") == []
    assert fabric.discover(label="go") == []


def test_discover_skips_temp_and_foreign_files(fabric: MaildirFabric) -> None:
    fabric.publish(record("alpha"))
    for name in (".tmp-123", "notes.txt", ".hidden.json"):
        with open(os.path.join(fabric.root, name), "w") as handle:
            json.dump(record("ghost").to_dict() | {"lease_expires_at": 1e12}, handle)
    assert ids(fabric.discover()) == ["alpha"]


def test_withdraw_removes_the_record(fabric: MaildirFabric) -> None:
    fabric.publish(record("w"))
    assert fabric.withdraw("w") is True
    assert fabric.resolve("w") is None
    assert fabric.withdraw("w") is False


def test_withdraw_with_another_pid_leaves_the_record(fabric: MaildirFabric) -> None:
    fabric.publish(record("w", pid=100))
    assert fabric.withdraw("w", pid=200) is False
    assert fabric.resolve("w") is not None, "a stale activation must not withdraw its successor"
    assert fabric.withdraw("w", pid=100) is True
    assert fabric.resolve("w") is None


def test_a_lease_expires_at_its_end_exactly(fabric: MaildirFabric, clock: Clock) -> None:
    fabric.publish(record("w"), lease=10.0)
    clock.advance(9.999)
    assert fabric.resolve("w") is not None
    clock.advance(0.001)
    assert fabric.resolve("w") is None


def test_an_expired_lease_is_invisible_and_removed_by_gc(fabric: MaildirFabric, clock: Clock) -> None:
    fabric.publish(record("dead"), lease=10.0)
    fabric.publish(record("live"), lease=100.0)
    clock.advance(50.0)
    assert fabric.resolve("dead") is None
    assert ids(fabric.discover()) == ["live"]
    assert fabric.read("dead") is not None, "read sees the record whatever its lease"
    assert fabric.gc() == ["dead"]
    assert fabric.read("dead") is None
    assert sorted(os.listdir(fabric.root)) == ["live.json"]
    assert fabric.gc() == []


def test_republishing_renews_the_lease(fabric: MaildirFabric, clock: Clock) -> None:
    rec = fabric.publish(record("w"), lease=10.0)
    clock.advance(8.0)
    fabric.publish(rec, lease=10.0)
    clock.advance(8.0)
    assert fabric.resolve("w") is not None
    assert fabric.gc() == []
    clock.advance(2.0)
    assert fabric.resolve("w") is None


@pytest.mark.parametrize(
    "content",
    [b"not json", b"", b"{", b"[]", b"null", b'"text"', b"{}", b'{"agent_id": "bad", "lease_expires_at": "soon"}',
     b'{"agent_id": "bad", "lease_expires_at": null}', b'{"agent_id": null, "lease_expires_at": 9e99}',
     b'{"agent_id": "bad", "lease_expires_at": 9e99, "labels": null}', b"\xff\xfe"],
    ids=repr,
)
def test_a_corrupt_record_is_invisible_and_gcd(fabric: MaildirFabric, content: bytes) -> None:
    fabric.publish(record("good"))  # also creates the directory
    with open(os.path.join(fabric.root, "bad.json"), "wb") as handle:
        handle.write(content)
    assert fabric.resolve("bad") is None
    assert fabric.read("bad") is None
    assert ids(fabric.discover()) == ["good"]
    assert ids(fabric.discover(role="x")) == []
    assert ids(fabric.discover(label="a")) == []
    assert fabric.gc() == ["bad"]
    assert sorted(os.listdir(fabric.root)) == ["good.json"]


def test_a_record_with_unknown_fields_is_read(fabric: MaildirFabric, clock: Clock) -> None:
    doc = record("newer").to_dict() | {"lease_expires_at": clock.now + 5, "zone": "eu", "version": 2}
    os.makedirs(fabric.root)  # written by another (newer) program: no publish made it here
    with open(os.path.join(fabric.root, "newer.json"), "w") as handle:
        json.dump(doc, handle)
    found = fabric.resolve("newer")
    assert found is not None and found.version == 2 and found.endpoint == "/mbox/newer"


def test_the_default_clock_is_wall_time(tmp_path: Path) -> None:
    fabric = MaildirFabric(tmp_path / "fabric")
    fabric.publish(record("w"), lease=60.0)
    assert fabric.resolve("w") is not None
    fabric.publish(record("w"), lease=-1.0)
    assert fabric.resolve("w") is None


def test_the_fabric_directory_is_created_by_the_first_publish_not_by_looking(tmp_path: Path) -> None:
    fabric = MaildirFabric(tmp_path / "a" / "fabric")
    assert fabric.resolve("w") is None and fabric.discover() == [] and fabric.gc() == []
    assert not fabric.is_live("w") and fabric.withdraw("w") is False
    assert not (tmp_path / "a").exists(), "looking creates nothing"
    fabric.publish(record("w"))
    assert (tmp_path / "a" / "fabric").is_dir()
    assert fabric.resolve("w") is not None


def test_renew_refuses_a_record_another_process_published(fabric: MaildirFabric, clock: Clock) -> None:
    mine = fabric.publish(record("w", pid=100), lease=10.0)
    clock.advance(8.0)
    assert fabric.renew(mine, lease=10.0) is True
    clock.advance(8.0)
    assert fabric.resolve("w") is not None, "renewed: the lease runs from the renewal"
    fabric.publish(record("w", pid=200), lease=10.0)  # a successor took its place
    assert fabric.renew(mine, lease=10.0) is False
    found = fabric.read("w")
    assert found is not None and found.pid == 200


def test_is_live_follows_the_lease_and_every_rewrite_of_the_record(fabric: MaildirFabric, clock: Clock) -> None:
    assert fabric.is_live("w") is False
    fabric.publish(record("w"), lease=10.0)
    assert fabric.is_live("w") is True
    clock.advance(10.0)
    assert fabric.is_live("w") is False, "the same record, judged at the clock's time"
    fabric.publish(record("w"), lease=10.0)
    assert fabric.is_live("w") is True
    fabric.publish(record("w"), lease=-1.0)
    assert fabric.is_live("w") is False
    fabric.publish(record("w"), lease=10.0)
    assert fabric.withdraw("w") is True
    assert fabric.is_live("w") is False
    with open(os.path.join(fabric.root, "w.json"), "wb") as handle:
        handle.write(b"{torn")
    assert fabric.is_live("w") is False
