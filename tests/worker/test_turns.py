"""Handlers caught at the edges of a turn, and the system around them: a cancel that
arrives before the handler starts or just as the in-flight marker names the message;
a second activation of a running actor; a stop or a shutdown that races a relaunch
or an activation; specs written by the previous codec; a batch of tells (group
commit) that fails midway, keeps its order, or does not fit; and temp files of
senders, live or dead, found by recovery."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest
import sample_actors
import turn_actors
from actors_runtime.backends.maildir import durable, segment_writer
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.errors import SpawnError, StoreError
from actors_runtime.messages import AgentRef, InboxMessage
from actors_runtime.parent import activation as activation_module
from actors_runtime.spec import Identity, Limits, ProvisionSpec
from actors_runtime.worker import Worker
from actors_runtime.worker import activation as worker_activation
from conftest import open_project, wait_until

from actors import ActorSystem, Cancelled


def _status(system, name):
    return next(c for c in system.children() if c.name == name).status


# -- cancel targeting ---------------------------------------------------------------


def test_a_cancel_requested_before_the_handler_starts_interrupts_it(system, tmp_path):
    hold = tmp_path / "hold"
    hold.mkdir()
    ref = system.spawn(turn_actors.HoldBeforeHandler, name="holder")
    ref.tell({"hold": str(hold)})
    # The tell was handled; and a turn that is not a query ran last: the state's text
    # is not known, so the next query's runtime snapshots it before its handler.
    assert ref.ask("ping", mode="steer", timeout=10) == "pong"
    (hold / "arm").touch()
    future = ref.ask_async({"sleep": 20})
    # The ask is claimed and its handler is about to start (the runtime snapshots the
    # state for a query first): the cancel is meant for it.
    wait_until(lambda: (hold / "holding").exists())
    system.cancel(ref)
    try:
        with pytest.raises(Cancelled):
            future.result(timeout=5)
    finally:
        if not future.done():
            system.cancel(ref)  # now the handler runs in the region: this one lands
            with pytest.raises(Cancelled):
                future.result(timeout=10)


def _in_process_worker(home) -> Worker:
    spec = ProvisionSpec(
        identity=Identity(child_id="counter", system_id="main", project_key="proj-12345678"),
        actor_class="sample_actors:Counter", home=str(home), durability="process",
    ).validate()
    return Worker(spec)


def test_a_cancel_after_the_marker_names_the_message_is_not_dropped(home):
    worker = _in_process_worker(home)
    batch = worker.activate()
    assert batch == []
    try:
        sender = MaildirMailbox(worker.mailbox.root, durability="process")
        sender.deliver([InboxMessage.create(AgentRef(session_id="main"), "task", {"n": 1})])
        sender.close()
        original_set = worker.marker.set

        def set_then_cancel(msg_id):
            original_set(msg_id)
            # conftest.handling() reports the message as claimed from here on; a cancel
            # sent now (what the tests do) must interrupt its handler.
            worker.request_cancel()

        worker.marker.set = set_then_cancel
        worker.process(worker.mailbox.drain())
        assert worker.handler.state["count"] == 0, "the cancelled handler ran to completion"
    finally:
        worker.finish()


def test_a_second_activation_of_a_running_actor_is_refused_before_it_reads_anything(home, monkeypatch):
    monkeypatch.setattr(worker_activation, "CLAIM_TIMEOUT", 0.2)  # how long it waits for the first
    first = _in_process_worker(home)
    first.activate()
    second = _in_process_worker(home)
    try:
        with pytest.raises(SpawnError, match="another process is reading"):
            second.activate()
    finally:
        first.finish()
        second.finish()  # never activated: it only lets go of its descriptors
    third = _in_process_worker(home)
    third.activate()  # the claim ended with the first activation
    third.finish()


# -- stop during a restart ------------------------------------------------------------


def test_a_stop_during_a_failing_relaunch_leaves_the_actor_stopped(home, project, tmp_path):
    signals = tmp_path / "signals"
    signals.mkdir()
    with ActorSystem(home=home, project=project, durability="process") as system:
        ref = system.spawn(turn_actors.FailsOnRestart, name="flaky", secrets={"dir": str(signals)})
        os.kill(system.pid_of(ref), signal.SIGKILL)  # an unrequested death: restart
        wait_until(lambda: (signals / "starting").exists())  # the relaunch is in on_start
        stopper = threading.Thread(target=system.stop, args=("flaky",), kwargs={"timeout": 10})
        stopper.start()
        wait_until(lambda: system._supervisor.children["flaky"].stop_requested)
        (signals / "go").touch()  # the relaunch fails now, with the stop requested
        stopper.join(15)
        assert not stopper.is_alive()
        # The stop was requested: the actor must end up stopped, and be usable again.
        wait_until(lambda: _status(system, "flaky") != "restarting", timeout=3)


# -- activation racing shutdown --------------------------------------------------------


def test_an_activation_refused_by_shutdown_does_not_mark_the_actor_failed(home, project, monkeypatch):
    failed = []
    system = ActorSystem(home=home, project=project, durability="process",
                         on_failed=lambda name, reason: failed.append((name, reason)))
    shutter = None
    try:
        ref = system.spawn(sample_actors.Counter, name="counter")
        system.stop(ref)
        assert _status(system, "counter") == "stopped"
        go = threading.Event()
        entered = threading.Event()
        original = activation_module._activate

        def delayed_activate(sup, child):  # the activation thread is merely scheduled late
            entered.set()
            go.wait(10)
            original(sup, child)

        monkeypatch.setattr(activation_module, "_activate", delayed_activate)
        system.tell(ref, {"n": 1})  # a tell activates the stopped actor
        assert entered.wait(10), "the tell started no activation"
        shutter = threading.Thread(target=system.shutdown)
        shutter.start()
        wait_until(lambda: system._closing)
        go.set()
    finally:
        if shutter is not None:
            shutter.join(30)
        system.shutdown()
    backend = open_project(ref.address)
    try:
        entry = next(e for e in backend.store.list_children("main") if e.id == "counter")
    finally:
        backend.close()
    assert entry.status != "failed" and failed == [], (entry.status, failed)


# -- spec codec compatibility -----------------------------------------------------------


_BASE = {"identity": {"child_id": "a", "system_id": "main", "project_key": "proj-12345678"},
         "actor_class": "m:C", "home": "/tmp/h"}


@pytest.mark.parametrize("variant", [
    {"secrets": None},
    {"identity": {**_BASE["identity"], "labels": None}},
    {"project_dir": None},
    {"limits": {"max_pending": 50000.0}},
    {"identity": {**_BASE["identity"], "depth": 1.0}},
    {"version": 1.0},
], ids=["secrets-null", "labels-null", "project_dir-null", "max_pending-float", "depth-float",
        "version-float"])
def test_specs_accepted_by_the_previous_codec_still_parse(variant):
    spec = ProvisionSpec.from_wire(json.dumps({**_BASE, **variant}).encode())
    spec.validate()


def test_specs_with_wrong_types_are_still_refused_cleanly():
    from actors_runtime.errors import InvalidSpec
    for bad in ({"identity": []}, {"secrets": []}, {"actor_class": 5}, {"limits": {"max_pending": "x"}}):
        with pytest.raises(InvalidSpec):
            ProvisionSpec.from_wire(json.dumps({**_BASE, **bad}).encode()).validate()
    # A null where a value is expected means "the default", as other writers use it.
    assert ProvisionSpec.from_wire(json.dumps({**_BASE, "limits": None}).encode()).limits == Limits()


# -- group commit --------------------------------------------------------------------


def test_a_tell_many_that_fails_midway_sends_nothing(system, monkeypatch):
    counter = system.spawn(sample_actors.Counter, name="counter")
    assert counter.ask("count") == 0
    real_write = os.pwrite
    # The system's cached sender handle to the counter; its segment was opened by the ask.
    segment_fd = system._backend._router.on(counter.address, lambda box: box._sender._writer._segment.fd)

    def full_disk_after_half(fd, data, offset):
        if fd == segment_fd:  # the batch record: half of it lands, then ENOSPC
            real_write(fd, bytes(data[: len(data) // 2]), offset)
            raise OSError(28, "No space left on device")
        return real_write(fd, data, offset)  # every other write of this process, untouched

    monkeypatch.setattr(segment_writer.os, "pwrite", full_disk_after_half)
    with pytest.raises(StoreError):
        counter.tell_many([{"n": 1}, {"n": 10}])
    monkeypatch.undo()
    counter.tell_many([{"n": 1}, {"n": 10}])  # the caller retries the failed batch
    assert counter.ask("count") == 11


def test_tell_many_keeps_order_with_tells_from_the_same_sender(system):
    echo = system.spawn(sample_actors.Echo, name="echo")
    echo.tell(0)
    echo.tell_many([1, 2, 3])
    echo.tell(4)
    echo.tell_many([5, 6])
    wait_until(lambda: len(_told(system, "echo")) == 7)
    assert _told(system, "echo") == [0, 1, 2, 3, 4, 5, 6]


def _told(system, name):
    backend = open_project(system.address)
    try:
        session = backend.store.load_session("main", name)
    finally:
        backend.close()
    return [] if session is None else session.state.get("told", [])


def test_a_batch_larger_than_the_room_is_refused_whole(system):
    sleeper = system.spawn(sample_actors.Sleeper, name="sleeper", max_pending=3)
    system.stop(sleeper)  # nothing drains: the room is exactly max_pending
    from actors import MailboxFull
    sleeper.tell_many([1, 2])
    with pytest.raises(MailboxFull):
        sleeper.tell_many([3, 4])
    backend = open_project(sleeper.address)
    try:
        view = backend.view(sleeper.address)
        try:
            assert view.counts()["new"] == 2  # nothing of the refused batch went in
        finally:
            view.close()
    finally:
        backend.close()


# -- temp names with a pid --------------------------------------------------------------


def test_an_old_format_temp_name_of_digits_does_not_break_recovery(tmp_path):
    box = MaildirMailbox(tmp_path / "mailbox", durability="process")
    (tmp_path / "mailbox" / "new" / ".tmp-123456789012-0").write_bytes(b"debris")
    box.recover()


def test_a_live_writers_old_temp_is_kept_and_a_dead_ones_is_swept(tmp_path):
    box = MaildirMailbox(tmp_path / "mailbox", durability="process")
    new = tmp_path / "mailbox" / "new"
    mine = new / os.path.basename(durable.temp_name(str(new)))
    mine.write_bytes(b"x")
    dead = new / ".tmp-999999-abcd1234-0"  # pid_max is far lower on these machines
    dead.write_bytes(b"x")
    old = 10_000
    for path in (mine, dead):
        os.utime(path, (os.stat(path).st_atime - old, os.stat(path).st_mtime - old))
    if not durable.temp_owner_alive(dead.name):
        box.recover()
        assert mine.exists() and not dead.exists()


def _session(ref):
    backend = open_project(ref.address)
    try:
        return backend.store.load_session("main", ref.name)
    finally:
        backend.close()


def test_a_tell_waiting_for_room_stays_in_the_commit_that_stores_deferred_query_ids(system, tmp_path):
    sink = system.spawn(turn_actors.SlowSink, name="sink", max_pending=1)
    busy = sink.ask_async({"hold": str(tmp_path)}, mode="steer")  # in its handler until we let it go
    wait_until(lambda: system.inspect(sink).claimed == 1, 10)
    sink.tell({"fill": 1})  # waits behind it: the sink's room is full
    forwarder = system.spawn(sample_actors.Forwarder, name="forwarder")
    forwarder.tell({"reply_to": sink, "value": 1})  # committed, then owed: the sink has no room
    wait_until(lambda: _session(forwarder) is not None and _session(forwarder).outbox, 10)
    forwarder.ask("ref")  # a query alone in its batch: its id is committed once the worker idles a while
    wait_until(lambda: len(_session(forwarder).admitted) >= 2, 10)
    owed = [entry["to"]["name"] for entry in _session(forwarder).outbox]
    assert owed == ["sink"], "the idle commit dropped the tell still waiting for room"
    os.kill(system.pid_of(forwarder), signal.SIGKILL)  # its next worker owes it again, from that commit
    (tmp_path / "go").touch()
    assert busy.result(30) == "held"  # room again
    wait_until(lambda: _session(sink).state["got"] == [{"fill": 1}, {"n": 1}], 20)
