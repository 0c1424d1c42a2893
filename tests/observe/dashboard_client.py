"""A dashboard served in this process for a test, and reading it over HTTP."""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.request
from typing import Any, Iterator

from actors_runtime.address import project_key
from actors_runtime.backends import open_backend

from actors.cli.dashboard import Dashboard


@contextlib.contextmanager
def served(home: Any, project: Any) -> Iterator[str]:
    """Serve the project's dashboard on a free loopback port; yields its URL."""
    backend = open_backend("maildir", str(home), project_key(str(project)), "process")
    server = Dashboard(("127.0.0.1", 0), backend)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        backend.close()


def get(url: str) -> tuple[int, str, bytes]:
    """Status, content type and body of a GET (errors included)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def get_json(url: str) -> Any:
    status, _, body = get(url)
    assert status == 200, (url, status, body[:300])
    return json.loads(body)


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``/metrics`` parsed: (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    status, _, body = get(url + "metrics")
    assert status == 200, (status, body[:300])
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    """The sample ``name`` whose labels include ``labels`` (None if none; fails if several)."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls)]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None
