"""``actors timers [ID]``: what actors keep in their sessions, as a table and as JSON."""

from __future__ import annotations

import json
import time

import timer_actors
from conftest import wait_until

from actors.cli.exit_codes import EXIT_NOT_FOUND
from tests.cli.test_cli import assert_one_line_error, invoke


def test_timers_lists_reminders_and_delayed_tells_of_one_actor_or_of_the_project(home, project, system):
    ticker = system.spawn(timer_actors.Ticker, name="ticker")
    other = system.spawn(timer_actors.Ticker, name="other")
    ticker.ask({"remind": {"name": "hourly", "due": 3600, "period": 3600, "payload": {"job": "sweep"}}},
               mode="steer")
    other.ask({"remind": {"name": "once", "due": 60}}, mode="steer")
    msg_id = ticker.tell({"later": 1}, delay=600)

    def kept(*args, count):  # an ask's answer goes out before its turn commits: wait for the commit
        result = invoke(home, project, "timers", *args, "--json")
        return result.exit_code == 0 and len(json.loads(result.output)) == count and json.loads(result.output)

    wait_until(lambda: kept(count=3), 10)
    rows = kept("ticker", count=2)
    now = time.time()
    assert [(r["kind"], r["name"], r["period"], r["payload"]) for r in rows] == [
        ("delayed", msg_id, None, {"later": 1}), ("reminder", "hourly", 3600, {"job": "sweep"})]
    assert now + 500 < rows[0]["due"] < now + 600 < rows[1]["due"] <= now + 3600

    table = invoke(home, project, "timers")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["ID", "KIND", "NAME", "DUE", "PERIOD", "PAYLOAD"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["other", "reminder", "once"], ["ticker", "delayed", msg_id], ["ticker", "reminder", "hourly"]]
    assert "3600" in lines[3] and '{"job":"sweep"}' in lines[3]


def test_timers_says_so_when_there_are_none_and_refuses_an_unknown_actor_in_one_line(home, project, system):
    system.spawn(timer_actors.Ticker, name="idle")
    result = invoke(home, project, "timers", "idle")
    assert result.exit_code == 0 and result.output.strip() == "no timers for 'idle'"
    assert_one_line_error(invoke(home, project, "timers", "nobody"), EXIT_NOT_FOUND, "nobody")
