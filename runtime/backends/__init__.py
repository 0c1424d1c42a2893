"""Opening a backend by name or URL (see ``base`` for the seam every backend fills)."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any, Callable

from ..backend_url import AVAILABLE, parse_backend
from ..durability import Durability, check_durability
from .base import Backend, DeadLetter, Delivered, SessionDoc

__all__ = ["AVAILABLE", "Backend", "DeadLetter", "Delivered", "SessionDoc", "open_backend"]


def open_backend(backend: str, home: str, project_key: str, durability: Durability | str, *,
                 clock: Callable[[], float] = time.time,
                 new_future: Callable[[], "Future[Any]"] = Future) -> Backend:
    """One project's storage on the backend named by ``backend``.

    Args:
        backend: "maildir" (files under ``home``) or "memory" / "memory://NAME" (this
            process's memory; backends opened with the same name share their data), or a
            Redis URL ("redis://HOST:PORT/DB", "unix:///PATH/redis.sock"; the extra
            ``durable-actors[redis]``).
        home: the ``ACTORS_HOME`` directory (the maildir backend's location).
        project_key: the project (see ``runtime.address.project_key``).
        durability: "machine" or "process".
        clock: unix time, for leases.
        new_future: makes the Futures ``deliver_async`` returns.

    Raises:
        InvalidSpec: an unknown backend (the message names the available ones), a bad
            project key or durability; a Redis URL without the redis client installed.
        StoreError: the Redis server cannot be reached, or evicts keys.
    """
    name, location = parse_backend(backend)
    level = check_durability(durability)
    if name == "memory":
        from .memory import MemoryBackend

        assert location is not None
        return MemoryBackend(location, project_key, level, clock=clock, new_future=new_future)
    if name == "redis":
        from .redis.connection import require_client

        require_client()  # a clear error naming the extra, before the package needs the client
        from .redis import RedisBackend

        assert location is not None
        return RedisBackend(location, project_key, level, clock=clock, new_future=new_future)
    from .maildir import MaildirBackend

    return MaildirBackend(home, project_key, level, clock=clock, new_future=new_future)
