"""The index caches held in memory between reads (``cached_docs``): used only while
the file still holds what this process wrote, never a stale copy."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from actors_runtime.backends.maildir import cached_docs as cached_docs_module
from actors_runtime.backends.maildir import indices as indices_module
from actors_runtime.backends.maildir.cached_docs import GEN_KEY
from actors_runtime.backends.maildir.json_docs import dump
from actors_runtime.backends.maildir.layout import ProjectLayout
from actors_runtime.backends.maildir.store import MaildirStore
from actors_runtime.errors import StoreError
from actors_runtime.records import ChildEntry


@pytest.fixture
def layout(tmp_path: Path) -> ProjectLayout:
    return ProjectLayout(str(tmp_path / "home"), "proj-0000abcd")


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The cache files the indices read and parsed whole."""
    seen: list[str] = []
    real = indices_module.read_json

    def counting(path: str) -> Any:
        seen.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(indices_module, "read_json", counting)
    yield seen


def test_what_this_process_wrote_is_read_back_without_parsing_the_files(layout, parses):
    store = MaildirStore(layout, "process")
    store.record_children("sys", [ChildEntry(id=f"a{i}", actor_class="m:A") for i in range(3)])
    parses.clear()
    assert store.resolve_child("a1") == "sys"
    assert [e.id for e in store.list_children("sys")] == ["a0", "a1", "a2"]
    assert store.child_entry("a2")[0] == "sys"
    store.record_children("sys", [ChildEntry(id="a3", actor_class="m:A", status="running")])
    assert parses == []
    with open(layout.index, "rb") as handle:
        assert handle.read(8) == b'{"' + GEN_KEY.encode() + b'":'  # the token leads the file


def test_a_write_by_another_process_is_seen_at_once(layout, parses):
    mine, theirs = MaildirStore(layout, "process"), MaildirStore(layout, "process")
    mine.record_children("sys", [ChildEntry(id="a", actor_class="m:A")])
    assert mine.resolve_child("a") == "sys"
    theirs.record_children("sys", [ChildEntry(id="b", actor_class="m:B", status="failed")])
    parses.clear()
    assert mine.resolve_child("b") == "sys"
    assert {e.id: e.status for e in mine.list_children("sys")}["b"] == "failed"
    assert parses  # read whole: the file no longer holds this process's write
    mine.record_children("sys", [ChildEntry(id="c", actor_class="m:C")])  # on top of theirs
    assert [e.id for e in theirs.list_children("sys")] == ["a", "b", "c"]


def test_a_file_rewritten_in_place_by_a_writer_without_tokens_is_read_whole(layout):
    store = MaildirStore(layout, "process")
    store.record_children("sys", [ChildEntry(id="a", actor_class="m:A")])
    with open(layout.children_json("sys"), "rb") as handle:
        doc = json.load(handle)
    del doc[GEN_KEY]  # as an older version writes it
    doc["children"]["a"]["status"] = "failed"
    with open(layout.children_json("sys"), "r+") as handle:  # the same inode
        handle.write(json.dumps(doc, sort_keys=True, separators=(",", ":")))
        handle.truncate()
    assert store.list_children("sys")[0].status == "failed"


def test_a_failed_write_holds_nothing_and_the_next_read_parses_the_file(layout, parses, monkeypatch):
    store = MaildirStore(layout, "process")
    store.record_children("sys", [ChildEntry(id="a", actor_class="m:A")])

    def broken(path: str, doc: Any, durability: str) -> None:
        raise StoreError(path, "write failed: no space left on device")

    with monkeypatch.context() as patched:
        patched.setattr("actors_runtime.backends.maildir.cached_docs.write_json", broken)
        patched.setattr("actors_runtime.backends.maildir.cached_docs.write_bytes", broken)
        with pytest.raises(StoreError):
            store.record_children("sys", [ChildEntry(id="b", actor_class="m:B")])
    parses.clear()
    assert [e.id for e in store.list_children("sys")] == ["a"]  # what the file holds
    assert parses


def test_children_written_entry_by_entry_are_the_bytes_a_whole_encoding_makes(layout, monkeypatch):
    store = MaildirStore(layout, "process")
    store.record_children("sys", [ChildEntry(id=f"a{i}", actor_class="m:A", labels=["é", '"q"']) for i in range(5)])
    encoded: list[Any] = []
    real = cached_docs_module._dump

    def counting(doc: Any) -> bytes:
        encoded.append(doc)
        return real(doc)

    monkeypatch.setattr(cached_docs_module, "_dump", counting)
    store.record_children("sys", [ChildEntry(id="a2", actor_class="m:A", status="running"),
                                  ChildEntry(id="a-new", actor_class="m:B")])
    assert sorted(doc["id"] for doc in encoded) == ["a-new", "a2"]  # only what changed
    with open(layout.children_json("sys"), "rb") as handle:
        data = handle.read()
    assert data.rstrip() == dump(json.loads(data))  # (a rewrite in place pads with blanks)
    assert [e.id for e in MaildirStore(layout, "process").list_children("sys")] == [
        "a-new", "a0", "a1", "a2", "a3", "a4"]
    assert store.remove_child("sys", "a0")
    with open(layout.children_json("sys"), "rb") as handle:
        data = handle.read()
    assert data.rstrip() == dump(json.loads(data))  # (a rewrite in place pads with blanks) and b'"a0"' not in data
