"""A real ``redis-server`` for tests: on a unix socket in a tmp dir, AOF on, never a
system service. Skipped locally when the binary is missing; a failure when CI=true."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

#: The server binary (Debian's redis-server package).
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def require_redis() -> None:
    """Skip (locally) or fail (CI=true) when there is no redis-server or redis client."""
    missing = []
    if not os.path.exists(REDIS_SERVER):
        missing.append("the redis-server binary")
    try:
        import redis  # noqa: F401
    except ImportError:
        missing.append("the redis client (pip install 'durable-actors[redis]')")
    if missing:
        reason = " and ".join(missing) + " is missing"
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis tests cannot run in CI: {reason}")
        pytest.skip(reason)


class RedisServer:
    """One redis-server process in ``root`` (socket ``root/redis.sock``)."""

    def __init__(self, root: Path, appendfsync: str = "everysec") -> None:
        self.root = root
        self.socket = root / "redis.sock"
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        require_redis()
        self.root.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--appendonly", "yes", "--appendfsync", self.appendfsync, "--dir", str(self.root), "--save", "",
             "--maxmemory-policy", "noeviction", "--daemonize", "no", "--logfile", str(self.root / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(unix_socket_path=str(self.socket))
        try:
            from conftest import wait_until

            def ready() -> bool:
                assert self.process is not None
                if self.process.poll() is not None:
                    pytest.fail(f"redis-server exited with {self.process.returncode}: "
                                f"{(self.root / 'redis.log').read_text(errors='replace')[-2000:]}")
                try:
                    return bool(client.ping())
                except redis.exceptions.RedisError:
                    return False

            wait_until(ready, timeout=20)
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM (the server writes its AOF and exits), then SIGKILL after a grace."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
