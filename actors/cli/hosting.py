"""``actors host``: run the actors placed on a pool, on this machine."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

import click
from actors_runtime.backend_url import parse_backend
from actors_runtime.errors import InvalidSpec
from actors_runtime.worker.seed_entry import configure_logging

from .project import Env, pass_env


@click.command()
@click.option("--backend", "url", default=None,
              help="The Redis server (redis://HOST:PORT/DB or unix:///PATH); default: the group's --backend.")
@click.option("--pool", required=True, help="The pool this host serves (spawn(..., placement='pool:NAME')).")
@click.option("--capacity", type=click.IntRange(min=1), default=None,
              help="Most actors with a running worker here; placements beyond it go to other hosts.")
@click.option("--name", "host_id", default=None, help="This host's id (default: the machine's name and the pid).")
@click.option("--lease", type=click.FloatRange(min=0.05, max=86_400), default=10.0, show_default=True,
              help="Seconds of this host's lease and its actors' leases: how long a dead host's actors "
                   "wait before other hosts take them over.")
@click.option("--grace", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds a stop gives the workers before they are terminated, then killed.")
@click.option("--warm", type=click.IntRange(min=0), default=2, show_default=True,
              help="Workers kept started, so a placement does not wait for a process to start.")
@click.option("--path", "paths", multiple=True, type=click.Path(file_okay=False),
              help="A directory to import actor classes from (repeatable; the current directory is always on "
                   "the path).")
@click.option("--logs", "log_dir", default=None, type=click.Path(file_okay=False),
              help="The directory where its workers keep their actors' log files on this machine "
                   "(default: HOME/logs); 'actors logs ID' reads the lines from the server, anywhere.")
@pass_env
def host(env: Env, url: str | None, pool: str, capacity: int | None, host_id: str | None, lease: float,
         grace: float, warm: int, paths: tuple[str, ...], log_dir: str | None) -> None:
    """Run the actors placed on pool POOL, until SIGTERM or Ctrl-C.

    The host publishes itself in the pool (a leased record), starts a worker for
    each actor a system places on it (and restarts it by its restart policy), and
    takes over the actors of a host of the pool that died once their leases ran
    out. A class it cannot import is refused at the placement, with the import
    error. SIGTERM (or Ctrl-C) stops its workers politely, then firmly after
    --grace seconds (a second SIGTERM kills them at once); it then leaves the pool
    and exits 0, and the pool's other hosts take its actors over. Each worker keeps
    its actor's log in a rotated file under --logs on this machine, and its last
    lines on the server, where 'actors logs ID' reads them from any machine.
    """
    from actors_runtime.hosts import Host

    url = url or env.backend_name
    if parse_backend(url)[0] != "redis":
        raise InvalidSpec("backend", f"a host needs a Redis server (redis:// or unix://), not {url!r}")
    for entry in reversed([os.getcwd(), *paths]):
        entry = os.path.abspath(entry)
        if entry not in sys.path:
            sys.path.insert(0, entry)  # before the first worker: the fork server takes this path
    configure_logging()
    logging.getLogger("actors_runtime.hosts").setLevel(logging.INFO)
    log_dir = os.path.abspath(os.path.expanduser(log_dir or os.path.join(env.home, "logs")))
    server = Host(url, pool, host_id=host_id, capacity=capacity, lease=lease, grace=grace, warm=warm,
                  log_dir=log_dir)

    def on_signal(signum: int, frame: Any) -> None:
        if server.stopping.is_set():
            click.echo(f"host {server.host_id}: killing its workers", err=True)
            server.kill_workers()  # a second signal: no more grace
            return
        click.echo(f"host {server.host_id}: stopping; its workers finish their messages "
                   f"(up to {grace:g} s; signal again to kill them)", err=True)
        server.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    click.echo(f"host {server.host_id} of pool {server.pool} at {server.location}", err=True)
    server.serve()
