"""The handler that sends a worker's log lines to its backend (``worker.log_stream``):
lines a failed send lost are counted in the next batch, and a handler never waits."""

from __future__ import annotations

import logging
import threading
from typing import Sequence

from actors_runtime.errors import StoreError
from actors_runtime.worker.log_stream import ActorLogHandler
from conftest import wait_until


class FlakyLog:
    """Refuses its first append; keeps the lines of the others."""

    def __init__(self) -> None:
        self.calls = 0
        self.kept: list[str] = []
        self.refused = threading.Event()

    def append(self, lines: Sequence[str]) -> None:
        self.calls += 1
        if self.calls == 1:
            self.refused.set()
            raise StoreError("redis at nowhere", "cannot append: the server did not answer")
        self.kept.extend(lines)

    def last(self, count: int | None) -> tuple[list[str], str]:
        return self.kept[-count:] if count else list(self.kept), str(len(self.kept))

    def after(self, cursor: str, timeout: float) -> tuple[list[str], str]:
        return self.kept[int(cursor):], str(len(self.kept))


def test_lines_a_failed_send_lost_are_counted_at_the_head_of_the_next_batch():
    log = FlakyLog()
    handler = ActorLogHandler(log)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("test-log-stream-flaky")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("first\nits second line")
        wait_until(log.refused.is_set, 10)
        wait_until(lambda: not handler._sending, 10)
        logger.warning("after")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert log.kept == ["(2 log lines were lost here: the server was away or slow)", "after"]
    assert not handler._thread.is_alive()
    handler.handle(logging.makeLogRecord({"msg": "closed: not sent, and no error"}))
    assert log.kept[-1] == "after"
