"""``/metrics`` against a real fleet: exact counts of the messages sent, across a SIGKILL."""

from __future__ import annotations

import os
import signal

import pytest
from conftest import handling, wait_until
from observed_actors import Flaky

from actors import ActorSystem

from .dashboard_client import get, scrape, served, value


def test_metrics_count_every_handled_and_failed_tell_exactly(home, project, tmp_path):
    pytest.importorskip("prometheus_client")
    tells, failing = 23, 4
    with ActorSystem(home=home, project=project, durability="process") as system, served(home, project) as url:
        flaky = system.spawn(Flaky, name="flaky")
        for n in range(tells):
            flaky.tell({"n": n})
        for n in range(failing):
            flaky.tell({"n": n, "fail": True})
        assert flaky.ask("seen?", timeout=10) == tells
        handled = lambda: value(scrape(url), "actors_messages_handled_total", actor="flaky")  # noqa: E731
        wait_until(lambda: handled() == tells + failing + 1, timeout=10)  # the ask too, once committed
        samples = scrape(url)
        assert value(samples, "actors_messages_failed_total", actor="flaky", system="main") == failing
        assert value(samples, "actors_handler_seconds_count", actor="flaky") == tells + failing + 1
        assert value(samples, "actors_handler_seconds_bucket", actor="flaky", le="+Inf") == tells + failing + 1
        assert value(samples, "actors_mailbox_pending", actor="flaky") == 0
        assert value(samples, "actors_dead_letters", actor="flaky") == 0
        assert value(samples, "actors_active", system="main") == 1
        assert value(samples, "actors_restarts_total", actor="flaky") == 0
        host = dict(next(ls for (n, ls) in samples if n == "actors_active"))["host"]
        assert host == os.uname().nodename


def test_a_sigkilled_and_restarted_worker_keeps_its_counts_and_counts_the_redelivery(home, project, tmp_path):
    pytest.importorskip("prometheus_client")
    gate = tmp_path / "gate"
    with ActorSystem(home=home, project=project, durability="process") as system, served(home, project) as url:
        flaky = system.spawn(Flaky, name="flaky")
        for n in range(10):
            flaky.tell({"n": n})
        flaky.tell({"n": 10, "fail": True})
        wait_until(lambda: value(scrape(url), "actors_messages_failed_total", actor="flaky") == 1)
        gate.write_text("")
        flaky.tell({"block_while": str(gate)})
        wait_until(lambda: handling(flaky))
        first_pid = system.inspect(flaky).pid
        os.kill(first_pid, signal.SIGKILL)
        gate.unlink()  # the redelivered message runs to the end
        wait_until(lambda: system.inspect(flaky).status == "running" and system.inspect(flaky).pid not in
                   (None, first_pid), timeout=20)
        assert flaky.ask("seen?", timeout=10) == 11
        wait_until(lambda: value(scrape(url), "actors_messages_handled_total", actor="flaky") == 13, timeout=10)
        samples = scrape(url)
        assert value(samples, "actors_messages_failed_total", actor="flaky") == 1
        assert value(samples, "actors_redeliveries_total", actor="flaky") == 1
        assert value(samples, "actors_restarts_total", actor="flaky") == 1


def test_metrics_without_prometheus_client_say_what_is_missing_and_the_rest_still_serves(
        home, project, monkeypatch):
    with ActorSystem(home=home, project=project, durability="process") as system, served(home, project) as url:
        system.spawn(Flaky, name="flaky").tell({"n": 1})
        monkeypatch.setitem(__import__("sys").modules, "prometheus_client", None)  # an import now fails
        status, content_type, body = get(url + "metrics")
        assert status == 503 and content_type.startswith("text/plain")
        assert b"prometheus_client is not installed" in body and b"durable-actors[metrics]" in body
        assert get(url + "api/actors")[0] == 200 and get(url)[0] == 200


def test_system_inspect_reports_the_counts_and_failure_records_of_the_last_commit(home, project):
    with ActorSystem(home=home, project=project, durability="process") as system:
        flaky = system.spawn(Flaky, name="flaky")
        flaky.tell({"n": 1})
        flaky.tell({"n": 2, "fail": True})
        info = wait_until(lambda: (lambda i: i if i.handled == 2 else None)(system.inspect(flaky)))
        assert info.failed == 1
        [failure] = info.failures
        assert failure["type"] == "builtins.RuntimeError" and failure["message"] == "asked to fail (2)"
        assert "raise RuntimeError" in failure["traceback"]
