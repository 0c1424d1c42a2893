"""The step journal's file: what a crash or a careless writer leaves in it never
stops an activation, and emptying it overwrites the records in place (a large file is
truncated)."""

from __future__ import annotations

import json
import os

from actors_runtime.backends.maildir.journal_file import KEEP_AT_MOST, JournalFile, read_journal


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
    size = os.path.getsize(path)
    reopened = JournalFile(str(path), "process")
    reopened.dirty = True
    reopened.clear()
    reopened.close()
    assert read_journal(str(path)) == []
    assert path.read_bytes() == bytes(size), "emptied in place, keeping its size"


def test_records_after_an_emptying_are_read_alone_and_the_next_activation_appends_to_them(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = JournalFile(str(path), "machine")
    for i in range(3):
        journal.append(json.dumps({"msg": "old", "key": f"long-key-of-an-old-record/{i}", "ok": "x" * 50}))
    journal.clear()
    journal.append(json.dumps({"msg": "new", "key": "k/0", "ok": 1}))
    journal.close()
    assert [(r["msg"], r["key"]) for r in read_journal(str(path))] == [("new", "k/0")]
    again = JournalFile(str(path), "process")  # a later activation: goes on after the record
    again.append(json.dumps({"msg": "new", "key": "k/1", "ok": 2}))
    again.close()
    assert [r["key"] for r in read_journal(str(path))] == ["k/0", "k/1"]


def test_a_record_after_a_torn_line_starts_a_line_of_its_own(tmp_path, caplog):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(json.dumps({"msg": "m", "key": "a/0", "ok": 1}).encode() + b'\n{"msg": "m", "ke')
    journal = JournalFile(str(path), "process")
    journal.append(json.dumps({"msg": "m", "key": "b/0", "ok": 2}))
    journal.close()
    assert [r["key"] for r in read_journal(str(path))] == ["a/0", "b/0"]


def test_a_journal_that_grew_large_is_truncated_when_emptied(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = JournalFile(str(path), "process")
    journal.append(json.dumps({"msg": "m", "key": "big/0", "ok": "x" * KEEP_AT_MOST}))
    journal.clear()
    journal.close()
    assert os.path.getsize(path) == 0 and read_journal(str(path)) == []


def test_a_missing_journal_reads_as_empty(tmp_path):
    assert read_journal(str(tmp_path / "none.jsonl")) == []
