"""Starting worker processes and watching them: one wait on pipes and sentinels.

Every wait of the parent on pipes and process sentinels goes through ``readable``
(one ``poll`` over all of them, with a deadline); no thread polls ``is_alive()``.
Stopping is polite, then firm: a stop command, a grace period, SIGTERM, SIGKILL.

Under the fork server, a worker whose actor class lives in a module is started
without re-running the program's main script (``scriptless``); one whose class is
in ``__main__``, and every warm-pool worker (its class is not known yet), runs it.
"""

from __future__ import annotations

import math
import multiprocessing
import select
import signal
from typing import Any, Callable

from .. import control, tracing
from ..errors import InvalidSpec
from ..worker.main_guard import EXIT_UNGUARDED_MAIN, WORKER_NAME_PREFIX, unguarded_reason
from ..worker.pipe_entry import pipe_main
from . import scriptless, worker_logs

#: Default start method, chosen by measurement (docs/benchmarks.md): "fork" is the
#: fastest but unsafe once the parent runs threads (ours always does); "forkserver"
#: starts a child in ~20-26 ms against ~60-75 ms for "spawn" and keeps the parent's
#: descriptors out of the children, so a pipe's EOF reliably means the parent died.
DEFAULT_START_METHOD = "forkserver"
#: Modules imported once in the fork server, so each child starts with them loaded
#: (``scriptless``: a child unpickles its process class from there; ``server_warmup``
#: runs a worker's codecs there, so each child starts with them warm).
PRELOAD = ["actors_runtime.worker.pipe_entry", "actors_runtime.backends.maildir", "actors",
           "actors_runtime.parent.scriptless", "actors_runtime.worker.server_warmup"]
#: Seconds a stopped child gets after SIGTERM before SIGKILL.
TERMINATE_GRACE = 2.0


def readable(objects: list[Any], timeout: float | None) -> list[Any]:
    """Those of ``objects`` (file descriptors, or objects with ``fileno()``) that are
    readable, at hang-up too, waiting up to ``timeout`` seconds: what
    ``multiprocessing.connection.wait`` returns, without building a selector per call
    (the monitor calls it once per reply it reads)."""
    poller = select.poll()
    by_fd: dict[int, Any] = {}
    for obj in objects:
        fd = obj if isinstance(obj, int) else obj.fileno()
        by_fd[fd] = obj
        poller.register(fd, select.POLLIN)
    return [by_fd[fd] for fd, _ in poller.poll(None if timeout is None else math.ceil(timeout * 1000))]


class Launcher:
    """Starts pipe workers with one ``multiprocessing`` start method (``preload``:
    modules the fork server imports too, beyond ``PRELOAD``)."""

    def __init__(self, start_method: str | None, preload: tuple[str, ...] = ()) -> None:
        self.start_method = start_method or DEFAULT_START_METHOD
        if self.start_method not in multiprocessing.get_all_start_methods():
            raise InvalidSpec("start_method", f"{self.start_method!r} is not available here")
        self._mp: Any = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            self._mp.set_forkserver_preload(PRELOAD + tracing.preload_modules() + list(preload))
        self._scriptless = self.start_method == "forkserver" and scriptless.supported()

    def start(self, label: str, run_main: bool = True) -> tuple[Any, Any]:
        """A new worker process waiting for its spec, and the parent's end of its pipe.

        ``run_main=False``: the worker will not need the program's main script (its
        actor class is in a module; ``scriptless.needs_main``), so under the fork
        server it does not run it. Other start methods ignore it ("fork" runs nothing
        anyway; "spawn" always runs the script).
        """
        parent_conn, child_conn = self._mp.Pipe(duplex=True)
        process_class = self._mp.Process
        if not run_main and self._scriptless:
            process_class = scriptless.ScriptlessProcess
        process = process_class(target=pipe_main, args=(child_conn,), name=f"{WORKER_NAME_PREFIX}{label}",
                                daemon=True)
        process.start()
        # Process.start() polls every child still in multiprocessing's list from the
        # starting thread; a forkserver child's poll is not thread-safe, and one racing
        # the monitor's join reads EOF and reports exit code 255 for a clean exit.
        # Only the supervisor waits for its workers, and shutdown stops them all.
        multiprocessing.process._children.discard(process)  # type: ignore[attr-defined]
        child_conn.close()
        return process, parent_conn


def receive(conn: Any, on_reply: Callable[[bytes], None]) -> control.Event | None:
    """The next event on a worker's pipe (``None`` at EOF). A reply sent back on the
    pipe goes to ``on_reply`` (its frame, either form: ``control.REPLY_PREFIX`` or
    ``ANSWER_PREFIX``), a log record to this process's logging (``worker_logs``);
    both read as ``control.NO_EVENT``."""
    try:
        raw = conn.recv_bytes()
    except (EOFError, OSError):
        return None
    head = raw[:1]
    if head == control.ANSWER_PREFIX or head == control.REPLY_PREFIX:
        on_reply(raw)
        return control.NO_EVENT
    if head == control.LOG_PREFIX:
        worker_logs.handle(raw[1:])
        return control.NO_EVENT
    return control.parse_event(raw)


def send(conn: Any, data: bytes) -> None:
    """Send on a worker's pipe; a gone worker is not an error (its sentinel tells)."""
    try:
        conn.send_bytes(data)
    except (OSError, ValueError):
        pass


def stop_process(process: Any, timeout: float | None) -> None:
    """Wait for a process asked to stop; then SIGTERM; then SIGKILL."""
    process.join(timeout)
    if process.exitcode is None:
        process.terminate()
        process.join(TERMINATE_GRACE)
    if process.exitcode is None:
        kill(process)


def kill(process: Any) -> None:
    try:
        process.kill()
    except (OSError, ValueError):
        pass
    process.join(TERMINATE_GRACE)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code == EXIT_UNGUARDED_MAIN:
        return unguarded_reason()
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
