"""Fuzz: whatever bytes the maildir backend's documents hold, a read gives what it
documents and nothing else (never another exception, never ``RecursionError``).

- a lease record (``fabric/<id>.json``): a record or no record (``None``); ``gc``
  removes what is not one; ``record_from_doc`` is a record or ``ValueError``;
- a session (``session.json``, ``admitted.json``) and a system's document: the
  session, nothing, or ``StoreError`` (the authority is reported, never replaced);
- the caches (``index.json``, ``children.json``) and a supervision record: rebuilt
  from the sessions, so the actor is found and listed as before.

Each document is written to a real file under ``tmp_path`` and read by the store.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

import pytest
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend
from actors_runtime.backends.base import SessionDoc
from actors_runtime.backends.maildir import MaildirBackend
from actors_runtime.backends.maildir.sessions import load_session_doc
from actors_runtime.errors import StoreError
from actors_runtime.records import AgentRecord, ChildEntry, record_from_doc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=16)


def nested(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + closer * depth


#: Nesting deep enough to exhaust the parser's recursion, in arrays and in objects.
too_deep = st.one_of(
    st.integers(200, 60_000).map(lambda n: nested(n, b"[", b"]")),
    st.integers(200, 60_000).map(lambda n: nested(n, b'{"a":', b"}")),
    st.integers(200, 60_000).map(lambda n: b'{"roots":' + nested(n, b"[", b"]") + b"}"),
)


def documents(fields: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Bytes of a document: any bytes, any JSON, too deep to parse, or an object with
    the document's own fields (and others) holding any JSON."""
    shaped = st.fixed_dictionaries({}, optional={key: st.one_of(st.just(value), json_values)
                                                 for key, value in fields.items()})
    shaped = st.tuples(shaped, st.dictionaries(st.text(max_size=8), json_values, max_size=2)).map(
        lambda pair: {**pair[1], **pair[0]})
    return st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda value: json.dumps(value).encode()),
        shaped.map(lambda value: json.dumps(value).encode()),
        too_deep,
    )


RECORD = AgentRecord(agent_id="a1", labels=["x"], endpoint="/m", pid=7, started_at=1.0,
                     lease_expires_at=math.inf, system_id="main", actor_class="m:A").to_dict()
ENTRY = ChildEntry(id="a1", actor_class="m:A", status="running").to_dict()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[MaildirBackend]:
    """A project with one actor ``a1`` of system ``main``: its session, supervision
    record and caches."""
    project = tmp_path / "project"
    project.mkdir()
    opened = open_backend("maildir", str(tmp_path / "home"), project_key(project), "process")
    assert isinstance(opened, MaildirBackend)
    opened.ensure_project(str(project))
    opened.store.record_children("main", [ChildEntry(id="a1", actor_class="m:A", status="running")])
    opened.store.session("main", "a1").commit('{"n":1}', json.dumps({"id": "a1", "actor_class": "m:A"}), [], [])
    opened.store.save_system("main", {"pid": 1})
    yield opened
    opened.close()


def write(path: str, data: bytes) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)


def assert_found_as_before(backend: MaildirBackend) -> None:
    """What the caches must answer whatever they held: a1 in main, as its files say."""
    assert backend.store.resolve_child("a1") == "main"
    assert [(e.id, e.actor_class) for e in backend.store.list_children("main")] == [("a1", "m:A")]
    assert [(s, e.id) for s, e in backend.store.all_children()] == [("main", "a1")]
    assert backend.store.child_entry("a1") is not None


# -- lease records ------------------------------------------------------------------------------


@SETTINGS
@given(json_values | st.fixed_dictionaries({}, optional={k: st.one_of(st.just(v), json_values)
                                                         for k, v in RECORD.items()}))
def test_record_from_doc_is_a_record_or_value_error(doc: Any) -> None:
    try:
        record = record_from_doc(doc)
    except ValueError:
        return
    assert isinstance(record.agent_id, str) and isinstance(record.pid, int) and 0 <= record.pid
    assert isinstance(record.is_live(0.0), bool)
    assert all(isinstance(label, str) for label in record.labels)


@SETTINGS
@given(data=documents(RECORD))
def test_a_lease_record_of_any_bytes_is_a_record_or_none(backend: MaildirBackend, data: bytes) -> None:
    write(backend.layout.record("a1"), data)
    record = backend.fabric.read("a1")
    assert record is None or isinstance(record, AgentRecord)
    live = backend.fabric.is_live("a1")
    assert live == (backend.fabric.resolve("a1") is not None)
    assert [r.agent_id for r in backend.fabric.discover()] == (["a1"] if live else [])
    backend.fabric.discover(role="r", label="x")
    assert backend.fabric.gc() == ([] if live else ["a1"])


# -- sessions and a system's document -------------------------------------------------------


def read_session(path: str, admitted: str | None) -> SessionDoc | None | StoreError:
    try:
        found = load_session_doc(path, admitted)
    except StoreError as exc:
        assert exc.path in (path, admitted)
        return exc
    return None if found is None else found[0]


@SETTINGS
@given(data=documents({"state": {"n": 1}, "admitted": ["m1"], "meta": {"id": "a1"}}))
def test_a_session_of_any_bytes_is_loaded_or_a_store_error(backend: MaildirBackend, data: bytes) -> None:
    path = backend.layout.actor_file("main", "a1", "session.json")
    write(path, data)
    found = read_session(path, backend.layout.actor_file("main", "a1", "admitted.json"))
    if isinstance(found, SessionDoc):
        assert isinstance(found.state, dict) and isinstance(found.meta, dict)
        assert all(isinstance(i, str) for i in found.admitted)
    else:
        assert isinstance(found, StoreError)
    backend.store.rebuild_index()  # the caches survive whatever the session holds
    assert backend.store.resolve_child("a1") == "main"


@SETTINGS
@given(data=documents({"ids": ["m1", "m2"]}))
def test_a_checkpoint_of_any_bytes_is_loaded_or_a_store_error(backend: MaildirBackend, data: bytes) -> None:
    admitted = backend.layout.actor_file("main", "a1", "admitted.json")
    write(admitted, data)
    found = read_session(backend.layout.actor_file("main", "a1", "session.json"), admitted)
    assert isinstance(found, (SessionDoc, StoreError))


@SETTINGS
@given(data=documents({"meta": {"pid": 1}}))
def test_a_systems_document_of_any_bytes_is_loaded_or_a_store_error(backend: MaildirBackend,
                                                                    data: bytes) -> None:
    path = backend.layout.actor_file("main", None, "session.json")
    write(path, data)
    assert isinstance(read_session(path, None), (SessionDoc, StoreError))
    assert backend.store.systems() == ["main"]
    backend.store.rebuild_index()
    assert_found_as_before(backend)


# -- the caches and the supervision records they are rebuilt from ---------------------------


@SETTINGS
@given(data=documents({"version": 1, "roots": ["main"], "child_lookup": {"a1": "main"}}))
def test_an_index_of_any_bytes_is_read_or_rebuilt(backend: MaildirBackend, data: bytes) -> None:
    write(backend.layout.index, data)
    # Read as it is (a well-formed index may not list a1: callers then look for it
    # under each system), or rebuilt; and the next record writes a good one.
    assert backend.store.resolve_child("a1") in ("main", None)
    assert all(s == "main" and e.id == "a1" for s, e in backend.store.all_children())
    write(backend.layout.index, data)
    backend.store.record_children("main", [ChildEntry(id="a1", actor_class="m:A", status="running")])
    assert_found_as_before(backend)


@SETTINGS
@given(data=documents({"version": 1, "children": {"a1": ENTRY}}))
def test_a_children_list_of_any_bytes_is_read_or_rebuilt(backend: MaildirBackend, data: bytes) -> None:
    write(backend.layout.children_json("main"), data)
    entries = backend.store.list_children("main")
    assert [e.id for e in entries] == ["a1"] or entries == [], entries  # read as it is, or rebuilt
    write(backend.layout.children_json("main"), data)
    backend.store.record_children("main", [ChildEntry(id="a1", actor_class="m:A", status="running")])
    assert_found_as_before(backend)


@SETTINGS
@given(data=documents(ENTRY))
def test_a_supervision_record_of_any_bytes_still_rebuilds_the_caches(backend: MaildirBackend,
                                                                     data: bytes) -> None:
    write(backend.layout.actor_file("main", "a1", "supervision.json"), data)
    backend.store.rebuild_index()
    assert_found_as_before(backend)
