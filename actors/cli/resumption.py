"""``actors resume``: lift the pause of a paused actor, trying its message again or
skipping it.

Its system's lock decides how, as for ``actors restart``. A running system alone may
start the actor, so the CLI asks it, through its inbox (an ``actors.resume``
request), and watches the actor's session (the authority on a pause) until the pause
is lifted. When no system runs, the CLI takes the lock itself, resumes the actor on
disk (``runtime.parent.resume``), resets its record from paused to stopped, and
queues an activation request that the system serves when it next runs.

An actor placed on a pool is resumed by the host that owns it, whether or not its
system runs (``actors_runtime.parent.placed``): the host does what the system would,
answers once the change is committed, and starts the actor. No live host owning it
is one line (exit 6).
"""

from __future__ import annotations

import time

from actors_runtime.address import Address
from actors_runtime.backends.base import Backend
from actors_runtime.errors import NotPaused
from actors_runtime.parent.placed import HostLine, placement, resume_on_host
from actors_runtime.parent.resume import Resumed, resume_elsewhere
from actors_runtime.worker.pausing import read_pause

from .exit_codes import EXIT_TIMEOUT, CliError
from .project import CLI_SENDER, Env

#: Seconds between looks at the session while a running system resumes the actor.
POLL_INTERVAL = 0.05


def resume_actor(env: Env, actor_id: str, skip: bool, wait: float | None) -> str:
    """Resume ``actor_id`` (see the module docstring); returns what was done, in one
    line. ``wait`` is how long to watch a running system do it (None: do not watch).

    Raises:
        InvalidSpec, ActorNotFound, CliError: as ``Env.locate``. NotPaused: it is not
            paused. CliError (EXIT_TIMEOUT): its running system did not lift the pause
            within ``wait``. StoreError: the project's files failed.
    """
    backend, address = env.locate(actor_id)
    system_id = address.system_id
    how = ("skipped it: it is in the dead letters" if skip else "it is tried again")
    pool = placement(backend, address)
    if pool is not None:
        return _on_host(backend, address, pool, skip, wait, how)
    done = resume_elsewhere(backend, CLI_SENDER, address, skip)
    at = f"{actor_id!r} at message {done.pause.msg_id}"
    if done.how == Resumed.DONE:
        return (f"resumed {at}; {how}; its system {system_id!r} is not running: it handles "
                f"{actor_id!r}'s messages when it next runs")
    if wait is None:
        return f"asked system {system_id!r} to resume {at}"
    deadline = time.monotonic() + wait
    while True:
        pause = read_pause(backend.store, system_id, actor_id)
        if pause is None or pause.since != done.pause.since:
            again = f" (and it paused again: {pause.reason})" if pause is not None else ""
            return f"resumed {at} through its system {system_id!r}; {how}{again}"
        if time.monotonic() >= deadline:
            raise CliError(f"{actor_id!r} is still paused {wait} s after its system {system_id!r} was asked to "
                           "resume it ('actors ps' shows how it goes)", EXIT_TIMEOUT)
        time.sleep(POLL_INTERVAL)  # another process's session: nothing to wait on but time


def _on_host(backend: Backend, address: Address, pool: str, skip: bool, wait: float | None, how: str) -> str:
    """Have the host that owns a placed actor resume it (see the module docstring)."""
    actor_id = address.name
    if wait is None:
        if read_pause(backend.store, address.system_id, actor_id) is None:
            found = backend.store.child_entry(actor_id)
            raise NotPaused(actor_id, found[1].status if found is not None else "")
        host, _ = HostLine(backend, pool, address).send("resume", skip=bool(skip))
        return f"asked host {host} of pool {pool!r} to resume {actor_id!r}"
    host, msg_id = resume_on_host(backend, pool, address, skip, wait)
    return f"resumed {actor_id!r} at message {msg_id} on host {host} of pool {pool!r}; {how}"
