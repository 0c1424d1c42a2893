"""Logging in workers: the parent's levels, records forwarded with the actor and the
message, the actor's log file, and ``actors logs ID [--follow]``."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from actors_runtime.backends.maildir.layout import ProjectLayout
from actors_runtime.parent import worker_logs
from click.testing import CliRunner
from following import follow_until_signal
from logging_actors import Chatty

from actors import ActorSystem
from actors.cli import cli
from actors.cli import logs as logs_module
from actors.cli.exit_codes import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from actors.cli.logs import follow_file
from tests.conftest import TESTS_DIR, support_env, wait_until


def log_file(ref) -> Path:
    address = ref.address
    return Path(ProjectLayout(address.home, address.project_key).actor_file(address.system_id, address.actor_id,
                                                                          "actor.log"))


def invoke(home: Path, project: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), "--project", str(project), *args])


@pytest.fixture
def chatty_info(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="chatty")
    return caplog


def test_a_handlers_info_line_reaches_the_parents_logging_with_actor_and_message_ids(
        home: Path, project: Path, chatty_info: pytest.LogCaptureFixture) -> None:
    with ActorSystem(home=home, project=project, durability="process") as system:
        chatty = system.spawn(Chatty, name="chatty-1")
        msg_id = chatty.tell({"word": "hello"})
        record = wait_until(lambda: next((r for r in chatty_info.records if r.getMessage() == "handling hello"),
                                         None), timeout=20)
        pid = system.pid_of(chatty)
    assert record.name == "chatty" and record.levelno == logging.INFO
    assert record.actor_id == "chatty-1" and record.msg_id == msg_id
    assert record.process == pid  # made in the worker, handled here
    line = next(line for line in log_file(chatty).read_text().splitlines() if "handling hello" in line)
    assert f"[chatty-1 {msg_id}]" in line and " INFO chatty " in line


def test_without_a_level_set_info_lines_are_not_even_made_in_the_worker(home: Path, project: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with ActorSystem(home=home, project=project, durability="process") as system:
        chatty = system.spawn(Chatty, name="chatty-2")
        chatty.tell({"word": "quiet"})
        chatty.tell({"word": "loud", "warn": True})
        wait_until(lambda: any(r.getMessage() == "careful with loud" for r in caplog.records), timeout=20)
    assert not any("quiet" in r.getMessage() or "handling" in r.getMessage() for r in caplog.records)
    text = log_file(chatty).read_text()
    assert "careful with loud" in text and "handling" not in text


def test_a_tell_whose_handler_raised_leaves_its_traceback_in_the_parents_log_and_the_file(
        home: Path, project: Path, caplog: pytest.LogCaptureFixture) -> None:
    with ActorSystem(home=home, project=project, durability="process") as system:
        chatty = system.spawn(Chatty, name="chatty-3")
        msg_id = chatty.tell({"word": "poison", "fail": True})
        record = wait_until(lambda: next((r for r in caplog.records if r.levelno == logging.ERROR
                                          and getattr(r, "actor_id", None) == "chatty-3"), None), timeout=20)
    assert record.msg_id == msg_id
    assert "Traceback (most recent call last)" in record.exc_text
    assert "ValueError: cannot take 'poison'" in record.exc_text
    assert "in on_task" in record.exc_text
    text = log_file(chatty).read_text()
    assert f"[chatty-3 {msg_id}]" in text and "Traceback (most recent call last)" in text
    assert "ValueError: cannot take 'poison'" in text


def test_actors_logs_prints_the_actors_log_and_its_last_lines(home: Path, project: Path,
                                                             chatty_info: pytest.LogCaptureFixture) -> None:
    with ActorSystem(home=home, project=project, durability="process") as system:
        chatty = system.spawn(Chatty, name="chatty-4")
        for word in ("one", "two", "three"):
            chatty.tell({"word": word})
        wait_until(lambda: "handling three" in log_file(chatty).read_text() if log_file(chatty).exists()
                   else False, timeout=20)
    shown = invoke(home, project, "logs", "chatty-4")
    assert shown.exit_code == EXIT_OK, shown.output
    assert [line.rsplit(" ", 1)[-1] for line in shown.stdout.splitlines()] == ["one", "two", "three"]
    last = invoke(home, project, "logs", "chatty-4", "-n", "1")
    assert last.exit_code == EXIT_OK and last.stdout.splitlines()[0].endswith("handling three")


def test_actors_logs_of_an_unknown_or_invalid_actor_is_one_line_and_a_named_code(home: Path,
                                                                                 project: Path) -> None:
    with ActorSystem(home=home, project=project, durability="process") as system:
        system.spawn(Chatty, name="chatty-5")
    missing = invoke(home, project, "logs", "nobody")
    assert missing.exit_code == EXIT_NOT_FOUND and len(missing.stderr.strip().splitlines()) == 1
    invalid = invoke(home, project, "logs", "../etc")
    assert invalid.exit_code == EXIT_USAGE and "Traceback" not in invalid.output
    empty = invoke(home, project, "logs", "chatty-5")  # it never logged: nothing to show
    assert empty.exit_code == EXIT_OK and empty.stdout == ""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_actors_logs_follow_prints_new_lines_until_a_signal(home: Path, project: Path, signum: int,
                                                            chatty_info: pytest.LogCaptureFixture) -> None:
    with ActorSystem(home=home, project=project, durability="process") as system:
        chatty = system.spawn(Chatty, name="chatty-6")
        chatty.tell({"word": "before"})
        wait_until(lambda: log_file(chatty).exists() and "before" in log_file(chatty).read_text(), timeout=20)
        env = support_env()
        env.pop("ACTORS_HOME", None)
        code, out, err = follow_until_signal(
            ["--home", str(home), "--project", str(project), "logs", "chatty-6", "--follow"], env, TESTS_DIR,
            "handling before\n", lambda: chatty.tell({"word": "after"}), "handling after\n", signum)
    assert code == EXIT_OK, err
    assert err == "" and out == ""


def test_following_goes_on_across_a_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "actor.log"
    path.write_text("first\n")
    handle = open(path, "rb")
    handle.read()
    stop = threading.Event()
    seen: list[str] = []
    monkeypatch.setattr(logs_module.click, "echo", lambda text, nl=True: seen.append(text))

    def collect() -> None:
        follow_file(str(path), handle, stop)

    follower = threading.Thread(target=collect)
    follower.start()
    try:
        with open(path, "a") as out:
            out.write("second\n")
        wait_until(lambda: "".join(seen) == "second\n", timeout=10)
        os.replace(path, str(path) + ".1")  # as the worker's RotatingFileHandler does
        with open(str(path) + ".1", "a") as out:
            out.write("third\n")
        path.write_text("fourth\n")
        wait_until(lambda: "".join(seen) == "second\nthird\nfourth\n", timeout=10)
    finally:
        stop.set()
        follower.join(10)


def test_a_forwarded_record_goes_to_the_logger_of_its_name_if_that_logger_would_log_it(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="forwarded")
    worker_logs.handle(b'{"name": "forwarded", "levelno": 20, "levelname": "INFO", "msg": "hi", "actor_id": "a"}')
    worker_logs.handle(b'{"name": "forwarded", "levelno": 10, "levelname": "DEBUG", "msg": "too low"}')
    worker_logs.handle(b"not json")
    worker_logs.handle(b'{"name": 5, "levelno": "x"}')
    assert [(r.getMessage(), r.actor_id) for r in caplog.records if r.name == "forwarded"] == [("hi", "a")]
    assert worker_logs.parent_levels()["forwarded"] == logging.INFO


def test_a_seed_worker_logs_to_stderr_and_its_file_at_the_level_the_environment_names(home: Path,
                                                                                     project: Path) -> None:
    from actors_runtime.address import project_key
    from actors_runtime.backends import open_backend
    from actors_runtime.spec import Identity, ProvisionSpec

    backend = open_backend("maildir", str(home), project_key(str(project)), "process")
    try:
        backend.ensure_project(str(project))
        spec = ProvisionSpec(identity=Identity(child_id="seed-log", system_id="seeds",
                                               project_key=backend.project_key),
                             actor_class="logging_actors:Chatty", home=str(home), durability="process")
        backend.mailbox(backend.address("seeds", "seed-log"), create=True).close()
        env = support_env(ACTORS_LOG_LEVEL="info")
        env.pop("ACTORS_HOME", None)
        process = subprocess.Popen([sys.executable, "-m", "actors.cli", "worker"], stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=TESTS_DIR)
        try:
            process.stdin.write(spec.to_wire())
            process.stdin.close()
            wait_until(lambda: backend.fabric.resolve("seed-log"), timeout=30)
            told = invoke(home, project, "tell", "seed-log", '{"word": "seeded"}')
            assert told.exit_code == EXIT_OK, told.output
            shown = wait_until(lambda: "handling seeded" in invoke(home, project, "logs", "seed-log").stdout,
                               timeout=20)
            assert shown
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
            err = process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stderr.close()
    finally:
        backend.close()
    line = next(line for line in err.decode().splitlines() if "handling seeded" in line)
    assert " INFO chatty [seed-log " in line
