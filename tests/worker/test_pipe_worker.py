"""The multiprocessing worker's pipe protocol, driven by hand, and what a spawn
leaves for other processes to find before its index entry is written."""

from __future__ import annotations

import json
import multiprocessing
import time

import pytest
import sample_actors
from actors_runtime import control
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.spec import Identity, Limits, ProvisionSpec
from actors_runtime.worker.pipe_entry import pipe_main
from conftest import descendants, open_project, wait_until

from actors import ActorSystem
from actors._codec import type_tag


def _events(conn, until: str, timeout: float = 30.0) -> list[dict]:
    """Events read from a worker's pipe up to and including the first ``until``."""
    seen = []
    while True:
        assert conn.poll(timeout), f"no {until!r} event within {timeout} s (got {seen})"
        raw = conn.recv_bytes()
        if raw[:1] == b"{":
            seen.append(json.loads(raw))
            if seen[-1].get("event") == until:
                return seen


@pytest.fixture
def pipe_worker():
    context = multiprocessing.get_context("forkserver")
    parent, child = context.Pipe(duplex=True)
    process = context.Process(target=pipe_main, args=(child,), daemon=True)
    process.start()
    child.close()
    try:
        yield process, parent
    finally:
        parent.close()
        process.join(10)
        if process.exitcode is None:
            process.kill()
            process.join(10)


def test_a_pool_worker_answers_each_preload_then_serves_renews_its_lease_and_stops(tmp_path, pipe_worker):
    process, conn = pipe_worker
    conn.send_bytes(control.PRELOAD_PREFIX + json.dumps(["sample_actors"]).encode())
    assert _events(conn, control.PRELOADED)[-1] == {"event": control.PRELOADED}

    backend = open_backend("maildir", str(tmp_path / "home"), project_key(tmp_path), "process")
    try:
        backend.ensure_project(str(tmp_path))
        MaildirMailbox(backend.layout.mailbox("main", "leased"), durability="process").close()
        spec = ProvisionSpec(
            identity=Identity(child_id="leased", system_id="main", project_key=backend.project_key),
            actor_class=type_tag(sample_actors.Counter), home=backend.location, project_dir=str(tmp_path),
            durability="process", limits=Limits(lease=0.6),
        )
        conn.send_bytes(spec.to_wire())
        assert _events(conn, control.READY)[-1]["pid"] == process.pid

        fabric = backend.fabric
        first = fabric.read("leased").lease_expires_at
        # The control thread renews every lease / 3 seconds: the record stays live well
        # past its first lease.
        wait_until(lambda: fabric.read("leased").lease_expires_at >= first + 0.6, timeout=10)
        assert fabric.resolve("leased") is not None

        conn.send_bytes(control.STOP)
        assert _events(conn, control.EXIT)[-1] == {"event": "exit", "reason": "stop requested"}
        process.join(10)
        assert process.exitcode == 0
        assert fabric.read("leased") is None  # withdrawn, and no renewal came after it
    finally:
        backend.close()


def test_a_pool_worker_whose_parent_goes_away_before_a_spec_exits_cleanly(pipe_worker):
    process, conn = pipe_worker
    conn.send_bytes(control.PRELOAD_PREFIX + b"[]")
    _events(conn, control.PRELOADED)
    conn.close()
    process.join(10)
    assert process.exitcode == 0


def test_an_actor_just_spawned_is_found_by_another_system_before_it_is_indexed(home, project):
    first = ActorSystem(home=home, project=project, name="first", durability="process")
    second = None
    try:
        recorder = first._supervisor.recorder
        recorder._delay = recorder._max_delay = 60.0  # hold its index entry back
        first.spawn(sample_actors.Counter, name="fresh")
        assert _indexed_system(first.address, "fresh") is None  # not indexed yet
        second = ActorSystem(home=home, project=project, name="second", durability="process")
        ref = second.ref("fresh")  # found by its lease record
        assert ref.address.system_id == "first"
        ref.tell({"n": 5})
        assert ref.ask("count", timeout=10) == 5
    finally:
        if second is not None:
            second.shutdown()
        first.shutdown()
    assert _indexed_system(first.address, "fresh") == "first"  # written at shutdown at the latest


def _indexed_system(address, actor_id):
    """The system the project's index names for ``actor_id``, read as another process would."""
    backend = open_project(address)
    try:
        return backend.store.resolve_child(actor_id)
    finally:
        backend.close()


def test_a_system_shuts_down_at_once_while_a_pool_worker_is_still_booting(home, project):
    system = ActorSystem(home=home, project=project, durability="process", pool_size=1,
                         preload=("slow_boot",))
    try:
        wait_until(descendants, timeout=30)  # the pool worker exists, and imports slow_boot
        assert system._supervisor.pool.pids() == []  # not offered to spawns while it boots
    finally:
        started = time.monotonic()
        system.shutdown()
    assert time.monotonic() - started < 8  # TERMINATE_GRACE, then killed; not the 30 s boot wait


def test_a_pool_whose_workers_die_while_booting_does_not_restart_them_in_a_loop(home, project, caplog):
    system = ActorSystem(home=home, project=project, durability="process", pool_size=1,
                         preload=("dies_at_boot",))
    starts = []
    launcher = system._supervisor.launcher  # the pool's too: it starts every worker
    assert system._supervisor.pool.launcher is launcher
    start_process = launcher.start

    def counted(label, **options):
        starts.append(label)
        return start_process(label, **options)

    launcher.start = counted
    try:
        def boot_failures():
            return [r for r in caplog.records if "exited while booting" in r.getMessage()]

        system._supervisor.pool.refill_soon()
        wait_until(boot_failures, timeout=30)
        counter = system.spawn(sample_actors.Counter, name="cold")  # started cold, it works
        assert counter.ask("count", timeout=10) == 0
        # The spawn asked for a refill; wait until every counted start has failed (one
        # may still be booting when the second failure is logged).
        wait_until(lambda: len(boot_failures()) >= max(2, starts.count("pool")), timeout=30)
        assert starts.count("pool") <= len(boot_failures()) <= 3  # the first may predate the count
    finally:
        system.shutdown()
