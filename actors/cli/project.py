"""Finding the project and its actors from the CLI's options.

Every command but ``ask`` and ``run`` reads and writes the project's storage through
its backend directly, so it works whether or not the fleet's ``ActorSystem`` runs,
and never collides with it.
"""

from __future__ import annotations

import dataclasses
import os

import click
from actors_runtime.address import Address, project_key
from actors_runtime.backends import open_backend
from actors_runtime.backends.base import Backend
from actors_runtime.errors import ActorNotFound
from actors_runtime.ids import check_id
from actors_runtime.messages import AgentRef

from .exit_codes import EXIT_NOT_FOUND, CliError

#: The sender named in messages the CLI delivers (``tell``, activation requests).
CLI_SENDER = AgentRef(session_id="cli", role="cli")


@dataclasses.dataclass
class Env:
    """The group options, and how commands find the project and its actors from them."""

    home: str
    project: str
    system: str
    system_given: bool
    debug: bool
    backend_name: str = "maildir"
    _backend: Backend | None = None

    @property
    def key(self) -> str:
        return project_key(self.project)

    def open(self) -> Backend:
        """The project's backend, whether or not the project exists (closed at exit)."""
        if self._backend is None:
            self._backend = open_backend(self.backend_name, self.home, self.key, "machine")
        return self._backend

    def backend(self) -> Backend:
        """The project's backend; the project must exist (this never creates it).

        Raises:
            CliError: no such project (EXIT_NOT_FOUND).
        """
        if not os.path.isdir(self.project):
            raise CliError(f"no such project: {self.project} is not a directory", EXIT_NOT_FOUND)
        backend = self.open()
        if not backend.exists():
            raise CliError(f"no such project: no actors ever ran for {self.project} "
                           f"under {self.home} (project key {self.key})", EXIT_NOT_FOUND)
        return backend

    def locate(self, actor_id: str) -> tuple[Backend, Address]:
        """Where the actor ``actor_id`` of this project lives.

        The index answers in one lookup; an actor it does not list (a seed-protocol
        worker nobody indexed, or a stale index) is found through its lease record or
        by looking for it under each system, ``--system`` first.

        Raises:
            InvalidSpec: not a valid id. CliError: no project. ActorNotFound: unknown id.
        """
        check_id(actor_id)
        backend = self.backend()
        system_id = backend.store.resolve_child(actor_id)
        if system_id is None:
            record = backend.fabric.read(actor_id)
            prefer = [record.system_id] if record is not None and record.system_id else []
            system_id = backend.store.locate(actor_id, [*prefer, self.system])
        if system_id is None:
            raise ActorNotFound(actor_id, f"project {backend.project_key} (see 'actors ps')")
        return backend, backend.address(system_id, actor_id)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


pass_env = click.make_pass_decorator(Env)
