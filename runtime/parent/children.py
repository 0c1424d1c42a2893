"""The parent's view of one actor of its system."""

from __future__ import annotations

import threading
from typing import Any

from ..errors import ActorFailed
from ..records import STARTING
from ..spec import ProvisionSpec
from .restart_policy import Deaths


class Child:
    """One actor of this system: its spec, its process and pipe, its supervision facts.

    Fields change under the supervisor's lock; ``exited`` is set whenever no worker
    runs and none is being started.
    """

    def __init__(self, spec: ProvisionSpec) -> None:
        self.spec = spec
        self.actor_id = spec.identity.child_id
        self.status = STARTING
        self.process: Any = None
        self.conn: Any = None
        self.conn_open = False
        #: Held by whoever reads ``conn`` (the monitor, or an asker; see ``lanes``).
        self.reader = threading.Lock()
        self.exit_reason: str | None = None
        #: When its last worker said its timers are next due (unix seconds; see ``wakes``).
        self.wake_at: float | None = None
        self.stop_requested = False
        self.killed = False
        #: Asked to stop to make room (see ``capacity``): its exit leaves it idle, not stopped.
        self.passivating = False
        self.deaths = Deaths()  # unexpected deaths that were restarted
        self.restarts = 0
        self.exited = threading.Event()
        self.exited.set()
        self.last_error = ""

    @property
    def alive(self) -> bool:
        return self.process is not None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def depth(self) -> int:
        return self.spec.identity.depth

    @property
    def parent_id(self) -> str | None:
        return self.spec.identity.parent_id

    def failed_error(self) -> ActorFailed:
        """What an ask to this actor gets once it is marked failed."""
        return ActorFailed(self.actor_id, "failed", f"the actor is marked failed ({self.last_error}); its "
                           "messages wait in its mailbox until it is spawned again or restarted "
                           f"('actors restart {self.actor_id}')")
