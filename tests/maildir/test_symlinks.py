"""No write, rename or quarantine of the maildir backend follows a symlink out of the home.

A symlink (or a hard link, or a FIFO) is planted where the backend writes: at the
spare files beside every document it rewrites, at the temp names of atomic writes and
segments, at the documents themselves, at the doorbell and the in-flight marker, and
in place of ``corrupt/``, ``dead/``, ``log/``, ``fabric/`` and an actor's directory.
Each time the file or directory outside the home stays exactly as it was, and the
operation either succeeds (replacing the planted link, never writing through it) or
fails with ``StoreError`` leaving its input where it was.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Callable, Iterator

import pytest
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend
from actors_runtime.backends.base import Delivered
from actors_runtime.backends.maildir import MaildirBackend, durable, segment_writer
from actors_runtime.backends.maildir.durable import Rewriter, atomic_write
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.backends.maildir.quarantine import quarantine_bytes, quarantine_file
from actors_runtime.errors import StoreError
from actors_runtime.messages import AgentRef, InboxMessage
from actors_runtime.records import AgentRecord, ChildEntry

#: What the file outside the home holds, before and (it must be) after.
OUTSIDE_TEXT = b"outside the home: nothing may change this\n"
ALICE = AgentRef("alice", "tester", "sys")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the home."""
    path = tmp_path / "outside" / "precious.txt"
    path.parent.mkdir()
    path.write_bytes(OUTSIDE_TEXT)
    os.chmod(path, 0o644)
    return path


@pytest.fixture
def outside_dir(tmp_path: Path) -> Path:
    """An empty directory outside the home."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


def assert_untouched(outside: Path) -> None:
    assert outside.read_bytes() == OUTSIDE_TEXT, "a write went through the link to the file outside"
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o644
    assert sorted(p.name for p in outside.parent.iterdir()) == [outside.name], "a file appeared outside"


def is_plain_file(path: str | Path) -> bool:
    return stat.S_ISREG(os.lstat(path).st_mode)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[MaildirBackend]:
    project = tmp_path / "project"
    project.mkdir()
    opened = open_backend("maildir", str(tmp_path / "home"), project_key(project), "machine")
    assert isinstance(opened, MaildirBackend)
    opened.ensure_project(str(project))
    yield opened
    opened.close()


def spare_of(path: str) -> str:
    return Rewriter(path).spare


# -- the spares beside rewritten documents ---------------------------------------------------

#: name -> (the document's path, the write that rewrites it, what it holds afterwards)
Case = tuple[Callable[[MaildirBackend], str], Callable[[MaildirBackend], None], Callable[[MaildirBackend], object]]


def _commit(backend: MaildirBackend, ids: int = 1) -> None:
    backend.store.session("main", "a1").commit('{"n":7}', "{}", [f"m{i}" for i in range(ids)],
                                               [f"m{i}" for i in range(ids)])


def _record(backend: MaildirBackend) -> None:
    backend.store.record_children("main", [ChildEntry(id="a1", status="running")])


def _session_doc(backend: MaildirBackend) -> object:
    loaded = backend.store.load_session("main", "a1")
    return None if loaded is None else loaded.state


CASES: dict[str, Case] = {
    "session.json": (lambda b: b.layout.actor_file("main", "a1", "session.json"), _commit, _session_doc),
    "admitted.json": (lambda b: b.layout.actor_file("main", "a1", "admitted.json"),
                      lambda b: _commit(b, ids=200),
                      lambda b: len(set(backend_admitted(b)))),
    "supervision.json": (lambda b: b.layout.actor_file("main", "a1", "supervision.json"), _record,
                         lambda b: [e.status for e in b.store.list_children("main")]),
    "children.json": (lambda b: b.layout.children_json("main"), _record,
                      lambda b: [e.id for e in b.store.list_children("main")]),
    "index.json": (lambda b: b.layout.index, _record, lambda b: b.store.resolve_child("a1")),
    "a lease record": (lambda b: b.layout.record("a1"),
                       lambda b: b.fabric.publish(AgentRecord(agent_id="a1", pid=4242)),
                       lambda b: b.fabric.read("a1").pid),  # type: ignore[union-attr]
    "the system's document": (lambda b: b.layout.actor_file("main", None, "session.json"),
                              lambda b: b.store.save_system("main", {"pid": 1}),
                              lambda b: json.loads(Path(b.layout.actor_file("main", None, "session.json"))
                                                   .read_bytes())["meta"]),
}
EXPECTED = {"session.json": {"n": 7}, "admitted.json": 200, "supervision.json": ["running"],
            "children.json": ["a1"], "index.json": "main", "a lease record": 4242,
            "the system's document": {"pid": 1}}


def backend_admitted(backend: MaildirBackend) -> list[str]:
    loaded = backend.store.load_session("main", "a1")
    return [] if loaded is None else list(loaded.admitted)


def prepare_dir(path: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)


@pytest.fixture(params=["exchange", "rename fallback"])
def rewrite_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Rewrites by ``renameat2`` exchange, or (where it is missing) by ``atomic_write``."""
    if request.param == "rename fallback":
        monkeypatch.setattr(durable, "_renameat2", None)
    return str(request.param)


@pytest.mark.parametrize("case", CASES)
def test_a_symlink_at_a_documents_spare_is_replaced_not_written_through(
        backend: MaildirBackend, outside: Path, case: str, rewrite_mode: str) -> None:
    target, write, read = CASES[case]
    path = target(backend)
    prepare_dir(path)
    os.symlink(outside, spare_of(path))
    write(backend)
    write(backend)  # the second write reuses whatever the first left as the spare
    assert_untouched(outside)
    assert read(backend) == EXPECTED[case]
    assert is_plain_file(path)


@pytest.mark.parametrize("case", CASES)
def test_a_symlink_in_a_documents_own_place_is_replaced_not_written_through(
        backend: MaildirBackend, outside: Path, case: str, rewrite_mode: str) -> None:
    target, write, read = CASES[case]
    path = target(backend)
    prepare_dir(path)
    os.symlink(outside, path)
    write(backend)
    write(backend)
    assert_untouched(outside)
    assert read(backend) == EXPECTED[case]
    assert is_plain_file(path)


@pytest.mark.parametrize("case", ["session.json", "index.json", "a lease record"])
def test_a_hard_link_at_a_spare_is_replaced_not_written_through(backend: MaildirBackend, outside: Path,
                                                              case: str) -> None:
    target, write, read = CASES[case]
    path = target(backend)
    prepare_dir(path)
    os.link(outside, spare_of(path))  # the same file system: tmp_path holds both
    write(backend)
    assert outside.read_bytes() == OUTSIDE_TEXT
    assert os.stat(outside).st_nlink == 1, "the link in the home was replaced by a file of its own"
    assert read(backend) == EXPECTED[case]


def test_a_fifo_at_a_spare_neither_blocks_a_commit_nor_is_written(backend: MaildirBackend) -> None:
    path = backend.layout.actor_file("main", "a1", "session.json")
    prepare_dir(path)
    os.mkfifo(spare_of(path))
    _commit(backend)  # would block for ever in open() without O_NONBLOCK
    assert _session_doc(backend) == {"n": 7}


def test_an_empty_directory_at_a_spare_is_replaced_and_one_with_files_fails_the_commit(
        backend: MaildirBackend) -> None:
    path = backend.layout.actor_file("main", "a1", "session.json")
    prepare_dir(path)
    os.mkdir(spare_of(path))
    _commit(backend)
    assert _session_doc(backend) == {"n": 7}
    other = backend.layout.actor_file("main", "a1", "admitted.json")
    os.mkdir(spare_of(other))
    (Path(spare_of(other)) / "kept").write_text("not ours")
    with pytest.raises(StoreError):
        Rewriter(other).write(b"{}")
    assert (Path(spare_of(other)) / "kept").read_text() == "not ours"


def test_a_symlink_at_an_atomic_writes_temp_name_fails_the_write_and_changes_nothing(
        tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "docs"
    directory.mkdir()
    target = directory / "doc.json"
    target.write_bytes(b"old")
    planted = str(directory / ".tmp-planted")
    os.symlink(outside, planted)
    monkeypatch.setattr(durable, "temp_name", lambda _directory: planted)
    with pytest.raises(StoreError, match="doc.json: write failed"):
        atomic_write(str(target), b"new")
    assert_untouched(outside)
    assert target.read_bytes() == b"old"


def test_a_symlink_at_a_segments_temp_name_fails_the_delivery_and_changes_nothing(
        tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = MaildirMailbox(tmp_path / "mailbox", durability="process")
    planted = os.path.join(box.paths.log, ".tmp-planted")
    os.symlink(outside, planted)
    monkeypatch.setattr(segment_writer, "temp_name", lambda _directory: planted)
    try:
        with pytest.raises(StoreError, match="deliver failed"):
            box.deliver([InboxMessage.create(ALICE, "task", {"n": 1})])
    finally:
        box.close()
    assert_untouched(outside)


# -- directories something is moved or written into ------------------------------------------


@pytest.fixture
def box(tmp_path: Path) -> Iterator[MaildirMailbox]:
    handle = MaildirMailbox(tmp_path / "home" / "mailbox", durability="process")
    yield handle
    handle.close()


def replace_with_link(directory: str, target: Path) -> None:
    os.rmdir(directory)
    os.symlink(target, directory)


def drop_file(box: MaildirMailbox, name: str, data: bytes) -> None:
    """A Maildir file dropped by another program (temp, then rename)."""
    tmp = os.path.join(box.paths.new, f".tmp-by-hand-{name}")
    Path(tmp).write_bytes(data)
    os.rename(tmp, os.path.join(box.paths.new, name))


def test_a_symlinked_corrupt_dir_keeps_an_unreadable_file_where_it_was(
        box: MaildirMailbox, outside_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    replace_with_link(box.paths.corrupt, outside_dir)
    name = f"{10**18:020d}-bad.json"
    drop_file(box, name, b"not json")
    with caplog.at_level(logging.WARNING):
        assert box.drain() == []
    assert list(outside_dir.iterdir()) == []
    assert Path(box.paths.cur, name).read_bytes() == b"not json", "the input stays in the mailbox"
    assert "stays where it is" in caplog.text


def test_quarantine_into_a_symlinked_corrupt_dir_is_refused(box: MaildirMailbox, outside_dir: Path) -> None:
    replace_with_link(box.paths.corrupt, outside_dir)
    segment = Path(box.paths.log, "00000000000000000001-1-ab-0.seg")
    segment.write_bytes(b"garbage")
    assert quarantine_file(box.paths, str(segment), "a bad header") is False
    assert quarantine_bytes(box.paths, "process", segment.name, 16, b"torn bytes", "a torn record") is False
    assert list(outside_dir.iterdir()) == []
    assert segment.read_bytes() == b"garbage"


def test_quarantine_never_replaces_an_earlier_copy_of_the_same_name(box: MaildirMailbox) -> None:
    for data in (b"first", b"second"):
        assert quarantine_bytes(box.paths, "process", "s.seg", 16, data, "a torn record") is True
        path = Path(box.paths.cur, "same.json")
        path.write_bytes(data)
        assert quarantine_file(box.paths, str(path), "unparsable") is True
    kept = sorted(p.read_bytes() for p in Path(box.paths.corrupt).iterdir())
    assert kept == [b"first", b"first", b"second", b"second"]


def test_burying_into_a_symlinked_dead_dir_fails_and_leaves_the_message_pending(
        tmp_path: Path, box: MaildirMailbox, outside_dir: Path) -> None:
    replace_with_link(box.paths.dead, outside_dir)
    box.deliver([InboxMessage.create(ALICE, "task", {"n": 1}, msg_id="poison")])
    box.claim()
    (delivered,) = box.drain()
    with pytest.raises(StoreError, match="not a directory of its own"):
        box.bury(delivered, "killed the worker", 3)
    assert list(outside_dir.iterdir()) == []
    box.close()
    again = MaildirMailbox(box.root, durability="process")
    try:
        again.claim()
        assert [d.id for d in again.recover()] == ["poison"], "not acked: still there"
    finally:
        again.close()


def test_dead_letters_are_not_read_or_deleted_through_a_symlinked_dead_dir(
        box: MaildirMailbox, outside_dir: Path) -> None:
    message = InboxMessage.create(ALICE, "task", {"n": 1}, msg_id="m1")
    letter = outside_dir / "m1.json"
    letter.write_text(json.dumps({"message": json.loads(message.to_wire()), "reason": "x"}))
    replace_with_link(box.paths.dead, outside_dir)
    assert box.dead_letters() == []
    assert box.requeue("m1") is False
    assert letter.exists()


def test_a_symlinked_log_dir_fails_delivery_and_receives_nothing(box: MaildirMailbox, outside_dir: Path) -> None:
    replace_with_link(box.paths.log, outside_dir)
    with pytest.raises(StoreError, match="not a directory of its own"):
        box.deliver([InboxMessage.create(ALICE, "task", {"n": 1})])
    assert list(outside_dir.iterdir()) == []


def test_a_symlinked_fabric_dir_fails_publish_and_receives_nothing(backend: MaildirBackend,
                                                                  outside_dir: Path) -> None:
    replace_with_link(backend.layout.fabric, outside_dir)
    with pytest.raises(StoreError, match="not a directory of its own"):
        backend.fabric.publish(AgentRecord(agent_id="a1", pid=1))
    assert list(outside_dir.iterdir()) == []


def test_a_symlinked_actor_dir_fails_the_commit_and_receives_nothing(backend: MaildirBackend,
                                                                    outside_dir: Path) -> None:
    actor_dir = backend.layout.child_dir("main", "a1")
    os.makedirs(os.path.dirname(actor_dir))
    os.symlink(outside_dir, actor_dir)
    with pytest.raises(StoreError, match="not a directory of its own"):
        _commit(backend)
    assert list(outside_dir.iterdir()) == []


def test_a_symlinked_system_dir_is_not_locked_through(backend: MaildirBackend, outside_dir: Path) -> None:
    os.symlink(outside_dir, backend.layout.system_dir("elsewhere"))
    with pytest.raises(StoreError, match="not a directory of its own"):
        backend.store.lock_system("elsewhere")
    assert list(outside_dir.iterdir()) == []


# -- the doorbell and the in-flight marker ---------------------------------------------------


def test_a_symlink_at_the_doorbell_is_never_rung_and_the_reader_replaces_it(
        box: MaildirMailbox, outside: Path) -> None:
    os.unlink(box.paths.bell)
    os.symlink(outside, box.paths.bell)
    sender = MaildirMailbox(box.root, durability="process", create=False)
    try:
        sender.deliver([InboxMessage.create(ALICE, "task", {"n": 1}, msg_id="m1")])  # rings
        box.claim()
        assert stat.S_ISFIFO(os.lstat(box.paths.bell).st_mode)
        sender.deliver([InboxMessage.create(ALICE, "task", {"n": 2}, msg_id="m2")])
        assert box.wait(0), "the new bell rings"
        assert [d.id for d in box.drain()] == ["m1", "m2"]
    finally:
        sender.close()
    assert_untouched(outside)


@pytest.mark.parametrize("plant", ["symlink", "hard link"])
def test_the_inflight_marker_is_never_written_through_a_link(box: MaildirMailbox, outside: Path,
                                                             plant: str) -> None:
    (os.symlink if plant == "symlink" else os.link)(outside, box.paths.inflight)
    box.forget_inflight()  # a write from outside the worker
    assert_untouched(outside)
    box.inflight.set("m1")
    assert box.inflight.read() == "m1"
    assert_untouched(outside)
    assert is_plain_file(box.paths.inflight)


def test_a_delivered_message_survives_every_refusal(box: MaildirMailbox, outside_dir: Path) -> None:
    """The refusals above never cost a message: one delivered before dead/ and
    corrupt/ were replaced by links is handed out, and acked, as usual."""
    box.deliver([InboxMessage.create(ALICE, "task", {"n": 1}, msg_id="kept")])
    replace_with_link(box.paths.dead, outside_dir)
    replace_with_link(box.paths.corrupt, outside_dir)
    box.claim()
    batch: list[Delivered] = box.drain()
    assert [d.id for d in batch] == ["kept"]
    assert box.ack(batch) == 1
    assert list(outside_dir.iterdir()) == []
