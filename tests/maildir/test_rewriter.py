"""No inode churn on the hot path: state commits rewrite two files in place."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal

from actors_runtime.backends.maildir import durable
from actors_runtime.backends.maildir.durable import Rewriter, read_bytes
from conftest import wait_until


def test_rewriter_replaces_contents_by_swapping_two_inodes(tmp_path):
    path = str(tmp_path / "session.json")
    writer = Rewriter(path, "machine")
    writer.write(b'{"n": 0}')
    writer.write(b'{"n": 1, "pad": "' + b"p" * 100 + b'"}')
    inodes = {os.stat(path).st_ino, os.stat(writer.spare).st_ino}
    for n in range(2, 20):
        writer.write(json.dumps({"n": n}).encode())
        assert json.loads(read_bytes(path)) == {"n": n}
        assert {os.stat(path).st_ino, os.stat(writer.spare).st_ino} == inodes
    assert sorted(os.listdir(tmp_path)) == [".session.json.spare", "session.json"]


def test_rewriter_falls_back_to_atomic_write_without_renameat2(tmp_path, monkeypatch):
    monkeypatch.setattr(durable, "_renameat2", None)
    path = str(tmp_path / "session.json")
    writer = Rewriter(path, "process")
    for n in range(3):
        writer.write(json.dumps({"n": n}).encode())
    assert json.loads(read_bytes(path)) == {"n": 2}


def _rewrite_forever(path: str) -> None:
    writer = Rewriter(path, "process")
    n = 0
    while True:
        n += 1
        # Alternate lengths so padding and growth both happen.
        writer.write(json.dumps({"n": n, "pad": "x" * (n % 7) * 50}).encode())


def test_a_rewriter_killed_at_any_moment_leaves_a_whole_document(tmp_path):
    path = str(tmp_path / "session.json")
    Rewriter(path, "process").write(b'{"n": 0}')
    context = multiprocessing.get_context("forkserver")
    for _ in range(5):
        process = context.Process(target=_rewrite_forever, args=(path,))
        process.start()
        try:
            wait_until(lambda: _count_while_written(path) > 50)
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.join()
        assert isinstance(json.loads(read_bytes(path))["n"], int)  # whole, once nobody writes


def _count_while_written(path: str) -> int:
    """The document's count, or -1 for a read that spanned two writes: a reader that
    keeps the old file open while it is swapped out and rewritten can see a torn text,
    which readers retry (``maildir.json_docs.read_json``)."""
    try:
        return json.loads(read_bytes(path))["n"]
    except ValueError:
        return -1
