"""The warm pool: workers started and imported, and actor storage made, ahead of time.

Workers are started, have imported the runtime and the modules of the actor classes
the system spawned (or was told to preload), and wait for a spec on their pipe. A
spawn takes one and only hands over a spec. The backend prepares actors' storage
ahead too (``Backend.prepare``). Both are refilled by one background thread once
spawns pause, or at once when the pool is empty.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from typing import Any

from .. import control
from ..backends.base import Backend
from ..threads import start_thread
from .launcher import TERMINATE_GRACE, Launcher, kill, readable, send

log = logging.getLogger(__name__)

#: The pool refills once no spawn has taken from it for this many seconds.
REFILL_DELAY = 0.05


class Pool:
    """Idle warm workers of one system (see the module docstring)."""

    def __init__(self, launcher: Launcher, backend: Backend, system_id: str, size: int,
                 boot_timeout: float, preload: tuple[str, ...] = ()) -> None:
        self.launcher, self.backend, self.system_id = launcher, backend, system_id
        self.size = size
        self.boot_timeout = boot_timeout
        self._idle: collections.deque[tuple[Any, Any]] = collections.deque()
        self._modules: set[str] = set(preload)
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._closing_r, self._closing_w = os.pipe()  # ends a wait for a booting worker
        self._closed = False
        self._thread: threading.Thread | None = None
        self._last_take = 0.0

    def start(self) -> None:
        if self.size > 0:
            self._thread = start_thread(self._refill, "actors-pool")
            self._wanted.set()

    def pids(self) -> list[int]:
        with self._lock:
            return [process.pid for process, _ in self._idle]

    def take(self) -> tuple[Any, Any] | None:
        """An idle warm worker, or ``None`` (the caller starts one cold)."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                process, conn = self._idle.popleft()
            if process.exitcode is None:
                return process, conn
            conn.close()

    def note_module(self, module: str) -> None:
        """Have idle and future workers import ``module`` (an actor class's)."""
        if self.size == 0 or module == "__main__":  # workers load the main script anyway
            return
        with self._lock:
            if module in self._modules:
                return
            self._modules.add(module)
            for _, conn in self._idle:
                send(conn, control.preload([module]))

    def refill_soon(self) -> None:
        """Top up once spawns pause: starting a process (and preparing storage)
        competes with a new actor's first messages for the machine's cores, and a
        burst of spawns is better served from what is left and refilled in one go."""
        self._last_take = time.monotonic()
        self._wanted.set()

    def _refill(self) -> None:
        while not self._closed:
            self._wanted.wait()
            self._wanted.clear()
            while not self._closed:  # debounce: wait for a quiet REFILL_DELAY
                quiet_for = time.monotonic() - self._last_take
                with self._lock:
                    empty = not self._idle
                # An empty pool has nothing left to serve a burst from: under continuous
                # starts (activations with max_active) quiet never comes, and every
                # start would be a cold one. Start the next worker now.
                if quiet_for >= REFILL_DELAY or empty:
                    break
                self._wanted.wait(REFILL_DELAY - quiet_for)
                self._wanted.clear()
            try:
                # Storage first: a full pool of workers is what spawns (and the
                # benchmark) wait for, and the storage must be ready by then.
                self.backend.prepare(self.system_id, self.size)
            except OSError as exc:
                log.error("pool: could not prepare actors' storage: %s", exc)
            while not self._closed:
                with self._lock:
                    need_worker = len(self._idle) < self.size
                    modules = sorted(self._modules)
                if not need_worker:
                    break
                try:
                    started = self.launcher.start("pool")
                except OSError as exc:
                    log.error("pool: could not start a worker: %s", exc)
                    break
                booted = self._boot(started, modules)
                with self._lock:
                    if booted and not self._closed:
                        self._idle.append(started)
                        continue
                close_idle([started])
                if self._closed:
                    return
                # Not again until the next spawn asks: a worker that dies while
                # booting would die the same way in a tight loop.
                log.error("pool: a new worker exited while booting (exit code %s)", started[0].exitcode)
                break

    def _boot(self, started: tuple[Any, Any], modules: list[str]) -> bool:
        """Have a new worker import ``modules`` and wait until it has: only a booted
        worker is offered to a spawn (a booting one would make the spawn wait for the
        interpreter to start, and would compete with it for the cores meanwhile).
        Returns False if it died first or the pool closed meanwhile."""
        process, conn = started
        send(conn, control.preload(modules))
        deadline = time.monotonic() + self.boot_timeout
        while not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("pool: worker %s took over %s s to boot", process.pid, self.boot_timeout)
                return True
            ready = readable([conn, process.sentinel, self._closing_r], remaining)
            if conn in ready:
                try:
                    raw = conn.recv_bytes()
                except (EOFError, OSError):
                    return False
                if control.parse_event(raw).kind == control.PRELOADED:
                    return True
            elif process.sentinel in ready:
                return False
        return False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = list(self._idle), collections.deque()
        self._wanted.set()
        os.write(self._closing_w, b"x")
        if self._thread is not None:
            self._thread.join(TERMINATE_GRACE * 5)
        close_idle(idle)
        if self._thread is None or not self._thread.is_alive():  # else it may still wait on them
            os.close(self._closing_r)
            os.close(self._closing_w)


def close_idle(idle: list[tuple[Any, Any]]) -> None:
    """EOF tells an unprovisioned worker to exit; then make sure it did."""
    for _, conn in idle:
        conn.close()
    for process, _ in idle:
        process.join(TERMINATE_GRACE)
        if process.exitcode is None:
            kill(process)
