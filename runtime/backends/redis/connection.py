"""Reaching the Redis server: the URL, the checks a server must pass, and retries.

::

    "redis://HOST:PORT/DB" | "unix:///PATH/redis.sock[?db=N]"  -> ServerUrl
    Server(url): one connection pool per backend; every call goes through ``call``:
        a lost connection is retried with backoff for ``retry_for`` seconds, then
        StoreError("redis at <where>", "...")  (never a hang: sockets have timeouts)
        a Lua script's refusal or a server error is StoreError at once

A server is refused unless ``maxmemory-policy`` is ``noeviction`` (an evicting server
drops mailboxes and sessions silently); with AOF off it is used with a warning (what
was acknowledged then lives only in the server's memory). The password may come in
the URL or in ``ACTORS_REDIS_PASSWORD``; it never appears in ``location``, which
travels in addresses and records.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from ...errors import InvalidSpec, StoreError

try:
    import redis
    import redis.backoff
    import redis.exceptions
    import redis.retry
except ImportError:  # the extra is missing: open_backend names it
    redis = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a lost connection is retried (with backoff) before a call gives up.
RETRY_FOR = 30.0
#: First and longest pause between retries, in seconds.
BACKOFF_FIRST, BACKOFF_CAP = 0.05, 2.0
#: Seconds a socket may wait for a reply to an ordinary (not blocking) command.
SOCKET_TIMEOUT = 30.0
#: Seconds to connect.
CONNECT_TIMEOUT = 5.0
#: Environment variable with the server's password (``requirepass``).
PASSWORD_ENV = "ACTORS_REDIS_PASSWORD"


@dataclass(frozen=True)
class ServerUrl:
    """Where the server is. ``location`` is the URL without a password."""

    location: str
    host: str | None
    port: int
    path: str | None
    db: int
    password: str | None

    def connection_kwargs(self) -> dict[str, Any]:
        # Retries are ours (``retrying``): the client's own would add to them.
        kwargs: dict[str, Any] = {"db": self.db, "password": self.password,
                                  "socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT,
                                  "retry": redis.retry.Retry(redis.backoff.NoBackoff(), 0)}
        if self.path is not None:
            kwargs["path"] = self.path
        else:
            kwargs.update(host=self.host, port=self.port)
        return kwargs


def parse_url(value: str) -> ServerUrl:
    """``redis://[:PASSWORD@]HOST[:PORT][/DB]`` or ``unix://[:PASSWORD@]/PATH[?db=N]``.

    Raises:
        InvalidSpec: not such a URL (the message shows the two forms).
    """
    forms = "give redis://HOST:PORT/DB or unix:///PATH/redis.sock"
    try:
        parts = urllib.parse.urlsplit(value)
        query = urllib.parse.parse_qs(parts.query)
        password = parts.password or os.environ.get(PASSWORD_ENV) or None
        if parts.scheme == "redis":
            if not parts.hostname:
                raise ValueError("no host")
            port = parts.port or 6379
            db = int(parts.path.strip("/") or 0)
            location = f"redis://{parts.hostname}:{port}/{db}"
            return ServerUrl(location, parts.hostname, port, None, db, password)
        if parts.scheme == "unix":
            if not parts.path.startswith("/"):
                raise ValueError("the socket path must be absolute")
            db = int(query.get("db", ["0"])[0])
            path = os.path.normpath(parts.path)
            location = f"unix://{path}" + (f"?db={db}" if db else "")
            return ServerUrl(location, None, 0, path, db, password)
    except ValueError as exc:
        raise InvalidSpec("backend", f"{value!r} is not a Redis URL ({exc}); {forms}") from None
    raise InvalidSpec("backend", f"{value!r} is not a Redis URL; {forms}")


def require_client() -> None:
    """Raises InvalidSpec naming the extra when the ``redis`` client is missing."""
    if redis is None:
        raise InvalidSpec("backend", "the Redis backend needs the redis client: "
                                     "pip install 'durable-actors[redis]'")


_checked: set[str] = set()
_checked_lock = threading.Lock()


class Server:
    """One backend's connections to one server (see the module docstring).

    Raises:
        StoreError: the server cannot be reached within ``retry_for`` seconds, or it
            evicts keys (``maxmemory-policy`` other than ``noeviction``).
    """

    def __init__(self, url: ServerUrl, *, retry_for: float = RETRY_FOR) -> None:
        require_client()
        self.url = url
        self.where = f"redis at {url.location}"
        self.retry_for = retry_for
        kwargs = url.connection_kwargs()
        if url.path is not None:
            self.pool = redis.ConnectionPool(connection_class=redis.UnixDomainSocketConnection, **kwargs)
        else:
            self.pool = redis.ConnectionPool(**kwargs)
        self.client = redis.Redis(connection_pool=self.pool)
        self._scripts: dict[str, Any] = {}
        self._closed = False
        #: Run before every ``call`` (the in-flight marker writes a clear it owes).
        self.before_call: list[Callable[[], None]] = []
        self._check_server()

    def _check_server(self) -> None:
        with _checked_lock:
            if self.url.location in _checked:
                return
        info = self.call("look at the server", lambda c: c.info("all"))
        policy = info.get("maxmemory_policy", "noeviction")
        if policy != "noeviction":
            raise StoreError(self.where, f"maxmemory-policy is {policy!r}: an evicting server drops mailboxes and "
                                         "sessions without a word; set it to 'noeviction'")
        if not int(info.get("aof_enabled", 0)):
            log.warning("%s has AOF off (appendonly no): messages and state live only in its memory until a "
                        "snapshot; a crash of the server loses what was acknowledged since", self.where)
        with _checked_lock:
            _checked.add(self.url.location)

    def new_connection(self) -> Any:
        """A connection of its own (outside the pool), for blocking or pipelined use;
        the caller closes it with ``disconnect``."""
        return self.pool.connection_class(**self.pool.connection_kwargs)

    def script(self, name: str) -> Any:
        """The Lua script ``scripts/<name>.lua``, run by EVALSHA (loaded again on NOSCRIPT)."""
        found = self._scripts.get(name)
        if found is None:
            from .lua import source

            found = self._scripts[name] = self.client.register_script(source(name))
        return found

    def run(self, what: str, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script through ``call``."""
        script = self.script(name)
        return self.call(what, lambda client: script(keys=keys, args=args, client=client))

    def call(self, what: str, fn: Callable[[Any], T], *, retry: bool = True) -> T:
        """``fn(client)``, retried with backoff while the connection is lost.

        Args:
            what: what the call does, for the error ("deliver to counter").
            fn: the call; it may run more than once, so it must be safe to repeat.
            retry: whether to retry a lost connection at all.

        Raises:
            StoreError: the server refused (a script's refusal, an error reply) or could
                not be reached for ``retry_for`` seconds.
        """
        for hook in self.before_call:
            hook()
        return retrying(self.where, what, lambda: fn(self.client), self.retry_for if retry else 0.0)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.pool.disconnect()


def retrying(where: str, what: str, fn: Callable[[], T], retry_for: float,
             on_retry: Callable[[], None] | None = None) -> T:
    """``fn()``, retried with backoff on a lost connection for ``retry_for`` seconds.

    Raises:
        StoreError: as ``Server.call``.
    """
    deadline = time.monotonic() + retry_for
    pause = BACKOFF_FIRST
    warned = False
    while True:
        try:
            return fn()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreError(where, f"cannot {what}: the server did not answer for {retry_for:g} s "
                                        f"({type(exc).__name__}: {exc})") from None
            if not warned:
                log.warning("%s: lost the connection (%s); retrying for up to %g s", where, exc, left)
                warned = True
            time.sleep(min(pause, left))
            pause = min(pause * 2, BACKOFF_CAP)
            if on_retry is not None:
                on_retry()
        except redis.exceptions.RedisError as exc:
            raise StoreError(where, f"cannot {what}: {exc}") from None
