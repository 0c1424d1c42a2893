"""``actors dashboard``: a read-only web page of a fleet, its JSON and its metrics.

::

    GET /                      the page (static/dashboard.html; refreshes itself)
    GET /static/NAME           its script and style sheet, shipped in the package
    GET /api/actors            JSON: one object per actor (fleet.snapshot rows)
    GET /api/actors/ID         JSON: one actor's detail (failures, dead letters, reminders)
    GET /api/project           JSON: which project, where, on which host
    GET /metrics               the Prometheus text format (exposition)

Everything is read through the backend when asked for, so the page shows the home
as it is, with or without the fleet's parent running. Nothing is written and no
other method than GET and HEAD is served. The server binds to loopback unless told
otherwise, and the page loads nothing from the network.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

from actors_runtime.backends.base import Backend
from actors_runtime.errors import ActorNotFound
from actors_runtime.ids import is_valid_id

from .exposition import MetricsUnavailable, metrics_text
from .fleet import detail, snapshot, this_host

log = logging.getLogger(__name__)

#: The files under ``/static/`` (nothing else is served from the package).
STATIC = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
#: Sent with every answer: the page may load only its own files.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def asset(name: str) -> bytes:
    """A file of the page, from the installed package."""
    return (resources.files("actors.cli") / "static" / name).read_bytes()


class Dashboard(ThreadingHTTPServer):
    """The HTTP server; requests read the backend one at a time (under ``lock``)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        super().__init__(address, _Handler)
        self.backend = backend
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: Dashboard
    server_version = "actors-dashboard"

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        try:
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, asset("dashboard.html"), "text/html; charset=utf-8")
            elif path.startswith("/static/") and path[len("/static/"):] in STATIC:
                name = path[len("/static/"):]
                self._send(HTTPStatus.OK, asset(name), STATIC[name])
            elif path == "/api/actors":
                with self.server.lock:
                    rows = [s.row for s in snapshot(self.server.backend)]
                self._json(HTTPStatus.OK, rows)
            elif path.startswith("/api/actors/"):
                self._actor(path[len("/api/actors/"):])
            elif path == "/api/project":
                backend = self.server.backend
                self._json(HTTPStatus.OK, {"project_key": backend.project_key, "location": backend.location,
                                           "backend": backend.name, "host": this_host(), "time": time.time()})
            elif path == "/metrics":
                self._metrics()
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a page that cannot be read must not take the server down
            log.exception("dashboard: %s failed", path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}\n".encode(),
                       "text/plain; charset=utf-8")

    def _actor(self, actor_id: str) -> None:
        if not is_valid_id(actor_id):
            self._json(HTTPStatus.NOT_FOUND, {"error": "not an actor id"})
            return
        try:
            with self.server.lock:
                found = detail(self.server.backend, actor_id)
        except ActorNotFound as exc:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
            return
        self._json(HTTPStatus.OK, found)

    def _metrics(self) -> None:
        try:
            with self.server.lock:
                body, content_type = metrics_text(snapshot(self.server.backend))
        except MetricsUnavailable as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, str(exc).encode(), "text/plain; charset=utf-8")
            return
        self._send(HTTPStatus.OK, body, content_type)

    def do_POST(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"the dashboard is read-only\n", "text/plain; charset=utf-8",
                   {"Allow": "GET, HEAD"})

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _json(self, status: HTTPStatus, value: Any) -> None:
        self._send(status, json.dumps(value, default=str).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard: " + format, *args)
