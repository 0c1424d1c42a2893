"""The ids a maildir session carries since its checkpoint, kept encoded between commits:
a failed commit leaves them as before, and a later activation reads exactly the ids
committed, across checkpoints."""

from __future__ import annotations

import json
import os
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Iterator

import pytest
from actors_runtime.address import project_key
from actors_runtime.admitted import AdmittedSet
from actors_runtime.backends import open_backend
from actors_runtime.backends.maildir import MaildirBackend
from actors_runtime.backends.maildir.durable import Rewriter
from actors_runtime.backends.maildir.sessions import CHECKPOINT_EVERY


@pytest.fixture(scope="module", autouse=True)
def resource_tracker_running() -> None:
    resource_tracker.ensure_running()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[MaildirBackend]:
    project = tmp_path / "project"
    project.mkdir()
    opened = open_backend("maildir", str(tmp_path / "home"), project_key(project), "process")
    assert isinstance(opened, MaildirBackend)
    opened.ensure_project(os.path.abspath(project))
    yield opened
    opened.close()


def test_a_failed_commit_leaves_no_ids_behind_and_each_commit_after_it_is_read_back(
        backend: MaildirBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    session, admitted = backend.store.session("main", "a"), AdmittedSet()
    committed: list[str] = []
    real_write = Rewriter.write

    def failing(self: Rewriter, data: bytes) -> None:
        raise OSError(5, "Input/output error")

    for i in range(CHECKPOINT_EVERY * 2 + 7):
        ids = [f"m{i}"] if i % 3 else [f"m{i}", f"n{i}"]
        for msg_id in ids:
            admitted.insert(msg_id)
        if i % 10 == 4:  # this commit fails; the caller passes its ids again with the next
            monkeypatch.setattr(Rewriter, "write", failing)
            with pytest.raises(OSError):
                session.commit(json.dumps({"i": i}), "{}", ids, admitted)
            monkeypatch.setattr(Rewriter, "write", real_write)
        session.commit(json.dumps({"i": i}), "{}", ids, admitted)
        committed += ids
        reader = backend.store.session("main", "a")
        doc = reader.load()
        assert doc is not None and doc.state == {"i": i}
        # Right after a checkpoint the old tail is read twice (sessions.py): the same ids.
        assert set(doc.admitted) == set(committed), f"commit {i}"
        with open(session.path) as handle:
            tail = json.load(handle)["admitted"]
        assert tail == committed[len(committed) - len(tail):], "the tail is not the last ids, in order"
    # A session loaded from the files goes on from the tail it read.
    reloaded = backend.store.session("main", "a")
    reloaded.load()
    admitted.insert("last")
    reloaded.commit("{}", "{}", ["last"], admitted)
    assert set(backend.store.session("main", "a").load().admitted) == {*committed, "last"}
