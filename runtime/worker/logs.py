"""Logging in a worker: who and what each record is about, a durable file, the parent.

::

    any logger in the worker --> record (+ actor_id, msg_id: the record factory)
                                   |--> actor.log in the actor's directory (rotated, bounded;
                                   |    on Redis under ACTORS_LOG_DIR, if set)
                                   |--> the backend's log of the actor, if it keeps one
                                   |    (Redis: readable from any machine; ``log_stream``)
                                   |--> pipe workers: to the parent, which hands it to its
                                   |    own loggers (the user's handlers and formats)
                                   '--> seed workers (``actors worker``): stderr

Which records exist is decided by the levels: a pipe worker takes the levels of its
parent's loggers (sent before the spec, ``control.LEVELS_PREFIX``), so a program
that set INFO on its loggers sees its handlers' INFO lines; a seed worker takes
``ACTORS_LOG_LEVEL`` (default WARNING). The library never calls ``basicConfig``.

Every record made in a worker process carries ``actor_id`` and ``msg_id`` (the id of
the message being handled, "-" between messages), through the record factory, so
the user's own handlers and formats can use them too.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ActorNotFound
from .log_stream import ActorLogHandler

if TYPE_CHECKING:
    from .activation import Worker

#: How big the log file grows before it is rotated to ``actor.log.1`` (one backup is
#: kept, so an actor's logs take at most twice this).
MAX_LOG_BYTES = 1 << 20
#: Rotated files kept.
LOG_BACKUPS = 1
#: The log file's mode: the owner's only, like every file of an actor (whatever the umask).
LOG_FILE_MODE = 0o600
#: The line format of the log file and of a seed worker's stderr.
LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(actor_id)s %(msg_id)s] %(message)s"
#: What ``actor_id`` / ``msg_id`` read as on a record made outside any actor or message.
NONE = "-"
#: The environment variable that sets a seed worker's level (a name or a number).
LEVEL_ENV = "ACTORS_LOG_LEVEL"
#: Marks the stderr handler a worker installs for itself (a pipe worker removes it
#: once its records go to the parent).
_OWN_STDERR = "_actors_worker_stderr"


def line_formatter() -> logging.Formatter:
    """The formatter of log lines (a record without the actor's fields still formats)."""
    return logging.Formatter(LINE_FORMAT, defaults={"actor_id": NONE, "msg_id": NONE})


def configure_stderr() -> None:
    """A worker is a program: give it a stderr handler if none is set (level from
    ``ACTORS_LOG_LEVEL``, default WARNING)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(line_formatter())
    setattr(handler, _OWN_STDERR, True)
    root.addHandler(handler)
    root.setLevel(_level_from_env())


def _level_from_env() -> int:
    text = os.environ.get(LEVEL_ENV, "").strip()
    if not text:
        return logging.WARNING
    if text.isdigit():
        return int(text)
    level = logging.getLevelName(text.upper())
    return level if isinstance(level, int) else logging.WARNING


def apply_levels(levels: dict[str, Any]) -> None:
    """Set this process's logger levels as the parent sent them ("" is the root)."""
    for name, level in levels.items():
        if isinstance(name, str) and isinstance(level, int) and not isinstance(level, bool):
            logging.getLogger(name or None).setLevel(level)


def install(worker: "Worker", forward: Callable[[bytes], bool] | None) -> None:
    """Make every record of this process name ``worker``'s actor and message, keep
    them in the actor's log file, and (``forward``: a pipe worker's lane) send them to
    the parent instead of this process's stderr. Call once, before ``activate``."""
    outbox, actor_id = worker.outbox, worker.actor_id
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        current = outbox.current
        record.actor_id = actor_id
        record.msg_id = NONE if current is None else current.id
        return record

    logging.setLogRecordFactory(factory)
    root = logging.getLogger()
    try:
        path = worker.backend.log_path(worker.address)
    except ActorNotFound:
        path = None
    if path is not None:
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        except OSError as exc:
            logging.getLogger(__name__).warning("actor %s: no log file at %s: %s", actor_id, path, exc)
            path = None
    if path is not None:
        handler = PrivateRotatingFileHandler(path, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS,
                                             encoding="utf-8", delay=True)
        handler.setFormatter(line_formatter())
        root.addHandler(handler)
    shared = worker.backend.actor_log(worker.address)
    if shared is not None:
        sender = ActorLogHandler(shared)
        sender.setFormatter(line_formatter())
        root.addHandler(sender)
        _senders.append(sender)
    if forward is not None:
        for own in [h for h in root.handlers if getattr(h, _OWN_STDERR, False)]:
            root.removeHandler(own)
        root.addHandler(ForwardHandler(forward))


def close() -> None:
    """Send what this worker's log handlers still hold to the backend (a worker calls
    this before ``os._exit``, which skips ``logging.shutdown``)."""
    while _senders:
        sender = _senders.pop()
        logging.getLogger().removeHandler(sender)
        sender.close()


#: The handlers ``install`` added that send to the backend (``close`` flushes them).
_senders: list["ActorLogHandler"] = []


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file the owner alone can read (``LOG_FILE_MODE``; the umask can only
    take bits away), opened without following a symbolic link planted at its path."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                     LOG_FILE_MODE)
        os.fchmod(fd, LOG_FILE_MODE)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


class ForwardHandler(logging.Handler):
    """Sends each record to the parent as JSON (``control.LOG_PREFIX``): the message
    already formatted with its arguments, the traceback as text."""

    def __init__(self, send: Callable[[bytes], bool]) -> None:
        super().__init__()
        self.send = send
        self.tracebacks = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            doc = {key: value for key, value in record.__dict__.items()
                   if key not in _NOT_SENT and isinstance(value, (str, int, float, type(None)))}
            doc["msg"], doc["args"] = record.getMessage(), None
            if record.exc_info and not record.exc_text:
                doc["exc_text"] = self.tracebacks.formatException(record.exc_info)
            self.send(json.dumps(doc, default=str).encode())
        except Exception:
            self.handleError(record)


#: Record attributes that do not travel (objects, or rebuilt by the parent).
_NOT_SENT = frozenset({"msg", "args", "exc_info", "stack_info_obj"})
