"""Shared fixtures: every root under tmp_path, and no test may leak a process."""

from __future__ import annotations

import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from actors import ActorSystem
from actors_runtime import segments


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


def descendants(root: int | None = None) -> set[int]:
    """Live descendants of ``root`` (default: this process).

    The fork server and the resource tracker are per-process singletons of
    multiprocessing that live as long as the test session; they are not leaks.
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
    return found


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


def handling(ref) -> bool:
    """Whether an actor's worker has claimed a message for handling (its marker is set)."""
    try:
        with open(os.path.join(ref.address.mailbox_dir(), ".inflight"), "rb") as handle:
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
def system(home: Path, project: Path) -> Iterator[ActorSystem]:
    """A system at durability "process" (fast); tests of power-loss paths make their own."""
    with ActorSystem(home=home, project=project, durability="process") as actor_system:
        yield actor_system


class HeldFlush:
    """Stands in for ``runtime.segments.sync_data``: the first flush waits until
    ``release`` is set, so other threads append while it runs; every flush is counted
    and really done (or, with ``fail_after_first``, every later one fails)."""

    def __init__(self, fail_after_first: bool = False) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0
        self.fail_after_first = fail_after_first
        self._real = segments.sync_data

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
