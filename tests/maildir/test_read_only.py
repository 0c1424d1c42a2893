"""A home that cannot be written: every failure is a ``StoreError`` naming the path and
the cause (never a raw ``OSError``), and the CLI says so in one line.

The home is made read-only for real: by a read-only bind mount when the tests run as
root (chmod does not stop root), by taking the write bits away otherwise. Where
neither is possible the tests skip, except in CI, where they fail.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend
from actors_runtime.backends.maildir import MaildirBackend
from actors_runtime.errors import StoreError
from actors_runtime.messages import AgentRef, InboxMessage
from actors_runtime.records import AgentRecord, ChildEntry
from conftest import support_env

from actors import ActorSystem
from actors.cli.exit_codes import EXIT_NOT_RUNNING, EXIT_OK, EXIT_STORE

ALICE = AgentRef("alice", "tester", "sys")
#: How a write to the read-only home fails (a read-only mount, or no write permission).
CAUSES = ("Read-only file system", "Permission denied")


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"a read-only home cannot be made here: {why}")
    pytest.skip(f"a read-only home cannot be made here: {why}")


@pytest.fixture
def make_read_only() -> Iterator[Callable[[Path], None]]:
    """Makes a directory (and all below it) read-only for this user; undone at teardown."""
    undo: list[Callable[[], None]] = []

    def make(path: Path) -> None:
        if os.geteuid() == 0:
            mount = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, text=True)
            if mount.returncode != 0:
                _unavailable(mount.stderr.strip())
            undo.append(lambda: subprocess.run(["umount", "-l", str(path)], check=True))
            remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True, text=True)
            if remount.returncode != 0:
                _unavailable(remount.stderr.strip())
            return
        modes = {}
        for directory, dirs, files in os.walk(path):
            for name in [".", *dirs, *files]:
                entry = os.path.join(directory, name)
                modes[entry] = stat.S_IMODE(os.lstat(entry).st_mode)
        for entry, mode in modes.items():
            os.chmod(entry, mode & ~0o222)
        undo.append(lambda: [os.chmod(entry, mode) for entry, mode in modes.items()])

    yield make
    for step in reversed(undo):
        step()


@pytest.fixture
def populated(tmp_path: Path, project: Path) -> Iterator[MaildirBackend]:
    """A project with one actor (a1) that has everything: files, a session, a record,
    a message waiting, skeletons; then its home, for the test to make read-only."""
    backend = open_backend("maildir", str(tmp_path / "home"), project_key(project), "machine")
    assert isinstance(backend, MaildirBackend)
    backend.ensure_project(str(project))
    lock = backend.store.lock_system("main")
    backend.store.save_system("main", {"pid": 1})
    address = backend.address("main", "a1")
    backend.provision(address, 100)
    backend.store.record_children("main", [ChildEntry(id="a1")])
    backend.store.session("main", "a1").commit("{}", "{}", ["m0"], ["m0"])
    backend.fabric.publish(AgentRecord(agent_id="a1", pid=os.getpid()), lease=-1)  # expired: gc removes it
    backend.deliver(address, [InboxMessage.create(ALICE, "task", {"n": 1})])
    backend.prepare("main", 1)
    lock.release()
    backend.close()
    yield open_backend("maildir", str(tmp_path / "home"), project_key(project), "machine")  # type: ignore[misc]


def _claim_and_mark(backend: MaildirBackend) -> None:
    box = backend.mailbox(backend.address("main", "a1"))
    try:
        box.claim(0)
        box.inflight.set("m1")
    finally:
        box.close()


#: Every kind of write the backend makes, on an existing project.
WRITES: dict[str, Callable[[MaildirBackend], Any]] = {
    "lock the system": lambda b: b.store.lock_system("main"),
    "save the system": lambda b: b.store.save_system("main", {}),
    "provision a new actor": lambda b: b.provision(b.address("main", "a2"), 100),
    "record a new limit": lambda b: b.provision(b.address("main", "a1"), 5),
    "make a mailbox": lambda b: b.mailbox(b.address("main", "a3"), create=True),
    "deliver": lambda b: b.deliver(b.address("main", "a1"), [InboxMessage.create(ALICE, "task", {})]),
    "publish a record": lambda b: b.fabric.publish(AgentRecord(agent_id="a1", pid=1)),
    "withdraw a record": lambda b: b.fabric.withdraw("a1"),
    "collect expired records": lambda b: b.fabric.gc(),
    "record a child": lambda b: b.store.record_children("main", [ChildEntry(id="a1", status="running")]),
    "remove a child": lambda b: b.store.remove_child("main", "a1"),
    "rebuild the indices": lambda b: b.store.rebuild_index(),
    "commit": lambda b: b.store.session("main", "a1").commit("{}", "{}", ["m1"], ["m0", "m1"]),
    "mark a message in flight": _claim_and_mark,
}


@pytest.mark.parametrize("write", WRITES)
def test_every_write_to_a_read_only_home_is_a_store_error_naming_the_path_and_the_cause(
        populated: MaildirBackend, make_read_only: Callable[[Path], None], write: str) -> None:
    make_read_only(Path(populated.location))
    try:
        with pytest.raises(StoreError) as info:
            WRITES[write](populated)
    finally:
        populated.close()
    assert info.value.path.startswith(populated.location), info.value
    assert any(cause in info.value.reason for cause in CAUSES), info.value


def test_reading_a_read_only_home_still_works(populated: MaildirBackend,
                                              make_read_only: Callable[[Path], None]) -> None:
    make_read_only(Path(populated.location))
    try:
        populated.prepare("main", 3)  # skeletons are an optimisation: logged, not raised
        assert [e.id for e in populated.store.list_children("main")] == ["a1"]
        assert populated.store.resolve_child("a1") == "main"
        assert populated.store.load_session("main", "a1") is not None
    finally:
        populated.close()


def test_an_actor_system_on_a_read_only_home_raises_store_error(
        populated: MaildirBackend, project: Path, make_read_only: Callable[[Path], None]) -> None:
    populated.close()
    make_read_only(Path(populated.location))
    with pytest.raises(StoreError) as info:
        ActorSystem(populated.location, project=project)
    assert info.value.path.startswith(populated.location)
    assert any(cause in info.value.reason for cause in CAUSES), info.value


def test_an_actor_system_on_an_empty_read_only_home_raises_store_error(
        tmp_path: Path, project: Path, make_read_only: Callable[[Path], None]) -> None:
    home = tmp_path / "empty-home"
    home.mkdir()
    make_read_only(home)
    with pytest.raises(StoreError) as info:
        ActorSystem(home, project=project)
    assert info.value.path.startswith(str(home))


def run_cli(home: str, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "actors.cli", "--home", home, "--project", str(project), *args],
                          capture_output=True, text=True, env=support_env(), timeout=60)


@pytest.mark.parametrize("args, code", [
    (["ask", "a1", "1", "--timeout", "1"], EXIT_NOT_RUNNING),  # refused before it needs to write
    (["tell", "a1", "{}"], EXIT_STORE),
    (["rebuild-index"], EXIT_STORE),
    (["gc"], EXIT_STORE),
    (["ps", "--json"], EXIT_OK),
    (["inbox", "a1"], EXIT_OK),
], ids=lambda value: value[0] if isinstance(value, list) else str(value))
def test_the_cli_on_a_read_only_home_says_what_failed_in_one_line(
        populated: MaildirBackend, project: Path, make_read_only: Callable[[Path], None],
        args: list[str], code: int) -> None:
    populated.close()
    make_read_only(Path(populated.location))
    result = run_cli(populated.location, project, *args)
    assert result.returncode == code, result
    if code == EXIT_OK:
        assert result.stderr == ""
        return
    (line,) = result.stderr.splitlines()
    if code == EXIT_NOT_RUNNING:  # no system runs, so nothing could answer: nothing is written
        assert "nothing can start it now" in line, line
        return
    assert line.startswith(f"actors: {populated.location}"), line
    assert any(cause in line for cause in CAUSES), line


def test_ps_on_a_read_only_home_with_a_damaged_index_lists_the_rebuilt_rows(
        populated: MaildirBackend, project: Path, make_read_only: Callable[[Path], None]) -> None:
    Path(populated.layout.index).write_text("{not json")
    populated.close()
    make_read_only(Path(populated.location))
    result = run_cli(populated.location, project, "ps", "--json")
    assert result.returncode == EXIT_OK, result
    assert [row["id"] for row in json.loads(result.stdout)] == ["a1"]


def test_a_read_only_home_still_counts_and_shows_its_waiting_messages(
        populated: MaildirBackend, project: Path, make_read_only: Callable[[Path], None]) -> None:
    address = populated.address("main", "a1")
    populated.close()
    make_read_only(Path(populated.location))
    backend = open_backend("maildir", populated.location, project_key(project), "machine")
    view = backend.view(address)
    try:
        assert view.pending_count() == 1
        assert [m.body for m in view.peek()] == [{"n": 1}]
    finally:
        view.close()
        backend.close()
    result = run_cli(populated.location, project, "inbox", "a1", "--json")
    assert result.returncode == EXIT_OK, result
    assert '"n": 1' in result.stdout or '"n":1' in result.stdout, result.stdout
