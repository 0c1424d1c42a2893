"""``actors logs ID [-n N] [--follow]`` of actors on Redis: the lines are read from the
server (a capped stream per actor), from any machine, while the worker on a host
also keeps its rotated ``actor.log`` on the host's machine."""

from __future__ import annotations

import logging
import os
import signal
import stat
from pathlib import Path

import pytest
from actors_runtime.address import project_key
from actors_runtime.backends.redis.connection import Server, parse_url
from actors_runtime.backends.redis.logs import LOG_LINES, RedisActorLog
from actors_runtime.worker.log_stream import ActorLogHandler
from click.testing import CliRunner, Result
from conftest import TESTS_DIR, support_env, wait_until
from following import follow_until_signal

from actors import ActorSystem
from actors.cli import cli
from actors.cli.exit_codes import EXIT_OK

CHATTY = "logging_actors:Chatty"


def actors_cli(redis_server, home: Path, project: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), "--project", str(project), "--backend",
                                    redis_server.url, *args])


def words(output: str) -> list[str]:
    return [line.rsplit(" ", 1)[-1] for line in output.splitlines() if " chatty [" in line]


def test_the_logs_of_a_placed_actor_are_read_from_the_server_and_kept_in_a_file_on_its_host(
        hosts, redis_server, home, project, tmp_path):
    hosts.start("h1", env=support_env(ACTORS_LOG_LEVEL="INFO"))
    with ActorSystem(home=home, project=project, durability="process", backend=redis_server.url) as system:
        chatty = system.spawn(CHATTY, "chatty", placement=f"pool:{hosts.pool}")
        for word in ("one", "two", "three"):
            chatty.tell({"word": word})
        assert chatty.ask("anything") == "ok"  # handled: the failure below has a batch of its own
        chatty.tell({"word": "poison", "fail": True})
        wait_until(lambda: "cannot take 'poison'" in actors_cli(redis_server, home, project, "logs", "chatty").output,
                   30)
    shown = actors_cli(redis_server, home, project, "logs", "chatty")  # its system is gone: no matter
    assert shown.exit_code == EXIT_OK, shown.output
    assert words(shown.output) == ["one", "two", "three", "poison"], shown.output
    assert "[chatty " in shown.output and "Traceback (most recent call last):" in shown.output
    last = actors_cli(redis_server, home, project, "logs", "chatty", "-n", "1")
    assert last.output == "ValueError: cannot take 'poison'\n"

    # The host's machine keeps the same lines in the actor's rotated file, the owner's only.
    kept = tmp_path / "host-home" / "logs" / project_key(project) / "main" / "chatty" / "actor.log"
    assert words(kept.read_text()) == ["one", "two", "three", "poison"]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert "ValueError: cannot take 'poison'" in kept.read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_actors_logs_follow_prints_a_placed_actors_new_lines_until_a_signal(
        hosts, redis_server, home, project, signum):
    hosts.start("h1", env=support_env(ACTORS_LOG_LEVEL="INFO"))
    with ActorSystem(home=home, project=project, durability="process", backend=redis_server.url) as system:
        chatty = system.spawn(CHATTY, "chatty", placement=f"pool:{hosts.pool}")
        chatty.tell({"word": "before"})
        wait_until(lambda: "before" in actors_cli(redis_server, home, project, "logs", "chatty").output, 30)
        code, out, err = follow_until_signal(
            ["--home", str(home), "--project", str(project), "--backend", redis_server.url, "logs", "chatty",
             "--follow", "-n", "1"], support_env(), TESTS_DIR,
            "handling before\n", lambda: chatty.tell({"word": "after"}), "handling after\n", signum)
    assert code == EXIT_OK, err
    assert err == "" and out == ""


def test_an_actors_log_on_the_server_keeps_its_last_lines_and_follows_past_a_trim(redis_server):
    server = Server(parse_url(redis_server.url))
    try:
        log = RedisActorLog(server, f"actors:test-{os.urandom(4).hex()}:log")
        assert log.last(None) == ([], "0-0")
        log.append([f"line {n}" for n in range(LOG_LINES * 2)])
        kept, cursor = log.last(None)
        assert LOG_LINES <= len(kept) < LOG_LINES * 2 and kept[-1] == f"line {LOG_LINES * 2 - 1}"
        assert kept == [f"line {n}" for n in range(LOG_LINES * 2 - len(kept), LOG_LINES * 2)]
        assert log.last(2)[0] == [f"line {LOG_LINES * 2 - 2}", f"line {LOG_LINES * 2 - 1}"]
        assert log.last(0) == ([], cursor)
        assert log.after(cursor, 0.01) == ([], cursor)
        log.append([f"more {n}" for n in range(LOG_LINES * 2)])  # trims what the cursor pointed past
        followed: list[str] = []
        while True:
            fresh, cursor = log.after(cursor, 0.01)
            if not fresh:
                break
            followed += fresh
        first = int(followed[0].split()[1])  # the trimmed ones are skipped; the rest come in order
        assert followed == [f"more {n}" for n in range(first, LOG_LINES * 2)] and first <= LOG_LINES
    finally:
        server.close()


def test_the_log_handler_has_sent_every_line_of_every_record_once_it_is_closed(redis_server):
    server = Server(parse_url(redis_server.url))
    log = RedisActorLog(server, f"actors:test-{os.urandom(4).hex()}:log")
    handler = ActorLogHandler(log)
    logger = logging.getLogger(f"test-log-handler-{os.urandom(4).hex()}")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for n in range(500):
            logger.warning("record %d\nits second line", n)
    finally:
        logger.removeHandler(handler)
        handler.close()
    try:
        kept, _ = log.last(None)
        assert len(kept) == 1000 and kept[:2] == ["record 0", "its second line"]
        assert kept[-2:] == ["record 499", "its second line"]
        assert not handler._thread.is_alive()
    finally:
        server.close()


def test_a_system_on_redis_keeps_its_own_actors_lines_on_the_server_too(redis_server, home, project):
    with ActorSystem(home=home, project=project, durability="process", backend=redis_server.url) as system:
        logging.getLogger("chatty").setLevel(logging.INFO)
        try:
            chatty = system.spawn(CHATTY, "local-chatty")
            chatty.tell({"word": "here"})
            assert chatty.ask("anything") == "ok"
        finally:
            logging.getLogger("chatty").setLevel(logging.NOTSET)
    # Sent by the worker before it exited (its system's shutdown stopped it).
    assert words(actors_cli(redis_server, home, project, "logs", "local-chatty").output) == ["here"]
