"""Actors end to end: real worker processes, real mailboxes under tmp_path."""

from __future__ import annotations

import contextlib
import json
import math
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import fleet_actors
import pytest
import sample_actors
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend
from actors_runtime.control import EXIT_BAD_SPEC
from actors_runtime.messages import AgentRef, InboxMessage
from actors_runtime.spec import Identity, ProvisionSpec
from conftest import ON_EVERY_BACKEND, SUPPORT_DIR, handling, open_project, support_env, wait_until

import actors
from actors import (
    ActorError,
    ActorFailed,
    ActorNotFound,
    ActorRef,
    ActorSystem,
    AskTimeout,
    Cancelled,
    InvalidSpec,
    MailboxFull,
    NoHandler,
    NoLiveHost,
    NotPaused,
    SpawnError,
    StepFailed,
    StoreError,
    SystemShutDown,
    UnboundRef,
    WrongContext,
)
from actors._codec import MAX_NESTING


@contextlib.contextmanager
def project_of(ref):
    """The ref's project as another process would open it (closed on exit)."""
    backend = open_project(ref.address)
    try:
        yield backend
    finally:
        backend.close()


def _state(backend, ref):
    """The state an actor last committed (empty before its first commit)."""
    doc = backend.store.load_session(ref.address.system_id, ref.name)
    return doc.state if doc is not None else {}


def _unacked(system, ref):
    """Messages of an actor delivered and not yet acked (waiting, or handed out)."""
    info = system.inspect(ref)
    return info.pending + info.claimed


@ON_EVERY_BACKEND
def test_spawn_tell_a_hundred_times_then_ask_returns_a_hundred(system):
    counter = system.spawn(sample_actors.Counter, name="counter")
    for _ in range(100):
        counter.tell({"n": 1})
    assert counter.ask("count", timeout=10) == 100


def test_spawn_returns_only_once_the_actor_is_registered_in_the_fabric(system):
    counter = system.spawn(sample_actors.Counter, name="counter")
    with project_of(counter) as backend:  # as another process finds it, at once
        record = backend.fabric.resolve("counter")
    assert record is not None
    assert record.pid == system.pid_of("counter")
    assert record.system_id == system.name
    assert system.inspect(counter).live


@ON_EVERY_BACKEND
def test_two_actors_ping_pong_a_thousand_round_trips(system):
    ponger = system.spawn(sample_actors.Ponger, name="ponger")
    pinger = system.spawn(sample_actors.Pinger, name="pinger")
    assert pinger.ask({"peer": ponger, "rounds": 1000}, timeout=60) == 1000
    assert ponger.ask(-1) == 0  # it answered 1,000 asks and still serves


@ON_EVERY_BACKEND
def test_an_actor_asks_another_actor_inside_a_handler_and_spawns_a_child(system):
    parent = system.spawn(sample_actors.Parent, name="parent")
    # The ask left at once; the tell made before it waited for the turn's commit.
    assert parent.ask({"child": "kid"}, timeout=30) == 0
    kids = {info.name: info for info in system.children()}
    assert kids["kid"].parent_id == "parent"
    wait_until(lambda: system.ref("kid").ask("count") == 5)


def test_ask_timeout_raises_and_the_late_reply_is_dropped_without_harm(system):
    sleeper = system.spawn(sample_actors.Sleeper, name="sleeper")
    with pytest.raises(AskTimeout) as caught:
        sleeper.ask({"sleep": 1.0}, timeout=0.2)
    assert isinstance(caught.value, TimeoutError)
    # The next ask gets its own answer, not the late "slept" of the first one.
    assert sleeper.ask("status", timeout=10) == 0
    assert sleeper.ask("status", timeout=10) == 0


@ON_EVERY_BACKEND
def test_a_handler_exception_reaches_the_asker_with_the_remote_traceback(system):
    failing = system.spawn(sample_actors.Failing, name="failing")
    with pytest.raises(ActorFailed) as caught:
        failing.ask("boom")
    error = caught.value
    assert error.type_name == "ValueError"
    assert error.message == "boom requested"
    assert "raise ValueError" in error.traceback and "sample_actors.py" in error.traceback
    assert failing.ask("again") == "fine"  # it keeps serving
    failing.tell({})
    assert failing.ask("again") == "fine"


@ON_EVERY_BACKEND
def test_query_discards_state_changes_and_steer_keeps_them(system):
    counter = system.spawn(sample_actors.Counter, name="counter")
    counter.tell({"n": 3})
    assert counter.ask("bump", mode="query") == 4
    assert counter.ask("count") == 3
    assert counter.ask("bump", mode="steer") == 4
    assert counter.ask("count") == 4
    with pytest.raises(InvalidSpec):
        counter.ask("count", mode="sideways")


def test_typed_handlers_dispatch_by_dataclass_and_answer_with_one(system):
    account = system.spawn(sample_actors.Account, name="account")
    account.tell(sample_actors.Deposit(amount=40))
    account.tell(sample_actors.Deposit(amount=2))
    statement = account.ask(sample_actors.Balance())
    assert statement == sample_actors.Statement(balance=42, owner="account")
    with pytest.raises(ActorFailed) as caught:  # an undeclared type is not imported, but refused
        account.ask(sample_actors.Statement(balance=1, owner="x"))
    assert caught.value.type_name == "actors_runtime.errors.NoHandler"
    assert "no handler for payloads of type sample_actors:Statement" in caught.value.message


@ON_EVERY_BACKEND
def test_refs_travel_inside_messages_and_the_receiver_sends_to_them(system):
    counter = system.spawn(sample_actors.Counter, name="counter")
    forwarder = system.spawn(sample_actors.Forwarder, name="forwarder")
    forwarder.tell({"reply_to": counter, "value": 7})
    wait_until(lambda: counter.ask("count") == 7)
    returned = forwarder.ask("who are you?")
    assert returned == forwarder and isinstance(returned, ActorRef)
    assert returned.ask("again") == forwarder


def test_refs_pickle_and_round_trip_through_json(system):
    counter = system.spawn(sample_actors.Counter, name="counter")
    assert pickle.loads(pickle.dumps(counter)) == counter
    assert ActorRef.from_dict(json.loads(json.dumps(counter.to_dict()))) == counter
    unbound = pickle.loads(pickle.dumps(counter))
    unbound.tell({"n": 2})  # finds the running system of its project
    assert counter.ask("count") == 2


@ON_EVERY_BACKEND
def test_host_tool_round_trip_and_error(system):
    calls = []

    def lookup(key):
        calls.append(key)
        return {"key": key, "value": len(key)}

    def broken(**_):
        raise PermissionError("no credentials for you")

    system.expose("lookup", lookup)
    system.expose("broken", broken)
    user = system.spawn(sample_actors.HostUser, name="user")
    assert user.ask({"tool": "lookup", "kwargs": {"key": "abcd"}}) == {"key": "abcd", "value": 4}
    assert calls == ["abcd"]
    with pytest.raises(ActorFailed) as caught:
        user.ask({"tool": "broken"})
    assert "PermissionError" in caught.value.message and "no credentials" in caught.value.message
    with pytest.raises(ActorFailed) as caught:
        user.ask({"tool": "missing"})
    assert "ActorNotFound" in caught.value.message


@ON_EVERY_BACKEND
def test_cancel_interrupts_a_sleeping_handler_and_the_actor_keeps_serving(system):
    sleeper = system.spawn(sample_actors.Sleeper, name="sleeper")
    future = sleeper.ask_async({"sleep": 60})
    wait_until(lambda: handling(sleeper))
    sleeper.cancel()
    with pytest.raises(Cancelled):
        future.result(timeout=10)  # far sooner than the 60 s sleep
    assert sleeper.ask("status") == 0
    # Answers go out before their batch is committed and acked; the ack follows.
    wait_until(lambda: _unacked(system, sleeper) == 0)


def test_cancel_interrupts_a_busy_python_loop(system):
    sleeper = system.spawn(sample_actors.Sleeper, name="spinner")
    future = sleeper.ask_async("spin")
    wait_until(lambda: handling(sleeper))
    sleeper.cancel()
    with pytest.raises(Cancelled):
        future.result(timeout=10)
    assert sleeper.ask("status") == 0


@ON_EVERY_BACKEND
def test_stop_leaves_pending_messages_and_a_respawn_processes_each_once(system):
    counter = system.spawn(sample_actors.Counter, name="counter")
    counter.tell({"n": 1})
    assert counter.ask("count") == 1
    counter.stop()
    assert system.pid_of("counter") is None
    with project_of(counter) as backend:
        assert backend.fabric.resolve("counter") is None  # withdrawn on a clean exit
    for _ in range(50):
        system.tell("counter", {"n": 1}, block_timeout=0)
    wait_until(lambda: system.ref("counter").ask("count") == 51, timeout=30)
    wait_until(lambda: _unacked(system, counter) == 0)


def test_stop_during_a_stream_then_respawn_by_name_processes_all_fifty_once(home, project):
    with ActorSystem(home=home, project=project, durability="process") as system:
        counter = system.spawn(sample_actors.Counter, name="counter")
        for _ in range(50):
            counter.tell({"n": 1})
        counter.stop()
    with ActorSystem(home=home, project=project, durability="process") as system:
        counter = system.spawn(sample_actors.Counter, name="counter")
        wait_until(lambda: counter.ask("count") == 50, timeout=30)
        assert counter.ask("count") == 50


def test_spawn_of_a_missing_class_or_module_is_a_spawn_error_naming_it(system):
    with pytest.raises(SpawnError) as caught:
        system.spawn("sample_actors:NoSuchActor", name="ghost")
    assert "NoSuchActor" in str(caught.value)
    with pytest.raises(SpawnError) as caught:
        system.spawn("no_such_module_here:Actor", name="ghost2")
    assert "no_such_module_here" in str(caught.value)
    with pytest.raises(SpawnError) as caught:
        system.spawn(sample_actors.CrashOnStart, name="crasher")
    assert "on_start failed" in str(caught.value) and "cannot start" in str(caught.value)


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "", "x" * 200, "a\x00b"])
def test_an_unsafe_actor_id_is_refused_before_anything_is_written(system, bad):
    with pytest.raises(InvalidSpec) as caught:
        system.spawn(sample_actors.Counter, name=bad)
    assert isinstance(caught.value, ValueError)
    assert not any(p.name.startswith("..") for p in Path(system.home).rglob("*"))
    with pytest.raises(InvalidSpec):
        system.tell(bad, {"n": 1})


@ON_EVERY_BACKEND
def test_telling_an_unknown_actor_raises_actor_not_found(system):
    with pytest.raises(ActorNotFound):
        system.tell("nobody", {"n": 1})
    with pytest.raises(ActorNotFound):
        system.ref("nobody")


def _nested(levels):
    value = []
    for _ in range(levels):
        value = [value]
    return value


def _circular():
    loop = {"n": 1}
    loop["self"] = loop
    return loop


@pytest.mark.parametrize("payload", [{"n": object()}, _nested(100_000), _nested(MAX_NESTING), _circular(),
                                     {"n": math.nan}, {"n": math.inf}, [1.0, -math.inf]],
                         ids=["object", "100000-deep", "one-past-the-cap", "circular", "nan", "inf", "-inf"])
def test_a_payload_that_is_not_json_is_refused_at_the_sender(system, payload):
    counter = system.spawn(sample_actors.Counter, name="counter")
    for send in (counter.tell, counter.tell_async, lambda p: counter.tell_many([{"n": 1}, p]),
                 lambda p: counter.ask(p, timeout=10)):
        with pytest.raises(InvalidSpec) as caught:
            send(payload)
        assert caught.value.what == "payload"
    assert counter.ask("count", timeout=10) == 0  # nothing reached the actor
    assert system.inspect(counter).pending == 0


def test_a_payload_just_under_the_nesting_cap_travels_both_ways(system):
    echo = system.spawn(sample_actors.Echo, name="echo")
    deep = _nested(MAX_NESTING - 1)
    assert echo.ask(deep, timeout=10) == deep


@ON_EVERY_BACKEND
def test_the_same_system_cannot_run_twice_in_a_project(home, project, system):
    with pytest.raises(ActorError) as caught:
        ActorSystem(home=home, project=project, backend=system.backend_name)
    assert "already running" in str(caught.value)


def test_errors_pickle_with_their_fields():
    for error in [ActorFailed("a", "ValueError", "bad", "tb"), SpawnError("a", "why"),
                  AskTimeout("a", 1.5), Cancelled("a"), ActorNotFound("a", "here"), InvalidSpec("id", "bad")]:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)


def test_the_stdin_worker_started_by_hand_registers_and_serves(home, project):
    backend = open_backend("maildir", str(home), project_key(str(project)), "process")
    backend.ensure_project(str(project))
    spec = ProvisionSpec(
        identity=Identity(child_id="manual", system_id="main", project_key=backend.project_key),
        actor_class="sample_actors:Counter", home=str(home), durability="process")
    backend.mailbox(backend.address("main", "manual"), create=True).close()
    worker = subprocess.Popen([sys.executable, "-m", "actors_runtime.worker"], stdin=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=support_env())
    try:
        worker.stdin.write(spec.to_wire())
        worker.stdin.flush()
        fabric = backend.fabric
        record = wait_until(lambda: fabric.resolve("manual"), timeout=30)
        assert record.pid == worker.pid
        with ActorSystem(home=home, project=project, name="driver", durability="process") as system:
            ref = ActorRef.from_dict({"home": str(home), "project": backend.project_key, "system": "main",
                                      "name": "manual"}, system)
            ref.tell({"n": 4})
            assert ref.ask("count", timeout=10) == 4
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0
        assert fabric.resolve("manual") is None
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stdin.close()
        worker.stderr.close()
        backend.close()


def test_the_stdin_worker_refuses_a_bad_spec_with_one_line_and_a_named_code():
    for data in [b"not json\n", b"{}\n", b"\n"]:
        result = subprocess.run([sys.executable, "-m", "actors_runtime.worker"], input=data,
                                capture_output=True, timeout=30)
        assert result.returncode == EXIT_BAD_SPEC
        lines = result.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in lines[0], lines


PARENT_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {support!r})
    from actors import ActorSystem
    import sample_actors
    system = ActorSystem(home={home!r}, project={project!r}, durability="process")
    refs = [system.spawn(sample_actors.Counter, name=f"orphan-{{i}}") for i in range(2)]
    print(" ".join(str(system.pid_of(r)) for r in refs), flush=True)
    time.sleep(600)
""")


def test_sigkill_of_the_parent_makes_its_children_exit_and_withdraw(home, project):
    script = PARENT_SCRIPT.format(support=str(SUPPORT_DIR), home=str(home), project=str(project))
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    backend = open_backend("maildir", str(home), project_key(str(project)), "process")
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        fabric = backend.fabric
        assert {r.actor_id for r in fabric.discover()} == {"orphan-0", "orphan-1"}
        parent.kill()
        parent.wait()
        wait_until(lambda: not any(_alive(pid) for pid in pids), timeout=15)
        assert fabric.discover() == []
        assert not list(Path(backend.layout.fabric).glob("*.json"))  # withdrawn, not merely expired
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()
        backend.close()


ASYNC_SENDER_SCRIPT = textwrap.dedent("""
    import sys, threading
    sys.path.insert(0, {support!r})
    from actors import ActorSystem
    from actors_runtime.backends.maildir import segment_writer
    import sample_actors
    system = ActorSystem(home={home!r}, project={project!r}, durability="machine")
    counter = system.spawn(sample_actors.Counter, name="counter")
    counter.ask("count")
    flushing = threading.Event()
    def disk_that_never_answers(fd):
        flushing.set()
        threading.Event().wait()
    segment_writer.sync_data = disk_that_never_answers  # this process only: the worker is another
    futures = [counter.tell_async({{"n": 1}}) for _ in range(300)]
    flushing.wait(30)
    print(sum(f.done() for f in futures), flush=True)
    threading.Event().wait()  # SIGKILLed here
""")


def test_a_sender_killed_before_its_tell_async_futures_resolved_still_delivered_every_message(
        home, project):
    script = ASYNC_SENDER_SCRIPT.format(support=str(SUPPORT_DIR), home=str(home), project=str(project))
    sender = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert sender.stdout.readline().strip() == b"0"  # not one of them was flushed
        sender.kill()
        sender.wait()
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        sender.stdout.close()
    with ActorSystem(home=home, project=project, durability="machine") as again:
        counter = again.ref("counter")
        wait_until(lambda: counter.ask("count") == 300, timeout=60)  # a process crash lost none


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@ON_EVERY_BACKEND
def test_a_message_that_leaves_an_unencodable_state_fails_alone_and_the_rest_apply_once(system):
    actor = system.spawn(sample_actors.BadState, name="bad")
    for body in [{}, {}, {"bad": True}, {}, {}]:
        actor.tell(body)
    wait_until(lambda: actor.ask("count") == 4)  # all but the bad one, each once
    assert actor.ask("count") == 4
    info = {c.name: c for c in system.children()}["bad"]
    assert info.status == "running" and info.restarts == 0
    with project_of(actor) as backend:
        assert _state(backend, actor) == {"count": 4, "failures": 1}


def test_typed_payloads_defined_in_the_script_being_run_reach_their_handler(tmp_path, home):
    script = tmp_path / "typed_main.py"
    script.write_text(textwrap.dedent(f"""
        from dataclasses import dataclass
        from dataclasses_json import dataclass_json
        from actors import Actor, ActorSystem, receive

        @dataclass_json
        @dataclass
        class Add:
            n: int

        @dataclass_json
        @dataclass
        class Total:
            value: int

        class Adder(Actor):
            @receive
            def add(self, add: Add, msg) -> Total:
                self.state["total"] = self.state.get("total", 0) + add.n
                return Total(self.state["total"])

        if __name__ == "__main__":
            with ActorSystem(home={str(home)!r}, project={str(tmp_path)!r}, durability="process") as system:
                adder = system.spawn(Adder, name="adder")
                adder.tell(Add(2))
                answer = adder.ask(Add(3), mode="steer")
                assert answer == Total(5), answer
                print("typed ok", answer.value)
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "typed ok 5"


def test_an_ask_pending_when_its_actor_is_marked_failed_gets_an_error_at_once(system):
    doomed = system.spawn(sample_actors.DiesOnAsk, name="doomed", restart="never")
    with pytest.raises(ActorFailed) as caught:
        doomed.ask("anything", timeout=60)
    assert "marked failed" in str(caught.value)
    with pytest.raises(ActorFailed):
        doomed.ask("again", timeout=60)
    doomed.tell("kept for later")  # a tell still queues


def test_a_cancelled_ask_names_the_actor_once(system):
    sleeper = system.spawn(sample_actors.Sleeper, name="sleeper")
    future = sleeper.ask_async({"sleep": 60})
    wait_until(lambda: handling(sleeper))
    sleeper.cancel()
    with pytest.raises(Cancelled) as caught:
        future.result(timeout=10)
    assert str(caught.value) == "'sleeper': cancelled"


def test_tell_after_shutdown_is_refused(home, project):
    system = ActorSystem(home=home, project=project, durability="process")
    counter = system.spawn(sample_actors.Counter, name="counter")
    system.shutdown()
    with pytest.raises(ActorError):
        counter.tell({"n": 1})


@pytest.mark.parametrize("durability", ["process", "machine"])
def test_tell_async_resolves_once_durable_and_keeps_its_place_among_tells(home, project, durability):
    with ActorSystem(home=home, project=project, durability=durability) as system:
        echo = system.spawn(sample_actors.Echo, name="echo")
        futures = []
        for i in range(40):
            if i % 3 == 0:
                echo.tell({"i": i})
            else:
                futures.append(system.tell_async("echo", {"i": i}) if i % 3 == 1 else echo.tell_async({"i": i}))
        ids = [future.result(30) for future in futures]
        assert len(set(ids)) == len(futures) and all(isinstance(i, str) for i in ids)
        with project_of(echo) as backend:
            wait_until(lambda: len(_state(backend, echo).get("told", [])) == 40)
            assert _state(backend, echo)["told"] == [{"i": i} for i in range(40)]
        with pytest.raises(InvalidSpec):  # refused before anything is sent, as tell
            echo.tell_async({"bad": object()})
        with pytest.raises(ActorNotFound):
            system.tell_async("nobody", 1)


def test_a_shutdown_resolves_every_tell_async_still_waiting_for_its_flush(home, project):
    system = ActorSystem(home=home, project=project, durability="machine")
    try:
        counter = system.spawn(sample_actors.Counter, name="counter")
        futures = [counter.tell_async({"n": 1}) for _ in range(200)]
    finally:
        system.shutdown()
    assert all(future.done() and isinstance(future.result(), str) for future in futures)
    with ActorSystem(home=home, project=project, durability="machine") as again:
        assert again.ref("counter").ask("count") == 200  # every one of them was delivered


def test_a_system_shut_down_by_a_callback_of_its_own_future_can_be_opened_again(home, project):
    system = ActorSystem(home=home, project=project, durability="machine")
    counter = system.spawn(sample_actors.Counter, name="counter")
    stopped = threading.Event()

    def stop(future):  # runs on the system's callback thread, not on the flusher
        system.shutdown()
        stopped.set()

    counter.tell_async({"n": 1}).add_done_callback(stop)
    assert stopped.wait(30)
    with ActorSystem(home=home, project=project, durability="machine") as again:
        assert again.ref("counter").ask("count") == 1


def test_a_tell_async_future_cannot_be_cancelled_and_its_callbacks_may_wait_for_others(home, project):
    with ActorSystem(home=home, project=project, durability="machine") as system:
        counter = system.spawn(sample_actors.Counter, name="counter")
        first = counter.tell_async({"n": 1})
        assert not first.cancel()  # the message is written: it will be sent whatever the caller does
        waited = {}

        def wait_for_another(future):  # would deadlock on the thread that resolves futures
            waited["second"] = counter.tell_async({"n": 1}).result(30)

        first.add_done_callback(wait_for_another)
        assert isinstance(first.result(30), str)
        wait_until(lambda: "second" in waited)
        assert counter.ask("count") == 2


@ON_EVERY_BACKEND
def test_tell_async_inside_an_actor_is_a_tell_with_a_done_future(system):
    counter = system.spawn(sample_actors.Counter, name="counter")
    forwarder = system.spawn(sample_actors.Forwarder, name="forwarder")
    forwarder.tell({"reply_to": counter, "value": 7, "async": True})
    wait_until(lambda: counter.ask("count") == 7)
    forwarder.ask("ref")  # answered after the tell's batch was committed
    with project_of(forwarder) as backend:
        assert _state(backend, forwarder)["async_done_at_once"]


def test_tell_many_delivers_in_order_with_one_flush_and_refuses_bad_batches_whole(home, project):
    with ActorSystem(home=home, project=project, durability="machine") as system:
        echo = system.spawn(sample_actors.Echo, name="echo", max_pending=50)
        ids = echo.tell_many([{"i": i} for i in range(30)])
        assert len(set(ids)) == 30
        with project_of(echo) as backend:
            wait_until(lambda: len(_state(backend, echo).get("told", [])) == 30)
            told = _state(backend, echo)["told"]
        assert told == [{"i": i} for i in range(30)]  # one sender's order is kept
        with pytest.raises(InvalidSpec):
            echo.tell_many([{"i": 1}, {"bad": object()}])
        with pytest.raises(MailboxFull):
            echo.tell_many([{"i": i} for i in range(51)])
        assert system.inspect(echo).pending == 0  # nothing of either refused batch was sent


def test_a_cancel_landing_as_the_handler_starts_is_never_lost(system):
    # CPython can miss a signal that arrives just before a blocking call begins; the
    # worker signals again until the handler took it. Cancel right at the start, often.
    sleeper = system.spawn(sample_actors.Sleeper, name="sleeper")
    for _ in range(30):
        future = sleeper.ask_async({"sleep": 30})
        wait_until(lambda: handling(sleeper))
        sleeper.cancel()
        with pytest.raises(Cancelled):
            future.result(timeout=10)
        wait_until(lambda: not handling(sleeper))
    assert sleeper.ask("status") == 0


def test_queries_commit_nothing_and_their_ids_ride_with_the_next_commit(system):
    counter = system.spawn(sample_actors.Counter, name="counter")
    counter.tell({"n": 1})
    assert counter.ask("count") == 1
    with project_of(counter) as backend:
        session = Path(backend.layout.actor_file("main", "counter", "session.json"))
    # A reply leaves during its batch, before the batch commits: wait for the commit.
    wait_until(lambda: json.loads(session.read_bytes())["state"]["count"] == 1)
    committed = session.read_bytes()
    for _ in range(5):
        assert counter.ask("bump") == 2  # a query's changes are discarded
    # Each commit would add the ids it applied; a batch is committed before the next
    # one is read, so four of these five would be on disk by now.
    assert session.read_bytes() == committed, "a batch of queries wrote the session"
    counter.ask("bump", mode="steer")  # a real turn: committed (just after it answers)
    wait_until(lambda: session.read_bytes() != committed)
    doc = json.loads(session.read_bytes())
    assert doc["state"]["count"] == 2
    assert len(doc["admitted"]) >= 7, "the queries' ids were committed along with the steer"


# -- inspect: one actor's status, worker, mailbox counts and last failure ------------------------


def test_inspect_reports_a_running_actor_its_worker_and_empty_mailbox(system):
    counter = system.spawn(sample_actors.Counter, name="counter", role="tally")
    info = system.inspect(counter)
    assert (info.name, info.system, info.actor_class) == ("counter", "main", "sample_actors:Counter")
    assert (info.status, info.pid, info.restarts, info.live) == ("running", system.pid_of(counter), 0, True)
    assert (info.pending, info.claimed, info.dead, info.corrupt) == (0, 0, 0, 0)
    assert info.last_failure == ""
    assert system.inspect("counter") == info  # by name as by ref
    assert counter.ask("pid") == info.pid


@ON_EVERY_BACKEND
def test_inspect_counts_the_message_being_handled_and_those_waiting(system):
    sleeper = system.spawn(sample_actors.Sleeper, name="sleeper")
    busy = sleeper.ask_async({"sleep": 60})
    wait_until(lambda: handling(sleeper))
    for _ in range(3):
        sleeper.tell("queued")
    info = system.inspect(sleeper)
    assert (info.claimed, info.pending, info.dead) == (1, 3, 0)
    sleeper.cancel()
    with pytest.raises(Cancelled):
        busy.result(timeout=10)
    wait_until(lambda: _unacked(system, sleeper) == 0)


def test_inspect_of_a_stopped_actor_reports_no_worker_and_its_waiting_messages(system):
    counter = system.spawn(sample_actors.Counter, name="counter")
    counter.stop()
    info = system.inspect(counter)
    assert (info.status, info.pid, info.live, info.pending, info.claimed) == ("stopped", None, False, 0, 0)
    with project_of(counter) as backend:  # sent by another process: nothing activates it
        backend.deliver(counter.address, [InboxMessage.create(AgentRef("tester"), "task", {"n": 1})
                                          for _ in range(2)])
    info = system.inspect(counter)
    assert (info.status, info.pid, info.pending, info.claimed) == ("stopped", None, 2, 0)
    system.spawn(sample_actors.Counter, name="counter")
    wait_until(lambda: counter.ask("count") == 2, timeout=30)
    wait_until(lambda: _unacked(system, counter) == 0)


@ON_EVERY_BACKEND
def test_inspect_counts_dead_letters(system, tmp_path):
    poison = system.spawn(fleet_actors.Poison, name="poison", secrets={"cure": str(tmp_path / "none")})
    poison.tell({"die": True})
    wait_until(lambda: system.inspect(poison).dead == 1, timeout=60)  # buried by the last restart
    assert poison.ask("count", timeout=30)["count"] == 0  # which then serves
    wait_until(lambda: _unacked(system, poison) == 0)
    info = system.inspect(poison)
    assert (info.status, info.restarts, info.dead, info.pending, info.claimed) == ("running", 3, 1, 0, 0)
    assert len(system.dead_letters(poison)) == 1


def test_inspect_of_a_failed_actor_reports_why_it_last_failed(system):
    doomed = system.spawn(sample_actors.DiesOnAsk, name="doomed", restart="never")
    with pytest.raises(ActorFailed):
        doomed.ask("anything", timeout=60)
    info = system.inspect(doomed)
    assert (info.status, info.pid) == ("failed", None)
    assert info.last_failure.startswith("died: ")
    with pytest.raises(ActorFailed) as caught:
        doomed.ask("again")
    assert info.last_failure in str(caught.value)  # what an asker is told


def test_inspect_sees_an_actor_of_another_system_of_the_project(home, project, system):
    counter = system.spawn(sample_actors.Counter, name="counter")
    with ActorSystem(home=home, project=project, name="other", durability="process") as other:
        info = other.inspect("counter")
        assert (info.name, info.system, info.status, info.live) == ("counter", "main", "running", True)
        assert info.pid == system.pid_of(counter)


def test_inspect_of_an_unknown_actor_raises_actor_not_found(system):
    with pytest.raises(ActorNotFound) as caught:
        system.inspect("nobody")
    assert caught.value.actor_id == "nobody"


# -- typed errors ----------------------------------------------------------------------------------


def test_a_system_shut_down_refuses_every_send_with_system_shut_down(home, project):
    system = ActorSystem(home=home, project=project, durability="process")
    counter = system.spawn(sample_actors.Counter, name="counter")
    system.shutdown()
    for send in (lambda: counter.tell({"n": 1}), lambda: counter.tell_async({"n": 1}),
                 lambda: counter.tell_many([{"n": 1}]), lambda: counter.ask("count"),
                 lambda: system.tell("counter", {"n": 1}),
                 lambda: system.spawn(sample_actors.Counter, name="another")):
        with pytest.raises(SystemShutDown) as caught:
            send()
        assert isinstance(caught.value, ActorError) and caught.value.system_id == "main"


def test_a_ref_used_with_no_system_of_its_project_open_raises_unbound_ref(home, project):
    with ActorSystem(home=home, project=project, durability="process") as system:
        counter = system.spawn(sample_actors.Counter, name="counter")
        counter.tell({"n": 1})
    unbound = pickle.loads(pickle.dumps(counter))  # bound on first use, and nothing is open
    with pytest.raises(UnboundRef) as caught:
        unbound.tell({"n": 1})
    assert caught.value.actor_id == "counter" and isinstance(caught.value, ActorError)
    with pytest.raises(UnboundRef):
        ActorRef.from_dict(counter.to_dict()).ask("count")


def test_an_asker_learns_its_actor_has_no_handler_for_the_kind(system):
    account = system.spawn(sample_actors.Account, name="account")  # typed handlers only, no on_ask
    with pytest.raises(ActorFailed) as caught:
        account.ask("what is my balance?")
    assert caught.value.actor_id == "account"
    assert caught.value.type_name == "actors_runtime.errors.NoHandler"
    assert caught.value.message == "Account has no handler for 'ask' messages"
    assert account.ask(sample_actors.Balance()) == sample_actors.Statement(balance=0, owner="account")


#: One instance of every exception class ``actors`` exports.
EXPORTED_ERRORS = [
    ActorError("plain"),
    ActorFailed("a", "ValueError", "bad", "tb"),
    ActorNotFound("a", "here"),
    AskTimeout("a", 1.5),
    Cancelled("a", "handler timeout"),
    InvalidSpec("id", "bad"),
    MailboxFull("/mb", 7, 5),
    NoHandler("Account", "'ask' messages"),
    NotPaused("a", "running"),
    NoLiveHost("a", "web", "the pool has no live host now"),
    SpawnError("a", "why"),
    StepFailed("a/m/charge/0", "ValueError", "declined", "tb"),
    StoreError("/x.json", "torn"),
    SystemShutDown("main", "before 'a' replied"),
    UnboundRef("a"),
    WrongContext("state", "must stay a dict"),
]


def test_every_exported_error_pickles_with_the_same_text():
    exported = {getattr(actors, name) for name in actors.__all__}
    error_classes = {cls for cls in exported if isinstance(cls, type) and issubclass(cls, BaseException)}
    assert {type(error) for error in EXPORTED_ERRORS} == error_classes
    for error in EXPORTED_ERRORS:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert copy.args == error.args
