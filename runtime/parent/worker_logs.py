"""The parent's side of its workers' logging: levels out, records in.

A pipe worker logs what this process would log: before its spec it gets the levels
of this process's loggers (``parent_levels``), and it forwards each record it keeps
(``runtime.worker.logs``); ``handle`` gives it to the logger of the same name here,
so the user's handlers, formats and filters apply to records made in workers. The
record keeps the worker's pid, and its ``actor_id`` and ``msg_id``.
"""

from __future__ import annotations

import json
import logging

log = logging.getLogger(__name__)


def parent_levels() -> dict[str, int]:
    """This process's logging levels for a worker: the root's effective level and
    every logger's own level that was set ("" is the root)."""
    levels = {"": logging.getLogger().getEffectiveLevel()}
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return levels


def handle(raw: bytes) -> None:
    """Hand a record a worker forwarded (JSON) to this process's logger of its name,
    if that logger is enabled for its level. Garbage is dropped (logged at debug)."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not isinstance(doc.get("levelno"), int):
        log.debug("a worker forwarded a log record that is not one: %r", raw[:80])
        return
    logger = logging.getLogger(doc["name"])
    if logger.isEnabledFor(doc["levelno"]):
        logger.handle(logging.makeLogRecord(doc))
