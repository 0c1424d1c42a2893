"""The system's inbox: replies to the parent's asks, and requests from its actors.

::

    ask_async: expect(msg_id, future) -> deliver the ask -> ... -> resolve(reply)
    inbox thread: drain the system's mailbox -> replies resolve their futures,
                  mcp_request messages go to the host-tool server; ack

Replies to asks usually come back on a worker's pipe instead (``resolve_frame``):
the question waits only in this process's memory, so a durable write would buy
nothing there. A reply that comes after its ask gave up is dropped.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from typing import Any, Callable

from .. import control
from ..address import Address
from ..backends.base import Backend
from ..messages import InboxKind, InboxMessage, ReplyError
from ..threads import start_thread
from ..worker.replies import error_from_reply

log = logging.getLogger(__name__)

#: Messages taken from the inbox at a time.
INBOX_BATCH = 1024
#: Seconds between looks when nothing rings (a safety net).
INBOX_SWEEP = 1.0


class Inbox:
    """Pending asks of one system, and the thread that reads its inbox.

    Args:
        backend: the project's backend.
        address: the system's inbox.
        decode: turns an answer's JSON into what the asker gets.
        serve_request: handles an ``mcp_request`` (runs on the inbox thread; it
            must hand long work to another thread).
    """

    def __init__(self, backend: Backend, address: Address, decode: Callable[[Any], Any],
                 serve_request: Callable[[InboxMessage], None]) -> None:
        self.address = address
        self._decode = decode
        self._serve_request = serve_request
        self._mailbox = backend.mailbox(address, create=True)
        self._mailbox.claim(0.0)  # the system's lock is held: nobody else reads it
        self._pending: dict[str, tuple["Future[Any]", str]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start reading, once whatever serves requests is ready: requests queued
        while the system was down (activations, ``actors restart``) come first."""
        self._thread = start_thread(self._serve, f"actors-inbox-{self.address.system_id}")

    # -- pending asks ------------------------------------------------------------------

    def expect(self, msg_id: str, future: "Future[Any]", who: str) -> None:
        """Resolve ``future`` with the reply to ``msg_id`` (asked of ``who``)."""
        with self._lock:
            self._pending[msg_id] = (future, who)

    def forget(self, msg_id: str) -> None:
        """The ask gave up (timed out, or was never sent): drop its reply when it comes."""
        with self._lock:
            self._pending.pop(msg_id, None)

    def resolve(self, message: InboxMessage) -> None:
        """Hand a reply to the future waiting for it (a late one is dropped)."""
        body = message.body if isinstance(message.body, dict) else {}
        self._settle(message.correlation_id or "", body.get("answer"), body.get("error"))

    def resolve_frame(self, frame: bytes) -> None:
        """A reply that came back on a worker's pipe: an answer in the pipe's own form
        (``control.ANSWER_PREFIX``), or a whole reply message (``REPLY_PREFIX``)."""
        try:
            if frame[:1] == control.ANSWER_PREFIX:
                self._settle(*control.parse_answer(frame), None)
                return
            message = InboxMessage.from_wire(frame[1:])
        except (ValueError, RecursionError):
            log.warning("system %s: unreadable reply on a child's pipe dropped", self.address.system_id)
            return
        self.resolve(message)

    def _settle(self, correlation_id: str, answer: Any, error: Any) -> None:
        with self._lock:
            entry = self._pending.pop(correlation_id, None)
        if entry is None:
            log.debug("system %s: late reply %s dropped", self.address.system_id, correlation_id)
            return
        future, who = entry
        try:
            if error:
                future.set_exception(error_from_reply(ReplyError.from_dict(error), who))
            else:
                future.set_result(self._decode(answer))
        except Exception as exc:  # an answer this process cannot decode still ends the wait
            if not future.done():
                future.set_exception(exc)

    def fail_for(self, who: str, error: BaseException) -> None:
        """Fail every ask waiting for ``who`` (it was marked failed)."""
        with self._lock:
            waiting = [msg_id for msg_id, (_, asked) in self._pending.items() if asked == who]
            futures = [self._pending.pop(msg_id)[0] for msg_id in waiting]
        for future in futures:
            if not future.done():
                future.set_exception(error)

    # -- the thread --------------------------------------------------------------------

    def _serve(self) -> None:
        mailbox = self._mailbox
        while not self._closed:
            batch = mailbox.drain(INBOX_BATCH)
            for delivered in batch:
                message = delivered.message
                try:
                    if message.kind == InboxKind.REPLY:
                        self.resolve(message)
                    elif message.kind == InboxKind.MCP_REQUEST:
                        self._serve_request(message)
                    else:
                        log.warning("system %s: unexpected %r message %s from %s dropped", self.address.system_id,
                                    message.kind, message.id, message.sender.session_id)
                except Exception:
                    log.exception("system %s: failed to handle %s", self.address.system_id, message.id)
            if batch:
                mailbox.ack(batch)
            else:
                mailbox.wait(INBOX_SWEEP)

    def close(self, error: Callable[[str], BaseException], timeout: float) -> None:
        """Stop the thread and fail every ask still waiting with ``error(who)``."""
        self._closed = True
        self._mailbox.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            pending, self._pending = self._pending, {}
        for future, who in pending.values():
            if not future.done():
                future.set_exception(error(who))
        if self._thread is None or not self._thread.is_alive():
            self._mailbox.close()
