"""Who reads a worker's pipe: the monitor thread, or a thread waiting for its reply.

A reply to the parent's ask comes back on the worker's pipe. Read by the monitor
thread, it costs a third wake-up on the ask's path (worker -> monitor -> the asking
thread's lock). A blocking ``ask`` that finds the pipe free reads it itself instead::

    ask:      take the child's ``reader`` lock (never waiting for it) -> disarm the
              pipe in the monitor's epoll -> deliver -> poll(pipe, sentinel, waker)
              -> read until the future is done -> release the lock -> re-arm
    monitor:  its epoll (one-shot) reports a pipe -> take the lock (never waiting)
              -> read one event -> release -> re-arm; lock held: skip (the holder re-arms)
    a death:  ``_child_exited`` takes the lock (waiting: a holder polls the sentinel
              too, so it lets go at once) before it drains and closes the pipe

Guarantees: one reader per pipe at a time; whoever reads handles everything the same
way (replies to ``on_reply``, which resolves whichever future they answer; events to
``take_event``); whenever nobody holds a pipe's lock it is armed, so nothing on it is
left unread. A pipe whose worker died is never re-armed (``conn_open`` is false).

Failure modes: the worker dies while the asker reads (the sentinel wakes it: it
leaves the pipe to the monitor and waits on its future, which the restarted
worker's reply resolves); the future is resolved by another thread (the monitor read
the reply first, a reply came through the inbox, the actor was marked failed, the
system shut down: the waker wakes it); a second thread asking at once finds the lock
held and waits on its future, which the first resolves when it reads that reply.
"""

from __future__ import annotations

import math
import os
import select
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Iterable

from .. import control
from ..spinning import Spin, Token, budget
from .children import Child
from .launcher import receive

if TYPE_CHECKING:
    from .supervisor import Supervisor

#: The monitor's interest in a pipe nobody else reads: one report, then disarmed.
ARMED = select.EPOLLIN | select.EPOLLONESHOT
#: A pipe an asker reads: nothing reported (a hang-up at most once).
DISARMED = select.EPOLLONESHOT


#: How long (microseconds) an asking thread polls the pipe before it sleeps, while
#: answers came that soon (``runtime.spinning``; ``ACTORS_SPIN_US`` sets it).
POLL_US = 300
#: Held by the asking thread that polls (one per process: a second one would poll
#: for CPU the workers need).
_POLLING = Token()


class Lanes:
    """The monitor's epoll over its children's pipes (see the module docstring).

    ``sync`` and ``ready`` belong to the monitor thread; ``arm``/``disarm`` may be
    called from any thread (epoll allows changing the interest while another thread
    waits, and the change takes effect in that wait).
    """

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._registered: dict[int, Any] = {}  # fd -> the pipe registered under it

    @property
    def fd(self) -> int:
        """Readable when a registered, armed pipe is (for the monitor's one wait)."""
        return self._epoll.fileno()

    def sync(self, conns: Iterable[Any]) -> None:
        """Register exactly ``conns`` (the open pipes of running children), armed if new.

        A closed pipe left the epoll with its descriptor; its number may already
        name a new pipe, which is registered afresh."""
        live = {conn.fileno(): conn for conn in conns}
        registered = self._registered
        for fd, conn in list(registered.items()):
            if live.get(fd) is not conn:
                del registered[fd]
                try:
                    self._epoll.unregister(fd)
                except OSError:  # closed already (and so gone from the epoll)
                    pass
        for fd, conn in live.items():
            if fd not in registered:
                registered[fd] = conn
                try:
                    self._epoll.register(fd, ARMED)
                except FileExistsError:  # a duplicate of a closed pipe's descriptor kept it there
                    self._epoll.modify(fd, ARMED)

    def ready(self) -> list[Any]:
        """The registered pipes the epoll reports (each disarmed by the report)."""
        registered = self._registered
        return [registered[fd] for fd, _ in self._epoll.poll(0) if fd in registered]

    def forget(self, conn: Any) -> None:
        """Take ``conn`` out of the epoll before it is closed (monitor thread): a pipe
        still open in another process (a process the worker forked) would otherwise
        stay registered under its number, which a new pipe may then reuse."""
        try:
            fd = conn.fileno()
        except OSError:  # closed already
            return
        if self._registered.get(fd) is conn:
            del self._registered[fd]
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass

    def arm(self, fd: int) -> None:
        self._modify(fd, ARMED)

    def disarm(self, fd: int) -> None:
        self._modify(fd, DISARMED)

    def _modify(self, fd: int, events: int) -> None:
        try:
            self._epoll.modify(fd, events)
        except (OSError, ValueError):  # not registered yet (the monitor arms it then), closed, or shut down
            pass

    def close(self) -> None:
        self._epoll.close()


def take_event(child: Child, event: control.Event) -> None:
    """What an event read from ``child``'s pipe tells the supervisor (whoever read it)."""
    if event.kind == control.EXIT:
        child.exit_reason = event.text("reason")
        child.wake_at = wake_at(event)


def wake_at(event: control.Event) -> float | None:
    """The "wake_at" of an EXIT event (unix seconds), if it carries a usable one."""
    value = event.fields.get("wake_at")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return float(value)
    return None


def read_one(sup: "Supervisor", child: Child, conn: Any) -> None:
    """Read one event of ``child``'s pipe (hold its ``reader`` lock)."""
    event = receive(conn, sup.on_reply)
    if event is None:
        child.conn_open = False
    else:
        take_event(child, event)


class _Waker:
    """One thread's eventfd: rung when the future it waits for is resolved by another
    thread. It lives as long as its thread (a future's callback keeps it alive until
    the future goes), so a late ring never lands on a reused descriptor."""

    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.ident = threading.get_ident()
        self.future: Future[Any] | None = None
        self._polled: tuple[int, int] = (-1, -1)
        self._poller = select.poll()
        #: This thread's polling for answers before it sleeps; one thread polls at a time.
        self.spin = Spin(budget(POLL_US), _POLLING)

    def poller(self, fd: int, sentinel: int) -> Any:
        """A poll object over ``fd``, ``sentinel`` and this waker (kept for the next
        ask of the same actor: a thread tends to ask one actor again and again)."""
        if self._polled != (fd, sentinel):
            poller = self._poller = select.poll()
            for each in (fd, sentinel, self.fd):
                poller.register(each, select.POLLIN)
            self._polled = (fd, sentinel)
        return self._poller

    def watch(self, future: "Future[Any]") -> None:
        self.future = future
        future.add_done_callback(self._done)

    def _done(self, future: "Future[Any]") -> None:
        if self.future is future and threading.get_ident() != self.ident:
            os.eventfd_write(self.fd, 1)

    def clear(self) -> None:
        try:
            os.eventfd_read(self.fd)
        except BlockingIOError:
            pass

    def __del__(self) -> None:
        os.close(self.fd)


_local = threading.local()


def _waker() -> _Waker:
    waker: _Waker | None = getattr(_local, "waker", None)
    if waker is None:
        waker = _local.waker = _Waker()
    return waker


class Lane:
    """A child's pipe taken by an asking thread (``take``): it reads the pipe until its
    future is done, then gives it back (``release``, always)."""

    __slots__ = ("_sup", "_child", "_conn", "_fd", "_sentinel")

    def __init__(self, sup: "Supervisor", child: Child, conn: Any, sentinel: int) -> None:
        self._sup, self._child, self._conn, self._sentinel = sup, child, conn, sentinel
        self._fd = conn.fileno()
        sup.lanes.disarm(self._fd)

    @classmethod
    def take(cls, sup: "Supervisor", actor_id: str) -> "Lane | None":
        """``actor_id``'s pipe, if its worker runs and nobody else reads the pipe now."""
        child = sup.children.get(actor_id)
        if child is None or not child.conn_open or not child.reader.acquire(blocking=False):
            return None
        # Holding the lock: the pipe cannot be closed under us (``_child_exited`` takes it).
        conn, process = child.conn, child.process
        if not child.conn_open or conn is None or process is None:
            child.reader.release()
            return None
        try:
            return cls(sup, child, conn, process.sentinel)
        except OSError:  # closed meanwhile: the monitor has it, the asker waits on its future
            child.reader.release()
            return None
        except BaseException:
            child.reader.release()
            raise

    def wait(self, future: "Future[Any]", deadline: float | None) -> None:
        """Read the pipe until ``future`` is done; return sooner at ``deadline``
        (monotonic seconds; None: none), when the worker dies, or when the future is
        resolved elsewhere. The caller then waits on ``future`` as it would have anyway."""
        sup, child, conn, fd, sentinel = self._sup, self._child, self._conn, self._fd, self._sentinel
        if not child.conn_open:
            return
        waker = _waker()
        waker.watch(future)
        try:
            poller = waker.poller(fd, sentinel)
            while not future.done():
                remaining = None
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                # Polled first while answers come soon (``runtime.spinning``).
                ready = [ready_fd for ready_fd, _ in waker.spin.wait(
                    lambda: poller.poll(0), lambda left: poller.poll(-1 if left is None else math.ceil(left * 1000)),
                    remaining)]
                if fd in ready:
                    try:
                        read_one(sup, child, conn)
                    except BaseException:
                        _break(child, conn)
                        raise
                    if not child.conn_open:
                        return
                elif waker.fd in ready:
                    waker.clear()
                elif sentinel in ready:
                    return  # died with nothing left to read: the monitor takes it from here
        finally:
            waker.future = None

    def release(self) -> None:
        child = self._child
        child.reader.release()
        if child.conn_open and child.conn is self._conn:
            self._sup.lanes.arm(self._fd)  # after the release: a monitor woken by it can take the lock


def _break(child: Child, conn: Any) -> None:
    """A read of ``child``'s pipe was cut short (KeyboardInterrupt on the asking
    thread, which is usually the main one): the rest of an event may be in the pipe, so
    no one can read it in step again. It is given up and its worker killed (held by the
    reader lock, so nobody reads it meanwhile); supervision restarts the worker like any
    that died, and what it had not acknowledged is delivered again."""
    if child.conn is conn:
        child.conn_open = False
        process = child.process
        if process is not None:
            try:
                process.kill()
            except (OSError, ValueError):
                pass
