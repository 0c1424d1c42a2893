"""A damaged cache is rebuilt, never a reason to refuse work.

``index.json`` and each system's ``children.json`` are caches of the sessions and the
supervision records. Whatever is in them (not JSON, nested too deep to parse, the
wrong shape, an id that is not an id, a symlink) the store rebuilds them from the
authorities with a logged warning, and a spawn goes on. Lease records that are not
records are no records; the authorities themselves (a session) are reported, not
replaced.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterator

import pytest
import sample_actors
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend
from actors_runtime.backends.maildir import MaildirBackend
from actors_runtime.backends.maildir.layout import read_max_pending
from actors_runtime.errors import StoreError
from actors_runtime.records import AgentRecord, ChildEntry, child_entry_from_doc, record_from_doc

from actors import ActorSystem

#: Contents of a damaged cache, by what is wrong with it.
DAMAGE = {
    "not JSON": b"{not json",
    "empty": b"",
    "not UTF-8": b"\xff\xfe\x00garbage",
    "nested too deep": b"[" * 100_000 + b"]" * 100_000,
    "an array": b"[1, 2]",
    "roots not a list": b'{"roots": "main", "child_lookup": {}}',
    "a root that is not an id": b'{"roots": ["../escape"], "child_lookup": {}}',
    "child_lookup not an object": b'{"roots": [], "child_lookup": [1]}',
}
#: Contents of a damaged children.json, by what is wrong with it.
CHILDREN_DAMAGE = {
    "not JSON": b'{"children": {',
    "nested too deep": b'{"children": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "children not an object": b'{"children": [1]}',
    "an entry that is not an object": b'{"children": {"a1": 5}}',
    "an entry of another actor": b'{"children": {"a1": {"id": "a2"}}}',
    "an entry with a mistyped field": b'{"children": {"a1": {"id": "a1", "restarts": "many"}}}',
    "an entry whose id is not an id": b'{"children": {"../x": {"id": "../x"}}}',
}


@pytest.fixture
def backend(tmp_path: Path, project: Path) -> Iterator[MaildirBackend]:
    opened = open_backend("maildir", str(tmp_path / "home"), project_key(project), "process")
    assert isinstance(opened, MaildirBackend)
    opened.ensure_project(str(project))
    opened.store.record_children("main", [ChildEntry(id="a1", actor_class="m:A", status="running")])
    opened.store.session("main", "a1").commit("{}", json.dumps({"id": "a1", "actor_class": "m:A"}), [], [])
    yield opened
    opened.close()


def damage(path: str, data: bytes) -> None:
    Path(path).write_bytes(data)


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_index_is_rebuilt_by_the_next_reader_with_a_warning(
        backend: MaildirBackend, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    damage(backend.layout.index, DAMAGE[kind])
    with caplog.at_level(logging.WARNING):
        assert backend.store.resolve_child("a1") == "main"
    assert "rebuilding the indices from the sessions" in caplog.text
    assert json.loads(Path(backend.layout.index).read_bytes())["child_lookup"] == {"a1": "main"}


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_index_does_not_stop_recording_a_child(backend: MaildirBackend, kind: str) -> None:
    damage(backend.layout.index, DAMAGE[kind])
    backend.store.record_children("main", [ChildEntry(id="a2", actor_class="m:B")])
    assert backend.store.resolve_child("a1") == backend.store.resolve_child("a2") == "main"
    assert sorted(e.id for _, e in backend.store.all_children()) == ["a1", "a2"]


def test_a_lookup_naming_a_system_that_is_not_an_id_is_rebuilt(backend: MaildirBackend) -> None:
    damage(backend.layout.index, b'{"roots": ["main"], "child_lookup": {"a1": "../../etc"}}')
    assert backend.store.resolve_child("a1") == "main"


def test_a_symlink_in_place_of_the_index_is_rebuilt_over(backend: MaildirBackend, tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_bytes(b'{"roots": [], "child_lookup": {}}')
    os.unlink(backend.layout.index)
    os.symlink(outside, backend.layout.index)
    assert backend.store.resolve_child("a1") == "main"
    assert outside.read_bytes() == b'{"roots": [], "child_lookup": {}}'


@pytest.mark.parametrize("kind", CHILDREN_DAMAGE)
def test_a_damaged_children_list_is_rebuilt_from_the_sessions(
        backend: MaildirBackend, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    damage(backend.layout.children_json("main"), CHILDREN_DAMAGE[kind])
    with caplog.at_level(logging.WARNING):
        entries = backend.store.list_children("main")
    assert [(e.id, e.actor_class, e.status) for e in entries] == [("a1", "m:A", "running")]
    assert "rebuilding it from the sessions" in caplog.text
    backend.store.record_children("main", [ChildEntry(id="a2")])
    assert [e.id for e in backend.store.list_children("main")] == ["a1", "a2"]
    assert backend.store.child_entry("a1") is not None


def test_mistyped_fields_of_a_supervision_record_are_left_out_of_the_rebuilt_entry(
        backend: MaildirBackend) -> None:
    supervision = backend.layout.actor_file("main", "a1", "supervision.json")
    damage(supervision, b'{"status": 7, "restarts": "x", "labels": [1], "role": "r", "updated_at": true}')
    os.unlink(backend.layout.children_json("main"))
    backend.store.rebuild_index()
    (entry,) = backend.store.list_children("main")
    assert (entry.id, entry.role, entry.status, entry.restarts, entry.labels) == ("a1", "r", "starting", 0, [])


def test_a_rebuild_passes_over_names_that_are_not_systems_or_actors(backend: MaildirBackend,
                                                                   tmp_path: Path) -> None:
    os.makedirs(os.path.join(backend.layout.sessions, "not an id", "children", "x"))
    os.makedirs(os.path.join(backend.layout.children_dir("main"), "not an id either"))
    elsewhere = tmp_path / "elsewhere"
    os.makedirs(elsewhere / "children" / "stray")
    os.symlink(elsewhere, backend.layout.system_dir("linked"))
    index = backend.store.rebuild_index()
    assert index == {"version": 1, "roots": ["main"], "child_lookup": {"a1": "main"}}
    assert list((elsewhere).iterdir()) == [elsewhere / "children"], "nothing was written through the link"


def test_a_damaged_session_is_reported_never_replaced(backend: MaildirBackend) -> None:
    path = backend.layout.actor_file("main", "a1", "session.json")
    damage(path, b"[" * 100_000)
    with pytest.raises(StoreError) as info:
        backend.store.load_session("main", "a1")
    assert info.value.path == path


@pytest.mark.parametrize("kind", ["not JSON", "nested too deep", "roots not a list"])
def test_an_actor_system_spawns_over_a_damaged_index(home: Path, project: Path, kind: str) -> None:
    with ActorSystem(home, project=project, durability="process") as system:
        system.spawn(sample_actors.Counter, name="before")
        layout = system._backend.layout  # type: ignore[attr-defined]
        damage(layout.index, DAMAGE[kind])
        after = system.spawn(sample_actors.Counter, name="after")
        after.tell({"n": 3})
        assert after.ask("count", timeout=30) == 3
        assert {child.name for child in system.children()} == {"before", "after"}
    index = json.loads(Path(layout.index).read_bytes())
    assert index["child_lookup"] == {"before": "main", "after": "main"}


# -- records read from files others may have written ------------------------------------------


@pytest.mark.parametrize("doc", [
    {"agent_id": "a", "pid": "12"}, {"agent_id": "a", "pid": -1}, {"agent_id": "a", "pid": 10**30},
    {"agent_id": "a", "pid": True}, {"agent_id": "a", "labels": [1]}, {"agent_id": "a", "labels": "x"},
    {"agent_id": "a", "role": 5}, {"agent_id": "a", "lease_expires_at": None}, {"agent_id": 5}, {},
    {"agent_id": "a", "endpoint": []}, {"agent_id": "a", "system_id": {}}, [], "a", None,
], ids=repr)
def test_a_lease_record_with_a_field_of_the_wrong_type_is_no_record(doc: object) -> None:
    with pytest.raises(ValueError, match="not an agent record"):
        record_from_doc(doc)


def test_a_lease_record_with_every_field_right_and_unknown_ones_is_read() -> None:
    record = AgentRecord(agent_id="a", role=None, labels=["x"], endpoint="/m", pid=7, started_at=1,
                         lease_expires_at=2.5, system_id="s", actor_class="m:C")
    assert record_from_doc({**record.to_dict(), "future_field": {"x": 1}}) == record


@pytest.mark.parametrize("doc", [{"id": "../x"}, {"id": 5}, {}, {"id": "a", "restarts": 1.5}, {"id": "a", "status": None}])
def test_a_supervision_entry_with_a_bad_id_or_field_is_refused(doc: object) -> None:
    with pytest.raises(ValueError, match="not a supervision entry"):
        child_entry_from_doc(doc)


def test_a_lenient_supervision_entry_keeps_the_fields_of_the_right_type() -> None:
    entry = child_entry_from_doc({"id": "a", "status": 5, "role": "r", "restarts": 2}, lenient=True)
    assert (entry.status, entry.role, entry.restarts) == ("starting", "r", 2)


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"max_pending": true}', b'{"max_pending": -5}', b"7"])
def test_a_damaged_mailbox_config_means_the_default_limit(tmp_path: Path, data: bytes) -> None:
    (tmp_path / ".config.json").write_bytes(data)
    assert read_max_pending(str(tmp_path)) == 50_000
