"""The CLI's exit codes, and the one table that turns errors into them."""

from __future__ import annotations

from typing import IO, Any

import click
from actors_runtime.errors import (
    ActorError,
    ActorFailed,
    ActorNotFound,
    AskTimeout,
    Cancelled,
    InvalidSpec,
    MailboxFull,
    NoLiveHost,
    NotPaused,
    SpawnError,
    StoreError,
)

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
#: The actor is known but not running (``stop``, ``cancel``, ``kill``), or, for ``ask``, nothing can start it;
#: for a placed actor (``restart``, ``resume``): no live host of its pool runs it.
EXIT_NOT_RUNNING = 6
#: The handler answering an ``ask`` was cancelled.
EXIT_CANCELLED = 7
#: The project's files could not be read or written (or a lock was busy).
EXIT_STORE = 8
#: The actor's mailbox is full (backpressure); nothing was delivered.
EXIT_FULL = 9
#: ``resume``: the actor is not paused; nothing was changed.
EXIT_NOT_PAUSED = 10
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
    (NotPaused, EXIT_NOT_PAUSED),
    (NoLiveHost, EXIT_NOT_RUNNING),
    (ActorError, EXIT_ERROR),
    (OSError, EXIT_STORE),
)


class CliError(click.ClickException):
    """A user-facing failure: one line on stderr, then exit with ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code  # type: ignore[misc]  # click declares it on the class

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"actors: {self.format_message()}", err=True)


def exit_code_for(exc: BaseException) -> int:
    for kind, code in ERROR_CODES:
        if isinstance(exc, kind):
            return code
    return EXIT_INTERNAL


def one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
