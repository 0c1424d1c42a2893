"""The entry of a seed-protocol worker: one spec on stdin, control as signals.

``actors worker`` and ``python -m actors_runtime.worker`` run ``main``: it reads one
ProvisionSpec as a line of JSON from standard input (8 MiB cap, read timeout; never
argv or the environment, which other users can read), then serves. SIGTERM stops,
SIGUSR1 cancels. Such workers can be started by other programs, other hosts, or by
hand.
"""

from __future__ import annotations

import sys
from typing import BinaryIO

from ..control import EXIT_ACTIVATION_FAILED, EXIT_BAD_SPEC
from ..errors import ActorError, InvalidSpec
from ..spec import read_spec
from . import logs
from .activation import Worker, serve


def configure_logging() -> None:
    """Worker processes are programs: give them a stderr handler if none is set
    (``logs.configure_stderr``: level from ``ACTORS_LOG_LEVEL``, default WARNING)."""
    logs.configure_stderr()


def _attach(worker: Worker) -> None:
    worker.install_signal_handlers()
    logs.install(worker, forward=None)  # records go to the actor's log file and stderr


def main(stdin: BinaryIO | int | None = None, actor_class: str | None = None) -> int:
    """Read one spec from ``stdin`` (default: this process's) and serve it.

    The spec may be the original crate's ``ProvisionSpec`` (``runtime.crate_spec``);
    ``actor_class`` is the class to run when such a spec names none.

    Returns:
        The exit code (``EXIT_OK``, ``EXIT_BAD_SPEC``, ``EXIT_ACTIVATION_FAILED``).
    """
    configure_logging()
    try:
        spec = read_spec(sys.stdin.buffer if stdin is None else stdin, actor_class=actor_class)
    except InvalidSpec as exc:
        print(f"actors worker: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    try:
        return serve(spec, on_worker=_attach)
    except ActorError as exc:
        print(f"actors worker: {exc}", file=sys.stderr)
        return EXIT_ACTIVATION_FAILED
