"""Fixtures of the Redis backend's tests that start ``actors host`` processes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from .test_hosts import Hosts


@pytest.fixture
def hosts(redis_server, tmp_path: Path) -> Iterator[Hosts]:
    """A group of ``actors host`` processes of one pool on the test's server, stopped
    afterwards (pools are server-wide: one of its own per test)."""
    group = Hosts(redis_server.url, f"pool-{os.urandom(4).hex()}", tmp_path)
    try:
        yield group
    finally:
        group.close()
