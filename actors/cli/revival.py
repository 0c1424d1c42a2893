"""``actors restart``: bring back an actor that was marked failed.

Its system's lock decides how. A running system holds it, keeps the actor's
supervision facts in memory and alone writes its record, so the CLI asks it, through
its inbox (an ``actors.restart`` request), to forget the failure and start the actor,
then watches the lease record and the supervision record for the outcome. When no
system runs, the CLI takes the lock itself (no system can start meanwhile), resets
the recorded status from failed to stopped, and queues an activation request that
the system serves when it next runs.

An actor placed on a pool is its host's to start, whether or not its system runs:
the CLI asks the host that owns it (``actors_runtime.parent.placed``), which starts
it again with its placement's spec and answers once it registered or failed; the
CLI then watches its records as above. No live host owning it is one line (exit 6).
"""

from __future__ import annotations

import dataclasses
import enum
import time

from actors_runtime.address import Address
from actors_runtime.backends.base import Backend
from actors_runtime.control import RESTART_TOOL
from actors_runtime.errors import ActorNotFound, StoreError
from actors_runtime.parent.placed import HostLine, placement, restart_on_host
from actors_runtime.records import FAILED, STOPPED
from actors_runtime.worker import ask_system, request_activation

from .processes import live_record
from .project import CLI_SENDER, Env

#: Seconds between looks at the records while a running system starts the actor.
POLL_INTERVAL = 0.05


class Revived(enum.Enum):
    """How a restart ended."""

    RUNNING = "running"  # it was running already: nothing done
    STARTED = "started"  # its running system started it
    FAILED_AGAIN = "failed again"  # its running system tried, and it failed again
    ASKED = "asked"  # its running system was asked (not waited for)
    NOT_YET = "not yet"  # its running system was asked; not up within the timeout
    RESET = "reset"  # no system runs: the record was reset, its system starts it next run
    REFUSED = "refused"  # its host will not start it (paused: only a resume lifts that)


@dataclasses.dataclass(frozen=True)
class Outcome:
    state: Revived
    text: str
    asked: str  # who was asked to start it: "its system 'main'", "host h1 of pool 'web'"
    error: str = ""


def revive(env: Env, actor_id: str, wait: float | None) -> Outcome:
    """Restart ``actor_id`` (see the module docstring); ``wait`` is how long to watch
    a running system start it (None: do not watch).

    Raises:
        InvalidSpec, ActorNotFound, CliError: as ``Env.locate``. StoreError: the
            project's files could not be read or written.
    """
    backend, address = env.locate(actor_id)
    system_id = address.system_id
    record = live_record(backend, actor_id)
    if record is not None:
        return Outcome(Revived.RUNNING, f"{actor_id!r} is running (pid {record.pid}); nothing to restart",
                       f"its system {system_id!r}")
    pool = placement(backend, address)
    if pool is not None:
        return _on_host(backend, address, pool, wait)
    try:
        lock = backend.store.lock_system(system_id)
    except StoreError:  # held: the system runs (elsewhere) and must do it
        return _through_system(backend, address, wait)
    try:
        text = _reset(backend, address)
        request_activation(backend, CLI_SENDER, address)  # served when the system next runs
    finally:
        lock.release()
    return Outcome(Revived.RESET, text, f"its system {system_id!r}")


def _reset(backend: Backend, address: Address) -> str:
    """Turn a recorded failure into a stop (hold the system's lock); says what it did."""
    actor_id, system_id = address.name, address.system_id
    found = backend.store.child_entry(actor_id)
    later = f"its system {system_id!r} is not running; it starts {actor_id!r} when it next runs"
    if found is None or found[0] != system_id or found[1].status != FAILED:
        status = found[1].status if found is not None else "not running"
        return f"{actor_id!r} is {status}; {later}"
    entry = found[1]
    backend.store.record_children(system_id, [dataclasses.replace(entry, status=STOPPED, last_error="",
                                                                  updated_at=0.0)])
    reason = f" ({entry.last_error})" if entry.last_error else ""
    return f"reset {actor_id!r} from failed{reason} to stopped; {later}"


def _through_system(backend: Backend, address: Address, wait: float | None) -> Outcome:
    actor_id, system_id = address.name, address.system_id
    asked = f"its system {system_id!r}"
    asked_at = time.time()  # a failure recorded from now on is this attempt's
    try:
        ask_system(backend, CLI_SENDER, address, RESTART_TOOL)
    except ActorNotFound:
        raise StoreError(system_id, f"system {system_id!r} holds its lock but has no inbox") from None
    if wait is None:
        return Outcome(Revived.ASKED, f"asked system {system_id!r} to restart {actor_id!r}", asked)
    return _watch(backend, address, asked_at, time.monotonic() + wait, asked, f"through its system {system_id!r}")


def _on_host(backend: Backend, address: Address, pool: str, wait: float | None) -> Outcome:
    """Ask the host that owns a placed actor to start it again (see the module docstring)."""
    actor_id = address.name
    if wait is None:
        host, _ = HostLine(backend, pool, address).send("restart")
        asked = f"host {host} of pool {pool!r}"
        return Outcome(Revived.ASKED, f"asked {asked} to restart {actor_id!r}", asked)
    asked_at = time.time()
    deadline = time.monotonic() + wait
    host, answer = restart_on_host(backend, pool, address, wait)
    asked = f"host {host} of pool {pool!r}"
    if answer is None:
        return Outcome(Revived.NOT_YET, "", asked)
    error = str(answer.get("error") or "no reason given")
    if answer.get("failed"):
        return Outcome(Revived.FAILED_AGAIN, "", asked, error)
    if not answer.get("ok"):
        return Outcome(Revived.REFUSED, "", asked, error)
    if answer.get("running"):
        return Outcome(Revived.RUNNING, f"{actor_id!r} is running on {asked} (pid {answer.get('pid')}); nothing "
                                        "to restart", asked)
    return _watch(backend, address, asked_at, deadline, asked, f"on {asked}")


def _watch(backend: Backend, address: Address, asked_at: float, deadline: float, asked: str,
           how: str) -> Outcome:
    """Watch the records of an actor that was asked to start until it runs past its
    recovery, fails again (a failure recorded after ``asked_at``), or ``deadline``."""
    actor_id = address.name
    while True:
        found = backend.store.child_entry(actor_id)
        if found is not None and found[1].status == FAILED and found[1].updated_at >= asked_at:
            return Outcome(Revived.FAILED_AGAIN, "", asked, found[1].last_error or "no reason recorded")
        record = live_record(backend, actor_id)
        # Registered is not yet survived: the messages its last worker died on are
        # handled right after. Started means those are behind it (or time is up).
        if record is not None and (not _recovering(backend, address) or time.monotonic() >= deadline):
            return Outcome(Revived.STARTED, f"restarted {actor_id!r} (pid {record.pid}) {how}", asked)
        if time.monotonic() >= deadline:
            return Outcome(Revived.NOT_YET, "", asked)
        time.sleep(POLL_INTERVAL)  # another process's records: nothing to wait on but time


def _recovering(backend: Backend, address: Address) -> bool:
    """Whether the actor still holds messages handed out and not acked (what its last
    worker was handling when it died counts among them)."""
    try:
        view = backend.view(address)
    except (ActorNotFound, StoreError):
        return False
    try:
        return view.counts().get("cur", 0) > 0
    except (OSError, StoreError):
        return False
    finally:
        view.close()
