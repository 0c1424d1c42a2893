"""durable-actors: actors for synchronous Python with durable mailboxes.

Each actor is a worker process with a crash-safe mailbox and state on disk; handlers
are plain synchronous methods. Start here::

    from actors import Actor, ActorSystem

    class Counter(Actor):
        def on_start(self):
            self.state.setdefault("count", 0)
        def on_task(self, body, msg):
            self.state["count"] += body["n"]
        def on_ask(self, question, msg):
            return self.state["count"]

    with ActorSystem(home="/tmp/actors-home") as system:
        counter = system.spawn(Counter, name="counter")
        counter.tell({"n": 2})
        assert counter.ask("count?") == 2
"""

import logging
from typing import TYPE_CHECKING, Any

from actors_runtime.backends.base import DeadLetter
from actors_runtime.errors import (
    ActorError,
    ActorFailed,
    ActorNotFound,
    AskTimeout,
    Cancelled,
    InvalidSpec,
    MailboxFull,
    NoHandler,
    NoLiveHost,
    NotPaused,
    SpawnError,
    StepFailed,
    StoreError,
    SystemShutDown,
    UnboundRef,
    WrongContext,
)
from actors_runtime.messages import InboxMessage as Message
from actors_runtime.messages import ReminderTick

from ._actor import Actor, receive
from ._ref import ActorRef
from ._timers import Reminder

if TYPE_CHECKING:
    from ._system import ActorInfo, ActorSystem, ChildInfo

#: Names imported when first used: a worker process imports ``actors`` for ``Actor``,
#: and the parent's machinery (``ActorSystem`` and the supervisor, pool, monitor and
#: inbox behind it) would only cost it import time and memory.
_LAZY = {"ActorInfo": "._system", "ActorSystem": "._system", "ChildInfo": "._system"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

__version__ = "0.1.0"

# A library configures no logging of its own; the application decides (see the guide).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Actor",
    "ActorError",
    "ActorFailed",
    "ActorInfo",
    "ActorNotFound",
    "ActorRef",
    "ActorSystem",
    "AskTimeout",
    "Cancelled",
    "ChildInfo",
    "DeadLetter",
    "InvalidSpec",
    "MailboxFull",
    "Message",
    "NoHandler",
    "NoLiveHost",
    "NotPaused",
    "Reminder",
    "ReminderTick",
    "SpawnError",
    "StepFailed",
    "StoreError",
    "SystemShutDown",
    "UnboundRef",
    "WrongContext",
    "receive",
]
