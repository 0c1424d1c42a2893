"""The ``actors`` command line (DESIGN §8): run fleets, inspect and poke their actors.

::

    actors [--home H] [--project P] [--system S] [--debug] COMMAND ...

    run SCRIPT|MODULE   run a fleet script with a live progress line
    ps                  live and cold actors of the project
    inbox ID            what waits in an actor's mailbox
    tell ID JSON        deliver a message (works whether or not the actor runs)
    ask ID JSON         ask and print the answer (through a short-lived system)
    stop|cancel|kill ID signal a running actor's worker (SIGTERM / SIGUSR1 / SIGKILL)
    worker              a seed-protocol worker: one spec JSON line on stdin
    gc                  remove expired and corrupt fabric records
    rebuild-index       regenerate children.json and index.json from the sessions
    dead ID             list (or --requeue) an actor's dead letters

Everything but ``ask`` (and ``run``, which runs the user's script) reads and writes
the project's files directly with ``runtime`` primitives, so it works whether or not
the fleet's ``ActorSystem`` is running, and never collides with it.

Errors a user can cause print one line on stderr and exit with a named code (the
``EXIT_*`` constants below; ``_exit_code_for`` maps every error type in one place).
``--debug`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import runpy
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from typing import IO, Any, Callable, Iterator, NoReturn

import click

from actors_runtime import worker as _worker
from actors_runtime.address import Address, Router
from actors_runtime.errors import (
    ActorError,
    ActorFailed,
    ActorNotFound,
    AskTimeout,
    Cancelled,
    InvalidSpec,
    MailboxFull,
    SpawnError,
    StoreError,
)
from actors_runtime.fabric import AgentRecord, Fabric
from actors_runtime.ids import check_id
from actors_runtime.mailbox import Mailbox
from actors_runtime.messages import AgentRef, InboxKind, InboxMessage
from actors_runtime.spec import MAX_SPEC_BYTES
from actors_runtime.store import SessionStore, project_key
from actors_runtime.threads import start_thread

from ._codec import encode
from ._ref import ActorRef
from ._system import DEFAULT_HOME, ActorSystem

#: Success.
EXIT_OK = 0
#: An error without a more specific code; also: the script of ``actors run`` raised.
EXIT_ERROR = 1
#: Bad usage: unknown option, bad JSON, an invalid id, a bad spec on ``actors worker``.
EXIT_USAGE = 2
#: No such project, actor, dead letter, script or module.
EXIT_NOT_FOUND = 3
#: No answer (``ask``) or no exit (``stop``, ``kill``) within the timeout.
EXIT_TIMEOUT = 4
#: The actor's handler raised (``ask``), or an actor could not be started.
EXIT_FAILED = 5
#: The actor is known but not running (``stop``, ``cancel``, ``kill``).
EXIT_NOT_RUNNING = 6
#: The handler answering an ``ask`` was cancelled.
EXIT_CANCELLED = 7
#: The project's files could not be read or written (or a lock was busy).
EXIT_STORE = 8
#: The actor's mailbox is full (backpressure); nothing was delivered.
EXIT_FULL = 9
#: A bug in the CLI or the library (the message says to rerun with ``--debug``).
EXIT_INTERNAL = 70
#: Interrupted by Ctrl-C.
EXIT_INTERRUPTED = 130

#: Error type -> exit code, most specific first. The one place errors become codes.
ERROR_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (ActorNotFound, EXIT_NOT_FOUND),
    (AskTimeout, EXIT_TIMEOUT),
    (ActorFailed, EXIT_FAILED),
    (SpawnError, EXIT_FAILED),
    (InvalidSpec, EXIT_USAGE),
    (MailboxFull, EXIT_FULL),
    (StoreError, EXIT_STORE),
    (Cancelled, EXIT_CANCELLED),
    (ActorError, EXIT_ERROR),
    (OSError, EXIT_STORE),
)

#: The sender named in messages the CLI delivers (``tell``, activation requests).
CLI_SENDER = AgentRef(session_id="cli", role="cli")
#: Progress refresh on a terminal, and between plain lines otherwise (seconds).
TTY_INTERVAL = 0.5
PLAIN_INTERVAL = 5.0
#: Seconds ``stop`` and ``kill`` wait for the worker to exit by default.
STOP_TIMEOUT = 10.0
#: Characters of a message body shown by ``inbox`` and ``dead``.
BODY_WIDTH = 60
#: A process that started this much after a record's ``started_at`` is not its author.
_START_SLACK = 2.0

log = logging.getLogger(__name__)


class CliError(click.ClickException):
    """A user-facing failure: one line on stderr, then exit with ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"actors: {self.format_message()}", err=True)


def _exit_code_for(exc: BaseException) -> int:
    for kind, code in ERROR_CODES:
        if isinstance(exc, kind):
            return code
    return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# -- the environment every command shares ---------------------------------------------------------


@dataclasses.dataclass
class Env:
    """The group options, and how commands find the project and its actors from them."""

    home: str
    project: str
    system: str
    system_given: bool
    debug: bool

    @property
    def key(self) -> str:
        return project_key(self.project)

    def store(self) -> SessionStore:
        """The project's store; the project must exist (this never creates it).

        Raises:
            CliError: no such project (EXIT_NOT_FOUND).
        """
        if not os.path.isdir(self.project):
            raise CliError(f"no such project: {self.project} is not a directory", EXIT_NOT_FOUND)
        store = SessionStore(self.home, self.key, "machine")
        if not store.exists():
            raise CliError(f"no such project: no actors ever ran for {self.project} "
                           f"under {self.home} (looked for {store.root})", EXIT_NOT_FOUND)
        return store

    def locate(self, agent_id: str) -> tuple[SessionStore, Address]:
        """Where the actor ``agent_id`` of this project lives.

        The index answers in one lookup; an actor it does not list (a seed-protocol
        worker nobody indexed, or a stale index) is found through its fabric record
        or by looking for its session directory, ``--system`` first.

        Raises:
            InvalidSpec: not a valid id. CliError: no project. ActorNotFound: unknown id.
        """
        check_id(agent_id)
        store = self.store()
        system_id = store.resolve_child(agent_id) or self._find_unindexed(store, agent_id)
        if system_id is None:
            raise ActorNotFound(agent_id, f"project {store.key} (see 'actors ps')")
        return store, Address(store.home, store.key, system_id, agent_id)

    def _find_unindexed(self, store: SessionStore, agent_id: str) -> str | None:
        record = Fabric(store.fabric_dir).read(agent_id)
        candidates = [record.system_id] if record is not None and record.system_id else []
        candidates.append(self.system)
        with contextlib.suppress(OSError):
            candidates.extend(sorted(n for n in os.listdir(store.sessions_dir) if n[0] != "."))
        for system_id in candidates:
            with contextlib.suppress(InvalidSpec):
                if os.path.isdir(store.child_dir(system_id, agent_id)):
                    return system_id
        return None


pass_env = click.make_pass_decorator(Env)


class _Cli(click.Group):
    """The group; turns every error into one line and a named exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except click.ClickException as exc:
            if debug and not isinstance(exc, click.UsageError):
                traceback.print_exc()
            raise
        except KeyboardInterrupt:
            click.echo("actors: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except (Exception, Cancelled) as exc:
            code = _exit_code_for(exc)
            if debug:
                traceback.print_exc()
                if isinstance(exc, ActorFailed) and exc.traceback:
                    click.echo(f"Remote traceback:\n{exc.traceback.rstrip()}", err=True)
            text = _one_line(exc)
            if code == EXIT_INTERNAL:
                text = f"internal error: {type(exc).__name__}: {text}"
                if not debug:
                    text += " (rerun with --debug for the traceback)"
            click.echo(f"actors: {text}", err=True)
            ctx.exit(code)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", envvar="ACTORS_HOME", default=DEFAULT_HOME, show_default=True,
              show_envvar=True, help="Root of all actor data.")
@click.option("--project", default=None, help="Project directory (default: the current directory).")
@click.option("--system", default="main", show_default=True,
              help="System id: filters 'ps' when given; searched first for unindexed actors.")
@click.option("--debug", is_flag=True, help="Show tracebacks (and debug logs).")
@click.pass_context
def cli(ctx: click.Context, home: str, project: str | None, system: str, debug: bool) -> None:
    """Run fleets of durable actors and inspect them on disk."""
    source = ctx.get_parameter_source("system")
    ctx.obj = Env(
        home=os.path.abspath(os.path.expanduser(home)),
        project=os.path.abspath(project or os.getcwd()),
        system=check_id(system, "system id"),
        system_given=source not in (click.core.ParameterSource.DEFAULT, None),
        debug=debug,
    )
    if debug:
        _debug_logging(ctx)


def _debug_logging(ctx: click.Context) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous = {}
    for name in ("actors", "actors_runtime"):
        logger = logging.getLogger(name)
        previous[name] = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)

    def restore() -> None:
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)
            logging.getLogger(name).removeHandler(handler)

    ctx.call_on_close(restore)


# -- reading the project -------------------------------------------------------------------------


def _status(recorded: str, live: bool) -> str:
    """What ``ps`` shows: "running" only with a live lease; a running entry without one is lost."""
    if live:
        return "running"
    if recorded == "running":
        return "lost"
    return recorded or "unknown"


def _mailbox(store: SessionStore, system_id: str, agent_id: str) -> Mailbox | None:
    try:
        return Mailbox(store.mailbox_dir(system_id, agent_id), create=False)
    except StoreError:
        return None


def collect_actors(store: SessionStore, system: str | None = None) -> list[dict[str, Any]]:
    """One row per actor of the project (indexed, or live in the fabric), sorted by id."""
    now = time.time()
    records = {r.agent_id: r for r in Fabric(store.fabric_dir).discover()}
    rows: list[dict[str, Any]] = []
    seen = set()
    for system_id, entry in store.all_children():
        seen.add(entry.id)
        if system is None or system_id == system:
            rows.append(_row(store, system_id, entry.id, entry.actor_class, entry.role,
                             entry.status, entry.restarts, records.get(entry.id), now))
    for agent_id, record in records.items():
        system_id = record.system_id or ""
        if agent_id in seen or (system is not None and system_id != system):
            continue
        rows.append(_row(store, system_id, agent_id, record.actor_class, record.role, "",
                         0, record, now))
    rows.sort(key=lambda row: row["id"])
    return rows


def _row(store: SessionStore, system_id: str, agent_id: str, actor_class: str, role: str | None,
         recorded: str, restarts: int, record: AgentRecord | None, now: float) -> dict[str, Any]:
    box = _mailbox(store, system_id, agent_id) if system_id else None
    pending = None
    if box is not None:
        with contextlib.suppress(OSError):
            pending = box.pending_count()
    live = record is not None and record.is_live(now) and _process_matches(record)
    return {
        "id": agent_id,
        "system": system_id or None,
        "class": actor_class,
        "role": role,
        "pid": record.pid if live and record else None,
        "status": _status(recorded, live),
        "pending": pending,
        "restarts": restarts,
        "lease": round(record.lease_expires_at - now, 1) if live and record else None,
    }


def _table(headers: list[str], rows: list[list[str]], right: frozenset[int] = frozenset()) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers)] + [line(r) for r in rows])


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _short(value: Any, width: int = BODY_WIDTH) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        hint = " (quote strings: '\"text\"')" if text[:1] not in "{[\"" else ""
        raise CliError(f"bad JSON for {what}: {exc}{hint}", EXIT_USAGE) from None


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


# -- waking and signalling actors --------------------------------------------------------------


def _live_record(store: SessionStore, agent_id: str) -> AgentRecord | None:
    """The actor's record if its lease is live and its process still exists."""
    record = Fabric(store.fabric_dir).resolve(agent_id)
    return record if record is not None and _process_matches(record) else None


def _process_matches(record: AgentRecord) -> bool:
    """Whether the record's pid is a live process that can be the record's author."""
    return _process_state(record) == "alive"


def _process_state(record: AgentRecord) -> str:
    """"alive", "gone", "exited" (a zombie) or "other" (the pid was reused).

    A worker killed with SIGKILL leaves a record whose lease runs on for up to a
    minute; its pid is gone, a zombie, or reused by a younger process.
    """
    try:
        with open(f"/proc/{record.pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"
    except (OSError, IndexError):
        return "alive"  # no /proc to ask: trust the lease
    if state in (b"Z", b"X"):
        return "exited"
    started = _process_start_time(record.pid)
    return "other" if started is not None and started > record.started_at + _START_SLACK else "alive"


def _request_activation(store: SessionStore, address: Address) -> None:
    """Ask the actor's own system to activate it (what a worker does for a cold target)."""
    router = Router("machine")
    try:
        _worker.request_activation(router, CLI_SENDER, address)
    finally:
        router.close()


def _process_start_time(pid: int) -> float | None:
    """Unix time the process ``pid`` started (Linux /proc), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().decode(errors="replace").rsplit(")", 1)[1].split()
        with open("/proc/stat", "rb") as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith(b"btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


@contextlib.contextmanager
def _pid_handle(agent_id: str, record: AgentRecord) -> Iterator[int | None]:
    """A pidfd on the record's process (None where pidfds are unavailable).

    Raises:
        CliError: the process is gone, or the pid now belongs to a later process
            (a record left by a worker that was killed; its lease has not run out).
    """
    pid = record.pid
    if pid <= 1 or pid == os.getpid():
        raise CliError(f"{agent_id!r} has an unusable pid {pid} in its record", EXIT_NOT_RUNNING)
    fd: int | None = None
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise CliError(f"{agent_id!r} is not running (its record names pid {pid}, which has exited; "
                       "'actors gc' removes the record once its lease expires)", EXIT_NOT_RUNNING) from None
    except (AttributeError, OSError):  # no pidfds here: fall back to the pid
        fd = None
    try:
        state = "gone" if fd is None and not os.path.exists(f"/proc/{pid}") else _process_state(record)
        if state in ("gone", "exited"):
            raise CliError(f"{agent_id!r} is not running (its record names pid {pid}, which has exited; "
                           "'actors gc' removes the record once its lease expires)", EXIT_NOT_RUNNING)
        if state == "other":
            raise CliError(f"{agent_id!r} is not running (pid {pid} of its stale record now "
                           "belongs to another process)", EXIT_NOT_RUNNING)
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _send_signal(fd: int | None, pid: int, signum: int) -> None:
    if fd is not None:
        signal.pidfd_send_signal(fd, signum)
    else:
        os.kill(pid, signum)


def _wait_exit(fd: int | None, pid: int, timeout: float) -> bool:
    """Wait until the process exits; returns whether it did within ``timeout``."""
    if fd is not None:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    deadline = time.monotonic() + timeout
    while True:  # no pidfd: poll, the only way to watch a process that is not our child
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                if handle.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    return True
        except OSError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


# -- commands ------------------------------------------------------------------------------------


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
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
    reporter = Progress(env, stream, tty, interval or (TTY_INTERVAL if tty else PLAIN_INTERVAL)) if progress else None
    with _script_environment(env, script, target, args):
        if script is None and not _module_exists(target):
            raise CliError(f"no such script or module: {target}", EXIT_NOT_FOUND)
        if reporter is not None:
            reporter.start()
        try:
            code = _run_script(script, target)
        finally:
            if reporter is not None:
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

    On a terminal it rewrites one line (``\\r``) every ``interval`` seconds; otherwise
    it prints a plain line when the summary changed. ``close`` prints the final one.
    """

    def __init__(self, env: Env, stream: IO[str], tty: bool, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.env, self.stream, self.tty, self.interval = env, stream, tty, interval
        self.clock = clock
        self.started = clock()
        self.last = ""
        self.shown = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = start_thread(self._loop, "actors-progress")  # Ctrl-C stays with the script

    def summary(self) -> str:
        """E.g. ``3 actors: 2 running, 1 idle | 5 pending``; empty when there are none."""
        store = SessionStore(self.env.home, self.env.key, "machine")
        if not store.exists():
            return ""
        try:
            rows = collect_actors(store)
        except Exception as exc:  # a report must never break the run: keep the previous view
            log.debug("progress: could not read the project: %s", exc)
            return self.last
        if not rows:
            return ""
        statuses: dict[str, int] = {}
        for row in rows:
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
        parts = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items(), key=lambda kv: (-kv[1], kv[0])))
        pending = sum(row["pending"] or 0 for row in rows)
        return f"{_plural(len(rows), 'actor')}: {parts} | {pending} pending"

    def tick(self) -> None:
        """Sample once and show the result."""
        text = self.summary()
        if self.tty:
            if text:
                elapsed = self.clock() - self.started
                self._write(f"\r[actors {elapsed:6.1f}s] {text}\x1b[K")
                self.shown = True
        elif text and text != self.last:
            self._write(f"[actors] {text}\n")
        self.last = text or self.last

    def _write(self, text: str) -> None:
        with contextlib.suppress(ValueError, OSError):  # the stream was closed under us
            self.stream.write(text)
            self.stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def close(self) -> None:
        """Stop the thread and leave the final summary on a line of its own."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        text = self.summary()
        if self.tty:
            if self.shown:
                self._write("\r\x1b[K")
            if text:
                self._write(f"[actors] {text}\n")
        elif text and text != self.last:
            self._write(f"[actors] {text}\n")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
@pass_env
def ps(env: Env, as_json: bool) -> None:
    """Live and cold actors of the project.

    STATUS is "running" only while the actor's lease is live and its process exists;
    an actor recorded as running without that is "lost" (its worker died
    unsupervised). LEASE is the seconds left on the lease; PENDING counts messages
    not yet acked (new + cur).
    """
    store = env.store()
    rows = collect_actors(store, env.system if env.system_given else None)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo(f"no actors in project {store.key}")
        return
    headers = ["ID", "SYSTEM", "CLASS", "ROLE", "PID", "STATUS", "PENDING", "RESTARTS", "LEASE"]
    table = [[r["id"], _cell(r["system"]), _cell(r["class"]), _cell(r["role"]), _cell(r["pid"]),
              r["status"], _cell(r["pending"]), str(r["restarts"]),
              "-" if r["lease"] is None else f"{r['lease']:.0f}s"] for r in rows]
    click.echo(_table(headers, table, right=frozenset({4, 6, 7, 8})))


@cli.command()
@click.argument("actor_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Counts and messages as one JSON object.")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="At most this many messages (oldest first).")
@pass_env
def inbox(env: Env, actor_id: str, as_json: bool, limit: int) -> None:
    """Counts of new/cur/corrupt/dead and the waiting messages of an actor.

    "new" messages wait to be claimed; "cur" ones are claimed and not yet acked
    (being handled, or left by a crashed activation).
    """
    store, address = env.locate(actor_id)
    box = _mailbox(store, address.system_id, actor_id)
    if box is None:
        raise ActorNotFound(actor_id, f"project {store.key} (it has no mailbox)")
    counts = box.counts()
    messages = []
    for sub in ("cur", "new"):
        for message in box.peek(sub):
            if len(messages) >= limit:
                break
            messages.append({"box": sub, "id": message.id, "kind": message.kind,
                             "from": message.sender.session_id, "created_at": message.created_at,
                             "correlation_id": message.correlation_id, "body": message.body})
    if as_json:
        _echo_json({"id": actor_id, "system": address.system_id, "counts": counts, "messages": messages})
        return
    click.echo(f"{actor_id} (system {address.system_id}): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if messages:
        click.echo(_table(["BOX", "ID", "KIND", "FROM", "CREATED_AT", "BODY"],
                          [[m["box"], m["id"], m["kind"], m["from"], m["created_at"], _short(m["body"])]
                           for m in messages]))
    shown, waiting = len(messages), counts["new"] + counts["cur"]
    if shown < waiting:
        click.echo(f"... {waiting - shown} more (--limit)")


@cli.command()
@click.argument("actor_id", metavar="ID")
@click.argument("payload", metavar="JSON")
@pass_env
def tell(env: Env, actor_id: str, payload: str) -> None:
    """Deliver JSON to an actor's mailbox as a task (durable when this returns).

    Works whether or not the actor runs: a message to a stopped actor waits in its
    mailbox and is handled at its next activation (its system, if running, is asked
    to activate it now). Prints the message id.
    """
    body = _parse_json(payload, "the message")
    store, address = env.locate(actor_id)
    message = InboxMessage.create(CLI_SENDER, InboxKind.TASK.value, body)
    router = Router("machine")
    try:
        router.deliver(address, message)
    finally:
        router.close()
    record = _live_record(store, actor_id)
    if record is not None:
        click.echo(f"sent {message.id} to {actor_id!r} (running, pid {record.pid})")
        return
    _request_activation(store, address)
    click.echo(f"queued {message.id} for {actor_id!r}: it is not running; the message will be "
               "handled at its next activation")


@cli.command()
@click.argument("actor_id", metavar="ID")
@click.argument("question", metavar="JSON")
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds to wait for the answer.")
@click.option("--mode", type=click.Choice(["query", "steer"]), default="query", show_default=True,
              help="query: state changes made while answering are discarded; steer: they persist.")
@pass_env
def ask(env: Env, actor_id: str, question: str, timeout: float, mode: str) -> None:
    """Ask an actor and print its answer as JSON.

    The actor must be running, or be activated by its own running system. The reply
    comes back through a short-lived system of this process ("cli-<pid>-<hex>"),
    removed afterwards.
    """
    value = _parse_json(question, "the question")
    store, address = env.locate(actor_id)
    running = _live_record(store, actor_id) is not None
    if not running:
        _request_activation(store, address)
    name = f"cli-{os.getpid()}-{os.urandom(3).hex()}"
    system = ActorSystem(env.home, project=env.project, name=name)
    try:
        try:
            answer = system.ask(ActorRef(address, system), value, timeout=timeout, mode=mode)
        except AskTimeout as exc:
            note = "" if running else (f"; {actor_id!r} is not running, so the question waits in its "
                                       "mailbox for its next activation")
            raise CliError(f"{exc}{note}", EXIT_TIMEOUT) from None
    finally:
        system.shutdown()
        # The reply system was only ours: its directory would otherwise collect in the project.
        shutil.rmtree(store.system_dir(name), ignore_errors=True)
    click.echo(json.dumps(encode(answer), ensure_ascii=False))


def _control(env: Env, actor_id: str, signum: int, wait: float | None) -> tuple[int, bool]:
    """Signal the worker of a running actor; returns its pid and whether it exited."""
    store, _ = env.locate(actor_id)
    fabric = Fabric(store.fabric_dir)
    record = fabric.resolve(actor_id)
    if record is None:
        raise CliError(f"{actor_id!r} is not running", EXIT_NOT_RUNNING)
    with _pid_handle(actor_id, record) as fd:
        try:
            _send_signal(fd, record.pid, signum)
        except ProcessLookupError:
            raise CliError(f"{actor_id!r} is not running (pid {record.pid} has exited)", EXIT_NOT_RUNNING) from None
        exited = _wait_exit(fd, record.pid, wait) if wait is not None else False
    if exited:
        # A worker that died without withdrawing (SIGKILL) would look alive until its
        # lease ran out; the pid guard leaves a successor's record alone.
        fabric.withdraw(actor_id, pid=record.pid)
    return record.pid, exited


_timeout_option = click.option("--timeout", type=click.FloatRange(min=0), default=STOP_TIMEOUT,
                               show_default=True, help="Seconds to wait for the worker to exit.")
_wait_option = click.option("--wait/--no-wait", default=True, show_default=True,
                            help="Wait for the worker to exit.")


@cli.command()
@click.argument("actor_id", metavar="ID")
@_timeout_option
@_wait_option
@pass_env
def stop(env: Env, actor_id: str, timeout: float, wait: bool) -> None:
    """Stop a running actor politely (SIGTERM to its worker).

    It finishes its current message, commits, withdraws its record and exits 0;
    unhandled messages stay in its mailbox for the next activation.
    """
    pid, exited = _control(env, actor_id, signal.SIGTERM, timeout if wait else None)
    if not wait:
        click.echo(f"asked {actor_id!r} (pid {pid}) to stop")
    elif exited:
        click.echo(f"stopped {actor_id!r} (pid {pid})")
    else:
        raise CliError(f"{actor_id!r} (pid {pid}) still runs {timeout} s after SIGTERM (it finishes "
                       "its current message first; 'actors kill' forces it)", EXIT_TIMEOUT)


@cli.command()
@click.argument("actor_id", metavar="ID")
@pass_env
def cancel(env: Env, actor_id: str) -> None:
    """Interrupt the handler a running actor is in (SIGUSR1 to its worker).

    The handler sees ``Cancelled``, its message is acked, and an asker gets
    ``Cancelled``. An idle actor ignores it.
    """
    pid, _ = _control(env, actor_id, signal.SIGUSR1, None)
    click.echo(f"cancel sent to {actor_id!r} (pid {pid})")


@cli.command()
@click.argument("actor_id", metavar="ID")
@_timeout_option
@pass_env
def kill(env: Env, actor_id: str, timeout: float) -> None:
    """Kill a running actor's worker (SIGKILL).

    Nothing is lost: the message it was handling is redelivered at the next
    activation (and not counted as a poison attempt). A supervising system sees a
    crash and restarts it per its restart policy.
    """
    pid, exited = _control(env, actor_id, signal.SIGKILL, timeout)
    if not exited:
        raise CliError(f"{actor_id!r} (pid {pid}) did not exit within {timeout} s of SIGKILL", EXIT_TIMEOUT)
    store, address = env.locate(actor_id)
    _worker.clear_inflight(store.mailbox_dir(address.system_id, actor_id))
    click.echo(f"killed {actor_id!r} (pid {pid})")


@cli.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """A seed-protocol worker: reads one ProvisionSpec JSON line on stdin, then serves.

    Control arrives as signals: SIGTERM stops, SIGUSR1 cancels. Exits with the
    worker's codes: 0 clean stop, 2 bad spec, 3 activation failed, 70 internal.
    """
    stdin = sys.stdin
    try:
        stdin.fileno()
        real = True
    except (AttributeError, OSError, ValueError):
        real = False
    if real:
        ctx.exit(_worker.main())
    # An in-memory stdin (embedding, CliRunner): hand the worker a real file with the same bytes.
    data = stdin.buffer.read(MAX_SPEC_BYTES + 2) if hasattr(stdin, "buffer") else b""
    with tempfile.TemporaryFile() as spool:
        spool.write(data)
        spool.seek(0)
        code = _worker.main(spool)
    ctx.exit(code)


@cli.command()
@pass_env
def gc(env: Env) -> None:
    """Remove expired and corrupt records from the fabric; prints the removed ids."""
    store = env.store()
    removed = Fabric(store.fabric_dir).gc()
    for agent_id in removed:
        click.echo(agent_id)
    click.echo(f"removed {_plural(len(removed), 'record')}", err=True)


@cli.command("rebuild-index")
@pass_env
def rebuild_index(env: Env) -> None:
    """Regenerate children.json and index.json by scanning the sessions."""
    store = env.store()
    index = store.rebuild_index()
    per_system: dict[str, int] = {system_id: 0 for system_id in index["roots"]}
    for system_id in index["child_lookup"].values():
        per_system[system_id] = per_system.get(system_id, 0) + 1
    detail = ", ".join(f"{s}: {n}" for s, n in sorted(per_system.items()))
    click.echo(f"rebuilt index of {store.key}: {_plural(len(index['child_lookup']), 'actor')} in "
               f"{_plural(len(per_system), 'system')}" + (f" ({detail})" if detail else ""))


@cli.command()
@click.argument("actor_id", metavar="ID")
@click.option("--requeue", "msg_id", metavar="MSGID", default=None,
              help="Deliver this dead letter again (same id) instead of listing.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
@pass_env
def dead(env: Env, actor_id: str, msg_id: str | None, as_json: bool) -> None:
    """List an actor's dead letters, or requeue one.

    A message lands in dead/ after killing the worker ``max_attempts`` times.
    A requeued message keeps its id and goes to the back of the queue.
    """
    store, address = env.locate(actor_id)
    box = _mailbox(store, address.system_id, actor_id)
    if box is None:
        raise ActorNotFound(actor_id, f"project {store.key} (it has no mailbox)")
    if msg_id is not None:
        try:
            found = box.requeue(msg_id)
        finally:
            box.close()
        if not found:
            raise CliError(f"{actor_id!r} has no dead letter {msg_id!r} (see 'actors dead {actor_id}')",
                           EXIT_NOT_FOUND)
        if _live_record(store, actor_id) is None:
            _request_activation(store, address)
        click.echo(f"requeued {msg_id} to {actor_id!r}")
        return
    letters = [{"id": d.message.id, "kind": d.message.kind, "from": d.message.sender.session_id,
                "reason": d.reason, "attempts": d.attempts, "dead_at": d.dead_at, "body": d.message.body}
               for d in box.dead_letters()]
    if as_json:
        _echo_json(letters)
        return
    if not letters:
        click.echo(f"no dead letters for {actor_id!r}")
        return
    click.echo(_table(["ID", "KIND", "ATTEMPTS", "DEAD_AT", "REASON", "BODY"],
                      [[d["id"], d["kind"], str(d["attempts"]),
                        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["dead_at"])),
                        d["reason"], _short(d["body"], 40)] for d in letters],
                      right=frozenset({2})))


def main() -> NoReturn:
    """Console-script entry point (``actors``)."""
    cli(prog_name="actors")
    raise AssertionError("unreachable: click exits")  # pragma: no cover


if __name__ == "__main__":
    main()
