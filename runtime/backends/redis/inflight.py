"""The in-flight marker of a Redis mailbox: which message its worker handles, past
the worker's death.

It is set and cleared around every message, so it must not cost the server a
write per message (each write wakes redis-server: py-spy showed a third of a busy
worker's time in that ``sendall``). The message id is kept in a shared page on the
worker's machine (the maildir marker's ``MmapMarker``: a memory write, no system
call, and it survives a SIGKILL of the process), and the key in Redis says once per
activation where the page is::

    worker, first set     SET <mailbox>:inflight "@page:<machine>"   (one round trip)
                          then every set/clear: the page only
    any reader            GET the key: "@page:<this machine>" -> the page's id
                                       "@page:<another machine>" -> None (unknown)
                                       a plain id (the fallback below) -> that id
    worker, clean close   page cleared -> the page unlinked and the key deleted

The page is ``<dir>/<hash of server and key>.inflight`` in a directory of this user
in ``$XDG_RUNTIME_DIR``, else on ``/dev/shm`` (or the temp dir), so every process of the machine (the parent's
supervisor, the next activation, the CLI) finds it from the key alone.

Failure modes: a crash is counted against its message only by a reader on the same
machine, which is where a dead worker's supervisor (a system or an ``actors host``)
runs and starts it again. A reader on another machine sees no message in flight: a
worker whose next activation moved machines (its host died, or it was placed
elsewhere) has that death counted against no message, which is also the right call
when the whole machine died. A page that cannot be made (no writable directory of
our own) falls back to writing the id to the key at every ``set``; a marker that
could not be written is logged, and costs a crash not counted (poison detection),
never a lost message.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import stat
import tempfile
from typing import Any

from ...errors import StoreError
from ..maildir.inflight import MmapMarker, clear_marker, read_marker
from .connection import Server
from .local_process import HOST

log = logging.getLogger(__name__)

#: What the key holds while the id is kept in a page on machine ``<name>``.
PAGE_PREFIX = "@page:"
#: Where the pages go, after the user's runtime directory ($XDG_RUNTIME_DIR) when
#: set: a tmpfs when there is one (the page cache holds them anyway).
PAGE_ROOTS = ("/dev/shm", tempfile.gettempdir())


@functools.cache
def _page_dir() -> str | None:
    """This user's page directory (mode 0700, owned by us, not a link), or None."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    for root in ((runtime_dir,) if runtime_dir else ()) + PAGE_ROOTS:
        path = os.path.join(root, f"durable-actors-{os.getuid()}")
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            info = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077:
            return path
    return None


def page_path(server: Server, key: str) -> str | None:
    """The page of the marker at ``key`` on this machine (None: no directory for it)."""
    directory = _page_dir()
    if directory is None:
        return None
    digest = hashlib.sha256(f"{server.url.location}\0{key}".encode()).hexdigest()[:32]
    return os.path.join(directory, f"{digest}.inflight")


def marked(server: Server, key: str) -> str | None:
    """The id the marker at ``key`` names, read from any process (see the module docstring)."""
    value = server.call("read the in-flight marker", lambda client: client.get(key))
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    if not text.startswith(PAGE_PREFIX):
        return text
    if text[len(PAGE_PREFIX):] != HOST:
        return None
    path = page_path(server, key)
    return None if path is None else read_marker(path)


def forget(server: Server, key: str) -> None:
    """Clear the marker at ``key`` from any process (a worker killed on purpose)."""
    path = page_path(server, key)
    if path is not None:
        clear_marker(path)
    server.call("clear the in-flight marker", lambda client: client.delete(key))


class RedisMarker:
    """The worker's marker at ``key`` (see the module docstring)."""

    def __init__(self, server: Server, key: str) -> None:
        self._server = server
        self._key = key
        self._page: MmapMarker | None = None
        self._path: str | None = None
        self._paged = True  # False once a page could not be made: the key holds the id

    def _open(self) -> MmapMarker | None:
        """The page, made and announced in the key at the first use."""
        path = page_path(self._server, self._key)
        if path is None:
            log.warning("%s: no private directory for the in-flight marker's page; writing it to the server",
                        self._server.where)
            self._paged = False
            return None
        try:
            page = MmapMarker(path)
        except StoreError as exc:
            log.warning("%s: the in-flight marker's page cannot be used (%s); writing it to the server",
                        self._server.where, exc)
            self._paged = False
            return None
        page.clear()
        self._write("SET", self._key, PAGE_PREFIX + HOST)  # before any id is written to the page
        self._page, self._path = page, path
        return page

    def _write(self, *args: Any) -> None:
        try:
            self._server.call("write the in-flight marker", lambda client: client.execute_command(*args))
        except StoreError as exc:
            log.warning("%s: could not write the in-flight marker %s: %s", self._server.where, self._key, exc)

    def read(self) -> str | None:
        if self._page is not None:
            return self._page.read()
        return marked(self._server, self._key)

    def set(self, msg_id: str) -> None:
        page = self._page
        if page is None and self._paged:
            page = self._open()
        if page is not None:
            page.set(msg_id)
        else:
            self._write("SET", self._key, msg_id)

    def clear(self) -> None:
        if self._page is not None:
            self._page.clear()
        elif self._paged:
            path = page_path(self._server, self._key)
            if path is not None:
                clear_marker(path)  # a page a dead worker left on this machine
        else:
            self._write("DEL", self._key)

    def close(self) -> None:
        """Let go of the page; a clear one is removed with the key (nothing to tell
        anyone). Close it while this process still holds the mailbox: a successor's
        page has the same name."""
        page, self._page = self._page, None
        if page is None:
            return
        clear = page.read() is None
        page.close()
        if clear and self._path is not None:
            self._write("DEL", self._key)
            try:
                os.unlink(self._path)
            except OSError:
                pass
