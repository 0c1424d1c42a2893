"""The fabric contract: leased records, on every backend, moved through time by a fake clock."""

from __future__ import annotations

import pytest
from actors_runtime.errors import InvalidSpec
from actors_runtime.records import AgentRecord

LEASE = 60.0


def _record(actor_id: str, *, pid: int = 100, role: str | None = None, labels: tuple[str, ...] = ()) -> AgentRecord:
    return AgentRecord(agent_id=actor_id, role=role, labels=list(labels), pid=pid, system_id="main",
                       actor_class="m:C", started_at=1.0)


def test_a_published_record_resolves_and_is_live_until_its_lease_runs_out(backend, clock):
    fabric = backend.fabric
    fabric.publish(_record("a"), LEASE)
    resolved = fabric.resolve("a")
    assert resolved is not None and resolved.pid == 100 and resolved.actor_class == "m:C"
    assert fabric.is_live("a")
    clock.advance(LEASE - 1)
    assert fabric.is_live("a"), "a record must stay live for its whole lease"
    clock.advance(2)
    assert fabric.resolve("a") is None, "an expired record must not resolve"
    assert not fabric.is_live("a")
    assert fabric.read("a") is not None, "read returns a record whatever its lease"


def test_renewing_extends_the_lease_of_the_record_this_process_published(backend, clock):
    fabric = backend.fabric
    record = fabric.publish(_record("a"), LEASE)
    clock.advance(LEASE - 1)
    assert fabric.renew(record, LEASE)
    clock.advance(LEASE - 1)
    assert fabric.is_live("a"), "a renewed lease counts from the renewal"


def test_a_stale_process_cannot_renew_a_record_its_successor_published(backend, clock):
    fabric = backend.fabric
    old = fabric.publish(_record("a", pid=100), LEASE)
    fabric.publish(_record("a", pid=200), LEASE)
    assert fabric.renew(old, LEASE) is False
    assert fabric.resolve("a").pid == 200, "a stale renewal overwrote its successor's record"


def test_discover_lists_live_records_sorted_by_id_and_filters_by_role_and_label(backend, clock):
    fabric = backend.fabric
    fabric.publish(_record("c", role="worker", labels=("gpu",)), LEASE)
    fabric.publish(_record("a", role="worker"), LEASE)
    fabric.publish(_record("b", role="judge", labels=("gpu",)), 5.0)
    assert [r.agent_id for r in fabric.discover()] == ["a", "b", "c"]
    assert [r.agent_id for r in fabric.discover(role="worker")] == ["a", "c"]
    assert [r.agent_id for r in fabric.discover(label="gpu")] == ["b", "c"]
    clock.advance(10)
    assert [r.agent_id for r in fabric.discover()] == ["a", "c"], "discover listed an expired record"


def test_withdraw_removes_a_record_but_not_one_another_process_published(backend):
    fabric = backend.fabric
    fabric.publish(_record("a", pid=100), LEASE)
    assert fabric.withdraw("a", pid=999) is False
    assert fabric.resolve("a") is not None, "a withdraw by another pid removed the record"
    assert fabric.withdraw("a", pid=100) is True
    assert fabric.read("a") is None
    assert fabric.withdraw("a") is False


def test_gc_removes_expired_records_keeps_live_ones_and_names_what_it_removed(backend, clock):
    fabric = backend.fabric
    fabric.publish(_record("short"), 5.0)
    fabric.publish(_record("long"), LEASE)
    clock.advance(10)
    assert fabric.gc() == ["short"]
    assert fabric.read("short") is None and fabric.resolve("long") is not None
    assert fabric.gc() == []


def test_a_record_of_an_unsafe_id_is_refused(backend):
    with pytest.raises(InvalidSpec):
        backend.fabric.publish(_record("../escape"), LEASE)
    with pytest.raises(InvalidSpec):
        backend.fabric.resolve("a/b")


def test_another_process_sees_what_one_published(open_project_backend, clock):
    first, second = open_project_backend(), open_project_backend()
    first.fabric.publish(_record("shared"), LEASE)
    assert second.fabric.is_live("shared")
    first.fabric.withdraw("shared")
    assert not second.fabric.is_live("shared")
