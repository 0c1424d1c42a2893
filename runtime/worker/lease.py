"""The worker's lease record, and the watchdog that cancels handlers past their time."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

from ..backends.base import Fabric
from ..errors import StoreError
from ..records import AgentRecord
from ..threads import start_thread

log = logging.getLogger(__name__)


class Lease:
    """Publishes the actor's record, renews it (a third of the lease), withdraws it.

    A renewal never lands after the withdraw: both take one lock, and a withdrawn
    lease renews no more.
    """

    def __init__(self, fabric: Fabric, actor_id: str, lease: float) -> None:
        self.fabric = fabric
        self.actor_id = actor_id
        self.lease = lease
        self.record: AgentRecord | None = None
        self._ended = threading.Event()
        self._lock = threading.Lock()

    @property
    def renewal_interval(self) -> float:
        """Seconds between renewals (a third of the lease)."""
        return self.lease / 3

    def publish(self, record: AgentRecord) -> None:
        with self._lock:
            self.record = record
            self.fabric.publish(record, self.lease)

    def renew(self) -> None:
        """Publish the record again (any thread; a no-op once ended)."""
        with self._lock:
            if self.record is None or self._ended.is_set():
                return
            try:
                if not self.fabric.renew(self.record, self.lease):
                    log.warning("actor %s: its lease record belongs to another process now", self.actor_id)
            except (StoreError, OSError) as exc:
                log.warning("actor %s: lease renewal failed: %s", self.actor_id, exc)

    def start_renewing(self) -> None:
        """Renew from a thread of its own (a launcher with no thread to do it)."""
        start_thread(self._renew_loop, f"lease-{self.actor_id}")

    def _renew_loop(self) -> None:
        while not self._ended.wait(self.renewal_interval):
            self.renew()

    def suspend(self) -> None:
        """Withdraw the record but keep the lease (an idle actor checking once more)."""
        self.fabric.withdraw(self.actor_id, pid=os.getpid())

    def resume(self) -> None:
        with self._lock:
            if self.record is not None and not self._ended.is_set():
                self.fabric.publish(self.record, self.lease)

    def end(self) -> None:
        """No more renewals; withdraw the record (only if it is this process's)."""
        with self._lock:
            self._ended.set()
        self.fabric.withdraw(self.actor_id, pid=os.getpid())

    def stop_renewing(self) -> None:
        """No more renewals; the record stays until it is withdrawn or expires."""
        with self._lock:
            self._ended.set()


class Watchdog:
    """Cancels a handler that runs longer than ``timeout`` seconds (a thread of its own)."""

    def __init__(self, actor_id: str, timeout: float, cancel: Callable[[], None]) -> None:
        self.actor_id = actor_id
        self.timeout = timeout
        self._cancel = cancel
        self._deadline: float | None = None
        self._changed = threading.Condition()
        self._stopped = False
        start_thread(self._watch, f"watchdog-{actor_id}")

    def arm(self) -> None:
        with self._changed:
            self._deadline = time.monotonic() + self.timeout
            self._changed.notify()

    def disarm(self) -> None:
        with self._changed:
            self._deadline = None

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def _watch(self) -> None:
        with self._changed:
            while not self._stopped:
                deadline = self._deadline
                if deadline is None:
                    self._changed.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._changed.wait(remaining)
                    continue
                log.warning("actor %s: handler exceeded %s s, cancelling", self.actor_id, self.timeout)
                self._deadline = None
                self._cancel()
