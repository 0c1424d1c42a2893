"""Reading and writing the maildir backend's JSON documents (sessions, indices)."""

from __future__ import annotations

import json
import os
from typing import Any

from ...durability import Durability
from ...errors import StoreError
from .durable import Rewriter, read_bytes

#: Extra reads of a document that did not parse (it may have been mid-rewrite).
TORN_READ_RETRIES = 3


def read_json(path: str) -> Any:
    """A JSON document, or ``None`` if the file does not exist.

    Raises:
        StoreError: unreadable or not JSON (naming the path).
    """
    for attempt in range(TORN_READ_RETRIES + 1):
        try:
            return json.loads(read_bytes(path))
        except FileNotFoundError:
            return None
        except (ValueError, RecursionError) as exc:
            # Documents are rewritten in place (durable.Rewriter); a read that spans
            # two writes can see a torn text. Again.
            if attempt == TORN_READ_RETRIES:
                raise StoreError(path, f"cannot read: {exc}") from exc
        except OSError as exc:
            raise StoreError(path, f"cannot read: {exc.strerror or exc}") from exc
    raise AssertionError("unreachable")


def dump(doc: Any) -> bytes:
    # Compact on purpose: with ``indent`` json falls back to its pure-Python encoder,
    # ~10x slower, and children.json grows with every actor of the system.
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def write_json(path: str, doc: Any, durability: Durability) -> None:
    """Replace a document atomically (callers serialise writers of one path)."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise StoreError(path, f"write failed: {exc.strerror or exc}") from exc
    Rewriter(path, durability).write(dump(doc))
