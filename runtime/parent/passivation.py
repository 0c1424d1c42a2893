"""The supervisor as a ``capacity.Fleet``: which of its actors are idle, and how one
is passivated.

Idle is read from the actor's mailbox, as any process can (``MailboxView``): the
in-flight marker names no message and nothing waits (new, or handed out and not yet
acked). It is a look, not a lock: a message that arrives just after it is not lost,
because passivating is a polite stop. The worker finishes the message it is
handling, commits and exits; anything newer stays in its mailbox, and the monitor,
seeing a passivated actor leave with messages waiting, activates it again.

A passivated actor's status is ``idle`` (cold), not ``stopped``: its next message,
its timers or the cold sweep bring it back (``monitor._child_exited``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .. import control
from ..errors import ActorNotFound, StoreError
from ..records import RESTARTING, RUNNING, STARTING
from .launcher import send

if TYPE_CHECKING:
    from .children import Child
    from .supervisor import Supervisor

log = logging.getLogger(__name__)

#: Statuses in which a child holds a capacity slot (with ``alive``: a worker runs).
WARM_STATUSES = (STARTING, RUNNING, RESTARTING)


class SupervisorFleet:
    """``Fleet`` over one supervisor's children."""

    def __init__(self, sup: "Supervisor") -> None:
        self.sup = sup

    def is_idle(self, actor_id: str) -> bool:
        sup = self.sup
        try:
            view = sup.backend.view(sup.backend.address(sup.system_id, actor_id))
        except (ActorNotFound, StoreError):
            return False
        try:
            return view.inflight_id() is None and not view.has_waiting()
        except (StoreError, OSError):
            return False  # cannot tell: leave it be
        finally:
            view.close()

    def passivate(self, actor_id: str) -> bool:
        sup = self.sup
        with sup.lock:
            child = sup.children.get(actor_id)
            if child is None or not child.conn_open or child.status != RUNNING or child.stop_requested \
                    or child.passivating or sup.closing:
                return False
            child.passivating = True
            conn = child.conn
        log.info("actor %s: passivating (capacity %s reached)", actor_id, sup.capacity.limit)
        send(conn, control.STOP)
        return True


def holds_slot(child: "Child") -> bool:
    """Whether ``child`` occupies capacity: a worker runs, starts, or will restart."""
    return child.alive or child.status in WARM_STATUSES
