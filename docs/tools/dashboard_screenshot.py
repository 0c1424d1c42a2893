"""Make docs/dashboard.png: a real fleet, ``actors dashboard``, headless chromium.

Usage::

    .venv/bin/python docs/tools/dashboard_screenshot.py [OUT.png]

Starts a small fleet under a temporary home (some orders handled, two that failed,
a mailer whose handler blocks so that its messages wait), serves its dashboard on a
free loopback port, and has Debian's chromium take a screenshot of the page.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])

from screenshot_actors import Mailer, Orders  # noqa: E402

from actors import ActorSystem  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=5000", "--window-size=1280,420"]


def _wait_for_counts(url: str) -> None:
    """Until the dashboard shows every order handled (the ask's count is stored once
    the worker has been idle for its sweep interval)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "api/actors", timeout=10) as response:
            rows = {row["id"]: row for row in json.load(response)}
        if rows.get("orders", {}).get("handled") == 123:
            return
        time.sleep(0.1)
    raise TimeoutError("the dashboard did not show the orders handled within 15 s")


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parent / "dashboard.png").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        gate = Path(tmp, "gate")
        gate.write_text("")
        with ActorSystem(home=Path(tmp, "home"), project=tmp, durability="process") as system:
            orders = system.spawn(Orders, name="orders")
            mailer = system.spawn(Mailer, name="mailer")
            system.spawn(Orders, name="refunds")
            for n in range(120):
                orders.tell({"amount": n})
            orders.tell({"item": "no amount"})
            orders.tell({"item": "still no amount"})
            for n in range(8):
                mailer.tell({"gate": str(gate), "to": f"user{n}@example.org"})
            orders.ask("total?", timeout=10)
            dashboard = subprocess.Popen([sys.executable, "-m", "actors.cli", "--home", str(Path(tmp, "home")),
                                          "--project", tmp, "dashboard", "--port", "0"], stdout=subprocess.PIPE,
                                         text=True)
            try:
                match = re.search(r"(http://\S+)", dashboard.stdout.readline() if dashboard.stdout else "")
                if match is None:
                    print("actors dashboard printed no URL", file=sys.stderr)
                    return 1
                _wait_for_counts(match.group(1))
                subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/chromium",
                                f"--screenshot={out}", match.group(1)], check=True, timeout=120,
                               stderr=subprocess.DEVNULL)
            finally:
                dashboard.terminate()
                dashboard.wait(10)
                gate.unlink()
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
