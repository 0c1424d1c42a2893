"""The ``actors`` CLI: every command through CliRunner, the key ones as real processes."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sample_actors
from actors_runtime import control
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend
from actors_runtime.backends.base import Delivered
from actors_runtime.backends.maildir.layout import ProjectLayout
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.backends.maildir.reading import Receipt
from actors_runtime.messages import AgentRef, InboxMessage
from actors_runtime.records import AgentRecord
from actors_runtime.spec import Identity, Limits, ProvisionSpec
from click.testing import CliRunner
from conftest import TESTS_DIR, mailbox_dir, support_env, wait_until

from actors import ActorFailed, ActorSystem, Cancelled
from actors.cli import cli
from actors.cli import exit_codes as exit_codes_module
from actors.cli.exit_codes import (
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)
from actors.cli.project import Env
from actors.cli.run import Progress

from .running import assert_one_line_error, invoke

# -- helpers -----------------------------------------------------------------------------------


def subprocess_env():
    env = support_env()
    env.pop("ACTORS_HOME", None)
    return env


def open_store(home, project):
    """The project's maildir backend, as another process would open it (close it after use)."""
    return open_backend("maildir", str(home), project_key(project), "process")


def read_record(home, project, actor_id):
    """The actor's lease record in the project's fabric, live or not (None if absent)."""
    backend = open_store(home, project)
    try:
        return backend.fabric.read(actor_id)
    finally:
        backend.close()


def run_cli_process(home, project, *args, timeout=60):
    """Run ``python -m actors.cli ...`` as a real process."""
    argv = [sys.executable, "-m", "actors.cli", "--home", str(home), "--project", str(project),
            *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, env=subprocess_env(), cwd=TESTS_DIR,
                           timeout=timeout)


#: ``python -m actors.cli`` is how docs/cli.md says the CLI runs as a program.

def ps_rows(home, project, *extra):
    result = invoke(home, project, *extra, "ps", "--json")
    assert result.exit_code == EXIT_OK, result.output
    return {row["id"]: row for row in json.loads(result.stdout)}


# -- ps ------------------------------------------------------------------------------------------


def test_ps_shows_running_and_cold_actors_with_pid_status_pending_restarts_and_lease(home, project, system):
    system.spawn(sample_actors.Counter, name="hot", role="counter")
    system.spawn(sample_actors.Counter, name="cold")
    system.stop("cold")
    # stop() returns before the supervisor persisted the status, so wait for the file.
    wait_until(lambda: ps_rows(home, project)["cold"]["status"] == "stopped")

    rows = ps_rows(home, project)
    assert set(rows) == {"hot", "cold"}
    hot, cold = rows["hot"], rows["cold"]
    assert hot["status"] == "running" and hot["pid"] == system.pid_of("hot")
    assert hot["class"] == "sample_actors:Counter" and hot["role"] == "counter"
    assert hot["system"] == "main" and hot["pending"] == 0 and hot["restarts"] == 0
    assert 0 < hot["lease"] <= 60 and hot["host"] is None
    assert cold["status"] == "stopped" and cold["pid"] is None and cold["lease"] is None

    table = invoke(home, project, "ps")
    assert table.exit_code == EXIT_OK, table.output
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["ID", "SYSTEM", "CLASS", "ROLE", "HOST", "PID", "STATUS", "PENDING", "RESTARTS",
                              "LEASE"]
    assert [line.split()[0] for line in lines] == ["cold", "hot"]
    hot_cells = lines[1].split()
    assert hot_cells[4] == "-"  # the maildir backend names no host: one machine
    assert hot_cells[5] == str(system.pid_of("hot")) and hot_cells[6] == "running"
    assert hot_cells[9].endswith("s")
    # Columns are aligned: every row's STATUS starts where the header's does.
    column = header.index("STATUS")
    assert all(line[column:].split()[0] in ("running", "stopped") for line in lines)

    # --system, when given, filters by system.
    assert ps_rows(home, project, "--system", "other") == {}


def test_ps_through_a_real_process_reads_the_same_rows(home, project, system):
    system.spawn(sample_actors.Counter, name="counter")
    result = run_cli_process(home, project, "ps", "--json")
    assert result.returncode == EXIT_OK, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["id"] == "counter" and row["status"] == "running"
    assert row["pid"] == system.pid_of("counter")


def test_ps_says_lost_when_the_index_says_running_but_no_lease_is_live(home, project):
    with ActorSystem(home=home, project=project, durability="process") as actor_system:
        actor_system.spawn(sample_actors.Counter, name="ghost")
    backend = open_store(home, project)
    try:
        system_id, entry = backend.store.child_entry("ghost")
        # as a supervisor that died mid-run leaves it
        backend.store.record_children(system_id, [dataclasses.replace(entry, status="running")])
    finally:
        backend.close()
    assert ps_rows(home, project)["ghost"]["status"] == "lost"


def test_progress_rewrites_one_line_on_a_terminal_and_prints_a_final_summary(home, project, system):
    system.spawn(sample_actors.Counter, name="counter")
    env = Env(home=str(home), project=str(project), system="main", system_given=False, debug=False)
    stream = io.StringIO()
    progress = Progress(env, stream, tty=True, interval=3600.0, clock=iter([0.0, 1.5, 2.0]).__next__)
    progress.tick()
    assert stream.getvalue() == "\r[actors    1.5s] 1 actor: 1 running | 0 pending\x1b[K"
    progress.start()
    progress.close()
    assert stream.getvalue().endswith("\r\x1b[K[actors] 1 actor: 1 running | 0 pending\n")

    plain = io.StringIO()
    quiet = Progress(env, plain, tty=False, interval=3600.0)
    quiet.tick()
    quiet.tick()  # nothing changed: no second line
    assert plain.getvalue() == "[actors] 1 actor: 1 running | 0 pending\n"


# -- tell, inbox, ask ---------------------------------------------------------------------------


def test_tell_queues_for_a_stopped_actor_and_inbox_shows_counts_and_messages(home, project):
    with ActorSystem(home=home, project=project, durability="process") as actor_system:
        actor_system.spawn(sample_actors.Counter, name="counter")

    first = invoke(home, project, "tell", "counter", '{"n": 2}')
    assert first.exit_code == EXIT_OK, first.output
    assert "queued" in first.stdout and "when its system next runs" in first.stdout
    second = invoke(home, project, "tell", "counter", '{"n": 3, "note": "' + "x" * 100 + '"}')
    assert second.exit_code == EXIT_OK, second.output

    result = invoke(home, project, "inbox", "counter", "--json")
    assert result.exit_code == EXIT_OK, result.output
    doc = json.loads(result.stdout)
    assert doc["counts"] == {"new": 2, "cur": 0, "corrupt": 0, "dead": 0}
    assert [m["body"]["n"] for m in doc["messages"]] == [2, 3]
    assert {m["kind"] for m in doc["messages"]} == {"task"} and {m["from"] for m in doc["messages"]} == {"cli"}
    assert doc["messages"][0]["id"] in first.stdout

    text = invoke(home, project, "inbox", "counter", "--limit", "1")
    assert text.exit_code == EXIT_OK, text.output
    lines = text.stdout.splitlines()
    assert lines[0] == "counter (system main): new 2, cur 0, corrupt 0, dead 0"
    assert lines[1].split() == ["BOX", "ID", "KIND", "FROM", "CREATED_AT", "BODY"]
    assert lines[2].split()[:4] == ["new", doc["messages"][0]["id"], "task", "cli"]
    assert lines[3] == "... 1 more (--limit)"
    assert ps_rows(home, project)["counter"]["pending"] == 2

    # The next activation handles what was queued while nobody ran.
    with ActorSystem(home=home, project=project, durability="process") as actor_system:
        counter = actor_system.spawn(sample_actors.Counter, name="counter")
        assert counter.ask("count", timeout=10) == 5


def test_tell_then_ask_a_running_actor_prints_the_answer_as_json(home, project, system):
    system.spawn(sample_actors.Counter, name="counter")
    told = invoke(home, project, "tell", "counter", '{"n": 5}')
    assert told.exit_code == EXIT_OK, told.output
    assert told.stdout.startswith("sent ") and f"pid {system.pid_of('counter')}" in told.stdout

    # The ask is delivered after the tell, so it is answered after the tell was applied.
    asked = invoke(home, project, "ask", "counter", '"count"')
    assert asked.exit_code == EXIT_OK, asked.output
    assert json.loads(asked.stdout) == 5

    assert json.loads(invoke(home, project, "ask", "counter", '"bump"').stdout) == 6  # query: discarded
    assert json.loads(invoke(home, project, "ask", "counter", '"bump"', "--mode", "steer").stdout) == 6
    assert system.ask("counter", "count") == 6
    # The short-lived reply systems clean up after themselves.
    layout = ProjectLayout(str(home), project_key(project))
    assert sorted(os.listdir(layout.sessions)) == ["main"]


def test_tell_to_a_stopped_actor_of_a_running_system_gets_it_activated(home, project, system):
    system.spawn(sample_actors.Counter, name="counter")
    system.stop("counter")
    assert not system.inspect("counter").live
    result = invoke(home, project, "tell", "counter", '{"n": 4}')
    assert result.exit_code == EXIT_OK, result.output
    assert "queued" in result.stdout
    wait_until(lambda: system.inspect("counter").live, timeout=15)  # its system woke it
    assert system.ask("counter", "count", timeout=10) == 4


def test_ask_reports_a_remote_failure_in_one_line_and_the_traceback_only_with_debug(home, project, system):
    system.spawn(sample_actors.Failing, name="failing")
    result = invoke(home, project, "ask", "failing", '"boom"')
    assert_one_line_error(result, EXIT_FAILED, "ValueError: boom requested")

    debug = invoke(home, project, "--debug", "ask", "failing", '"boom"')
    assert debug.exit_code == EXIT_FAILED
    assert "Traceback" in debug.stderr and "raise ValueError" in debug.stderr


# -- stop, cancel, kill --------------------------------------------------------------------------


def test_stop_sends_sigterm_and_the_worker_exits_cleanly_and_withdraws(home, project, system):
    system.spawn(sample_actors.Counter, name="counter")
    pid = system.pid_of("counter")
    result = invoke(home, project, "stop", "counter")
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.strip() == f"stopped 'counter' (pid {pid})"
    assert read_record(home, project, "counter") is None  # withdrawn before it exited
    # Withdrawn and exited: listed again once its system recorded the exit.
    wait_until(lambda: ps_rows(home, project).get("counter", {}).get("status") == "stopped")
    assert [c.status for c in system.children()] == ["stopped"]  # a clean exit: not restarted


def test_cancel_interrupts_the_running_handler_and_the_asker_gets_cancelled(home, project, system):
    system.spawn(sample_actors.Sleeper, name="sleeper")
    future = system.ask_async("sleeper", {"sleep": 60})
    outputs = []

    def cancelled():
        # A cancel that lands before the handler is entered is a no-op, so repeat it.
        outputs.append(invoke(home, project, "cancel", "sleeper"))
        return future.done()

    wait_until(cancelled, timeout=30, interval=0.05)
    with pytest.raises(Cancelled):
        future.result()
    assert all(r.exit_code == EXIT_OK for r in outputs), [r.output for r in outputs]
    assert outputs[-1].stdout.startswith("cancel sent to 'sleeper' (pid ")
    assert system.ask("sleeper", "status", timeout=10) == 0  # still serving


def test_kill_sends_sigkill_mid_message_and_the_message_is_not_counted_as_poison(home, project, system):
    system.spawn(sample_actors.Sleeper, name="sleeper", restart="never")
    pid = system.pid_of("sleeper")
    marker = Path(mailbox_dir(system.ref("sleeper").address), ".inflight")
    future = system.ask_async("sleeper", {"sleep": 60})
    wait_until(lambda: marker.read_bytes()[:1] != b"\0")  # the handler is running

    result = invoke(home, project, "kill", "sleeper")
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.strip() == f"killed 'sleeper' (pid {pid})"
    assert marker.read_bytes()[:1] == b"\0"  # a deliberate kill is no evidence of poison
    assert read_record(home, project, "sleeper") is None  # the dead worker's record is withdrawn
    wait_until(lambda: ps_rows(home, project).get("sleeper", {}).get("status") == "failed")
    assert [c.status for c in system.children()] == ["failed"]  # restart="never": not restarted
    # The asker hears at once that its actor failed; the question stays in cur/ for
    # the next activation.
    with pytest.raises(ActorFailed, match="marked failed"):
        future.result(timeout=10)
    assert system.inspect("sleeper").claimed == 1


@pytest.mark.parametrize("command", ["stop", "cancel", "kill"])
def test_control_commands_refuse_actors_that_are_not_running_or_unknown(home, project, command):
    with ActorSystem(home=home, project=project, durability="process") as actor_system:
        actor_system.spawn(sample_actors.Counter, name="counter")
    assert_one_line_error(invoke(home, project, command, "counter"), EXIT_NOT_RUNNING,
                          "'counter' is not running")
    assert_one_line_error(invoke(home, project, command, "nobody"), EXIT_NOT_FOUND, "no actor 'nobody'")


def test_control_commands_never_signal_a_process_a_stale_record_points_at(home, project):
    backend = open_store(home, project)
    backend.ensure_project(str(project))
    backend.mailbox(backend.address("main", "ghost"), create=True).close()
    fabric = backend.fabric

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    fabric.publish(AgentRecord(agent_id="ghost", pid=finished.pid, started_at=time.time(), system_id="main"))
    assert_one_line_error(invoke(home, project, "stop", "ghost"), EXIT_NOT_RUNNING, "has exited")

    bystander = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        # A record published long before this process started cannot be its own.
        fabric.publish(AgentRecord(agent_id="ghost", pid=bystander.pid, started_at=time.time() - 3600,
                                   system_id="main"))
        assert_one_line_error(invoke(home, project, "kill", "ghost"), EXIT_NOT_RUNNING, "another process")
        assert bystander.poll() is None
    finally:
        backend.close()
        bystander.stdin.close()
        assert bystander.wait(timeout=10) == 0


# -- gc, rebuild-index, dead --------------------------------------------------------------------


def test_gc_removes_expired_and_corrupt_records_and_prints_their_ids(home, project, system):
    system.spawn(sample_actors.Counter, name="alive")
    backend = open_store(home, project)
    try:
        backend.fabric.publish(AgentRecord(agent_id="expired", pid=1), lease=-1.0)
    finally:
        backend.close()
    fabric_dir = backend.layout.fabric
    Path(fabric_dir, "broken.json").write_text("{not json")
    result = invoke(home, project, "gc")
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.split() == ["broken", "expired"]
    assert "removed 2 records" in result.stderr
    assert sorted(os.listdir(fabric_dir)) == ["alive.json"]
    again = invoke(home, project, "gc")
    assert again.stdout == "" and "removed 0 records" in again.stderr


def test_rebuild_index_regenerates_the_lookup_that_commands_rely_on(home, project):
    with ActorSystem(home=home, project=project, durability="process") as actor_system:
        actor_system.spawn(sample_actors.Counter, name="first")
        actor_system.spawn(sample_actors.Echo, name="second")
    layout = ProjectLayout(str(home), project_key(project))
    os.unlink(layout.index)
    assert ps_rows(home, project) == {}

    result = invoke(home, project, "rebuild-index")
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.strip() == f"rebuilt index of {layout.key}: 2 actors in 1 system (main: 2)"
    rows = ps_rows(home, project)
    assert sorted(rows) == ["first", "second"]
    assert rows["second"]["class"] == "sample_actors:Echo"


def test_dead_lists_dead_letters_and_requeue_delivers_one_again(home, project, system):
    system.spawn(sample_actors.Counter, name="counter")
    system.stop("counter")
    box = MaildirMailbox(mailbox_dir(system.ref("counter").address), durability="process", create=False)
    message = InboxMessage.create(AgentRef("tester"), "task", {"n": 7})
    box.bury(Delivered(message, Receipt(os.path.join(box.paths.cur, message.file_name()))),
             "the worker died while handling it 3 times", 3)
    box.close()

    listed = invoke(home, project, "dead", "counter", "--json")
    assert listed.exit_code == EXIT_OK, listed.output
    (letter,) = json.loads(listed.stdout)
    assert letter["id"] == message.id and letter["attempts"] == 3 and letter["body"] == {"n": 7}
    assert letter["reason"] == "the worker died while handling it 3 times"
    table = invoke(home, project, "dead", "counter")
    assert table.stdout.splitlines()[0].split() == ["ID", "KIND", "ATTEMPTS", "DEAD_AT", "REASON", "BODY"]
    assert table.stdout.splitlines()[1].split()[:3] == [message.id, "task", "3"]

    assert_one_line_error(invoke(home, project, "dead", "counter", "--requeue", "no-such-id"),
                          EXIT_NOT_FOUND, "no dead letter 'no-such-id'")
    requeued = invoke(home, project, "dead", "counter", "--requeue", message.id)
    assert requeued.exit_code == EXIT_OK, requeued.output
    assert requeued.stdout.strip() == f"requeued {message.id} to 'counter'"
    assert invoke(home, project, "dead", "counter").stdout.strip() == "no dead letters for 'counter'"
    wait_until(lambda: system.inspect("counter").live, timeout=15)  # its system was asked to wake it
    assert system.ask("counter", "count", timeout=10) == 7


# -- run ------------------------------------------------------------------------------------------

FLEET_SCRIPT = textwrap.dedent("""
    import sys
    from actors import ActorSystem
    from sample_actors import Counter

    if __name__ == "__main__":
        # home from ACTORS_HOME, project from the working directory: both set by `actors run`
        with ActorSystem(durability="process") as system:
            counter = system.spawn(Counter, name="runner")
            counter.tell({"n": int(sys.argv[1])})
            print("count", counter.ask("count", timeout=10))
        sys.exit(int(sys.argv[2]))
""")


def test_run_executes_a_script_with_the_cli_home_and_exits_with_its_code(home, project, tmp_path):
    script = tmp_path / "fleet.py"
    script.write_text(FLEET_SCRIPT)
    result = invoke(home, project, "run", script, "4", "3")
    assert result.exit_code == 3, result.output
    assert result.stdout == "count 4\n"
    assert result.stderr.splitlines()[-1] == "[actors] 1 actor: 1 stopped | 0 pending"
    assert ps_rows(home, project)["runner"]["status"] == "stopped"
    assert os.environ.get("ACTORS_HOME") != str(home) and Path.cwd() != project  # restored


def test_run_accepts_a_module_name_and_passes_its_arguments(home, project):
    (project / "fleetmod.py").write_text("import sys\nprint('argv', sys.argv[1:])\nsys.exit(None)\n")
    result = invoke(home, project, "run", "--no-progress", "fleetmod", "a", "--b")
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout == "argv ['a', '--b']\n"


def test_run_shows_the_script_traceback_when_the_script_raises(home, project, tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("def main():\n    raise RuntimeError('script bug')\n\nmain()\n")
    result = invoke(home, project, "run", script)
    assert result.exit_code == EXIT_ERROR
    assert "RuntimeError: script bug" in result.stderr and "broken.py" in result.stderr
    assert "cli.py" not in result.stderr and "runpy" not in result.stderr


def test_run_refuses_a_missing_script_or_module(home, project, tmp_path):
    assert_one_line_error(invoke(home, project, "run", tmp_path / "nope.py"), EXIT_NOT_FOUND, "no such script")
    assert_one_line_error(invoke(home, project, "run", "no_such_module_here"), EXIT_NOT_FOUND,
                          "no such script or module")


def test_run_in_a_real_process_exits_cleanly_on_ctrl_c(home, project, tmp_path):
    script = tmp_path / "forever.py"
    script.write_text(textwrap.dedent("""
        import threading
        from actors import ActorSystem
        from sample_actors import Counter

        if __name__ == "__main__":
            with ActorSystem(durability="process") as system:
                system.spawn(Counter, name="forever")
                print("ready", flush=True)
                done = threading.Event()
                # With a timeout: CPython can miss a signal that lands just before a lock
                # wait, and a main thread that waits forever would then never see Ctrl-C.
                while not done.wait(0.2):
                    pass
    """))
    argv = [sys.executable, "-m", "actors.cli", "--home", str(home), "--project", str(project), "run",
            "--interval", "0.1", str(script)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=subprocess_env(), cwd=TESTS_DIR)
    try:
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and "interrupted" in err
    assert ps_rows(home, project)["forever"]["status"] == "stopped"  # the script's system shut down


# -- worker ---------------------------------------------------------------------------------------


def test_worker_command_serves_a_spec_from_stdin_and_the_cli_drives_it(home, project):
    backend = open_store(home, project)
    backend.ensure_project(str(project))
    spec = ProvisionSpec(
        identity=Identity(child_id="seed-1", system_id="seeds", project_key=backend.project_key),
        actor_class="sample_actors:Counter", home=str(home), durability="process")
    backend.mailbox(backend.address("seeds", "seed-1"), create=True).close()
    process = subprocess.Popen([sys.executable, "-m", "actors.cli", "worker"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(),
                               cwd=TESTS_DIR)
    try:
        process.stdin.write(spec.to_wire())
        process.stdin.close()
        fabric = backend.fabric
        record = wait_until(lambda: fabric.resolve("seed-1"), timeout=30)
        assert record.pid == process.pid and record.system_id == "seeds"

        told = invoke(home, project, "tell", "seed-1", '{"n": 3}')
        assert told.exit_code == EXIT_OK, told.output
        assert f"running, pid {process.pid}" in told.stdout
        asked = invoke(home, project, "ask", "seed-1", '"count"', "--timeout", "20")
        assert asked.exit_code == EXIT_OK, asked.output
        assert json.loads(asked.stdout) == 3

        listed = run_cli_process(home, project, "ps", "--json")  # unindexed, found through the fabric
        assert listed.returncode == EXIT_OK, listed.stderr
        (row,) = json.loads(listed.stdout)
        assert (row["id"], row["system"], row["status"], row["pid"]) == ("seed-1", "seeds", "running", process.pid)

        stopped = invoke(home, project, "stop", "seed-1")  # SIGTERM
        assert stopped.exit_code == EXIT_OK, stopped.output
        assert process.wait(timeout=10) == control.EXIT_OK
        assert fabric.read("seed-1") is None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
        backend.close()


def test_worker_command_refuses_a_bad_spec_with_one_line_and_the_worker_exit_code():
    endless_lease = ProvisionSpec(identity=Identity(child_id="seed-1", system_id="seeds", project_key="p-1"),
                                  actor_class="sample_actors:Counter", home="/nowhere",
                                  limits=Limits(lease=math.inf)).to_wire().decode()
    assert "Infinity" in endless_lease
    for data in ["not json\n", "{}\n", "", "[" * 100_000 + "]" * 100_000 + "\n", endless_lease]:
        result = CliRunner().invoke(cli, ["worker"], input=data)
        assert result.exit_code == control.EXIT_BAD_SPEC, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("actors worker: invalid "), lines
        assert "Traceback" not in result.output


# -- user mistakes --------------------------------------------------------------------------------


def test_bad_json_unknown_and_invalid_ids_print_one_line_and_a_named_code(home, project, system):
    system.spawn(sample_actors.Counter, name="counter")
    assert_one_line_error(invoke(home, project, "tell", "counter", "{bad"), EXIT_USAGE, "bad JSON")
    assert_one_line_error(invoke(home, project, "ask", "counter", "count?"), EXIT_USAGE, "bad JSON", "quote")
    assert_one_line_error(invoke(home, project, "tell", "nobody", "{}"), EXIT_NOT_FOUND, "no actor 'nobody'")
    assert_one_line_error(invoke(home, project, "ask", "nobody", "1"), EXIT_NOT_FOUND, "no actor 'nobody'")
    for command in (["inbox", "../x"], ["tell", "../x", "{}"], ["dead", ".hidden"], ["stop", "a/b"]):
        assert_one_line_error(invoke(home, project, *command), EXIT_USAGE, "invalid actor id")
    assert_one_line_error(invoke(home, project, "inbox", "nobody"), EXIT_NOT_FOUND)
    assert_one_line_error(invoke(home, project, "dead", "nobody"), EXIT_NOT_FOUND)
    assert system.ask("counter", "count") == 0  # nothing was delivered by the failed commands


def test_a_project_without_actors_is_no_such_project(home, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for command in (["inbox", "x"], ["tell", "x", "{}"], ["ask", "x", "1"], ["gc"],
                    ["rebuild-index"], ["dead", "x"], ["stop", "x"]):
        assert_one_line_error(invoke(home, elsewhere, *command), EXIT_NOT_FOUND, "no such project")
    assert_one_line_error(invoke(home, tmp_path / "missing", "ps"), EXIT_NOT_FOUND, "no such project",
                          "not a directory")
    assert not (home / "projects").exists()  # looking never creates anything


def test_ask_to_an_actor_whose_system_is_not_running_fails_at_once(home, project):
    with ActorSystem(home=home, project=project, durability="process") as actor_system:
        actor_system.spawn(sample_actors.Counter, name="counter")
    result = invoke(home, project, "ask", "counter", '"count"', "--timeout", "30")
    assert_one_line_error(result, EXIT_NOT_RUNNING, "its system 'main' is not running", "not sent")


def test_debug_shows_the_traceback_of_a_user_mistake(home, project):
    result = invoke(home, project, "--debug", "inbox", "../x")
    assert result.exit_code == EXIT_USAGE
    assert "Traceback" in result.stderr and result.stderr.strip().splitlines()[-1].startswith("actors: ")


def test_every_error_type_maps_to_a_named_code_in_one_table():
    from actors_runtime.errors import ActorError, ActorFailed, AskTimeout, InvalidSpec, MailboxFull, StoreError

    codes = {name: value for name, value in vars(exit_codes_module).items() if name.startswith("EXIT_")}
    assert len(set(codes.values())) == len(codes)  # no two names share a code
    exit_code_for = exit_codes_module.exit_code_for
    assert exit_code_for(AskTimeout("a", 1.0)) == EXIT_TIMEOUT
    assert exit_code_for(ActorFailed("a", "T", "m")) == EXIT_FAILED
    assert exit_code_for(InvalidSpec("x", "y")) == EXIT_USAGE
    assert exit_code_for(MailboxFull("m", 1, 1)) == exit_codes_module.EXIT_FULL
    assert exit_code_for(StoreError("p", "r")) == exit_codes_module.EXIT_STORE
    assert exit_code_for(Cancelled("a")) == exit_codes_module.EXIT_CANCELLED
    assert exit_code_for(ActorError("x")) == EXIT_ERROR
    assert exit_code_for(ZeroDivisionError()) == exit_codes_module.EXIT_INTERNAL
