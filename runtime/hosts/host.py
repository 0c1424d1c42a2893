"""A host of a pool: runs the actors placed on it, and takes over those of dead hosts.

::

    actors host --backend URL --pool NAME        Host.serve(), until stop()
      every lease/3   renew the host record (pools.HostRecord, leased)
      every lease/2   sweep: an actor placed on a host whose record is gone, whose own
                      lease ran out and whose mailbox no live reader holds, is
                      assigned here (assign.lua: only from the host it was seen on)
                      and started with its recorded spec
      its inbox       "place" -> import the class here, check capacity, assign, start:
                                 answer placed, or refused with the reason
                      "activate" -> start it if it is ours and has no worker
                      "stop" / "kill" / "cancel" -> as its system would (its
                                 assignment stays: a message starts it again)
                      "restart" / "resume" -> from any process (``parent.placed``):
                                 see ``restarts``
    workers          one Supervisor per (project, system), as a system has: the same
                     starts, restart policy and cold sweep, limited (``route``) to
                     the actors assigned to this host
    shutdown()       stop every worker (politely, then firmly after ``grace``; at once
                     after ``kill_workers``), withdraw the record
    machine.py       the host's id, the import check, the warm pool all systems share
    logs             its workers keep their log files under ``log_dir`` on this machine
                     (``ACTORS_LOG_DIR``) and their lines in a capped stream on the server

A host adds its lease (``lease``) to the actors it runs (their records and
its own expire together, which is how long a dead host's actors wait to be placed
again) and names itself in their records (``ACTORS_HOST_ID``). Fencing keeps a
paused old worker from doing harm after its actor moved: its mailbox epoch is stale.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from typing import Any, Callable

from ..address import Address
from ..backends import open_backend
from ..backends.redis import RedisBackend
from ..backends.redis.connection import PASSWORD_ENV, Server, parse_url
from ..backends.redis.local_process import HOST, HOST_ID_ENV, died_here
from ..backends.redis.logs import LOG_DIR_ENV
from ..backends.redis.pools import HostRecord, Placed, PoolStore, placed_field
from ..errors import ActorError, InvalidSpec, SpawnError, StoreError
from ..ids import check_id, is_valid_id
from ..parent.activation import ensure_active
from ..parent.children import Child
from ..parent.launcher import Launcher
from ..parent.restart_policy import RestartPolicy
from ..parent.supervisor import Supervisor
from ..records import FAILED, PAUSED, RESTARTING, STARTING
from ..spec import ProvisionSpec
from ..threads import QuietExecutor, start_thread
from .machine import DEFAULT_WARM, HostPool, default_host_id, import_error
from .restarts import restart, resume_here

log = logging.getLogger(__name__)

#: Default seconds of a host's lease (and of the leases of the actors it runs).
DEFAULT_HOST_LEASE = 10.0
#: Threads that handle requests (a start waits for its worker to register).
REQUEST_THREADS = 8
class Host:
    """One host of a pool (see the module docstring).

    Args:
        url: the Redis server (``redis://...`` or ``unix://...``), the one the
            systems that place actors here use.
        pool: the pool's name.
        host_id: this host's id (default: machine name and pid).
        capacity: most actors with a running worker here (None: no limit); a
            placement beyond it is refused and goes to another host.
        lease: seconds of this host's lease and of its actors' leases.
        spawn_timeout: seconds a start waits for the worker to register.
        grace: seconds a stop waits for workers before it terminates them.
        warm: workers kept started and imported, so a placement does not wait for
            a process to start (the pool is the host's, shared by every system).
        log_dir: where its workers keep their actors' log files on this machine
            (None: no files; their lines are on the server all the same).
        clock: unix time, for leases.

    Raises:
        InvalidSpec: a bad URL, pool, id, capacity or lease.
        StoreError: the server cannot be reached.
    """

    def __init__(self, url: str, pool: str, *, host_id: str | None = None, capacity: int | None = None,
                 lease: float = DEFAULT_HOST_LEASE, spawn_timeout: float = 30.0, grace: float = 10.0,
                 warm: int = DEFAULT_WARM, start_method: str | None = None, log_dir: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if capacity is not None and capacity < 1:
            raise InvalidSpec("capacity", f"{capacity!r} must be a positive count")
        if not 0.05 <= lease <= 86_400:
            raise InvalidSpec("lease", f"{lease!r} is outside 0.05..86400 seconds")
        parsed = parse_url(url)
        self.url = url
        self.location = parsed.location
        self.password = parsed.password
        self.server = Server(parsed)
        self.store = PoolStore(self.server, pool, clock)
        self.pool = self.store.pool
        self.host_id = check_id(host_id or default_host_id(), "host id")
        self.capacity = capacity
        self.lease = lease
        self.spawn_timeout = spawn_timeout
        self.grace = grace
        self.clock = clock
        self.token = f"{HOST}:{os.getpid()}:{os.urandom(6).hex()}"
        self.record = HostRecord(self.host_id, self.pool, capacity, HOST, os.getpid(), time.time(),
                                 location=self.location)
        # Its workers all open the Redis backend: import it once, in the fork server
        # (~135 ms of imports a fresh worker would pay at every start).
        self.launcher = Launcher(start_method, preload=("actors_runtime.backends.redis",))
        self.warm = warm
        self.log_dir = log_dir
        self._pool: HostPool | None = None
        self.stopping = threading.Event()
        self._lock = threading.RLock()
        self._backends: dict[str, RedisBackend] = {}
        self._supervisors: dict[tuple[str, str], Supervisor] = {}
        self._mine: set[str] = set()  # placed fields assigned to this host
        self._starting: set[str] = set()  # fields whose start is under way
        self._said: set[tuple[str, str]] = set()
        self._requests = QuietExecutor(max_workers=REQUEST_THREADS, thread_name_prefix=f"host-{self.host_id}")

    # -- the record ----------------------------------------------------------------------

    def publish(self) -> None:
        """Publish this host's record (first call) or renew it.

        Raises:
            StoreError: another live process holds this host's id.
        """
        if not self.store.publish_host(self.record, self.token, self.lease):
            raise StoreError(f"pool {self.pool}", f"host id {self.host_id!r} is held by another live host")

    # -- serving -------------------------------------------------------------------------

    def serve(self) -> None:
        """Publish, then serve requests, renew and sweep until ``stop`` (or a
        ``stopping`` set from a signal handler); then stop every worker."""
        os.environ[HOST_ID_ENV] = self.host_id  # the workers' records name this host
        if self.log_dir is not None:
            os.makedirs(self.log_dir, mode=0o700, exist_ok=True)
            os.environ[LOG_DIR_ENV] = self.log_dir  # their log files stay on this machine
        if self.password is not None:
            # Workers get the URL without it (specs are recorded in sessions), and
            # the password from the environment they inherit.
            os.environ[PASSWORD_ENV] = self.password
        self.publish()
        log.info("host %s of pool %s: serving (capacity %s, lease %g s)", self.host_id, self.pool,
                 self.capacity or "unlimited", self.lease)
        renew_at = sweep_at = time.monotonic()
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if now >= renew_at:
                    self._renew()
                    renew_at = now + self.lease / 3
                if now >= sweep_at:
                    self._sweep()
                    sweep_at = now + self.lease / 2
                wait = min(renew_at, sweep_at) - time.monotonic()
                try:
                    request = self.store.receive(self.host_id, max(0.01, min(wait, 1.0)))
                except StoreError as exc:
                    log.warning("host %s: cannot read its inbox: %s", self.host_id, exc)
                    self.stopping.wait(min(1.0, self.lease / 3))
                    continue
                if request is not None:
                    self._requests.submit(self._handle, request)
        finally:
            self.shutdown()

    def _renew(self) -> None:
        try:
            self.publish()
        except StoreError as exc:
            log.error("host %s: could not renew its record: %s", self.host_id, exc)

    def shutdown(self) -> None:
        """Stop every worker politely, then firmly; withdraw the record. Idempotent."""
        self.stopping.set()
        self._requests.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            supervisors = list(self._supervisors.values())
        # All systems' workers at once: the grace is the host's, not one per system.
        stopping = [start_thread(sup.shutdown, f"host-stop-{sup.system_id}", self.grace) for sup in supervisors]
        for thread in stopping:
            thread.join()
        if self._pool is not None:
            self._pool.close_for_good()
        try:
            self.store.withdraw_host(self.host_id, self.token)
        except StoreError as exc:
            log.warning("host %s: could not withdraw its record (it expires): %s", self.host_id, exc)
        with self._lock:
            backends = list(self._backends.values())
            self._backends.clear()
        for backend in backends:
            backend.close()
        self.server.close()

    def kill_workers(self) -> None:
        """SIGKILL every worker of this host now (a second SIGTERM: no more grace).
        Nothing is lost: their messages wait for their next activation (elsewhere),
        and the message each was handling is not blamed as poison. Called from a
        signal handler: it takes only the supervisors' locks, briefly."""
        for sup in list(self._supervisors.values()):
            with sup.lock:
                sup.closing = True  # no restarts from here on
                pids = []
                for child in sup.children.values():
                    child.stop_requested = child.killed = True
                    if child.pid:
                        pids.append(child.pid)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    # -- systems -------------------------------------------------------------------------

    def _backend(self, project_key: str) -> RedisBackend:
        with self._lock:
            found = self._backends.get(project_key)
            if found is None:
                backend = open_backend(self.url, "", project_key, "machine", clock=self.clock)
                assert isinstance(backend, RedisBackend)
                found = self._backends[project_key] = backend
            return found

    def supervisor(self, project_key: str, system_id: str) -> Supervisor:
        """The supervisor of this host's actors of one system (made on first use)."""
        with self._lock:
            found = self._supervisors.get((project_key, system_id))
            if found is not None:
                return found
            if self.stopping.is_set():
                raise SpawnError(system_id, f"host {self.host_id} is stopping")
            backend = self._backend(project_key)
            if self._pool is None:
                self._pool = HostPool(self.launcher, backend, system_id, self.warm, self.spawn_timeout)
            # --capacity N: new placements beyond N actors here go to another host (``_full``),
            # and an actor placed here that a message wakes when N are warm passivates the
            # least recently used idle one (per system served: ``parent.capacity``).
            sup = Supervisor(backend, system_id, self.launcher, self._pool, RestartPolicy(), self.spawn_timeout,
                             self._failed, self._stray_reply, max_active=self.capacity)
            sup.route = functools.partial(self._not_mine, project_key, system_id)
            sup.start()
            self._supervisors[(project_key, system_id)] = sup
            return sup

    def _not_mine(self, project_key: str, system_id: str, address: Address) -> bool:
        assert address.actor_id is not None
        # No lock: it may be called under the supervisor's, which ``active`` takes
        # under this host's (a set's membership test is atomic).
        return placed_field(project_key, system_id, address.actor_id) not in self._mine

    def _failed(self, child: Child, reason: str) -> None:
        log.error("host %s: actor %s failed: %s", self.host_id, child.actor_id, reason)

    def _stray_reply(self, wire: bytes) -> None:
        log.warning("host %s: a worker sent a reply on its pipe; placed actors reply through the "
                    "backend (dropped %d bytes)", self.host_id, len(wire))

    def active(self) -> int:
        """Actors with a running (or starting) worker here, and starts under way."""
        with self._lock:
            supervisors = list(self._supervisors.values())
            count = len(self._starting)
        for sup in supervisors:
            count += sum(1 for c in sup.snapshot() if c.alive or c.status in (STARTING, RESTARTING))
        return count

    def _full(self) -> bool:
        return self.capacity is not None and self.active() >= self.capacity

    # -- requests ------------------------------------------------------------------------

    def _handle(self, request: dict[str, Any]) -> None:
        kind, request_id = request.get("kind"), request.get("id")
        if not isinstance(request_id, str) or not is_valid_id(request_id):
            log.warning("host %s: a request without a valid id: %.200r", self.host_id, request)
            return
        try:
            if kind == "place":
                answer = self._place(request)
            elif kind == "activate":
                self._activate(str(request.get("field", "")))
                return
            elif kind in ("stop", "kill", "cancel"):
                answer = self._control(str(kind), str(request.get("field", "")), request.get("timeout"))
            elif kind == "restart":
                answer = restart(self, str(request.get("field", "")), request.get("start_timeout"))
            elif kind == "resume":
                answer = resume_here(self, str(request.get("field", "")), bool(request.get("skip")))
            else:
                answer = {"ok": False, "error": f"host {self.host_id}: unknown request {kind!r}"}
        except (ActorError, StoreError) as exc:
            answer = {"ok": False, "error": str(exc)}
        except Exception as exc:  # the host goes on; the asker gets the reason
            log.exception("host %s: request %s failed", self.host_id, request_id)
            answer = {"ok": False, "error": f"host {self.host_id}: {type(exc).__name__}: {exc}"}
        try:
            self.store.answer(request_id, answer)
        except StoreError as exc:
            log.warning("host %s: could not answer request %s: %s", self.host_id, request_id, exc)

    def _place(self, request: dict[str, Any]) -> dict[str, Any]:
        spec = ProvisionSpec.from_doc(request.get("spec")).validate()
        actor_id = spec.identity.child_id
        if spec.home != self.location:
            return {"ok": False, "error": f"host {self.host_id} serves redis at {self.location}, "
                                          f"not {spec.home} (every machine must use the same URL)"}
        reason = import_error(spec.actor_class)
        if reason is not None:
            return {"ok": False, "error": f"host {self.host_id} of pool {self.pool!r} cannot import "
                                          f"{spec.actor_class}: {reason}"}
        field = placed_field(spec.identity.project_key, spec.identity.system_id, actor_id)
        expected = str(request.get("expected", ""))
        with self._lock:
            ours = field in self._mine
            if not ours and self._full():
                return {"ok": False, "retry": True,
                        "error": f"host {self.host_id} is full ({self.capacity} actors)"}
            done, current = self.store.assign(field, self.host_id, expected, spec.public_dict())
            if not done:
                return {"ok": False, "retry": True, "error": f"placed on host {current!r} meanwhile"}
            self._mine.add(field)
            self._starting.add(field)
        try:
            self._start(spec)
        except SpawnError as exc:  # placed here, and marked failed: the system knows it is ours
            return {"ok": False, "placed": True, "error": exc.reason}
        finally:
            with self._lock:
                self._starting.discard(field)
        return {"ok": True, "host": self.host_id}

    def _start(self, spec: ProvisionSpec, timeout: float | None = None) -> None:
        """Start (or join) the actor's worker here; returns once it registered.

        Raises:
            SpawnError: it could not start.
        """
        spec.backend = self.location  # no password: the worker reads it from the environment
        spec.limits.lease = self.lease
        sup = self.supervisor(spec.identity.project_key, spec.identity.system_id)
        sup.spawn(spec, self.spawn_timeout if timeout is None else timeout)
        with sup.lock:
            child = sup.children.get(spec.identity.child_id)
        if child is not None:
            # Stored before the answer: the placing system reads its status from the
            # record (an earlier "failed" would fail its next ask).
            sup.record(child)

    def _activate(self, field: str) -> None:
        with self._lock:
            ours = field in self._mine
        if ours:
            project_key, system_id, actor_id = field.split("/")
            sup = self.supervisor(project_key, system_id)
            ensure_active(sup, sup.backend.address(system_id, actor_id))
            return
        self._sweep()  # placed on a dead host, perhaps: take it over if its time came

    def _control(self, kind: str, field: str, timeout: Any) -> dict[str, Any]:
        """Stop, kill or cancel one of this host's actors, as its system would."""
        with self._lock:
            ours = field in self._mine
        if not ours:
            return {"ok": False, "error": f"host {self.host_id} does not run {field}"}
        project_key, system_id, actor_id = field.split("/")
        wait = float(timeout) if isinstance(timeout, (int, float)) else self.grace
        sup = self.supervisor(project_key, system_id)
        if kind == "cancel":
            sup.cancel(actor_id)
        elif kind == "kill":
            sup.kill(actor_id, wait)
        else:
            sup.stop(actor_id, wait)
        return {"ok": True}

    # -- taking over ---------------------------------------------------------------------

    def _sweep(self) -> None:
        """Take over the actors of hosts that are gone (see the module docstring)."""
        try:
            live = {h.id for h in self.store.live_hosts()}
            placed = self.store.all_placed()
        except StoreError as exc:
            log.warning("host %s: cannot read pool %s: %s", self.host_id, self.pool, exc)
            return
        for entry in placed:
            if self.stopping.is_set():
                return
            with self._lock:
                ours = entry.field in self._mine
            if ours or (entry.host in live and entry.host != self.host_id):
                continue
            try:
                self._take_over(entry)
            except (ActorError, StoreError, ValueError) as exc:
                self._say_once(entry.field, f"cannot take it over: {exc}")

    def _take_over(self, entry: Placed) -> None:
        spec = ProvisionSpec.from_doc(entry.spec).validate()
        project_key, system_id, actor_id = entry.field.split("/")
        reason = import_error(spec.actor_class)
        if reason is not None:
            self._say_once(entry.field, f"cannot import {spec.actor_class}: {reason}")
            return
        backend = self._backend(project_key)
        if backend.fabric.is_live(actor_id):
            return  # its worker's lease has not run out: wait for it
        holder = backend.server.call(f"look at the reader of {actor_id}",
                                     lambda c: c.get(backend.keys.mailbox(system_id, actor_id).reader))
        if holder is not None and not died_here(holder):
            return  # a reader's lease is still live (a worker on another machine)
        found = backend.store.child_entry(actor_id)
        with self._lock:
            if self._full():
                self._say_once(entry.field, f"host {self.host_id} is full")
                return
            expected = entry.host
            done, _ = self.store.assign(entry.field, self.host_id, expected, entry.spec)
            if not done:
                return  # another host took it
            self._mine.add(entry.field)
            self._starting.add(entry.field)
        log.warning("host %s: took over actor %s from host %s", self.host_id, actor_id, entry.host or "(none)")
        if found is not None and found[1].status in (FAILED, PAUSED):
            with self._lock:
                self._starting.discard(entry.field)
            return  # left as it is: a spawn, restart or resume brings it back
        self._requests.submit(self._start_taken, spec, entry.field)

    def _start_taken(self, spec: ProvisionSpec, field: str) -> None:
        try:
            self._start(spec)
        except SpawnError as exc:
            log.error("host %s: actor %s did not start after the takeover: %s", self.host_id,
                      spec.identity.child_id, exc.reason)
        finally:
            with self._lock:
                self._starting.discard(field)

    def _say_once(self, field: str, reason: str) -> None:
        with self._lock:
            if (field, reason) in self._said:
                return
            self._said.add((field, reason))
        log.warning("host %s: actor %s: %s", self.host_id, field, reason)
