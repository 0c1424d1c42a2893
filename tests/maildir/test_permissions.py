"""Everything under a home is its owner's only: directories 0700, files 0600 (FIFOs
too), whatever the umask of the processes that made them; and a home that another
user owns is refused, by ``ActorSystem`` and by the CLI."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import fleet_actors
import pytest
import sample_actors
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend
from actors_runtime.backends.maildir.durable import Rewriter, atomic_write, make_dirs
from actors_runtime.backends.maildir.layout import check_home
from actors_runtime.errors import StoreError
from conftest import support_env, wait_until

from actors import ActorSystem
from actors.cli.exit_codes import EXIT_STORE

#: A uid no test runs as (``nobody`` on most systems).
OTHER_UID = 65534
#: The modes every entry of a home must have, by kind.
PRIVATE = {"dir": 0o700, "file": 0o600, "fifo": 0o600}


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes_under(root: Path) -> dict[str, tuple[str, int]]:
    """Every entry under ``root`` (``root`` too): relative path -> (kind, permission bits).
    Entries that vanish while walking (a temp file) are left out."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in [".", *dirs, *files]:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            kind = ("dir" if stat.S_ISDIR(info.st_mode) else "fifo" if stat.S_ISFIFO(info.st_mode)
                    else "file" if stat.S_ISREG(info.st_mode) else "other")
            found[os.path.normpath(os.path.relpath(path, root))] = (kind, stat.S_IMODE(info.st_mode))
    return found


def not_private(found: dict[str, tuple[str, int]]) -> dict[str, str]:
    return {path: f"{kind} {mode:04o}" for path, (kind, mode) in found.items() if PRIVATE.get(kind) != mode}


@pytest.mark.parametrize("mask", [0, 0o022], ids=["umask-000", "umask-022"])
def test_everything_a_running_system_leaves_in_its_home_is_its_owners_only(
        tmp_path: Path, project: Path, mask: int) -> None:
    home = tmp_path / "made-by-the-system"  # made by the system, so the home itself counts too
    with umask(mask):
        # "spawn": the workers start from this process, under this umask (a fork
        # server started by an earlier test would have kept its own).
        with ActorSystem(home, project=project, pool_size=1, start_method="spawn") as system:
            counter = system.spawn(sample_actors.Counter, name="counter")
            counter.tell({"n": 2})
            assert counter.ask("count", timeout=30) == 2
            poison = system.spawn(fleet_actors.Poison, name="poison", secrets={"cure": str(tmp_path / "no")})
            poison.tell({"die": True})
            wait_until(lambda: system.inspect(poison).dead == 1, timeout=60)
            running = modes_under(home)
        stopped = modes_under(home)
    kinds = {os.path.basename(path): kind for path, (kind, _) in {**running, **stopped}.items()}
    # What the walk must have seen, so that it checked every kind of file the backend makes.
    for name, kind in {".bell": "fifo", ".inflight": "file", "session.json": "file", "index.json": "file",
                       ".index.lock": "file", ".system.lock": "file", "counter.json": "file",
                       "log": "dir", "dead": "dir"}.items():
        assert kinds.get(name) == kind, f"the walk saw no {kind} {name}"
    assert any(path.endswith(".seg") for path in running), "no segment was seen"
    assert any("/dead/" in path and kind == "file" for path, (kind, _) in stopped.items()), "no dead letter"
    assert any(os.path.basename(path).startswith(".spare-") for path in stopped), "no skeleton"
    assert not_private(running) == {}
    assert not_private(stopped) == {}


def test_make_dirs_gives_every_directory_it_makes_the_owners_mode(tmp_path: Path) -> None:
    with umask(0):
        make_dirs(str(tmp_path / "a" / "b" / "c"))
    assert not_private(modes_under(tmp_path / "a")) == {}


@pytest.mark.parametrize("mask", [0, 0o022])
def test_documents_are_written_private_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    with umask(mask):
        atomic_write(str(tmp_path / "atomic.json"), b"{}")
        Rewriter(str(tmp_path / "rewritten.json")).write(b"{}")
        Rewriter(str(tmp_path / "rewritten.json")).write(b"{}")  # the old file became the spare
        Rewriter(str(tmp_path / "prepared.json")).prepare()
    written = modes_under(tmp_path)
    del written["."]  # pytest's
    assert not_private(written) == {}


def test_a_document_of_an_older_home_is_narrowed_when_it_is_next_rewritten(tmp_path: Path) -> None:
    target = tmp_path / "session.json"
    writer = Rewriter(str(target))
    for _ in range(2):  # a target and a spare, as an older version left them
        writer.write(b"{}")
    for path in (target, tmp_path / ".session.json.spare"):
        os.chmod(path, 0o644)
    writer.write(b'{"a":1}')
    writer.write(b'{"a":2}')
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / ".session.json.spare").st_mode) == 0o600
    assert target.read_bytes().rstrip() == b'{"a":2}'


# -- the owner of the home -----------------------------------------------------------------


def test_a_home_of_another_uid_is_refused_and_ones_own_is_not(tmp_path: Path) -> None:
    check_home(str(tmp_path))
    check_home(str(tmp_path / "not-made-yet"))
    with pytest.raises(StoreError, match=f"uid {os.stat(tmp_path).st_uid}, not to this user") as info:
        check_home(str(tmp_path), uid=os.stat(tmp_path).st_uid + 1)
    assert info.value.path == str(tmp_path)


@pytest.fixture
def foreign_home(tmp_path: Path) -> Path:
    """A home that belongs to another user (root can give it away)."""
    if os.geteuid() != 0:
        pytest.skip("only root can give a directory to another user")
    home = tmp_path / "theirs"
    home.mkdir()
    os.chown(home, OTHER_UID, OTHER_UID)
    return home


def test_an_actor_system_refuses_a_home_another_user_owns(foreign_home: Path, project: Path) -> None:
    with pytest.raises(StoreError, match=f"belongs to uid {OTHER_UID}") as info:
        ActorSystem(foreign_home, project=project)
    assert info.value.path == str(foreign_home)
    assert list(foreign_home.iterdir()) == [], "nothing was made in it"


def test_the_backend_refuses_a_home_another_user_owns(foreign_home: Path, project: Path) -> None:
    with pytest.raises(StoreError, match="belongs to uid"):
        open_backend("maildir", str(foreign_home), project_key(project), "process")


@pytest.mark.parametrize("command", [["ps"], ["tell", "anyone", "{}"], ["ask", "anyone", "1"], ["gc"]])
def test_the_cli_refuses_a_home_another_user_owns_in_one_line(foreign_home: Path, project: Path,
                                                              command: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "actors.cli", "--home", str(foreign_home), "--project",
                             str(project), *command], capture_output=True, text=True, env=support_env(),
                            timeout=60)
    assert result.returncode == EXIT_STORE, result
    assert result.stderr.splitlines() == [f"actors: {foreign_home}: the home belongs to uid {OTHER_UID}, "
                                          f"not to this user (uid {os.geteuid()}); use a home of your own "
                                          "(--home or ACTORS_HOME)"]
