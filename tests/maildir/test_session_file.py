"""A session commit is one fdatasync: two inodes, a commit number and a CRC, no
directory flush per commit; the reader takes the newest whole commit whichever name
the directory kept after a power loss (runtime/backends/maildir/session_file.py)."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest
import sample_actors
from actors_runtime.backends.maildir import durable, session_file
from actors_runtime.backends.maildir.durable import exchange, read_bytes
from actors_runtime.backends.maildir.json_docs import DamagedDocument, write_json
from actors_runtime.backends.maildir.session_file import EXCHANGE_RETRIES, SessionFile, read_session, seal
from conftest import open_project, wait_until
from kill_plans import CONTEXT, run_then_kill

from actors import ActorSystem


def _body(n: int, pad: int = 0) -> bytes:
    return json.dumps({"state": {"n": n, "pad": "p" * pad}}).encode()[:-1]


def _spare(path: str) -> str:
    return durable.Rewriter(path).spare


def _committed(tmp_path, last: int, durability: str = "machine") -> tuple[str, SessionFile]:
    """A session file with commits 1 to ``last`` made (the spare holds ``last - 1``)."""
    path = str(tmp_path / "session.json")
    session = SessionFile(path, durability)
    for n in range(1, last + 1):
        session.write(_body(n))
    return path, session


def _lose_the_last_exchange(path: str) -> None:
    """What a power loss may leave: the directory as it was before the last exchange."""
    exchange(_spare(path), path)


@pytest.fixture
def flushes(monkeypatch):
    counted = {"file": 0, "directory": 0}
    real_sync, real_dir = durable.sync_data, durable.fsync_dir

    def sync_data(fd):
        counted["file"] += 1
        real_sync(fd)

    def fsync_dir(path):
        counted["directory"] += 1
        real_dir(path)

    monkeypatch.setattr(durable, "sync_data", sync_data)
    monkeypatch.setattr(durable, "fsync_dir", fsync_dir)
    return counted


def test_a_commit_at_machine_flushes_the_file_once_and_the_directory_only_when_a_name_is_made(tmp_path, flushes):
    path = str(tmp_path / "session.json")
    session = SessionFile(path, "machine")
    for n in range(10):
        session.write(_body(n, pad=n % 3 * 40))
    # The first commit renames the spare into place, the second makes a new spare:
    # each flushes the directory once; the eight after them only their own file.
    assert flushes == {"file": 10, "directory": 2}
    assert json.loads(read_bytes(path))["state"]["n"] == 9
    restarted = SessionFile(path, "machine")  # a new worker: it does not know the names are on disk
    assert restarted.load()["state"]["n"] == 9
    for n in range(10, 15):
        restarted.write(_body(n))
    assert flushes == {"file": 15, "directory": 3}


def test_at_process_a_commit_flushes_nothing(tmp_path, flushes):
    session = SessionFile(str(tmp_path / "session.json"), "process")
    for n in range(5):
        session.write(_body(n))
    assert flushes == {"file": 0, "directory": 0}


def test_the_newest_whole_commit_wins_whichever_name_the_directory_kept(tmp_path):
    path, session = _committed(tmp_path, 5)
    _lose_the_last_exchange(path)
    assert json.loads(read_bytes(path))["state"]["n"] == 4  # the name leads to the older text
    doc, number, from_spare = read_session(path)
    assert (doc["state"]["n"], number, from_spare) == (5, 5, True)
    # A new worker puts the newest back at the name before it writes, so its next
    # commit goes into the older inode, never over commit 5.
    restarted = SessionFile(path, "machine")
    assert restarted.load()["state"]["n"] == 5
    assert json.loads(read_bytes(path))["commit"] == 5
    restarted.write(_body(6))
    assert json.loads(read_bytes(path))["state"]["n"] == 6
    assert json.loads(read_bytes(_spare(path)))["state"]["n"] == 5
    _lose_the_last_exchange(path)
    assert read_session(path)[0]["state"]["n"] == 6


def test_a_torn_commit_is_never_taken_even_when_it_parses(tmp_path):
    path, session = _committed(tmp_path, 3)  # the spare now holds commit 2
    old = read_bytes(_spare(path))
    new = seal(_body(7), 4)
    assert len(old) == len(new)
    # A tear at a sector boundary: the new text's start, the old text's end. It parses
    # (state 7 with commit 2's number and CRC), and only the CRC tells it is torn.
    cut = new.index(b"7") + 1
    torn = new[:cut] + old[cut:]
    assert json.loads(torn)["state"]["n"] == 7
    with open(_spare(path), "r+b") as handle:
        handle.write(torn)
    assert read_session(path)[0]["state"]["n"] == 3
    # And at session.json's name (the directory kept the other mapping): the spare's
    # whole commit is taken, with a warning.
    _lose_the_last_exchange(path)
    doc, number, from_spare = read_session(path)
    assert (doc["state"]["n"], number, from_spare) == (3, 3, True)


def test_a_damaged_session_without_a_commit_in_its_spare_is_reported(tmp_path):
    path = str(tmp_path / "session.json")
    SessionFile(path, "process").write(_body(1))  # no spare yet
    with open(path, "r+b") as handle:
        handle.write(b"garbage!")
    with pytest.raises(DamagedDocument):
        read_session(path)


def test_an_unsealed_document_counts_at_session_json_and_never_at_the_spare(tmp_path):
    path, _ = _committed(tmp_path, 2)
    write_json(path, {"state": {"n": 40}}, "machine")  # an older home's text, or one written by hand
    assert read_session(path) == ({"state": {"n": 40}}, 0, False)
    assert SessionFile(path, "machine").load() == {"state": {"n": 40}}
    session = SessionFile(path, "machine")
    session.write(_body(41))  # the sealed commit 3 now waits at the spare's name: it is older
    assert read_session(path)[0]["state"]["n"] == 41
    _lose_the_last_exchange(path)  # the unsealed text at the name again: not older than it looks
    assert read_session(path)[0]["state"]["n"] == 40


def test_a_spare_without_session_json_is_no_commit(tmp_path):
    path, _ = _committed(tmp_path, 2)
    os.unlink(path)  # a first commit is flushed into its name before it returns
    assert read_session(path) == (None, 0, False)


def _commit_forever(path: str, acked) -> None:
    session = SessionFile(path, "machine")
    n = 0
    while True:
        n += 1
        session.write(_body(n, pad=n % 5 * 300))  # lengths vary: padding and growth both happen
        acked.value = n  # the commit returned: from here on it must never be lost


@pytest.mark.timeout(60)
def test_a_committer_killed_at_any_moment_loses_no_returned_commit_whichever_name_the_directory_kept(tmp_path):
    path = str(tmp_path / "session.json")
    for _ in range(5):
        acked = CONTEXT.Value("q", 0)
        run_then_kill(_commit_forever, (path, acked), lambda: acked.value > 20)
        newest = read_session(path)[0]["state"]["n"]
        assert newest in (acked.value, acked.value + 1)  # the next may have been written whole
        _lose_the_last_exchange(path)
        assert read_session(path)[0]["state"]["n"] == newest
        assert SessionFile(path, "machine").load()["state"]["n"] == newest  # and put back at the name
        assert json.loads(read_bytes(path))["state"]["n"] == newest


@pytest.mark.timeout(60)
def test_an_actor_restarted_after_a_lost_exchange_activates_from_the_newest_commit(home, project):
    """A real system at "machine": the directory loses the last commit's exchange (as a
    power loss may leave it); the restarted actor settles the names and goes on."""
    with ActorSystem(home=home, project=project, durability="machine") as system:
        ref = system.spawn(sample_actors.Counter, name="counter")
        for _ in range(50):
            ref.tell({"n": 1})
        wait_until(lambda: ref.ask("count", timeout=20) == 50, timeout=30)
        system.stop(ref)
        backend = open_project(ref.address)
        try:
            path = backend.layout.actor_file("main", "counter", "session.json")
        finally:
            backend.close()
        last = json.loads(read_bytes(path))["commit"]
        _lose_the_last_exchange(path)
        assert json.loads(read_bytes(path))["commit"] == last - 1
        assert ref.ask("count", timeout=20) == 50  # activated again
        assert json.loads(read_bytes(path))["commit"] > last  # settled, then committed on
        ref.tell({"n": 1})
        wait_until(lambda: ref.ask("count", timeout=20) == 51, timeout=30)
        system.stop(ref)
        assert json.loads(read_bytes(path))["state"]["count"] == 51
        assert ref.ask("count", timeout=20) == 51


def _commit_until_stopped(path: str, returned, stop) -> None:
    session = SessionFile(path, "process")
    n = 0
    while not stop.is_set():
        n += 1
        session.write(_body(n))
        returned.value = n  # this commit returned: no read that starts after this may be older


def test_a_reader_racing_a_busy_committer_never_goes_back_to_an_older_commit(tmp_path):
    path = str(tmp_path / "session.json")
    SessionFile(path, "process").write(_body(0))
    context = multiprocessing.get_context("fork")
    returned, stop = context.Value("q", 0, lock=False), context.Event()
    writer = context.Process(target=_commit_until_stopped, args=(path, returned, stop))
    writer.start()
    try:
        wait_until(lambda: returned.value > 10, timeout=30)
        seen = 0
        for _ in range(5000):
            floor = max(seen, returned.value)
            doc, number, _ = read_session(path)
            # Not older than a commit that returned, nor than one read before (the
            # spare can show a commit before the exchange that makes it the newest).
            assert number >= floor, f"read commit {number} after commit {floor}"
            assert doc["state"]["n"] == number - 1  # the document is that commit's own text
            seen = number
        assert seen > 20  # the writer really committed while we read
    finally:
        stop.set()
        writer.join(10)
        if writer.is_alive():
            writer.kill()
            writer.join()


def _opens_with(monkeypatch, before_spare):
    """Opens by ``read_session`` counted by name; ``before_spare`` runs before each open
    of the spare, between the two opens (where a writer's exchange may fall)."""
    opened: list[str] = []
    real = session_file.open_for_reading

    def open_for_reading(name):
        if name.endswith(".spare"):
            before_spare()
        opened.append(os.path.basename(name))
        return real(name)

    monkeypatch.setattr(session_file, "open_for_reading", open_for_reading)
    return opened


def test_an_exchange_between_the_two_opens_is_seen_and_the_newest_commit_read(tmp_path, monkeypatch):
    path, session = _committed(tmp_path, 3)  # session.json: commit 3; the spare: commit 2
    commits = iter([4])
    # The writer commits (into the spare, then the exchange) after session.json was
    # opened: both names now lead to commit 3's file, and a reader of the two open
    # files would miss commit 4, which returned before the read was made.
    opened = _opens_with(monkeypatch, lambda: [session.write(_body(n)) for n in commits])
    doc, number, from_spare = read_session(path)
    assert (doc["state"]["n"], number, from_spare) == (4, 4, False)
    assert opened == ["session.json", ".session.json.spare"] * 2  # opened again, once


def test_commits_after_both_opens_are_read_in_the_files_held_open(tmp_path, monkeypatch):
    path, session = _committed(tmp_path, 3, "process")
    opened = _opens_with(monkeypatch, lambda: None)
    real_read = session_file.read_open
    reads: list[int] = []

    def read_open(fd):
        reads.append(fd)
        if len(reads) == 1:  # between the two reads the writer commits twice: both files rewritten
            session.write(_body(4))
            session.write(_body(5))
        return real_read(fd)

    monkeypatch.setattr(session_file, "read_open", read_open)
    doc, number, _ = read_session(path)
    assert (doc["state"]["n"], number) == (5, 5)
    assert opened == ["session.json", ".session.json.spare"]  # no open made again
    assert len(reads) == 2


def test_names_that_keep_leading_to_one_file_give_one_of_the_last_two_commits(tmp_path, monkeypatch):
    path, session = _committed(tmp_path, 3, "process")
    # Every open of the spare comes after an exchange: both names always lead to one file.
    opened = _opens_with(monkeypatch, lambda: exchange(_spare(path), path))
    doc, number, from_spare = read_session(path)
    assert number in (2, 3) and doc["state"]["n"] == number and not from_spare
    assert len(opened) == 2 * (EXCHANGE_RETRIES + 1)  # bounded
