"""The step journal's file: what a crash or a careless writer leaves in it never
stops an activation, and emptying it is one truncate."""

from __future__ import annotations

import json
import os

from actors_runtime.backends.maildir.journal_file import JournalFile, read_journal


def test_a_torn_last_line_and_lines_that_are_not_objects_are_skipped(tmp_path, caplog):
    path = tmp_path / "journal.jsonl"
    good = [{"msg": "m", "key": "a/0", "ok": 1}, {"msg": "m", "key": "b/0", "ok": [2]}]
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in good[:1]) + b"[1, 2]\nnot json\n"
                     + json.dumps(good[1]).encode() + b"\n" + b'{"msg": "m", "key": "c/0", "o')
    assert read_journal(str(path)) == good
    assert "does not parse" in caplog.text and "not an object" in caplog.text


def test_records_appended_survive_the_writer_and_clearing_empties_the_file(tmp_path):
    path = tmp_path / "actor" / "journal.jsonl"
    journal = JournalFile(str(path), "machine")
    journal.append(json.dumps({"msg": "m", "key": "k/0", "ok": None}))
    journal.append(json.dumps({"msg": "m", "key": "k/1", "ok": "x"}))
    journal.close()
    assert [r["key"] for r in read_journal(str(path))] == ["k/0", "k/1"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    reopened = JournalFile(str(path), "process")
    reopened.dirty = True
    reopened.clear()
    reopened.close()
    assert read_journal(str(path)) == [] and os.path.getsize(path) == 0


def test_a_missing_journal_reads_as_empty(tmp_path):
    assert read_journal(str(tmp_path / "none.jsonl")) == []
