"""Hosts and placement, with real processes: ``actors host`` processes on one pool,
a system that places actors on them, a host SIGKILLed mid-stream whose actors are
placed again on the survivor with their state, and the refusals a placement gets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
from actors_runtime.address import project_key
from actors_runtime.backends.redis.connection import Server, parse_url
from actors_runtime.backends.redis.pools import HostRecord, PoolStore, placed_field
from actors_runtime.errors import ActorFailed, InvalidSpec, SpawnError
from actors_runtime.hosts import Host
from actors_runtime.records import AgentRecord
from actors_runtime.spec import Identity, ProvisionSpec
from click.testing import CliRunner
from conftest import process_gone, support_env, wait_until

from actors import ActorSystem
from actors.cli import cli

#: Seconds of the hosts' leases here: a dead host's actors move after about this long.
LEASE = 1.0
COUNTER = "host_actors:Counter"


class Hosts:
    """``actors host`` processes of one pool, each in its own process group."""

    def __init__(self, url: str, pool: str, root: Path) -> None:
        self.url, self.pool, self.root = url, pool, root
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.store = PoolStore(Server(parse_url(url)), pool)

    def start(self, name: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "actors.cli", "--home", str(self.root / "host-home"), "host", "--backend", self.url,
             "--pool", self.pool,
             "--name", name, "--lease", str(LEASE), "--grace", "5", *extra],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.root, env=env or support_env(),
            start_new_session=True)
        log.close()
        self.processes[name] = process
        wait_until(lambda: name in {h.id for h in self.store.live_hosts()} or process.poll() is not None, 30)
        assert process.poll() is None, self.log(name)
        return process

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-3000:]

    def kill(self, name: str) -> None:
        """SIGKILL the host and every worker of it (its process group)."""
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def close(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
        self.store.server.close()


@pytest.fixture
def placing(redis_server, home: Path, project: Path) -> Iterator[ActorSystem]:
    with ActorSystem(home=home, project=project, durability="process", backend=redis_server.url) as system:
        yield system


def ps_rows(redis_server, home: Path, project: Path) -> dict[str, dict]:
    result = CliRunner().invoke(cli, ["--home", str(home), "--project", str(project), "--backend",
                                      redis_server.url, "ps", "--json"])
    assert result.exit_code == 0, result.output
    return {row["id"]: row for row in json.loads(result.output)}


def test_actors_spread_over_two_hosts_and_a_killed_hosts_actors_are_placed_again_with_every_count_exact(
        hosts, placing, redis_server, home, project):
    hosts.start("h1")
    hosts.start("h2")
    refs = [placing.spawn(COUNTER, f"counter-{i}", placement=f"pool:{hosts.pool}") for i in range(6)]
    where = {ref.name: placing.ask(ref, "where")["host"] for ref in refs}
    assert set(where.values()) == {"h1", "h2"}, f"placements did not spread over both hosts: {where}"
    rows = ps_rows(redis_server, home, project)
    assert {rows[name]["host"].rpartition("/")[2] for name in where} == {"h1", "h2"}, rows
    assert all(rows[name]["host"].endswith("/" + host) for name, host in where.items()), rows

    sent = 300
    pending_asks = []
    for k in range(sent):
        for ref in refs:
            placing.tell(ref, {"k": k})
        if k == 100:
            hosts.kill("h2")  # mid-stream: its actors have messages waiting and in flight
        if k % 50 == 0:
            pending_asks += [placing.ask_async(ref, "where") for ref in refs]
    answers = [future.result(30) for future in pending_asks]  # every ask is answered
    assert len(answers) == len(pending_asks)
    for ref in refs:
        final = placing.ask(ref, "where", timeout=30)
        assert final["count"] == sent, f"{ref.name} counted {final['count']} of {sent} (was on {where[ref.name]})"
        assert final["host"] == "h1", f"{ref.name} runs on {final['host']} after h2 died"
    rows = ps_rows(redis_server, home, project)
    assert all(rows[ref.name]["host"].endswith("/h1") and rows[ref.name]["status"] == "running" for ref in refs), rows
    moved = [name for name, host in where.items() if host == "h2"]
    assert all(f"took over actor {name} from host h2" in hosts.log("h1") for name in moved), hosts.log("h1")


def test_a_host_that_cannot_import_the_class_refuses_the_placement_with_the_import_error(hosts, placing):
    host = hosts.start("h1")
    with pytest.raises(SpawnError, match=r"cannot import nowhere_module:Counter: ModuleNotFoundError: "
                                         r"No module named 'nowhere_module'"):
        placing.spawn("nowhere_module:Counter", "stranger", placement=f"pool:{hosts.pool}")
    assert host.poll() is None
    assert placing.spawn(COUNTER, "native", placement=f"pool:{hosts.pool}").ask("where")["host"] == "h1"
    with pytest.raises(SpawnError, match=f"it is placed on pool '{hosts.pool}'"):
        placing.spawn(COUNTER, "native")  # not a second worker in this process


def test_a_full_host_refuses_placements_beyond_its_capacity_and_they_go_to_a_host_with_room(hosts, placing):
    hosts.start("small", "--capacity", "1")
    first = placing.spawn(COUNTER, "first", placement=f"pool:{hosts.pool}")
    assert first.ask("where")["host"] == "small"
    with pytest.raises(SpawnError, match=r"every host of pool .* refused it: host small is full \(1 actors\)"):
        placing.spawn(COUNTER, "second", placement=f"pool:{hosts.pool}")
    hosts.start("roomy")
    assert placing.spawn(COUNTER, "third", placement=f"pool:{hosts.pool}").ask("where")["host"] == "roomy"


def test_sigterm_stops_a_hosts_workers_and_it_exits_0_and_its_actors_move_to_another_host(hosts, placing):
    leaving = hosts.start("leaving")
    refs = [placing.spawn(COUNTER, f"mover-{i}", placement=f"pool:{hosts.pool}") for i in range(2)]
    for ref in refs:
        placing.tell_many(ref, [{"k": k} for k in range(20)])
    pids = [placing.ask(ref, "where")["pid"] for ref in refs]
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(30) == 0, hosts.log("leaving")
    for pid in pids:
        assert process_gone(pid), f"worker {pid} outlived its host"
    hosts.start("staying")
    for ref in refs:
        answer = placing.ask(ref, "where", timeout=30)
        assert (answer["host"], answer["count"]) == ("staying", 20)


def test_a_placement_needs_a_live_host_redis_and_no_secrets(hosts, placing, home, project):
    with pytest.raises(SpawnError, match=r"pool 'empty-pool' has no live host"):
        placing.spawn(COUNTER, "lonely", placement="pool:empty-pool")
    with pytest.raises(InvalidSpec, match="takes no secrets"):
        placing.spawn(COUNTER, "secretive", placement="pool:empty-pool", secrets={"token": "x"})
    with pytest.raises(InvalidSpec, match="'pool:NAME'"):
        placing.spawn(COUNTER, "odd", placement="rack:7")
    placing.spawn(COUNTER, "homebody")
    with pytest.raises(SpawnError, match="spawned in this system without a placement"):
        placing.spawn(COUNTER, "homebody", placement="pool:empty-pool")
    with ActorSystem(home=home, project=project, name="files", durability="process") as on_files:
        with pytest.raises(InvalidSpec, match="needs the Redis backend"):
            on_files.spawn(COUNTER, "filed", placement="pool:empty-pool")


def test_two_hosts_that_both_see_a_dead_hosts_actor_cannot_both_take_it(redis_server):
    store = PoolStore(Server(parse_url(redis_server.url)), f"pool-{os.urandom(4).hex()}")
    try:
        assert store.assign("p/s/a", "dead", "", {"actor_class": COUNTER}) == (True, "dead")
        assert store.assign("p/s/a", "h1", "dead", {}) == (True, "h1")
        assert store.assign("p/s/a", "h2", "dead", {}) == (False, "h1")
        assert store.load() == {"dead": 0, "h1": 1}
        assert store.placed("p/s/a").host == "h1"
    finally:
        store.server.close()


def test_a_placed_actor_that_went_idle_is_activated_on_its_host_by_the_next_message_and_stop_and_kill_reach_it(
        hosts, placing):
    hosts.start("h1")
    ref = placing.spawn(COUNTER, "sleepy", placement=f"pool:{hosts.pool}", idle_timeout=0.3)
    ref.tell({"k": 1})
    first = ref.ask("where")
    wait_until(lambda: process_gone(first["pid"]), 30)
    ref.tell({"k": 2})
    again = ref.ask("where", timeout=30)
    assert (again["host"], again["count"]) == ("h1", 2) and again["pid"] != first["pid"]

    steady = placing.spawn(COUNTER, "steady", placement=f"pool:{hosts.pool}")
    pid = steady.ask("where")["pid"]
    placing.stop(steady, timeout=10)  # returns once its host confirmed the stop
    assert process_gone(pid), "stop returned before the worker exited"
    steady.tell({"k": 1})
    pid = steady.ask("where", timeout=30)["pid"]  # a message started it again, on its host
    placing.kill(steady, timeout=10)
    assert process_gone(pid), "kill returned before the worker died"
    assert steady.ask("where", timeout=30)["count"] == 1


def test_a_dead_hosts_actor_is_taken_over_only_once_the_host_and_the_actor_leases_ran_out(
        redis_server, project, clock):
    pool, key = f"pool-{os.urandom(4).hex()}", project_key(project)
    heir = Host(redis_server.url, pool, host_id="heir", lease=10.0, warm=0, clock=clock)
    try:
        store = heir.store
        assert store.publish_host(HostRecord("dead", pool), "the-dead-hosts-token", 10.0)
        spec = ProvisionSpec(identity=Identity(child_id="orphan", system_id="main", project_key=key),
                             actor_class=COUNTER, home=heir.location, backend=heir.location,
                             durability="process", placement=f"pool:{pool}").validate()
        field = placed_field(key, "main", "orphan")
        assert store.assign(field, "dead", "", spec.public_dict())[0]
        backend = heir._backend(key)
        backend.fabric.publish(AgentRecord(agent_id="orphan", pid=1, system_id="main",
                                           actor_class=COUNTER), 20.0)

        heir._sweep()
        assert store.placed(field).host == "dead", "taken over while its host's lease was live"
        clock.advance(11)
        heir._sweep()
        assert store.placed(field).host == "dead", "taken over while the actor's own lease was live"
        clock.advance(10)
        heir._sweep()
        assert store.placed(field).host == "heir"
        sup = heir.supervisor(key, "main")
        wait_until(lambda: any(c.actor_id == "orphan" and c.alive for c in sup.snapshot()), 30)
    finally:
        heir.shutdown()


def test_the_cli_does_not_signal_a_local_pid_for_a_worker_whose_record_names_another_machine(
        placing, redis_server, home, project):
    ref = placing.spawn(COUNTER, "remote")
    pid = placing.pid_of(ref)
    backend = placing._backend
    key = backend.keys.record("remote")
    doc = json.loads(backend.server.call("read", lambda c: c.get(key)))
    doc["host"] = "another-machine/h9"
    backend.server.call("write", lambda c: c.set(key, json.dumps(doc), keepttl=True))
    assert ps_rows(redis_server, home, project)["remote"]["host"] == "another-machine/h9"
    result = CliRunner().invoke(cli, ["--home", str(home), "--project", str(project), "--backend",
                                      redis_server.url, "stop", "remote"])
    assert result.exit_code == 6, result.output
    assert "runs on another-machine/h9" in result.output
    assert placing.pid_of(ref) == pid and ref.ask("where")["count"] == 0


def test_a_second_sigterm_kills_a_hosts_busy_workers_at_once_and_their_message_is_handled_later(
        hosts, placing, tmp_path):
    host = hosts.start("impatient", "--grace", "60")
    ref = placing.spawn(COUNTER, "busy", placement=f"pool:{hosts.pool}")
    hold = tmp_path / "hold"
    hold.touch()
    ref.tell({"hold": str(hold)})
    wait_until(lambda: (tmp_path / "hold.held").exists(), 30)  # in its handler, which does not return
    host.send_signal(signal.SIGTERM)
    wait_until(lambda: "impatient: stopping" in hosts.log("impatient"), 30)  # the first one was handled
    host.send_signal(signal.SIGTERM)
    assert host.wait(20) == 0, hosts.log("impatient")  # well before the 60 s of grace
    hold.unlink()
    hosts.start("patient")
    assert ref.ask("where", timeout=30) | {"pid": 0} == {"count": 1, "host": "patient", "pid": 0}


def test_a_placed_actors_worker_that_dies_is_restarted_by_its_host_with_its_state(hosts, placing):
    hosts.start("h1")
    ref = placing.spawn(COUNTER, "fragile", placement=f"pool:{hosts.pool}")
    ref.tell_many([{"k": k} for k in range(10)])
    before = ref.ask("where")
    os.kill(before["pid"], signal.SIGKILL)
    wait_until(lambda: ref.ask("where", timeout=30)["pid"] != before["pid"], 30)
    after = ref.ask("where")
    assert (after["host"], after["count"]) == ("h1", 10)
    assert "actor fragile: worker died: killed by SIGKILL; restarting" in hosts.log("h1")


def test_a_placement_whose_host_dies_before_it_answers_goes_to_another_host(hosts, placing, tmp_path):
    flag = tmp_path / "stuck"
    flag.touch()
    env = support_env(STUCK_FLAG=str(flag))
    hosts.start("stuck", env=env)
    outcome: dict[str, object] = {}

    def place() -> None:
        try:
            ref = placing.spawn("stuck_import:Counter", "patient", placement=f"pool:{hosts.pool}", timeout=60)
            outcome["host"] = ref.ask("where")["host"]
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=place)
    thread.start()
    try:
        wait_until(lambda: (tmp_path / "stuck.importing").exists(), 30)  # the stuck host has the request
        hosts.start("good", env=env)
        hosts.kill("stuck")
        thread.join(30)  # well before the spawn's 60 s
        assert not thread.is_alive(), "the spawn waited for a dead host"
    finally:
        flag.unlink(missing_ok=True)
        thread.join(60)
    assert outcome == {"host": "good"}


def test_an_actor_that_fails_to_start_on_its_host_fails_the_spawn_and_then_every_ask_at_once(hosts, placing):
    hosts.start("h1")
    with pytest.raises(SpawnError, match="no start today"):
        placing.spawn("host_actors:FailsOnStart", "doomed", placement=f"pool:{hosts.pool}")
    wait_until(lambda: any(c.name == "doomed" and c.status == "failed" for c in placing.children()), 10)
    with pytest.raises(ActorFailed, match="marked failed on its host"):
        placing.ask("doomed", "anything", timeout=30)


def test_a_full_host_passivates_its_least_recently_used_idle_actor_to_wake_a_cold_one(hosts, placing):
    hosts.start("small", "--capacity", "2")
    sleepy = placing.spawn(COUNTER, "sleepy", placement=f"pool:{hosts.pool}", idle_timeout=0.3)
    sleepy.tell({"k": 1})
    first = sleepy.ask("where")
    wait_until(lambda: process_gone(first["pid"]), 30)
    # Two warm actors fill the host; the cold one stays placed on it.
    older = placing.spawn(COUNTER, "older", placement=f"pool:{hosts.pool}")
    newer = placing.spawn(COUNTER, "newer", placement=f"pool:{hosts.pool}")
    older.tell({"k": 1})
    assert older.ask("where")["count"] == 1
    newer.tell({"k": 1})
    assert newer.ask("where")["count"] == 1
    older_pid = older.ask("where")["pid"]
    newer_pid = newer.ask("where")["pid"]  # asked last: the most recently used
    sleepy.tell({"k": 2})
    woken = sleepy.ask("where", timeout=30)
    assert (woken["host"], woken["count"]) == ("small", 2)
    # The least recently used idle actor made room (committed, then exited); the other kept its worker.
    wait_until(lambda: process_gone(older_pid), 30)
    assert not process_gone(newer_pid)
    assert older.ask("where", timeout=30)["count"] == 1  # its state kept; a message brings it back
