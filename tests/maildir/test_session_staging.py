"""Staged session commits (group commit at "machine"): written into the spare without a
flush or an exchange, made durable by a later flush; the last flushed commit is never
written over meanwhile (runtime/backends/maildir/session_file.py)."""

from __future__ import annotations

import json
import os

import pytest
from actors_runtime.backends.maildir import durable
from actors_runtime.backends.maildir.durable import read_bytes
from actors_runtime.backends.maildir.layout import ProjectLayout
from actors_runtime.backends.maildir.session_file import SessionFile, read_session
from actors_runtime.backends.maildir.sessions import CHECKPOINT_EVERY, MaildirSession
from actors_runtime.errors import StoreError
from kill_plans import CONTEXT, run_then_kill


def _body(n: int, pad: int = 0) -> bytes:
    return json.dumps({"state": {"n": n, "pad": "p" * pad}}).encode()[:-1]


def _spare(path: str) -> str:
    return durable.Rewriter(path).spare


def _n(doc) -> int:
    return doc["state"]["n"]


def _lose_the_spare(path: str) -> None:
    """What a power loss may leave of a file written and not flushed: not its text."""
    size = os.path.getsize(_spare(path))
    with open(_spare(path), "r+b") as handle:
        handle.write(b"\0" * size)


@pytest.fixture
def syncs(monkeypatch):
    """The files flushed, by name, in order."""
    names: list[str] = []
    real = durable.sync_data

    def sync_data(fd):
        names.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(durable, "sync_data", sync_data)
    return names


def test_staged_commits_are_read_from_the_spare_and_never_written_over_the_last_flushed_one(tmp_path, syncs):
    path = str(tmp_path / "session.json")
    session = SessionFile(path, "machine")
    session.write(_body(1))
    session.write(_body(2))
    syncs.clear()
    for n in (3, 4, 5):
        session.write(_body(n, pad=(6 - n) * 50), flush=False)  # shorter and shorter: padded
        assert session.unflushed
        doc, number, from_spare = read_session(path)
        assert (_n(doc), number, from_spare) == (n, n, True)
        assert _n(json.loads(read_bytes(path))) == 2  # the name keeps the last flushed commit
    assert syncs == []
    _lose_the_spare(path)
    assert _n(read_session(path)[0]) == 2, "a power loss took more than the staged commits"


def test_a_flush_makes_the_staged_commit_durable_and_swaps_it_in(tmp_path, syncs):
    path = str(tmp_path / "session.json")
    session = SessionFile(path, "machine")
    session.write(_body(1))
    session.write(_body(2))
    session.write(_body(3), flush=False)
    session.write(_body(4), flush=False)
    syncs.clear()
    session.flush()
    assert syncs == [".session.json.spare"] and not session.unflushed
    assert read_session(path) == (json.loads(read_bytes(path)), 4, False)
    session.flush()  # nothing staged: nothing to do
    assert syncs == [".session.json.spare"]
    session.write(_body(5), flush=False)
    session.write(_body(6))  # a flushed commit over a staged one: it replaces it
    assert not session.unflushed and _n(read_session(path)[0]) == 6
    _lose_the_spare(path)
    assert _n(read_session(path)[0]) == 6


def test_a_first_commit_and_commits_at_process_are_never_staged(tmp_path, syncs):
    first = SessionFile(str(tmp_path / "a" / "session.json"), "machine")
    os.makedirs(tmp_path / "a")
    first.write(_body(1), flush=False)  # a spare without session.json would be no commit
    assert not first.unflushed and read_session(first.path)[:2] == (json.loads(read_bytes(first.path)), 1)
    os.makedirs(tmp_path / "b")
    at_process = SessionFile(str(tmp_path / "b" / "session.json"), "process")
    at_process.write(_body(1))
    at_process.write(_body(2), flush=False)
    assert not at_process.unflushed and _n(json.loads(read_bytes(at_process.path))) == 2


def test_the_next_load_flushes_a_staged_commit_before_it_swaps_it_in(tmp_path, syncs):
    path = str(tmp_path / "session.json")
    dead = SessionFile(path, "machine")
    dead.write(_body(1))
    dead.write(_body(2))
    dead.write(_body(3), flush=False)  # its writer dies here
    syncs.clear()
    restarted = SessionFile(path, "machine")
    assert _n(restarted.load()) == 3
    assert syncs[0] == ".session.json.spare", "swapped in before it was on disk"
    assert _n(json.loads(read_bytes(path))) == 3
    restarted.write(_body(4), flush=False)  # goes to the other file, not over 3
    _lose_the_spare(path)
    assert _n(read_session(path)[0]) == 3


def test_a_commit_that_checkpoints_the_ids_is_flushed_before_the_checkpoint(tmp_path):
    session = MaildirSession(ProjectLayout(str(tmp_path), "proj-12345678"), "main", "a", "machine")
    session.commit('{"n":0}', "{}", ["first"], ["first"])
    ids = ["first"]
    for k in range(1, CHECKPOINT_EVERY - 1):
        ids.append(f"m{k}")
        session.commit_unflushed(f'{{"n":{k}}}', "{}", [ids[-1]], ids)
        assert session.unflushed
    assert not os.path.exists(session.admitted_path)
    ids.append("last")
    session.commit_unflushed('{"n":-1}', "{}", ["last"], ids)
    assert not session.unflushed, "admitted.json names ids whose commit a power loss could take back"
    assert json.loads(read_bytes(session.admitted_path))["ids"] == ids
    session.close()


def _stage_forever(path: str, flushed, staged) -> None:
    session = SessionFile(path, "machine")
    session.write(_body(0))
    n = 0
    while True:
        n += 1
        session.write(_body(n, pad=n % 5 * 300), flush=n % 4 != 0)  # lengths vary: padding and growth
        staged.value = n
        if n % 3 == 0:
            session.flush()
        if not session.unflushed:
            flushed.value = n  # from here on a power loss must not take it back


@pytest.mark.timeout(60)
def test_a_committer_killed_at_any_moment_leaves_its_last_flushed_commit_or_a_newer_whole_one(tmp_path):
    path = str(tmp_path / "session.json")
    for _ in range(5):
        flushed, staged = CONTEXT.Value("q", 0), CONTEXT.Value("q", 0)
        run_then_kill(_stage_forever, (path, flushed, staged), lambda: flushed.value > 20)
        newest = _n(read_session(path)[0])
        # The process crash keeps every staged commit but one torn while written.
        assert flushed.value <= newest <= staged.value + 1
        # A power loss now may also lose the spare's text: never the last flushed commit.
        on_disk = tmp_path / "copy"
        on_disk.mkdir(exist_ok=True)
        for name in ("session.json", ".session.json.spare"):
            (on_disk / name).write_bytes((tmp_path / name).read_bytes())
        _lose_the_spare(str(on_disk / "session.json"))
        assert flushed.value <= _n(read_session(str(on_disk / "session.json"))[0]) <= newest
        assert _n(SessionFile(path, "machine").load()) == newest  # flushed, and put back at the name
        assert _n(json.loads(read_bytes(path))) == newest


@pytest.mark.parametrize("failing", ["staged", "flushed"])
def test_a_failed_write_over_a_staged_commit_leaves_that_commit_for_the_flush(tmp_path, monkeypatch, failing):
    path = str(tmp_path / "session.json")
    session = SessionFile(path, "machine")
    session.write(_body(1))
    session.write(_body(2))
    session.write(_body(3), flush=False)
    real = durable.overwrite

    def torn(fd, data, old_size):  # half of it reaches the spare, then the disk fails
        real(fd, data[:len(data) // 2], 0)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(durable, "overwrite", torn)
    with pytest.raises(StoreError):
        session.write(_body(4), flush=failing == "flushed")
    monkeypatch.setattr(durable, "overwrite", real)
    assert session.unflushed, "the staged commit 3 may be torn: it still needs its flush"
    session.flush()  # written again, whole, and flushed
    assert not session.unflushed and _n(read_session(path)[0]) == 3
    _lose_the_spare(path)
    assert _n(read_session(path)[0]) == 3
