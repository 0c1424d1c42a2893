"""Can anything answer an actor now? What ``ask`` and ``tell`` check before sending.

An actor is answered by its worker; a stopped one is started by its own system when
a message arrives, if that system runs and its records do not say it failed. So an
``ask`` to an actor with no live worker whose system does not run (or that is marked
failed) would only wait out its timeout: it is refused at once instead, and nothing
is sent. A ``tell`` is still delivered (messages wait durably), and its line says
what will start the actor.

Whether a system runs is whether a process holds its lock. On the maildir backend
that is read from ``/proc/locks`` without taking the lock (see
``actors_runtime.backends.maildir.projects``); where it cannot be told, the system
is taken to run and the ask waits as before.
"""

from __future__ import annotations

import dataclasses

from actors_runtime.address import Address
from actors_runtime.backend_url import parse_backend
from actors_runtime.backends.base import Backend
from actors_runtime.backends.maildir.layout import ProjectLayout
from actors_runtime.backends.maildir.projects import lock_holder
from actors_runtime.errors import StoreError
from actors_runtime.records import FAILED, PAUSED
from actors_runtime.worker.pausing import recorded_pause

from .exit_codes import EXIT_FAILED, EXIT_NOT_RUNNING, CliError
from .processes import live_record
from .project import Env


@dataclasses.dataclass(frozen=True)
class Reach:
    """What can answer an actor now.

    Attributes:
        worker_pid: its live worker's pid (None: no worker runs it).
        failed: why it was marked failed ("" when it is not).
        system_runs: whether its system runs now (None: cannot be told here).
        paused: why it is paused on a poison message ("" when it is not).
    """

    worker_pid: int | None
    failed: str
    system_runs: bool | None
    paused: str = ""


def reach(env: Env, backend: Backend, address: Address) -> Reach:
    """Look (without changing anything) at what could answer ``address`` now."""
    actor_id, system_id = address.name, address.system_id
    record = live_record(backend, actor_id)
    if record is not None:
        return Reach(record.pid, "", None)
    failed = paused = ""
    try:
        found = backend.store.child_entry(actor_id)
    except StoreError:
        found = None
    if found is not None and found[0] == system_id and found[1].status == FAILED:
        failed = found[1].last_error or "no reason recorded"
    if found is not None and found[0] == system_id and found[1].status == PAUSED:
        paused = found[1].last_error or "no reason recorded"
    else:  # the session is the authority on a pause (the index may lag: a system that died)
        pause = recorded_pause(backend.store, system_id, actor_id)
        if pause is not None:
            paused = pause.reason or "no reason recorded"
    return Reach(None, failed, system_runs(env, system_id), paused)


def system_runs(env: Env, system_id: str) -> bool | None:
    """Whether a process holds ``system_id``'s lock (None: cannot be told on this backend)."""
    name, _ = parse_backend(env.backend_name)
    if name == "redis":  # a running system renews its lock key (a dead one's expires)
        running = getattr(env.open().store, "system_running", None)
        return None if running is None else bool(running(system_id))
    if name != "maildir":
        return None
    return lock_holder(ProjectLayout(env.home, env.key).system_lock(system_id)) is not None


def refuse_ask(actor_id: str, system_id: str, seen: Reach) -> CliError | None:
    """The error for an ask nothing can answer (None: something can, or may)."""
    if seen.worker_pid is not None:
        return None
    if seen.failed:
        return CliError(f"{actor_id!r} is marked failed ({seen.failed}); messages do not start it, "
                        f"'actors restart {actor_id}' does. The question was not sent", EXIT_FAILED)
    if seen.paused:
        return CliError(f"{actor_id!r} is paused ({seen.paused}); messages wait until "
                        f"'actors resume {actor_id} [--skip]'. The question was not sent", EXIT_NOT_RUNNING)
    if seen.system_runs is False:
        return CliError(f"{actor_id!r} is not running and its system {system_id!r} is not running, so "
                        "nothing can start it now (run the program that owns it). The question was not sent",
                        EXIT_NOT_RUNNING)
    return None


def tell_note(actor_id: str, system_id: str, seen: Reach) -> str:
    """What happens to a message told to an actor that is not running."""
    if seen.failed:
        return (f"{actor_id!r} is marked failed ({seen.failed}); the message waits in its mailbox "
                f"until it is brought back ('actors restart {actor_id}')")
    if seen.paused:
        return (f"{actor_id!r} is paused ({seen.paused}); the message waits in its mailbox until "
                f"'actors resume {actor_id} [--skip]'")
    if seen.system_runs is False:
        return (f"{actor_id!r} is not running and neither is its system {system_id!r}; the message "
                "will be handled when its system next runs and starts it")
    return f"{actor_id!r} is not running; the message will be handled at its next activation"
