"""``actors run``: run a fleet script, with a progress line on stderr.

The progress line goes through an ``OutputGate`` (``output_gate.py``), so it is only
ever written between whole lines of the script's (and its workers') output.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import runpy
import sys
import threading
import time
import traceback
from typing import IO, Callable, Iterator

import click
from actors_runtime.backends import open_backend
from actors_runtime.threads import start_thread

from .exit_codes import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_NOT_FOUND, EXIT_OK, CliError
from .inspect import collect_actors
from .output_gate import OutputGate
from .project import Env, pass_env
from .tables import plural

log = logging.getLogger(__name__)

#: Progress refresh on a terminal, and between plain lines otherwise (seconds).
TTY_INTERVAL = 0.5
PLAIN_INTERVAL = 5.0


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Report the project's actors while the script runs (on stderr).")
@click.option("--interval", type=click.FloatRange(min=0.05), default=None,
              help=f"Seconds between progress updates [default: {TTY_INTERVAL} on a terminal, "
                   f"{PLAIN_INTERVAL} otherwise].")
@pass_env
def run(env: Env, target: str, args: tuple[str, ...], progress: bool, interval: float | None) -> None:
    """Run a fleet script (a .py path or a module name) with ACTORS_HOME set from --home.

    Arguments after TARGET go to the script. The script runs in the project directory
    (--project, default the current one). Exits with the script's exit code.
    """
    is_path = target.endswith(".py") or os.sep in target or os.path.isfile(target)
    script = os.path.abspath(target) if is_path else None
    if script is not None and not os.path.isfile(script):
        raise CliError(f"no such script: {target}", EXIT_NOT_FOUND)
    if not os.path.isdir(env.project):
        raise CliError(f"no such project: {env.project} is not a directory", EXIT_NOT_FOUND)
    stream = sys.stderr
    tty = stream.isatty()
    with _script_environment(env, script, target, args):
        if script is None and not _module_exists(target):
            raise CliError(f"no such script or module: {target}", EXIT_NOT_FOUND)
        reporter = None
        if progress:
            # Without a gate (streams with no descriptors: the CLI embedded in a program)
            # nothing keeps a progress line out of the script's lines: only the final one.
            gate = OutputGate.install(sys.stdout, stream)
            reporter = Progress(env, stream, tty, interval or (TTY_INTERVAL if tty else PLAIN_INTERVAL), gate=gate)
            if gate is not None:
                reporter.start()
        try:
            code = _run_script(script, target)
        finally:
            if reporter is not None:
                for written in (sys.stdout, sys.stderr):  # the script's last words go before the summary
                    with contextlib.suppress(OSError, ValueError):
                        written.flush()
                reporter.close()
    raise click.exceptions.Exit(code)


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@contextlib.contextmanager
def _script_environment(env: Env, script: str | None, target: str, args: tuple[str, ...]) -> Iterator[None]:
    """ACTORS_HOME, cwd, argv and sys.path as ``python SCRIPT ARGS`` would have them; restored after."""
    saved_home = os.environ.get("ACTORS_HOME")
    saved_cwd, saved_argv, saved_path = os.getcwd(), sys.argv, list(sys.path)
    os.environ["ACTORS_HOME"] = env.home
    os.chdir(env.project)
    sys.argv = [script or target, *args]
    sys.path.insert(0, os.path.dirname(script) if script else os.getcwd())
    try:
        yield
    finally:
        sys.path[:] = saved_path
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        if saved_home is None:
            os.environ.pop("ACTORS_HOME", None)
        else:
            os.environ["ACTORS_HOME"] = saved_home


def _run_script(script: str | None, module: str) -> int:
    """Run the script as ``__main__``; returns its exit code (Python's conventions)."""
    try:
        if script is not None:
            runpy.run_path(script, run_name="__main__")
        else:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or EXIT_OK
        click.echo(str(exc.code), err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        click.echo("actors run: interrupted", err=True)
        return EXIT_INTERRUPTED
    except BaseException as exc:  # the script's own error: show it as python would
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_globals.get("__name__") in (__name__, "runpy"):
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


class Progress:
    """A background thread that summarises the project's actors from disk.

    On a terminal it shows one status line every ``interval`` seconds; otherwise it
    prints a plain line when the summary changed. ``close`` prints the final one.
    With a ``gate`` the text is written only between whole lines of output (a tick
    that finds a line unfinished shows nothing, the next one tries again); without
    one it goes to ``stream`` as is (``\\r`` rewrites on a terminal).
    """

    def __init__(self, env: Env, stream: IO[str], tty: bool, interval: float,
                 clock: Callable[[], float] = time.monotonic, gate: OutputGate | None = None) -> None:
        self.env, self.stream, self.tty, self.interval = env, stream, tty, interval
        self.clock, self.gate = clock, gate
        self.started = clock()
        self.last = ""
        self.shown = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = start_thread(self._loop, "actors-progress")  # Ctrl-C stays with the script

    def summary(self) -> str:
        """E.g. ``3 actors: 2 running, 1 idle | 5 pending``; empty when there are none."""
        backend = open_backend(self.env.backend_name, self.env.home, self.env.key, "machine")
        try:
            if not backend.exists():
                return ""
            rows = collect_actors(backend)
        except Exception as exc:  # a report must never break the run: keep the previous view
            log.debug("progress: could not read the project: %s", exc)
            return self.last
        finally:
            backend.close()
        if not rows:
            return ""
        statuses: dict[str, int] = {}
        for row in rows:
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
        parts = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items(), key=lambda kv: (-kv[1], kv[0])))
        pending = sum(row["pending"] or 0 for row in rows)
        return f"{plural(len(rows), 'actor')}: {parts} | {pending} pending"

    def tick(self) -> None:
        """Sample once and show the result."""
        text = self.summary()
        if self.tty:
            if text:
                elapsed = self.clock() - self.started
                self.shown = self._show(f"[actors {elapsed:6.1f}s] {text}") or self.shown
        elif text and text != self.last:
            if not self._line(f"[actors] {text}"):
                return  # mid-line: the next tick tries again
        self.last = text or self.last

    def _show(self, status: str) -> bool:
        if self.gate is not None:
            with contextlib.suppress(OSError):
                return self.gate.show(status)
            return False
        return self._write(f"\r{status}\x1b[K")

    def _line(self, line: str) -> bool:
        if self.gate is not None:
            with contextlib.suppress(OSError):
                return self.gate.line(line)
            return False
        return self._write(f"{line}\n")

    def _write(self, text: str) -> bool:
        with contextlib.suppress(ValueError, OSError):  # the stream was closed under us
            self.stream.write(text)
            self.stream.flush()
            return True
        return False

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def close(self) -> None:
        """Stop the thread and leave the final summary on a line of its own (after all
        of the script's output, when there is a gate: it is closed here)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        text = self.summary()
        fresh = text != self.last or (self.gate is not None and self.gate.passed_since_line)
        final = f"[actors] {text}" if text and (self.tty or fresh) else None
        if self.gate is not None:
            self.gate.close(final)
            return
        if self.tty and self.shown:
            self._write("\r\x1b[K")
        if final is not None:
            self._write(f"{final}\n")
