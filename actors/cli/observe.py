"""Commands that watch a fleet: ``inspect`` (one actor) and ``dashboard`` (a web page)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import click

from .dashboard import Dashboard
from .exit_codes import EXIT_NOT_FOUND, EXIT_USAGE, CliError
from .fleet import detail
from .project import Env, pass_env
from .tables import cell, echo_json, table


def _when(stamp: Any) -> str:
    if not isinstance(stamp, (int, float)):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


@click.command("inspect")
@click.argument("actor_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Everything as one JSON object.")
@pass_env
def inspect_actor(env: Env, actor_id: str, as_json: bool) -> None:
    """One actor: status, counts, its recent failures with their tracebacks, dead
    letters, waiting messages, and reminders when it has any.

    Counts (handled, failed, redelivered) are those of its last commit; they survive
    restarts. The failure records are the last few turns whose handler raised.
    """
    backend, _ = env.locate(actor_id)
    found = detail(backend, actor_id)
    if as_json:
        echo_json(found)
        return
    click.echo(f"{found['id']}  {found['class'] or '-'}  system {found['system'] or '-'}  "
               f"status {found['status']}  pid {cell(found['pid'])}  host {found['host']}")
    click.echo(f"handled {found['handled']}  failed {found['failed']}  redeliveries {found['redeliveries']}  "
               f"restarts {found['restarts']}  pending {cell(found['pending'])}  "
               f"oldest {cell(found['oldest_s'])}s  dead {cell(found['dead'])}")
    if found["status"] == "failed" and found["last_error"]:
        click.echo(f"failed: {found['last_error']}")
    paused = found.get("paused")
    if paused:
        click.echo(f"paused since {_when(paused.get('since'))} on {paused.get('msg_id')}: {paused.get('reason')}")
    if found["reminders"]:
        click.echo("\nreminders:")
        click.echo(table(["NAME", "DUE", "PERIOD", "PAYLOAD"],
                         [[r["name"], _when(r["due"]), cell(r["period"]), r["payload"]] for r in found["reminders"]]))
    if found["failures"]:
        click.echo(f"\nlast {len(found['failures'])} failures (newest last):")
        for record in found["failures"]:
            click.echo(f"- {_when(record['time'])}  message {record['msg_id']}  {record['type']}: {record['message']}")
            click.echo("  " + record["traceback"].rstrip().replace("\n", "\n  "))
    if found["dead_letters"]:
        click.echo("\ndead letters:")
        click.echo(table(["ID", "KIND", "ATTEMPTS", "DEAD_AT", "REASON"],
                         [[d["id"], d["kind"], str(d["attempts"]), _when(d["dead_at"]), d["reason"]]
                          for d in found["dead_letters"]]))
    if found["waiting"]:
        click.echo("\nwaiting:")
        click.echo(table(["BOX", "ID", "KIND", "CREATED_AT", "BODY"],
                         [[m["box"], m["id"], m["kind"], m["created_at"], m["body"]] for m in found["waiting"]]))


@click.command()
@click.option("--host", "bind", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback unless told otherwise).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port; the URL is printed).")
@pass_env
def dashboard(env: Env, bind: str, port: int) -> None:
    """Serve a read-only web page of the project's actors, with JSON and metrics.

    The page (/) lists the actors and refreshes itself; /api/actors is the same as
    JSON, /metrics the Prometheus text format. It reads the home only, so it works
    whether or not the fleet runs. Stops on Ctrl-C or SIGTERM.
    """
    if not os.path.isdir(env.project):
        raise CliError(f"no such project: {env.project} is not a directory", EXIT_NOT_FOUND)
    try:
        server = Dashboard((bind, port), env.open())
    except OSError as exc:
        raise CliError(f"cannot listen on {bind}:{port}: {exc.strerror or exc}", EXIT_USAGE) from None
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: threading.Thread(target=server.shutdown).start())
    click.echo(f"serving {server.url} (project {env.key}; Ctrl-C stops)", err=False)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
