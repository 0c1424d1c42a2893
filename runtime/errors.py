"""One exception tree for the whole project.

Every error here may cross a process boundary (a reply carries it back to an asker,
a pipe carries it back to a parent), so each one pickles: constructors hand all of
their arguments to ``BaseException.__init__`` and the text is built in ``__str__``.
``actors`` re-exports these; ``runtime`` is where they live because it is the leaf.
"""

from __future__ import annotations


class ActorError(Exception):
    """Root of every error the framework raises on purpose."""


class StoreError(ActorError):
    """A durable file could not be read, written or decoded.

    Attributes:
        path: the file (or directory) involved.
        reason: what went wrong.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path, self.reason = str(path), reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class InvalidSpec(ActorError, ValueError):
    """A name, id, provisioning spec or option is not acceptable.

    Raised before anything is written or started, so nothing needs undoing.
    """

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
        self.what, self.reason = what, reason

    def __str__(self) -> str:
        return f"invalid {self.what}: {self.reason}"


class MailboxFull(ActorError):
    """A mailbox holds ``max_pending`` messages already; the message was not sent."""

    def __init__(self, mailbox: str, pending: int, limit: int) -> None:
        super().__init__(mailbox, pending, limit)
        self.mailbox, self.pending, self.limit = str(mailbox), pending, limit

    def __str__(self) -> str:
        return f"mailbox {self.mailbox} is full ({self.pending} pending, limit {self.limit})"


class ActorNotFound(ActorError, LookupError):
    """No actor of that id is known to the project."""

    def __init__(self, actor_id: str, where: str = "") -> None:
        super().__init__(actor_id, where)
        self.actor_id, self.where = actor_id, where

    def __str__(self) -> str:
        suffix = f" in {self.where}" if self.where else ""
        return f"no actor {self.actor_id!r}{suffix}"


class AskTimeout(ActorError, TimeoutError):
    """No reply arrived before the deadline. A reply arriving later is dropped."""

    def __init__(self, actor_id: str, timeout: float | None) -> None:
        super().__init__(actor_id, timeout)
        self.actor_id, self.timeout = actor_id, timeout

    def __str__(self) -> str:
        return f"{self.actor_id!r} did not reply within {self.timeout} s"


class ActorFailed(ActorError):
    """A remote handler (or host tool) raised; carries its type, message and traceback.

    ``str()`` is one line, ``'<id>' failed: <Type>: <message>`` (a message of several
    lines is joined with "; "), so it reads well in logs and CLI errors. The remote
    traceback is kept apart, in ``traceback``, and attached as a note (PEP 678):
    Python prints it under the local traceback when the error goes uncaught, and
    ``traceback.format_exception`` includes it.

    Attributes:
        actor_id: who failed.
        type_name: the remote exception's qualified type name.
        message: its ``str()``, unchanged.
        traceback: the remote traceback as text (empty when there is none).
    """

    def __init__(self, actor_id: str, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(actor_id, type_name, message, traceback)
        self.actor_id, self.type_name = actor_id, type_name
        self.message, self.traceback = message, traceback
        if traceback:
            self.add_note("Remote traceback:\n" + traceback.rstrip())

    def __str__(self) -> str:
        lines = [line.strip() for line in self.message.splitlines() if line.strip()]
        detail = f": {'; '.join(lines)}" if lines else ""
        return f"{self.actor_id!r} failed: {self.type_name}{detail}"


class SpawnError(ActorError):
    """An actor could not be started (bad class, exited before registering, timeout)."""

    def __init__(self, actor_id: str, reason: str) -> None:
        super().__init__(actor_id, reason)
        self.actor_id, self.reason = actor_id, reason

    def __str__(self) -> str:
        return f"could not start {self.actor_id!r}: {self.reason}"


class SystemShutDown(ActorError):
    """The system was shut down: it sends nothing more, and asks still waiting fail."""

    def __init__(self, system_id: str, detail: str = "") -> None:
        super().__init__(system_id, detail)
        self.system_id, self.detail = system_id, detail

    def __str__(self) -> str:
        return f"system {self.system_id!r} is shut down" + (f" ({self.detail})" if self.detail else "")


class UnboundRef(ActorError):
    """A ref was used where no system or actor of its project runs to send through it."""

    def __init__(self, actor_id: str) -> None:
        super().__init__(actor_id)
        self.actor_id = actor_id

    def __str__(self) -> str:
        return (f"the ref to {self.actor_id!r} is not bound to a running system or actor "
                "(open an ActorSystem of its project, or use it inside an actor)")


class NoHandler(ActorError):
    """An actor received a message (or a payload type) it declares no handler for."""

    def __init__(self, actor_class: str, what: str) -> None:
        super().__init__(actor_class, what)
        self.actor_class, self.what = actor_class, what

    def __str__(self) -> str:
        return f"{self.actor_class} has no handler for {self.what}"


class WrongContext(ActorError):
    """A call was made where it cannot work (an actor's method outside its worker,
    a parent-side call inside an actor, a state that is not a dict)."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
        self.what, self.reason = what, reason

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


class StepFailed(ActorError):
    """A journaled step failed in an earlier run of this turn, and its exception could
    not be rebuilt here (it did not pickle); raised in its place on the re-run.

    Attributes:
        step_key: the step's key (``<actor>/<message id>/<name>/<occurrence>``).
        type_name: the original exception's qualified type name.
        message: its ``str()``.
        traceback: its traceback as text.
    """

    def __init__(self, step_key: str, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(step_key, type_name, message, traceback)
        self.step_key, self.type_name = step_key, type_name
        self.message, self.traceback = message, traceback

    def __str__(self) -> str:
        return f"step {self.step_key} failed: {self.type_name}: {self.message}"


class NotPaused(ActorError):
    """``resume`` was asked for an actor that is not paused (nothing was changed)."""

    def __init__(self, actor_id: str, status: str = "") -> None:
        super().__init__(actor_id, status)
        self.actor_id, self.status = actor_id, status

    def __str__(self) -> str:
        now = f" (it is {self.status})" if self.status else ""
        return f"{self.actor_id!r} is not paused{now}; nothing to resume"


class NoLiveHost(ActorError):
    """An actor placed on a pool has no live host to act on it now (restart, resume):
    the pool has no live host, or the host it was placed on is gone and no other host
    took it over yet. Nothing was changed."""

    def __init__(self, actor_id: str, pool: str, reason: str) -> None:
        super().__init__(actor_id, pool, reason)
        self.actor_id, self.pool, self.reason = actor_id, pool, reason

    def __str__(self) -> str:
        return f"no live host of pool {self.pool!r} runs {self.actor_id!r}: {self.reason}"


class Cancelled(BaseException):
    """The running handler was cancelled out of band.

    A ``BaseException`` (as in trio) so that ``except Exception`` in user code cannot
    swallow it. An asker whose question was cancelled receives it as an error.
    """

    def __init__(self, actor_id: str = "", reason: str = "cancelled") -> None:
        super().__init__(actor_id, reason)
        self.actor_id, self.reason = actor_id, reason

    def __str__(self) -> str:
        who = f"{self.actor_id!r}: " if self.actor_id else ""
        return f"{who}{self.reason}"
