"""The ``actors`` command line: run fleets, inspect and poke their actors.

::

    actors [--home H] [--project P] [--system S] [--backend B] [--debug] COMMAND ...

    run SCRIPT|MODULE   run a fleet script with a live progress line        (run)
    ps                  live and cold actors of the project                 (inspect)
    projects            the projects under the home, their systems and which run  (projects)
    inbox ID            what waits in an actor's mailbox                    (inspect)
    dead ID             list (or --requeue) an actor's dead letters         (inspect)
    logs ID [--follow]  what the actor's workers logged (its log file)      (logs)
    gc                  remove expired and corrupt fabric records           (inspect)
    inspect ID          one actor: counts, recent failures, dead letters   (observe)
    dashboard           a read-only web page, /api/actors and /metrics     (observe)
    rebuild-index       regenerate the indices from the sessions           (inspect)
    tell ID JSON        deliver a message (works whether or not the actor runs)  (send)
    ask ID JSON         ask and print the answer (through a short-lived system)  (send)
    stop|cancel|kill ID signal a running actor's worker (SIGTERM / SIGUSR1 / SIGKILL)  (control)
    restart ID          bring back an actor marked failed (through its system, or on disk)  (control)
    resume ID [--skip]  lift a pause: try its message again, or skip it (through its system, or on disk)  (control)
    timers [ID]         reminders and delayed tells kept in actors' sessions (timers)
    worker              a seed-protocol worker: one spec JSON line on stdin (control)
    host --pool NAME    run the actors placed on a pool, on this machine       (hosting)

Errors a user can cause print one line on stderr and exit with a named code
(``exit_codes``: ``ERROR_CODES`` maps every error type in one place). ``--debug``
adds the traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Any, NoReturn

import click
from actors_runtime.backend_url import parse_backend
from actors_runtime.errors import Cancelled
from actors_runtime.ids import check_id

from .._options import DEFAULT_HOME
from . import control, hosting, inspect, logs, observe, projects, run, send, timers
from .exit_codes import EXIT_INTERNAL, EXIT_INTERRUPTED, exit_code_for, one_line
from .project import Env


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
            code = exit_code_for(exc)
            if debug:
                traceback.print_exc()  # an ActorFailed's remote traceback is a note of it: printed too
            text = one_line(exc)
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
@click.option("--backend", envvar="ACTORS_BACKEND", default="maildir", show_default=True, show_envvar=True,
              help="Where the project's actors are kept (the backend name or URL).")
@click.option("--debug", is_flag=True, help="Show tracebacks (and debug logs).")
@click.pass_context
def cli(ctx: click.Context, home: str, project: str | None, system: str, backend: str, debug: bool) -> None:
    """Run fleets of durable actors and inspect them on disk."""
    source = ctx.get_parameter_source("system")
    parse_backend(backend)
    env = Env(
        home=os.path.abspath(os.path.expanduser(home)),
        project=os.path.abspath(project or os.getcwd()),
        system=check_id(system, "system id"),
        system_given=source not in (click.core.ParameterSource.DEFAULT, None),
        debug=debug,
        backend_name=backend,
    )
    ctx.obj = env
    ctx.call_on_close(env.close)
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


for _command in (run.run, inspect.ps, projects.projects, inspect.inbox, send.tell, send.ask, control.stop,
                 control.cancel, control.kill, control.restart, control.resume, control.worker, inspect.gc,
                 inspect.rebuild_index, inspect.dead, timers.timers, logs.logs, observe.inspect_actor,
                 observe.dashboard, hosting.host):
    cli.add_command(_command)


def main() -> NoReturn:
    """Console-script entry point (``actors``)."""
    cli(prog_name="actors")
    raise AssertionError("unreachable: click exits")  # pragma: no cover


__all__ = ["cli", "main"]
