"""Shared fixtures: every root under tmp_path, no test may leak a process, and a
``backend`` fixture that runs a test once per backend.

Actor classes that workers import live in ``tests/support`` (on ``sys.path`` here,
and on ``PYTHONPATH`` for programs the tests start: ``support_env()``).
"""

from __future__ import annotations

import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

TESTS_DIR = Path(__file__).parent
SUPPORT_DIR = TESTS_DIR / "support"
REPO_DIR = TESTS_DIR.parent
if str(SUPPORT_DIR) not in sys.path:
    sys.path.insert(0, str(SUPPORT_DIR))

from actors_runtime.address import Address, project_key  # noqa: E402
from actors_runtime.backends import open_backend  # noqa: E402
from actors_runtime.backends.base import Backend  # noqa: E402
from actors_runtime.backends.maildir import segment_writer  # noqa: E402
from actors_runtime.backends.maildir.layout import ProjectLayout  # noqa: E402
from actors_runtime.backends.memory import forget_all  # noqa: E402
from redis_server import RedisServer  # noqa: E402

from actors import ActorSystem  # noqa: E402  (after the path above: workers import support modules)

#: The backends every contract test runs against.
BACKENDS = ("memory", "maildir", "redis")


def support_env(**extra: str) -> dict[str, str]:
    """The environment for a program a test starts: it finds the support modules."""
    paths = [str(SUPPORT_DIR), str(REPO_DIR)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}


def _children_of() -> dict[int, int]:
    """pid -> ppid for every process on the machine."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":  # a zombie is dead already; its parent reaps it
            continue
        table[int(entry)] = int(fields[1])
    return table


#: Processes started for the whole session (the shared redis-server): not leaks.
SESSION_PROCESSES: set[int] = set()


def descendants(root: int | None = None) -> set[int]:
    """Live descendants of ``root`` (default: this process).

    The fork server and the resource tracker are per-process singletons of
    multiprocessing that live as long as the test session; they are not leaks, nor
    are ``SESSION_PROCESSES``.
    """
    root = os.getpid() if root is None else root
    table = _children_of()
    found: set[int] = set()
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in table.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    for singleton in (getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None),
                      getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None)):
        found.discard(singleton)
    return found - SESSION_PROCESSES


def process_gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie counts: only its reaping is left)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except OSError:
        return True


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01) -> object:
    """Return ``predicate()`` once truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


def mailbox_dir(address: Address) -> str:
    """Where the maildir backend keeps the mailbox of ``address`` (for tests that
    look at the files themselves)."""
    return ProjectLayout(address.home, address.project_key).mailbox(address.system_id, address.actor_id)


def open_project(address: Address, durability: str = "process") -> Backend:
    """The backend of the project ``address`` belongs to (maildir, or the Redis server
    its home names), as another process would open it (close it after use)."""
    if address.home.startswith(("redis://", "unix://")):
        return open_backend(address.home, "", address.project_key, durability)
    return open_backend("maildir", address.home, address.project_key, durability)


def handling(ref) -> bool:
    """Whether an actor's worker has claimed a message for handling (its marker is set)."""
    if ref.address.home.startswith(("redis://", "unix://")):
        backend = open_project(ref.address)
        try:
            view = backend.view(ref.address)
            try:
                return view.inflight_id() is not None
            finally:
                view.close()
        finally:
            backend.close()
    try:
        with open(os.path.join(mailbox_dir(ref.address), ".inflight"), "rb") as handle:
            return handle.read(1) not in (b"", b"\0")
    except FileNotFoundError:
        return False


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail a test that leaves a process of its own behind (and kill the leftovers)."""
    before = descendants()
    yield
    deadline = time.monotonic() + 5.0
    leaked = descendants() - before
    while leaked and time.monotonic() < deadline:
        time.sleep(0.05)
        leaked = descendants() - before
    if leaked:
        for pid in leaked:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        pytest.fail(f"test leaked processes: {sorted(leaked)}")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


@pytest.fixture
def system_backend(request: pytest.FixtureRequest) -> str:
    """The backend ``system`` runs on: maildir, unless a test is marked ``ON_EVERY_BACKEND``."""
    name = str(getattr(request, "param", "maildir"))
    if name == "redis":
        return str(request.getfixturevalue("redis_server").url)
    return name


#: Runs a test that uses ``system`` once on maildir and once on redis.
ON_EVERY_BACKEND = pytest.mark.parametrize("system_backend", ["maildir", "redis"], indirect=True)


@pytest.fixture
def system(home: Path, project: Path, system_backend: str) -> Iterator[ActorSystem]:
    """A system at durability "process" (fast); tests of power-loss paths make their own."""
    with ActorSystem(home=home, project=project, durability="process", backend=system_backend) as actor_system:
        yield actor_system


class Clock:
    """A clock a test moves by hand (unix seconds)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session", autouse=True)
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """$XDG_RUNTIME_DIR under the session's tmp dir: the Redis in-flight markers' pages
    (runtime/backends/redis/inflight.py) go there, not to /dev/shm."""
    path = tmp_path_factory.mktemp("xdg-runtime")
    path.chmod(0o700)
    previous = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("XDG_RUNTIME_DIR", None)
    else:
        os.environ["XDG_RUNTIME_DIR"] = previous


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session (tests keep apart by their project keys);
    skipped locally without the binary, a failure in CI."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    assert server.process is not None
    SESSION_PROCESSES.add(server.process.pid)
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend_url(backend_name: str, home: Path, request: pytest.FixtureRequest) -> str:
    """The name or URL that opens the backend under test."""
    if backend_name == "memory":
        return f"memory://{home}"
    if backend_name == "redis":
        return str(request.getfixturevalue("redis_server").url)
    return backend_name


@pytest.fixture
def open_project_backend(backend_url: str, home: Path, project: Path,
                         clock: Clock) -> Iterator[Callable[..., Backend]]:
    """Opens the test's project on the backend under test, as many times as a test
    needs (as separate processes would); every one is closed at teardown."""
    opened: list[Backend] = []

    def opener(durability: str = "process") -> Backend:
        name = backend_url
        backend = open_backend(name, str(home), project_key(project), durability, clock=clock)
        backend.ensure_project(str(project))
        opened.append(backend)
        return backend

    yield opener
    for backend in opened:
        backend.close()
    forget_all()


@pytest.fixture
def backend(open_project_backend: Callable[..., Backend]) -> Backend:
    """One project on the backend under test (memory, maildir), with a fake clock."""
    return open_project_backend()


class HeldFlush:
    """Stands in for the segment writer's ``sync_data``: the first flush waits until
    ``release`` is set, so other threads append while it runs; every flush is counted
    and really done (or, with ``fail_after_first``, every later one fails)."""

    def __init__(self, fail_after_first: bool = False) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0
        self.fail_after_first = fail_after_first
        self._real = segment_writer.sync_data

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            assert self.release.wait(30)
        elif self.fail_after_first:
            raise OSError(5, "Input/output error")
        self._real(fd)


def sleeps_observed(monkeypatch: pytest.MonkeyPatch, module: object) -> threading.Event:
    """Give ``module`` a ``time`` whose ``sleep`` first sets the returned Event: a
    test learns that a wait loop was entered without guessing with a sleep of its
    own. Everything else is the real ``time``."""
    slept = threading.Event()

    class _ObservedTime:
        def __getattr__(self, name: str) -> object:
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            slept.set()
            time.sleep(seconds)

    monkeypatch.setattr(module, "time", _ObservedTime())
    return slept
