"""The session-store contract: commits, supervision records, indices, system locks."""

from __future__ import annotations

import json

import pytest
from actors_runtime.admitted import AdmittedSet
from actors_runtime.errors import StoreError
from actors_runtime.records import ChildEntry


def _commit(session, state: dict, new_ids: list[str], admitted: AdmittedSet, meta: dict | None = None) -> None:
    for msg_id in new_ids:
        admitted.insert(msg_id)
    session.commit(json.dumps(state), json.dumps(meta or {"id": "a"}), new_ids, admitted)


def test_a_session_that_never_committed_loads_as_none(backend):
    assert backend.store.session("main", "a").load() is None
    assert backend.store.load_session("main", "a") is None


def test_a_commit_is_loaded_back_exactly_by_another_process(open_project_backend):
    writer, reader = open_project_backend(), open_project_backend()
    session = writer.store.session("main", "a")
    admitted = AdmittedSet()
    _commit(session, {"count": 2, "items": ["x", None]}, ["m1", "m2"], admitted, {"id": "a", "attempts": {}})
    doc = reader.store.load_session("main", "a")
    assert doc is not None
    assert doc.state == {"count": 2, "items": ["x", None]}
    assert doc.admitted == ["m1", "m2"]
    assert doc.meta == {"id": "a", "attempts": {}}


def test_each_commit_replaces_the_state_and_adds_its_ids_to_those_remembered(backend):
    session = backend.store.session("main", "a")
    admitted = AdmittedSet()
    remembered = []
    for i in range(300):  # past any checkpointing a backend may do
        ids = [f"m{i}-{j}" for j in range(2)]
        remembered += ids
        _commit(session, {"i": i}, ids, admitted)
    doc = backend.store.session("main", "a").load()
    assert doc.state == {"i": 299}
    assert doc.admitted[-len(remembered):] == remembered[-len(doc.admitted):]
    assert set(remembered) <= set(doc.admitted), "a committed id was forgotten"


def test_a_commit_with_no_new_ids_keeps_those_already_remembered(backend):
    session = backend.store.session("main", "a")
    admitted = AdmittedSet()
    _commit(session, {"v": 1}, ["m1"], admitted)
    _commit(session, {"v": 2}, [], admitted)
    doc = backend.store.load_session("main", "a")
    assert doc.state == {"v": 2} and doc.admitted == ["m1"]


def test_a_commit_keeps_its_outbox_until_a_commit_without_one(open_project_backend):
    writer, reader = open_project_backend(), open_project_backend()
    session = writer.store.session("main", "a")
    admitted = AdmittedSet()
    admitted.insert("m1")
    outbox = [{"to": {"home": "/h", "project": "p", "system": "main", "name": "b"}, "message": {"id": "x"}}]
    session.commit(json.dumps({}), json.dumps({"id": "a"}), ["m1"], admitted, json.dumps(outbox))
    assert reader.store.load_session("main", "a").outbox == outbox
    session.commit(json.dumps({}), json.dumps({"id": "a"}), [], admitted)
    assert reader.store.load_session("main", "a").outbox == []


def test_journal_records_are_read_back_in_order_until_the_journal_is_cleared(open_project_backend):
    writer, reader = open_project_backend(), open_project_backend()
    session = writer.store.session("main", "a")
    session.commit(json.dumps({"n": 1}), json.dumps({"id": "a"}), [], AdmittedSet())
    records = [{"msg": "m1", "key": f"charge/{i}", "ok": {"receipt": i}} for i in range(3)]
    for record in records:
        session.journal(json.dumps(record))
    doc = reader.store.session("main", "a").load()
    assert doc.journal == records and doc.state == {"n": 1}
    session.clear_journal()
    assert reader.store.session("main", "a").load().journal == []


def test_recorded_children_are_listed_sorted_and_found_by_id(backend):
    store = backend.store
    store.record_children("main", [ChildEntry(id="b", actor_class="m:B", status="running"),
                                   ChildEntry(id="a", actor_class="m:A", status="starting", restarts=2)])
    assert [e.id for e in store.list_children("main")] == ["a", "b"]
    assert store.resolve_child("a") == "main" and store.resolve_child("zzz") is None
    system_id, entry = store.child_entry("a")
    assert (system_id, entry.actor_class, entry.status, entry.restarts) == ("main", "m:A", "starting", 2)
    assert sorted((s, e.id) for s, e in store.all_children()) == [("main", "a"), ("main", "b")]


def test_recording_a_child_again_replaces_its_status(backend):
    store = backend.store
    store.record_children("main", [ChildEntry(id="a", status="starting")])
    store.record_children("main", [ChildEntry(id="a", status="failed", restarts=5)])
    [entry] = store.list_children("main")
    assert (entry.status, entry.restarts) == ("failed", 5)


def test_rebuilding_the_index_finds_every_recorded_child_and_every_committed_session(backend):
    store = backend.store
    store.record_children("main", [ChildEntry(id="a", actor_class="m:A")])
    store.record_children("other", [ChildEntry(id="b", actor_class="m:B", status="stopped")])
    # An actor that committed but was never recorded (a worker started by hand).
    store.session("main", "c").commit("{}", json.dumps({"id": "c", "actor_class": "m:C"}), ["x"], ["x"])
    index = store.rebuild_index()
    assert index["child_lookup"] == {"a": "main", "b": "other", "c": "main"}
    assert sorted(index["roots"]) == ["main", "other"]
    assert store.resolve_child("c") == "main"
    _, entry = store.child_entry("c")
    assert entry.actor_class == "m:C"
    _, entry = store.child_entry("b")
    assert entry.status == "stopped", "rebuilding lost a supervision fact"


def test_locate_finds_an_actor_the_index_does_not_list(backend):
    store = backend.store
    store.session("side", "loner").commit("{}", "{}", [], [])
    assert store.resolve_child("loner") is None
    assert store.locate("loner") == "side"
    assert store.locate("nobody") is None


def test_only_one_process_at_a_time_holds_a_systems_lock(open_project_backend):
    first, second = open_project_backend(), open_project_backend()
    lock = first.store.lock_system("main")
    with pytest.raises(StoreError):
        second.store.lock_system("main")
    lock.release()
    second.store.lock_system("main").release()


def test_a_saved_system_is_listed_and_a_removed_one_takes_its_actors_with_it(backend):
    store = backend.store
    store.save_system("main", {"pid": 1})
    store.save_system("cli-1", {"pid": 2})
    store.record_children("cli-1", [ChildEntry(id="temp")])
    assert "main" in store.systems() and "cli-1" in store.systems()
    store.remove_system("cli-1")
    assert "cli-1" not in store.systems()
    assert store.list_children("cli-1") == []
