"""``actors logs ID [--follow]``: what an actor's workers logged, from its log file,
or, on a backend that keeps the lines itself (Redis), from there.

Each worker keeps its records in the actor's directory (``actor.log``, rotated once
to ``actor.log.1`` at 1 MiB; see ``actors_runtime.worker.logs``), whether it was
started by a system or by ``actors worker``, so this works with or without the
fleet's system running. ``--follow`` then prints lines as they are written, across
rotations, until Ctrl-C or SIGTERM (exit 0). On Redis a worker may run on another
machine (a host of a pool): the lines are read from the server (the last
``LOG_LINES`` of them; the host's own file keeps more), and followed there.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import deque
from typing import BinaryIO

import click
from actors_runtime.backends.base import ActorLog
from actors_runtime.ids import check_id

from .exit_codes import EXIT_USAGE, CliError
from .project import Env, pass_env

#: Seconds between looks at a followed file (a file has no doorbell; inotify
#: instances are too scarce here to spend on a viewer).
FOLLOW_INTERVAL = 0.2
#: Bytes read from a file at a time.
CHUNK = 1 << 16


@click.command()
@click.argument("actor_id", metavar="ID")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until Ctrl-C or SIGTERM.")
@click.option("--lines", "-n", type=click.IntRange(min=0), default=None,
              help="Only the last N lines (default: all that is kept).")
@pass_env
def logs(env: Env, actor_id: str, follow: bool, lines: int | None) -> None:
    """Print the log of an actor's workers: every record they kept, oldest first.

    Each line names the actor and the id of the message being handled ("-" between
    messages); a handler that raised leaves its traceback here. Which records are kept
    follows the levels of the system that started the worker (or ACTORS_LOG_LEVEL for
    'actors worker'; WARNING by default).
    """
    backend, address = env.locate(check_id(actor_id))
    shared = backend.actor_log(address)
    path = None if shared is not None else backend.log_path(address)
    if shared is None and path is None:
        raise CliError(f"the {backend.name} backend keeps no logs", EXIT_USAGE)
    handle = None
    cursor = ""
    if shared is not None:
        kept, cursor = shared.last(lines)
        _echo("".join(line + "\n" for line in kept).encode())
    else:
        assert path is not None
        handle = _print_kept(path, lines)
    if not follow:
        if handle is not None:
            handle.close()
        return
    previous = {signum: signal.signal(signum, _stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            if shared is not None:
                follow_log(shared, cursor, threading.Event())
            else:
                assert path is not None
                follow_file(path, handle, threading.Event())
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    except _Stopped:
        pass


class _Stopped(Exception):
    """Ctrl-C or SIGTERM while following: ends the command with exit 0."""


def _stop(signum: int, frame: object) -> None:
    # Raise rather than set an Event: the handler runs on the main thread between
    # two of its bytecodes, possibly while that thread holds the Event's own lock
    # inside Event.wait, and setting it there would wait for that lock forever.
    raise _Stopped


def _print_kept(path: str, lines: int | None) -> BinaryIO | None:
    """Print the rotated file and the current one (or their last ``lines``); returns
    the current file, open and read to its end (``None`` if there is none yet)."""
    tail: deque[bytes] = deque(maxlen=lines)
    try:
        with open(path + ".1", "rb") as old:
            _collect(old, tail, lines)
    except FileNotFoundError:
        pass
    try:
        handle: BinaryIO | None = open(path, "rb")
    except FileNotFoundError:
        handle = None
    if handle is not None:
        _collect(handle, tail, lines)
    if tail:
        _echo(b"".join(tail))
    return handle


def _collect(handle: BinaryIO, tail: "deque[bytes]", lines: int | None) -> None:
    if lines is None:
        tail.append(handle.read())
    else:
        tail.extend(handle.readlines())


def _echo(data: bytes) -> None:
    if data:
        click.echo(data.decode("utf-8", "replace"), nl=False)  # click flushes: a pipe sees it now


def follow_file(path: str, handle: BinaryIO | None, stop: threading.Event) -> None:
    """Print what is appended to ``path`` until ``stop`` is set. A rotation (the file
    replaced, or cut shorter) is followed: the old file's rest, then the new one."""
    try:
        while not stop.wait(FOLLOW_INTERVAL):
            if handle is not None:
                _echo(handle.read())
            try:
                status = os.stat(path)
            except FileNotFoundError:
                continue
            if handle is None or os.fstat(handle.fileno()).st_ino != status.st_ino or status.st_size < handle.tell():
                if handle is not None:
                    _echo(handle.read())
                    handle.close()
                try:
                    handle = open(path, "rb")
                except FileNotFoundError:
                    handle = None
                    continue
                _echo(handle.read())
    finally:
        if handle is not None:
            handle.close()


def follow_log(shared: ActorLog, cursor: str, stop: threading.Event) -> None:
    """Print the lines kept after ``cursor`` as they come, until ``stop`` is set
    (seen within ``FOLLOW_INTERVAL`` plus one blocking read)."""
    while not stop.is_set():
        fresh, cursor = shared.after(cursor, FOLLOW_INTERVAL)
        _echo("".join(line + "\n" for line in fresh).encode())
