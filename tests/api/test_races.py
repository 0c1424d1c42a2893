"""Races and crash windows of the worker, the mailbox and the system.

Each test forces one interleaving and pins down what must hold through it: a
handler run again (retried, replayed singly, or cut short by a stop) still finds
the replies it consumed; concurrent senders and a reader that acks lose no message
and a dead sender's debris is swept; a cancel leaves no claimed reply behind; a
stop calls off a restart waiting out its backoff; a shutdown leaves no worker of an
activation in flight; a spawn joining another's start neither hangs nor misses its
failure; callbacks may ask; messages sent around an idle deactivation are all
handled; the admitted ids cover every commit; and supervision survives an unreadable
index. Messages meant to form one batch are told while their actor is stopped: the
next activation then claims them together.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time

import crash_actors
import pytest
import race_actors
import sample_actors
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.errors import Cancelled, SpawnError
from actors_runtime.messages import AgentRef, InboxMessage
from actors_runtime.parent import monitor as monitor_module
from actors_runtime.parent import supervisor as supervisor_module
from conftest import descendants, open_project, wait_until

from actors import ActorSystem


def _status(system, name):
    return {c.name: c for c in system.children()}[name]


def _unacked(system, ref):
    """Messages of an actor delivered and not yet acked (waiting, or handed out)."""
    info = system.inspect(ref)
    return info.pending + info.claimed


# -- replies consumed by a handler that then runs again in the same activation ----------


def test_a_retried_handler_finds_the_reply_its_first_attempt_consumed(system):
    peer = system.spawn(sample_actors.Ponger, name="ponger")
    asker = system.spawn(race_actors.AskThenRaiseOnce, name="asker", retries=1)
    assert asker.ask({"peer": peer, "timeout": 3}, timeout=20) == 42


def test_replaying_a_batch_singly_finds_the_replies_consumed_by_the_batch(system):
    peer = system.spawn(sample_actors.Ponger, name="ponger")
    ref = system.spawn(race_actors.AskingBadState, name="asker")
    ref.stop()
    ref.tell({"ask": peer, "timeout": 3})  # these two form the next activation's batch
    ref.tell({"bad": True})
    system.spawn(race_actors.AskingBadState, name="asker")
    wait_until(lambda: ref.ask("state", timeout=20)["failures"] >= 1 and _unacked(system, ref) == 0,
               timeout=30)
    assert ref.ask("state", timeout=20) == {"answers": [2], "failures": 1}


def test_a_stop_cutting_a_recovered_batch_short_keeps_the_replies_the_rest_needs(system, tmp_path):
    plan = tmp_path / "plan"
    plan.mkdir()
    secrets = {"plan_dir": str(plan)}
    peer = system.spawn(sample_actors.Ponger, name="ponger")
    ref = system.spawn(race_actors.CrashRecoverStop, name="crs", secrets=secrets)
    ref.stop()
    ref.tell({"n": 1})  # M0 and M form one batch; M dies after its reply was claimed
    ref.tell({"ask": peer, "timeout": 3})
    system.spawn(race_actors.CrashRecoverStop, name="crs", secrets=secrets)
    wait_until(lambda: (plan / "stopped").exists(), timeout=30)
    wait_until(lambda: _status(system, "crs").status == "stopped", timeout=30)
    assert system.inspect(ref).claimed == 2  # M and the reply it needs wait for the next activation
    system.spawn(race_actors.CrashRecoverStop, name="crs", secrets=secrets)
    wait_until(lambda: _unacked(system, ref) == 0, timeout=30)
    assert ref.ask("state", timeout=20) == {"count": 1, "answers": [2], "errors": []}


# -- sender debris and concurrent senders ----------------------------------------------------------------------


def _message(body):
    return InboxMessage.create(AgentRef("tester"), "task", body)


def test_recover_removes_a_dead_senders_segment_temp_but_not_a_live_ones(tmp_path):
    root = tmp_path / "mb"
    reader = MaildirMailbox(root, durability="process")
    live = os.path.join(reader.paths.log, f".tmp-{os.getpid()}-abcd-0")
    dead = os.path.join(reader.paths.log, ".tmp-4194304-abcd-0")  # no such pid
    for path in (live, dead):
        with open(path, "wb") as handle:
            handle.write(b"DAML")
    reader.recover()
    assert os.path.exists(live) and not os.path.exists(dead)
    reader.close()


def test_four_sender_handles_racing_a_reader_that_acks_lose_nothing(tmp_path):
    """Each handle appends to its own segment while the reader acks and deletes."""
    root = tmp_path / "mb"
    reader = MaildirMailbox(root, durability="process")
    for n in range(300):
        reader.deliver([_message(n)])
    for claimed in reader.drain():
        assert reader.ack([claimed]) == 1
    senders = [MaildirMailbox(root, durability="process") for _ in range(4)]
    sent: list[int] = []
    lock = threading.Lock()

    def run(box, base):
        for n in range(150):
            box.deliver([_message(base + n)])
            with lock:
                sent.append(base + n)

    threads = [threading.Thread(target=run, args=(box, 1000 * i)) for i, box in enumerate(senders)]
    for thread in threads:
        thread.start()
    received = []
    while any(t.is_alive() for t in threads) or reader.has_new():
        for claimed in reader.drain():
            received.append(claimed.message.body)
            assert reader.ack([claimed]) == 1
    for thread in threads:
        thread.join()
    received += [c.message.body for c in reader.drain()]
    assert sorted(received) == sorted(sent)
    for box in (reader, *senders):
        box.close()


# -- cancel -----------------------------------------------------------------------------


def test_a_cancel_during_the_reply_scan_leaves_no_claimed_reply_in_cur(system):
    peer = system.spawn(sample_actors.Ponger, name="ponger")
    ref = system.spawn(race_actors.CancelDuringScan, name="cds")
    with pytest.raises(Cancelled):
        ref.ask({"peer": peer}, timeout=20)
    wait_until(lambda: system.inspect(ref).claimed == 0)  # not stranded until the next activation


# -- supervision ----------------------------------------------------------------------


def test_stop_during_a_restart_backoff_cancels_the_restart(system, tmp_path, monkeypatch):
    supervisor = system._supervisor
    monkeypatch.setattr(supervisor, "policy", dataclasses.replace(supervisor.policy, first_delay=1.5,
                                                                  max_delay=5.0))
    plan = tmp_path / "plan"
    plan.mkdir()
    ref = system.spawn(crash_actors.Killable, name="killable",
                       secrets={"plan_dir": str(plan), "kill_at": {"handle": 1}})
    ref.tell({"n": 1})
    wait_until(lambda: _status(system, "killable").status == "restarting", timeout=10)
    system.stop(ref)
    info = _status(system, "killable")
    assert (info.status, info.pid, info.restarts) == ("stopped", None, 0)
    assert not [name for _, name in supervisor.restarts_due if name == "killable"]  # called off
    backend = open_project(ref.address)
    try:
        assert backend.store.child_entry("killable")[1].status == "stopped"
    finally:
        backend.close()


def test_shutdown_leaves_no_worker_when_an_activation_is_in_flight(home, project):
    before = descendants()
    system = ActorSystem(home=home, project=project, durability="process")
    leftover: set[int] = set()
    try:
        ref = system.spawn(race_actors.SlowRestart, name="slow", idle_timeout=0.3)
        wait_until(lambda: _status(system, "slow").status == "idle", timeout=10)
        ref.tell({"n": 1})  # activates; the new worker sleeps 4 s in on_start
        wait_until(lambda: descendants() - before, timeout=5)
        system.shutdown(timeout=1.0)
        leftover = descendants() - before
        assert leftover == set()
    finally:
        if not system._closing:
            system.shutdown()
        wait_until(lambda: not (descendants() - before), timeout=15)
        for thread in threading.enumerate():  # the activation that outlived shutdown
            if thread.name.startswith("actors-activate-"):
                thread.join(20)


def test_a_spawn_that_joins_a_failing_start_raises_spawn_error(system):
    errors = []

    def first():
        try:
            system.spawn(race_actors.SlowFailingStart, name="sfs")
        except SpawnError as exc:
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        wait_until(lambda: any(c.name == "sfs" and c.status == "starting" for c in system.children()))
        with pytest.raises(SpawnError):
            system.spawn(race_actors.SlowFailingStart, name="sfs", timeout=10)
    finally:
        thread.join()
    assert len(errors) == 1


class _SlowToWait:
    """A Condition proxy that delays one thread between its status check and its wait,
    as a GIL switch or a page fault may (the window is real, only narrow)."""

    def __init__(self, inner, thread_name, ready, recorded):
        self._inner, self._thread_name, self._ready, self._recorded = inner, thread_name, ready, recorded
        self._delayed = False

    def __enter__(self):
        if threading.current_thread().name == self._thread_name and not self._delayed:
            self._delayed = True
            wait_until(self._ready, timeout=20)
            self._recorded()  # the launcher's record, and its notify_all, pass meanwhile
        return self._inner.__enter__()

    def __exit__(self, *exc_info):
        return self._inner.__exit__(*exc_info)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_a_spawn_joining_a_start_cannot_miss_its_wakeup(system):
    supervisor = system._supervisor
    inner = supervisor.state_changed
    started = threading.Thread(target=system.spawn, args=(race_actors.SlowStart,),
                               kwargs={"name": "slow", "secrets": {"sleep": 1.0}})
    started.start()
    wait_until(lambda: "slow" in supervisor.children, timeout=10)
    child = supervisor.children["slow"]
    supervisor.state_changed = _SlowToWait(inner, "late-spawner", lambda: child.status == "running",
                                           supervisor.recorder.flush)
    late = threading.Thread(target=system.spawn, args=(race_actors.SlowStart,),
                            kwargs={"name": "slow"}, name="late-spawner")
    late.start()
    started.join()
    late.join(5.0)
    hung = late.is_alive()
    if hung:  # release it so the test ends
        with inner:
            inner.notify_all()
        late.join(5.0)
    supervisor.state_changed = inner
    assert not hung


# -- callbacks under the system lock --------------------------------------------------


def test_on_failed_can_ask_another_actor(home, project):
    results = []
    holder = {}

    def on_failed(name, reason):
        try:
            results.append(holder["system"].ask("healthy", "still there?", timeout=5))
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            results.append(exc)

    with ActorSystem(home=home, project=project, durability="process", on_failed=on_failed) as system:
        holder["system"] = system
        system.spawn(sample_actors.Echo, name="healthy")
        dier = system.spawn(race_actors.Dier, name="dier", restart="never")
        dier.ask_async("die")
        wait_until(lambda: results, timeout=20)
        assert results == ["still there?"], results


# -- virtual activation ----------------------------------------------------------------


def test_messages_sent_around_idle_deactivation_are_all_handled(system):
    """Withdraw-then-recheck in the worker plus has_waiting() when the monitor sees it exit idle: no stranding."""
    ref = system.spawn(sample_actors.Counter, name="idler", idle_timeout=0.15)
    sent = 0
    for round_ in range(12):
        # Pacing, not synchronisation: the rounds land on both sides of the idle moment.
        time.sleep(0.1 + 0.01 * round_)
        for _ in range(3):
            ref.tell({"n": 1})
            sent += 1
    wait_until(lambda: _unacked(system, ref) == 0, timeout=30)
    assert ref.ask("count", timeout=20) == sent


# -- the admitted checkpoint -----------------------------------------------------------


def test_admitted_checkpoint_and_tail_cover_every_committed_id(system):
    """admitted.json is written only after the commit that holds its ids."""
    ref = system.spawn(sample_actors.Counter, name="counter")
    ids = [ref.tell({"n": 1}) for _ in range(300)]
    wait_until(lambda: ref.ask("count", timeout=20) == 300, timeout=30)
    system.stop(ref)
    backend = open_project(ref.address)
    try:
        layout = backend.layout
        with open(layout.actor_file("main", "counter", "session.json")) as handle:
            tail = json.load(handle)["admitted"]
        with open(layout.actor_file("main", "counter", "admitted.json")) as handle:
            checkpoint = json.load(handle)["ids"]
    finally:
        backend.close()
    assert set(ids) <= set(tail) | set(checkpoint)


# -- a monitor thread that dies stops all supervision ----------------------------------


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_unreadable_children_index_does_not_stop_supervision(system, monkeypatch):
    ref = system.spawn(sample_actors.Counter, name="counter")
    pid = system.pid_of(ref)
    swept = threading.Event()
    real_sweep = monitor_module.sweep_cold

    def sweep(sup):
        try:
            real_sweep(sup)
        finally:
            swept.set()

    monkeypatch.setattr(monitor_module, "sweep_cold", sweep)
    system._supervisor.recorder.flush()  # the spawn's records are written: none lands on the torn file
    operator = open_project(ref.address)  # another process, as `actors rebuild-index` is
    try:
        children_json = operator.layout.children_json(system.name)
        with open(children_json, "w") as handle:
            handle.write("{ torn")
        swept.clear()
        assert swept.wait(supervisor_module.COLD_SWEEP_INTERVAL * 3)  # one cold sweep read it
        operator.store.rebuild_index()  # repaired, as the docs say an operator would
    finally:
        operator.close()
    os.kill(pid, 9)
    wait_until(lambda: system.pid_of(ref) not in (None, pid), timeout=10)
    assert ref.ask("count", timeout=10) == 0


def test_a_done_callback_can_ask_again(system):
    ref = system.spawn(sample_actors.Echo, name="echo")
    results = []

    def again(future):
        try:
            results.append(system.ask(ref, "second", timeout=5))
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            results.append(exc)

    system.ask_async(ref, "first").add_done_callback(again)
    wait_until(lambda: results, timeout=20)
    assert results == ["second"], results
