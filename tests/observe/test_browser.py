"""The dashboard in a real browser: Debian's chromium, headless, against a running fleet.

Skips when chromium is missing, and fails instead when ``CI=true`` (``.ci/run``
installs it). On a failure the page's screenshot is kept under ``test-artifacts/``
(or ``$ACTORS_TEST_ARTIFACTS``) and named in the assertion message.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import REPO_DIR, support_env, wait_until
from observed_actors import Flaky

from actors import ActorSystem

from .dashboard_client import get_json, served
from .test_dashboard import _fleet_left_behind

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: How long the page's script may run (virtual time: fetches complete within it).
SCRIPT_BUDGET_MS = 5000

if CHROMIUM is None:
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed, and CI must run the browser test (.ci/run installs it)",
                    pytrace=False)
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


def chromium(url: str, user_data: Path, *extra: str) -> str:
    """Run headless chromium on ``url`` with ``extra`` flags; returns its stdout."""
    argv = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={user_data}", f"--virtual-time-budget={SCRIPT_BUDGET_MS}",
            *extra, url]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    try:
        out, _ = process.communicate(timeout=90)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its helpers too
        except ProcessLookupError:
            pass
        process.wait()
    return out


class _Rows(HTMLParser):
    """``data-actor`` rows of the fleet table and the text of their ``data-field`` cells."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self._row: str | None = None
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and found.get("data-actor"):
            self._row = found["data-actor"]
            self.rows[self._row] = {}
        elif self._row is not None and found.get("data-field"):
            self._field = found["data-field"]
            self.rows[self._row][self._field] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        if tag in ("td", "span"):
            self._field = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._field is not None:
            self.rows[self._row][self._field] += data


def _artifact(name: str) -> Path:
    directory = Path(os.environ.get("ACTORS_TEST_ARTIFACTS") or REPO_DIR / "test-artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory / name


def _keep_screenshot(url: str, user_data: Path, name: str) -> str:
    path = _artifact(name)
    chromium(url, user_data, "--hide-scrollbars", "--window-size=1280,800", f"--screenshot={path}")
    return f" (screenshot: {path})" if path.exists() else " (no screenshot could be taken)"


def test_the_page_lists_the_running_actors_with_their_counts(home, project, tmp_path):
    sent = {"alpha": 5, "beta": 12, "gamma": 0}
    with ActorSystem(home=home, project=project, durability="process") as system:
        for name, count in sent.items():
            ref = system.spawn(Flaky, name=name)
            for n in range(count):
                ref.tell({"n": n})
        system.ref("beta").tell({"n": 99, "fail": True})
        dashboard = subprocess.Popen([sys.executable, "-m", "actors.cli", "--home", str(home), "--project",
                                      str(project), "dashboard", "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=support_env(), text=True)
        try:
            match = re.search(r"serving (http://127\.0\.0\.1:\d+/)", dashboard.stdout.readline())
            assert match, "actors dashboard printed no URL"
            url = match.group(1)
            expected = {"alpha": 5, "beta": 13, "gamma": 0}
            wait_until(lambda: {r["id"]: r["handled"] for r in get_json(url + "api/actors")} == expected)
            dom = chromium(url, tmp_path / "chromium", "--dump-dom")
            rows = _Rows()
            rows.feed(dom)
            where = "" if rows.rows else _keep_screenshot(url, tmp_path / "chromium", "dashboard-fleet.png")
            assert set(rows.rows) == set(sent), f"the page lists {sorted(rows.rows)}{where}"
            shown = {name: int(row["handled"]) for name, row in rows.rows.items()}
            failed = {name: int(row["failed"]) for name, row in rows.rows.items()}
            status = {name: row["status"] for name, row in rows.rows.items()}
            if shown != expected or failed != {"alpha": 0, "beta": 1, "gamma": 0} or set(status.values()) != {
                    "running"}:
                where = _keep_screenshot(url, tmp_path / "chromium", "dashboard-fleet.png")
                pytest.fail(f"the page shows handled {shown}, failed {failed}, status {status}{where}")
            assert "RuntimeError: asked to fail (99)" in rows.rows["beta"]["last_failure"]

            actor = chromium(url + "#/actor/beta", tmp_path / "chromium", "--dump-dom")
            if "asked to fail (99)" not in actor or "Traceback (most recent call last)" not in actor:
                where = _keep_screenshot(url + "#/actor/beta", tmp_path / "chromium", "dashboard-actor.png")
                pytest.fail(f"the actor's view shows no failure with its traceback{where}")
        finally:
            dashboard.send_signal(signal.SIGTERM)
            try:
                dashboard.wait(timeout=10)
            finally:
                if dashboard.poll() is None:
                    dashboard.kill()
                    dashboard.wait()
                dashboard.stdout.close()


def test_the_page_refreshes_itself_at_its_interval(home, project, tmp_path, caplog):
    with ActorSystem(home=home, project=project, durability="process") as system:
        system.spawn(Flaky, name="alpha").tell({"n": 1})
        with served(home, project) as url, caplog.at_level(logging.DEBUG, logger="actors.cli.dashboard"):
            dom = chromium(url + "?refresh=500", tmp_path / "chromium", "--dump-dom")
        fetches = [r for r in caplog.records if "GET /api/actors " in r.getMessage()]
    rows = _Rows()
    rows.feed(dom)
    assert set(rows.rows) == {"alpha"}
    # 5 s of the page's (virtual) time at a 500 ms interval: the first load and several refreshes.
    assert len(fetches) >= 4, [r.getMessage() for r in fetches]


def test_an_actors_view_shows_its_pause_reminders_and_waiting_messages_with_no_fleet_running(
        home, project, tmp_path):
    _fleet_left_behind(home, project, tmp_path)
    with served(home, project) as url:
        dom = chromium(url + "#/actor/idle", tmp_path / "chromium", "--dump-dom")
        sections = _Sections()
        sections.feed(dom)
        if not {"paused", "reminders", "waiting"} <= set(sections.text):
            where = _keep_screenshot(url + "#/actor/idle", tmp_path / "chromium", "dashboard-idle.png")
            pytest.fail(f"the actor's view has the sections {sorted(sections.text)}{where}")
    assert "poison: it raised 3 times" in sections.text["paused"]
    assert "tick" in sections.text["reminders"] and '{"k":1}' in sections.text["reminders"]
    assert '{"n":9}' in sections.text["waiting"]


class _Sections(HTMLParser):
    """The text of each ``<section id=...>`` of the actor's view."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self._open.append(dict(attrs).get("id"))
            if self._open[-1]:
                self.text.setdefault(str(self._open[-1]), "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for name in self._open:
            if name:
                self.text[name] += data
