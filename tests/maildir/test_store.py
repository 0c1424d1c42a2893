"""The maildir store: project keys, sessions, and the children / index caches.

The concurrent-writer processes are started with "spawn" and run a module-level
target, so this module imports nothing heavier than the runtime.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import asdict
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest
from actors_runtime.address import fnv1a_64, project_key
from actors_runtime.backends import open_backend
from actors_runtime.backends.maildir import MaildirBackend
from actors_runtime.backends.maildir import indices as indices_module
from actors_runtime.backends.maildir.cached_docs import GEN_KEY
from actors_runtime.backends.maildir.json_docs import read_json, write_json
from actors_runtime.backends.maildir.layout import ProjectLayout
from actors_runtime.backends.maildir.store import MaildirStore
from actors_runtime.errors import StoreError
from actors_runtime.ids import is_valid_id
from actors_runtime.records import ChildEntry
from filelock import FileLock


@pytest.fixture(scope="module", autouse=True)
def resource_tracker_running() -> None:
    """Start multiprocessing's resource tracker (a long-lived helper process that
    "spawn" starts on first use) before the leak check takes its snapshot."""
    resource_tracker.ensure_running()


def project_backend(home: Path, project: Path, durability: str = "machine") -> MaildirBackend:
    """Open (creating if needed) the maildir storage of ``project`` under ``home``."""
    backend = open_backend("maildir", str(home), project_key(project), durability)
    assert isinstance(backend, MaildirBackend)
    backend.ensure_project(os.path.abspath(project))
    return backend


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[MaildirBackend]:
    project = tmp_path / "project"
    project.mkdir()
    backend = project_backend(tmp_path / "home", project, durability="process")
    yield backend
    backend.close()


@pytest.fixture
def store(opened: MaildirBackend) -> MaildirStore:
    return opened.store


@pytest.fixture
def layout(opened: MaildirBackend) -> ProjectLayout:
    return opened.layout


def read(path: str) -> Any:
    with open(path, "rb") as handle:
        return json.load(handle)


def supervision(store: MaildirStore, system_id: str, actor_id: str) -> dict[str, Any]:
    """A child's ``supervision.json`` ({} if it has none)."""
    doc = read_json(store.layout.actor_file(system_id, actor_id, "supervision.json"))
    return doc if isinstance(doc, dict) else {}


def upsert(store: MaildirStore, system_id: str, entry: ChildEntry) -> ChildEntry:
    """Insert or replace one child, as the supervisor records one."""
    store.record_children(system_id, [entry])
    return entry


def commit(store: MaildirStore, system_id: str, actor_id: str, state: Any, meta: Any,
           admitted: Sequence[str] = ()) -> None:
    """What a worker does: load its session (at activation), then commit a turn's
    state, meta and the ids it admitted."""
    session = store.session(system_id, actor_id)
    before = session.load()
    ids = [*(before.admitted if before is not None else []), *admitted]
    session.commit(json.dumps(state), json.dumps(meta), list(admitted), ids)


def child_meta(entry: ChildEntry) -> dict[str, Any]:
    """What the worker records about itself in session.json (see runtime.worker)."""
    return {"id": entry.id, "actor_class": entry.actor_class, "role": entry.role, "labels": entry.labels,
            "parent_id": entry.parent_id, "restart": entry.restart, "depth": 1, "spec": {"x": 1}}


def spawn_child(store: MaildirStore, system_id: str, entry: ChildEntry) -> ChildEntry:
    """What a system does for a child: index it, and the worker commits its session."""
    upsert(store, system_id, entry)
    commit(store, system_id, entry.id, {"n": 1}, child_meta(entry))
    return entry


# -- project keys -------------------------------------------------------------------------

def test_paths_that_fold_to_the_same_slug_get_different_keys() -> None:
    assert project_key("/a/b") != project_key("/a-b")
    assert project_key("/a/b").rsplit("-", 1)[0] == project_key("/a-b").rsplit("-", 1)[0] == "a-b"


def test_the_same_path_always_gets_the_same_key(tmp_path: Path) -> None:
    assert project_key(tmp_path) == project_key(str(tmp_path)) == project_key(str(tmp_path) + "/")
    assert project_key(tmp_path / "x" / "..") == project_key(tmp_path)


def test_a_relative_path_is_keyed_by_its_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert project_key(".") == project_key(tmp_path)
    assert project_key("sub") == project_key(tmp_path / "sub")


def test_the_key_is_a_slug_and_the_low_32_bits_of_fnv1a() -> None:
    key = project_key("/home/me/Code/My Project")
    slug, digest = key.rsplit("-", 1)
    assert slug == "home-me-code-my-project"
    assert digest == f"{fnv1a_64(b'/home/me/Code/My Project') & 0xFFFFFFFF:08x}"


def test_fnv1a_64_matches_published_vectors() -> None:
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a_64(b"foobar") == 0x85944171F73967E8


@pytest.mark.parametrize(
    "path",
    ["/", "/a/b", "/" + "very-long-directory-name/" * 10, "/tmp/ünïcødé/日本", "/tmp/-leading/_x_/",
     "/tmp/with space/and.dot", "relative/dir"],
)
def test_every_key_is_a_valid_id(path: str) -> None:
    key = project_key(path)
    assert is_valid_id(key), key
    assert len(key) <= 57


def test_a_path_that_is_not_utf8_gets_a_key(tmp_path: Path) -> None:
    # Linux file names are bytes; Python hands a non-UTF-8 one over with surrogates.
    path = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9")
    key = project_key(path)
    assert is_valid_id(key)
    assert key != project_key(str(tmp_path) + "/caf")


def test_for_project_writes_project_json_once(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    backend = project_backend(tmp_path / "home", project)
    doc = read(os.path.join(backend.layout.root, "project.json"))
    assert doc["workspace"] == str(project) and doc["key"] == project_key(project) == backend.project_key
    again = project_backend(tmp_path / "home", project)
    assert read(os.path.join(again.layout.root, "project.json")) == doc
    assert backend.store.exists()
    assert os.path.isdir(backend.layout.fabric)
    backend.close()
    again.close()


# -- sessions -------------------------------------------------------------------------------

def test_session_round_trip_for_a_system_and_a_child(store: MaildirStore, layout: ProjectLayout) -> None:
    system_path = layout.actor_file("sys", None, "session.json")
    child_path = layout.actor_file("sys", "worker", "session.json")
    assert read_json(system_path) is None
    assert store.load_session("sys", "worker") is None
    system_doc = {"meta": {"name": "sys", "pid": 1}}
    child_doc = {"state": {"count": 3, "items": ["a", None]}, "admitted": ["m1", "m2"], "meta": {"id": "worker"}}
    store.save_system("sys", system_doc["meta"])
    os.makedirs(layout.child_dir("sys", "worker"))  # as provisioning leaves it
    commit(store, "sys", "worker", child_doc["state"], child_doc["meta"], child_doc["admitted"])
    assert read_json(system_path) == system_doc
    sealed = read_json(child_path)
    assert isinstance(sealed.pop("crc"), int) and sealed.pop("commit") == 1  # see session_file
    assert sealed == child_doc
    loaded = store.load_session("sys", "worker")
    assert loaded is not None
    assert (loaded.state, loaded.admitted, loaded.meta) == (child_doc["state"], ["m1", "m2"], child_doc["meta"])
    child_doc["state"]["count"] = 4
    commit(store, "sys", "worker", child_doc["state"], child_doc["meta"])
    loaded = store.load_session("sys", "worker")
    assert loaded is not None and loaded.state["count"] == 4 and loaded.admitted == ["m1", "m2"]
    assert child_path.startswith(layout.child_dir("sys", "worker"))


def test_an_unreadable_session_raises_store_error_naming_the_file(store: MaildirStore,
                                                                 layout: ProjectLayout) -> None:
    path = layout.actor_file("sys", "worker", "session.json")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as handle:
        handle.write("{torn")
    with pytest.raises(StoreError) as info:
        store.load_session("sys", "worker")
    assert info.value.path == path
    with open(path, "w") as handle:
        handle.write("[1, 2]")
    with pytest.raises(StoreError, match="not a JSON object"):
        store.load_session("sys", "worker")


def test_paths_nest_as_designed(layout: ProjectLayout) -> None:
    root = layout.root
    assert layout.system_dir("sys") == os.path.join(root, "sessions", "sys")
    assert layout.child_dir("sys", "w") == os.path.join(root, "sessions", "sys", "children", "w")
    assert layout.mailbox("sys") == os.path.join(root, "sessions", "sys", "mailbox")
    assert layout.mailbox("sys", "w") == os.path.join(root, "sessions", "sys", "children", "w", "mailbox")
    assert layout.children_json("sys") == os.path.join(root, "sessions", "sys", "children.json")
    assert layout.index == os.path.join(root, "index.json")


# -- the indices ----------------------------------------------------------------------------

def test_upsert_list_and_resolve(store: MaildirStore, layout: ProjectLayout) -> None:
    upsert(store, "sys-b", ChildEntry(id="zulu", actor_class="m:Z"))
    upsert(store, "sys-a", ChildEntry(id="mike", actor_class="m:M", role="coder", labels=["py"]))
    upsert(store, "sys-a", ChildEntry(id="alpha", actor_class="m:A", parent_id="mike"))
    listed = store.list_children("sys-a")
    assert [e.id for e in listed] == ["alpha", "mike"]
    assert listed[1].role == "coder" and listed[1].labels == ["py"] and listed[1].status == "starting"
    assert listed[0].parent_id == "mike"
    assert all(e.updated_at > 0 for e in listed)
    assert store.resolve_child("mike") == "sys-a"
    assert store.resolve_child("zulu") == "sys-b"
    assert store.resolve_child("nobody") is None
    assert store.list_children("sys-none") == []
    entry = store.child_entry("zulu")
    assert entry is not None and entry[0] == "sys-b" and entry[1].actor_class == "m:Z"
    assert store.child_entry("nobody") is None
    assert sorted((s, e.id) for s, e in store.all_children()) == [
        ("sys-a", "alpha"), ("sys-a", "mike"), ("sys-b", "zulu")]
    assert read(layout.index)["roots"] == ["sys-a", "sys-b"]
    assert read(layout.actor_file("sys-a", "mike", "supervision.json"))["status"] == "starting"


def test_upsert_of_an_existing_id_replaces_it_in_place(store: MaildirStore, layout: ProjectLayout) -> None:
    upsert(store, "sys", ChildEntry(id="a"))
    upsert(store, "sys", ChildEntry(id="b", role="old"))
    upsert(store, "sys", ChildEntry(id="c"))
    upsert(store, "sys", ChildEntry(id="b", role="new", status="running", restarts=2))
    listed = store.list_children("sys")
    assert [e.id for e in listed] == ["a", "b", "c"]
    assert (listed[1].role, listed[1].status, listed[1].restarts) == ("new", "running", 2)
    assert list(read(layout.children_json("sys"))["children"]) == ["a", "b", "c"]
    assert read(layout.index)["child_lookup"] == {"a": "sys", "b": "sys", "c": "sys"}
    assert supervision(store, "sys", "b")["restarts"] == 2


def test_a_recorded_status_change_replaces_the_supervision_fields_of_that_child_only(
        store: MaildirStore) -> None:
    # (update_status is gone: the supervisor records a fresh entry of the child, as
    # ChildEntry.for_spec makes it, with the new status and restarts.)
    upsert(store, "sys", ChildEntry(id="w", role="coder", updated_at=1.0))
    upsert(store, "sys", ChildEntry(id="other", role="planner", status="running", updated_at=2.0))
    before = time.time()
    entry = upsert(store, "sys", ChildEntry(id="w", role="coder", status="failed", restarts=5))
    assert (entry.status, entry.restarts, entry.role) == ("failed", 5, "coder")
    assert entry.updated_at >= before
    assert [(e.id, e.status) for e in store.list_children("sys")] == [("other", "running"), ("w", "failed")]
    assert store.list_children("sys")[1] == entry
    assert supervision(store, "sys", "w") == asdict(entry)  # the supervisor's whole record
    assert supervision(store, "sys", "other") == asdict(ChildEntry(id="other", role="planner", status="running",
                                                                   updated_at=2.0))
    assert supervision(store, "sys", "nobody") == {}


def test_remove_child_drops_it_from_both_indices_and_keeps_its_files(store: MaildirStore,
                                                                    layout: ProjectLayout) -> None:
    spawn_child(store, "sys", ChildEntry(id="keep"))
    spawn_child(store, "sys", ChildEntry(id="gone"))
    assert store.remove_child("sys", "gone") is True
    assert [e.id for e in store.list_children("sys")] == ["keep"]
    assert store.resolve_child("gone") is None
    assert store.resolve_child("keep") == "sys"
    assert os.path.exists(layout.actor_file("sys", "gone", "session.json"))
    assert store.remove_child("sys", "gone") is False


def populate(store: MaildirStore) -> None:
    spawn_child(store, "sys-a", ChildEntry(id="planner", actor_class="m:Planner", role="planner",
                                           labels=["lead"], restart="always"))
    spawn_child(store, "sys-a", ChildEntry(id="coder-1", actor_class="m:Coder", role="coder",
                                           parent_id="planner", status="running"))
    spawn_child(store, "sys-b", ChildEntry(id="lonely", actor_class="m:L", restarts=3, status="failed"))
    upsert(store, "sys-a", ChildEntry(id="coder-1", actor_class="m:Coder", role="coder",
                                      parent_id="planner", status="running", restarts=1))
    upsert(store, "sys-a", ChildEntry(id="planner", actor_class="m:Planner", role="planner",
                                      labels=["lead"], restart="always", status="running"))


def index_docs(store: MaildirStore) -> dict[str, Any]:
    """The caches' contents, less the token that names each write (see ``cached_docs``)."""
    docs = {"index.json": read(store.layout.index)}
    for system_id in docs["index.json"]["roots"]:
        docs[system_id] = read(store.layout.children_json(system_id))
    return {name: untokened(doc) for name, doc in docs.items()}


def untokened(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != GEN_KEY}


def test_rebuild_index_equals_the_incremental_result(store: MaildirStore, layout: ProjectLayout) -> None:
    populate(store)
    incremental = index_docs(store)
    os.unlink(layout.index)
    for system_id in ("sys-a", "sys-b"):
        os.unlink(layout.children_json(system_id))
    rebuilt_index = store.rebuild_index()
    assert untokened(rebuilt_index) == incremental["index.json"]
    assert index_docs(store) == incremental
    assert [e.id for e in store.list_children("sys-a")] == ["coder-1", "planner"]
    assert store.list_children("sys-a")[0].restarts == 1


def test_rebuild_index_is_idempotent(store: MaildirStore) -> None:
    populate(store)
    first = store.rebuild_index()
    docs = index_docs(store)
    assert untokened(store.rebuild_index()) == untokened(first)
    assert index_docs(store) == docs


def test_rebuild_index_converges_after_a_partial_write(store: MaildirStore, layout: ProjectLayout) -> None:
    spawn_child(store, "sys", ChildEntry(id="old"))
    # A crash inside record_children, after children.json and before index.json:
    entry = ChildEntry(id="new", actor_class="m:New", updated_at=time.time())
    write_json(layout.actor_file("sys", "new", "supervision.json"),
               {"status": "starting", "restarts": 0, "updated_at": entry.updated_at}, "process")
    commit(store, "sys", "new", {}, child_meta(entry))
    children = read(layout.children_json("sys"))
    children["children"]["new"] = asdict(entry)
    write_json(layout.children_json("sys"), children, "process")
    assert store.resolve_child("new") is None, "the simulated crash left the index behind"
    index = store.rebuild_index()
    assert index["child_lookup"] == {"new": "sys", "old": "sys"}
    assert store.resolve_child("new") == "sys"
    assert store.list_children("sys")[0] == entry


def test_rebuild_index_drops_what_no_session_backs_and_skips_debris(store: MaildirStore,
                                                                   layout: ProjectLayout) -> None:
    spawn_child(store, "sys", ChildEntry(id="real"))
    os.makedirs(os.path.join(layout.system_dir("sys"), "children", ".tmp-dir"))
    os.makedirs(os.path.join(layout.sessions, ".hidden-system"))
    with open(os.path.join(layout.sessions, "stray-file"), "w") as handle:
        handle.write("x")
    children = read(layout.children_json("sys"))
    children["children"]["phantom"] = asdict(ChildEntry(id="phantom"))
    write_json(layout.children_json("sys"), children, "process")
    index = store.rebuild_index()
    assert index == {"version": 1, "roots": ["sys"], "child_lookup": {"real": "sys"}}
    assert [e.id for e in store.list_children("sys")] == ["real"]


def test_rebuild_index_survives_odd_sessions(store: MaildirStore, layout: ProjectLayout) -> None:
    spawn_child(store, "sys", ChildEntry(id="good"))
    odd = {
        "no-meta": {"state": {}},
        "null-meta": {"state": {}, "meta": None},
        "list-meta": {"state": {}, "meta": [1, 2]},
        "meta-without-id": {"state": {}, "meta": {"actor_class": "m:X"}},
    }
    for agent_id, doc in odd.items():  # written by hand: a worker commits none of these
        write_json(layout.actor_file("sys", agent_id, "session.json"), doc, "process")
    path = layout.actor_file("sys", "torn", "session.json")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as handle:
        handle.write("{torn")
    index = store.rebuild_index()
    assert sorted(index["child_lookup"]) == ["good", "list-meta", "meta-without-id", "no-meta", "null-meta"]
    entries = {e.id: e for e in store.list_children("sys")}
    assert entries["meta-without-id"].actor_class == "m:X"


def upsert_from_a_process(home: str, key: str, writer: int, count: int, start: Any) -> None:
    """Target of the writer processes (module level, so "spawn" can import it)."""
    store = MaildirStore(ProjectLayout(home, key), "process")
    start.wait(60)
    for n in range(count):
        upsert(store, "sys", ChildEntry(id=f"w{writer}-c{n}", actor_class="m:C", role=f"r{writer}"))
        upsert(store, f"sys-{writer}", ChildEntry(id=f"own{writer}-c{n}"))


def test_eight_processes_upserting_concurrently_lose_no_child(store: MaildirStore, layout: ProjectLayout) -> None:
    ctx = multiprocessing.get_context("spawn")
    writers, per_writer = 8, 5
    start = ctx.Barrier(writers)
    processes = []
    try:
        for writer in range(writers):
            process = ctx.Process(target=upsert_from_a_process,
                                  args=(layout.home, layout.key, writer, per_writer, start))
            process.start()
            processes.append(process)
        deadline = time.monotonic() + 60
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        assert [p.exitcode for p in processes] == [0] * writers
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join()
    shared = {f"w{w}-c{n}" for w in range(writers) for n in range(per_writer)}
    own = {f"own{w}-c{n}" for w in range(writers) for n in range(per_writer)}
    assert {e.id for e in store.list_children("sys")} == shared
    lookup = read(layout.index)["child_lookup"]
    assert set(lookup) == shared | own
    assert all(lookup[i] == "sys" for i in shared)
    assert all(lookup[f"own{w}-c{n}"] == f"sys-{w}" for w in range(writers) for n in range(per_writer))
    assert read(layout.index)["roots"] == sorted(["sys"] + [f"sys-{w}" for w in range(writers)])
    leftovers = [n for n in os.listdir(layout.root) if n.startswith(".tmp-")]
    assert leftovers == []


def test_a_busy_index_lock_raises_store_error(store: MaildirStore, layout: ProjectLayout,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indices_module, "LOCK_TIMEOUT", 0.1)
    blocked = MaildirStore(ProjectLayout(layout.home, layout.key), "process")
    # Another process's lock, as far as flock is concerned (a separate open file).
    holder = FileLock(os.path.join(layout.root, ".index.lock"), is_singleton=False)
    with holder:
        with pytest.raises(StoreError, match="index lock busy"):
            upsert(blocked, "sys", ChildEntry(id="w"))
    upsert(blocked, "sys", ChildEntry(id="w"))
    assert store.resolve_child("w") == "sys"


def test_rebuild_keeps_a_child_that_failed_before_its_first_commit(tmp_path) -> None:
    backend = project_backend(tmp_path / "home", tmp_path, "process")
    store = backend.store
    upsert(store, "main", ChildEntry(id="never-started", actor_class="m:Broken", role="r"))
    upsert(store, "main", ChildEntry(id="never-started", actor_class="m:Broken", role="r", status="failed"))
    incremental = {e.id: (e.actor_class, e.role, e.status) for e in store.list_children("main")}
    store.rebuild_index()
    rebuilt = {e.id: (e.actor_class, e.role, e.status) for e in store.list_children("main")}
    assert rebuilt == incremental == {"never-started": ("m:Broken", "r", "failed")}
    assert store.resolve_child("never-started") == "main"
    backend.close()
