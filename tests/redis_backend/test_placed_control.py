"""``actors restart`` and ``actors resume`` (and ``system.resume``) of actors placed on
hosts, with real ``actors host`` processes: the host that owns the actor does it,
whether or not the system that placed it runs; a dead host's actor is taken over by
the host asked; no live host is one line."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from actors_runtime.control import RESTART_TOOL
from actors_runtime.errors import NoLiveHost, NotPaused, SpawnError
from actors_runtime.worker import ask_system
from click.testing import CliRunner, Result
from conftest import wait_until

from actors import ActorSystem
from actors.cli import cli
from actors.cli.exit_codes import EXIT_FAILED, EXIT_NOT_PAUSED, EXIT_NOT_RUNNING, EXIT_OK
from actors.cli.project import CLI_SENDER

from .test_hosts import Hosts, ps_rows

KILLER = "poison_actors:SelfKiller"


def open_system(redis_server, home: Path, project: Path) -> ActorSystem:
    return ActorSystem(home=home, project=project, durability="process", backend=redis_server.url)


def fail_placed(system: ActorSystem, hosts: Hosts, redis_server, home: Path, project: Path, cure: Path):
    """Place "fragile" on the pool and have it marked failed: its message kills its
    worker until ``cure`` exists, and with restart="never" it fails at once."""
    ref = system.spawn(KILLER, "fragile", placement=f"pool:{hosts.pool}", restart="never")
    ref.tell({"exit_unless": str(cure)})
    wait_until(lambda: status(redis_server, home, project, "fragile") == "failed", 30)
    return ref


@contextlib.contextmanager
def failed_on_host(hosts: Hosts, redis_server, home: Path, project: Path, tmp_path: Path):
    """Host h1 started and "fragile" failed on it (``fail_placed``), under its running
    system; yields (system, ref, cure)."""
    hosts.start("h1")
    cure = tmp_path / "cure"
    with open_system(redis_server, home, project) as system:
        yield system, fail_placed(system, hosts, redis_server, home, project, cure), cure


def handled_once(redis_server, home: Path, project: Path) -> None:
    """The actor "fragile" runs again and handled the message it died on once."""
    with open_system(redis_server, home, project) as system:
        assert system.ask("fragile", "count", timeout=30) == 1


def actors_cli(redis_server, home: Path, project: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), "--project", str(project), "--backend",
                                    redis_server.url, *args])


def status(redis_server, home: Path, project: Path, actor_id: str) -> str:
    return str(ps_rows(redis_server, home, project).get(actor_id, {}).get("status"))


def test_actors_restart_starts_a_failed_placed_actor_on_its_host_with_and_without_its_system(
        hosts, redis_server, home, project, tmp_path):
    with failed_on_host(hosts, redis_server, home, project, tmp_path) as (_, _, cure):
        # Its system runs: the host that owns it starts it; the message kills it again.
        again = actors_cli(redis_server, home, project, "restart", "fragile")
        assert again.exit_code == EXIT_FAILED, again.output
        assert "'fragile' failed again" in again.output and len(again.output.strip().splitlines()) == 1

    cure.touch()  # its system is gone now; the host starts it all the same
    done = actors_cli(redis_server, home, project, "restart", "fragile")
    assert done.exit_code == EXIT_OK, done.output
    assert done.output.startswith("restarted 'fragile' (pid ")
    assert done.output.rstrip().endswith(f"on host h1 of pool '{hosts.pool}'"), done.output
    row = ps_rows(redis_server, home, project)["fragile"]
    assert (row["status"], row["host"].rpartition("/")[2]) == ("running", "h1"), row

    again = actors_cli(redis_server, home, project, "restart", "fragile")
    assert again.exit_code == EXIT_OK and "is running" in again.output, again.output
    handled_once(redis_server, home, project)


def test_actors_restart_no_wait_asks_the_placed_actors_host_and_returns_at_once(
        hosts, redis_server, home, project, tmp_path):
    with failed_on_host(hosts, redis_server, home, project, tmp_path) as (_, _, cure):
        cure.touch()
        asked = actors_cli(redis_server, home, project, "restart", "fragile", "--no-wait")
        assert asked.exit_code == EXIT_OK, asked.output
        assert asked.output.strip() == f"asked host h1 of pool '{hosts.pool}' to restart 'fragile'", asked.output
        wait_until(lambda: status(redis_server, home, project, "fragile") == "running", 30)
    handled_once(redis_server, home, project)


def test_spawning_a_failed_placed_actor_again_by_name_restarts_it_on_its_host(
        hosts, redis_server, home, project, tmp_path):
    with failed_on_host(hosts, redis_server, home, project, tmp_path) as (system, _, cure):
        cure.touch()
        again = system.spawn(KILLER, "fragile", placement=f"pool:{hosts.pool}", restart="never")
        assert again.ask("count", timeout=30) == 1


def test_a_restart_request_to_the_placing_system_is_passed_on_to_the_host(
        hosts, redis_server, home, project, tmp_path):
    with failed_on_host(hosts, redis_server, home, project, tmp_path) as (system, ref, cure):
        cure.touch()
        # What an older CLI (or any program) sends: the system's own restart tool.
        ask_system(system._backend, CLI_SENDER, ref.address, RESTART_TOOL)
        wait_until(lambda: status(redis_server, home, project, "fragile") == "running", 30)
        assert ref.ask("count", timeout=30) == 1


def test_actors_restart_of_a_placed_actor_whose_first_start_failed_reaches_its_host(
        hosts, redis_server, home, project):
    hosts.start("h1")
    with open_system(redis_server, home, project) as system:
        with pytest.raises(SpawnError, match="no start today"):
            system.spawn("host_actors:FailsOnStart", "doomed", placement=f"pool:{hosts.pool}")
    again = actors_cli(redis_server, home, project, "restart", "doomed")  # no spec recorded: found in the pool
    assert again.exit_code == EXIT_FAILED, again.output
    assert again.output.startswith("actors: 'doomed' failed again: ") and "no start today" in again.output


def pause(system: ActorSystem, pool: str, name: str, message: dict, redis_server, home, project):
    """A placed SelfKiller paused at ``message`` (its first death), with one tell behind it."""
    ref = system.spawn(KILLER, name, placement=f"pool:{pool}", on_poison="pause", max_attempts=1)
    ref.tell(message)
    wait_until(lambda: status(redis_server, home, project, name) == "paused", 30)
    ref.tell({"n": 1})
    return ref


def test_a_paused_placed_actor_is_resumed_by_its_host_through_the_api_the_cli_and_with_skip(
        hosts, redis_server, home, project, tmp_path):
    hosts.start("h1")
    cure = tmp_path / "cure"
    with open_system(redis_server, home, project) as system:
        retried = pause(system, hosts.pool, "retried", {"exit_unless": str(cure)}, redis_server, home, project)
        skipped = pause(system, hosts.pool, "skipped", {"exit": 1}, redis_server, home, project)
        dead = system.dead_letters(skipped)
        refused = actors_cli(redis_server, home, project, "restart", "retried")
        assert refused.exit_code == EXIT_NOT_RUNNING, refused.output
        assert "a restart does not lift a pause: 'actors resume retried [--skip]' does" in refused.output
        cure.touch()
        msg_id = system.resume(retried)  # through its host: the cured message is tried again
        assert retried.ask("count", timeout=30) == 2
        assert msg_id not in {d.message.id for d in system.dead_letters(retried)}
        with pytest.raises(NotPaused, match="'retried' is not paused"):
            system.resume(retried)
        not_now = actors_cli(redis_server, home, project, "resume", "retried", "--no-wait")
        assert not_now.exit_code == EXIT_NOT_PAUSED and "'retried' is not paused" in not_now.output

    # Its system is gone: the host resumes it all the same.
    done = actors_cli(redis_server, home, project, "resume", "skipped", "--skip")
    assert done.exit_code == EXIT_OK, done.output
    assert done.output.startswith("resumed 'skipped' at message ")
    assert f"on host h1 of pool '{hosts.pool}'; skipped it" in done.output
    wait_until(lambda: status(redis_server, home, project, "skipped") == "running", 30)
    with open_system(redis_server, home, project) as system:
        assert system.ask("skipped", "count", timeout=30) == 1  # the tell behind it; the poison is buried
        assert len(system.dead_letters("skipped")) == len(dead) + 1
    not_paused = actors_cli(redis_server, home, project, "resume", "skipped")
    assert not_paused.exit_code == EXIT_NOT_PAUSED, not_paused.output
    assert "'skipped' is not paused" in not_paused.output


def test_a_dead_hosts_paused_actor_is_resumed_by_the_live_host_asked_and_no_live_host_is_one_line(
        hosts, redis_server, home, project, tmp_path):
    hosts.start("h1")
    cure = tmp_path / "cure"
    with open_system(redis_server, home, project) as system:
        ref = pause(system, hosts.pool, "orphan", {"exit_unless": str(cure)}, redis_server, home, project)
        hosts.kill("h1")
        wait_until(lambda: "h1" not in {h.id for h in hosts.store.live_hosts()}, 30)

        refused = actors_cli(redis_server, home, project, "resume", "orphan")
        assert refused.exit_code == EXIT_NOT_RUNNING, refused.output
        line = (f"actors: no live host of pool '{hosts.pool}' runs 'orphan': it was placed on host h1, and the "
                f"pool has no live host now (start one: actors --backend URL host --pool {hosts.pool})")
        assert refused.output.strip() == line
        restart = actors_cli(redis_server, home, project, "restart", "orphan")
        assert (restart.exit_code, restart.output.strip()) == (EXIT_NOT_RUNNING, line)
        with pytest.raises(NoLiveHost, match="it was placed on host h1"):
            system.resume(ref)

        hosts.start("h2")
        cure.touch()
        done = actors_cli(redis_server, home, project, "resume", "orphan")
        assert done.exit_code == EXIT_OK, done.output
        assert f"on host h2 of pool '{hosts.pool}'" in done.output
        assert ref.ask("count", timeout=30) == 2
