"""The dashboard's JSON and page, ``actors inspect``: read from the home alone."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from actors_runtime.address import project_key
from actors_runtime.backends import open_backend
from actors_runtime.messages import AgentRef, InboxKind, InboxMessage
from click.testing import CliRunner
from conftest import support_env
from observed_actors import Flaky

from actors import ActorSystem
from actors.cli import cli

from .dashboard_client import get, get_json, served

ROW_FIELDS = {"id", "class", "status", "host", "pending", "oldest_s", "handled", "failed", "restarts", "dead",
              "last_failure"}


def _fleet_left_behind(home, project, tmp_path):
    """A project whose system has shut down: one actor that failed twice, one with a
    message waiting (it is not running), and reminders and a pause written into the
    second one's meta through the store (as the timers and pause features keep them)."""
    with ActorSystem(home=home, project=project, durability="process") as system:
        flaky = system.spawn(Flaky, name="flaky")
        idle = system.spawn(Flaky, name="idle")
        flaky.tell({"n": 1, "fail": True})
        flaky.tell({"n": 2, "fail": True})
        flaky.tell({"n": 3})
        idle.tell({"n": 0})
        assert flaky.ask("seen?", timeout=10) == 1 and idle.ask("seen?", timeout=10) == 1
        system.stop(idle)
    backend = open_backend("maildir", str(home), project_key(str(project)), "process")
    try:
        backend.deliver(backend.address("main", "idle"), [_message()])
        session = backend.store.session("main", "idle")
        doc = session.load()
        meta = {**doc.meta, "reminders": {"tick": {"due": 2e9, "period": 60.0, "payload": {"k": 1}}},
                "paused": {"msg_id": "m-1", "reason": "poison: it raised 3 times", "since": 1.7e9}}
        session.commit(json.dumps(doc.state), json.dumps(meta), [], doc.admitted)
    finally:
        backend.close()


def _message() -> InboxMessage:
    return InboxMessage.create(AgentRef(session_id="test"), InboxKind.TASK.value, {"n": 9})


def test_api_actors_lists_every_actor_with_its_counts_from_the_home_alone(home, project, tmp_path):
    _fleet_left_behind(home, project, tmp_path)
    with served(home, project) as url:
        rows = {r["id"]: r for r in get_json(url + "api/actors")}
        assert set(rows) == {"flaky", "idle"}
        assert all(ROW_FIELDS <= set(r) for r in rows.values())
        flaky, idle = rows["flaky"], rows["idle"]
        assert flaky["class"] == "observed_actors:Flaky" and flaky["status"] == "stopped"
        assert (flaky["handled"], flaky["failed"], flaky["pending"], flaky["dead"]) == (4, 2, 0, 0)
        assert flaky["last_failure"]["type"] == "builtins.RuntimeError"
        assert flaky["last_failure"]["message"] == "asked to fail (2)"
        assert idle["pending"] == 1 and idle["oldest_s"] >= 0 and idle["last_failure"] is None
        assert idle["host"] == os.uname().nodename


def test_an_actors_view_has_its_failures_with_tracebacks_and_its_reminders_and_pause(home, project, tmp_path):
    _fleet_left_behind(home, project, tmp_path)
    with served(home, project) as url:
        flaky = get_json(url + "api/actors/flaky")
        assert [f["message"] for f in flaky["failures"]] == ["asked to fail (1)", "asked to fail (2)"]
        assert all("in on_task" in f["traceback"] and "RuntimeError" in f["traceback"] for f in flaky["failures"])
        assert flaky["reminders"] == [] and flaky["paused"] is None
        idle = get_json(url + "api/actors/idle")
        assert [(r["name"], r["due"], r["period"]) for r in idle["reminders"]] == [("tick", 2e9, 60.0)]
        assert idle["paused"]["reason"] == "poison: it raised 3 times"
        assert [m["body"] for m in idle["waiting"]] == ['{"n":9}']
        assert get(url + "api/actors/nobody")[0] == 404
        assert get(url + "api/actors/..%2Fetc")[0] == 404


def test_the_page_and_its_assets_are_served_from_the_package_and_nothing_else_is(home, project, tmp_path):
    _fleet_left_behind(home, project, tmp_path)
    with served(home, project) as url:
        status, content_type, page = get(url)
        assert status == 200 and content_type.startswith("text/html")
        for asset in re.findall(rb'(?:src|href)="(/static/[^"]+)"', page):
            assert get(url + asset.decode().lstrip("/"))[0] == 200
        assert b"http" not in re.sub(rb'href="/[^"]*"', b"", page)  # nothing from the network
        assert get(url + "static/../dashboard.py")[0] == 404
        request = urllib.request.Request(url + "api/actors", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405
        refused.value.close()


def test_actors_inspect_shows_counts_failures_reminders_and_the_pause(home, project, tmp_path):
    _fleet_left_behind(home, project, tmp_path)
    argv = ["--home", str(home), "--project", str(project), "inspect"]
    result = CliRunner().invoke(cli, [*argv, "flaky"])
    assert result.exit_code == 0, result.output
    assert "handled 4  failed 2" in result.output
    assert "RuntimeError: asked to fail (2)" in result.output and "Traceback (most recent call last)" in result.output
    idle = CliRunner().invoke(cli, [*argv, "idle"])
    assert "paused since" in idle.output and "poison: it raised 3 times" in idle.output
    assert "tick" in idle.output and "waiting:" in idle.output
    as_json = json.loads(CliRunner().invoke(cli, [*argv, "flaky", "--json"]).output)
    assert as_json["failed"] == 2 and len(as_json["failures"]) == 2
    missing = CliRunner().invoke(cli, [*argv, "nobody"])
    assert missing.exit_code != 0 and "Traceback" not in missing.output


def test_actors_dashboard_binds_to_loopback_prints_its_url_and_stops_on_sigterm(home, project, tmp_path):
    _fleet_left_behind(home, project, tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "actors.cli", "--home", str(home), "--project", str(project),
                                "dashboard", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=support_env(), text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        assert {r["id"] for r in get_json(match.group(1) + "api/actors")} == {"flaky", "idle"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def test_a_dashboard_on_a_port_in_use_is_one_clear_line(home, project, tmp_path):
    _fleet_left_behind(home, project, tmp_path)
    with served(home, project) as url:
        port = url.rsplit(":", 1)[1].strip("/")
        result = CliRunner().invoke(cli, ["--home", str(home), "--project", str(project), "dashboard",
                                          "--port", port])
    assert result.exit_code != 0 and "cannot listen on 127.0.0.1:" in result.output
    assert "Traceback" not in result.output
