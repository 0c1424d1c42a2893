"""Reading and writing the maildir backend's JSON documents (sessions, indices).

A document that exists but does not parse is a ``DamagedDocument``: for an authority
(a session) that is an error to report, for a cache (an index) a reason to rebuild it.
"""

from __future__ import annotations

import errno
import json
import os
from typing import Any

from ...durability import Durability
from ...errors import StoreError
from .durable import Rewriter, is_real_dir, make_dirs, read_bytes

#: Extra reads of a document that did not parse (it may have been mid-rewrite).
TORN_READ_RETRIES = 3


class DamagedDocument(StoreError):
    """A document was read but is not JSON (or nests deeper than Python can parse)."""


def read_json(path: str) -> Any:
    """A JSON document, or ``None`` if the file does not exist.

    Raises:
        DamagedDocument: it does not parse, read after read, holds JSON ``null``, or a
            symlink is in its place (never followed: it could lead out of the home).
        StoreError: it cannot be read.
    """
    for attempt in range(TORN_READ_RETRIES + 1):
        try:
            doc = json.loads(read_bytes(path))
            if doc is None:  # else it would read as no document at all: a lost session
                raise DamagedDocument(path, "cannot read: it holds null, not a document")
            return doc
        except FileNotFoundError:
            return None
        except (ValueError, RecursionError) as exc:
            # Documents are rewritten in place (durable.Rewriter); a read that spans
            # two writes can see a torn text. Again.
            if attempt == TORN_READ_RETRIES:
                raise DamagedDocument(path, f"cannot read: {exc}") from exc
        except OSError as exc:
            raise read_error(path, exc) from exc
    raise AssertionError("unreachable")


def read_error(path: str, exc: OSError) -> StoreError:
    """What a failed open or read of the document at ``path`` is: a symlink in its
    place (never followed: it could lead out of the home) is damage, the rest an error."""
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return DamagedDocument(path, "cannot read: a symlink is in its place (not followed)")
    return StoreError(path, f"cannot read: {exc.strerror or exc}")


def dump(doc: Any) -> bytes:
    # Compact on purpose: with ``indent`` json falls back to its pure-Python encoder,
    # ~10x slower, and children.json grows with every actor of the system.
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def write_json(path: str, doc: Any, durability: Durability) -> None:
    """Replace a document atomically (callers serialise writers of one path).

    Raises:
        StoreError: it cannot be written, or its directory is a symlink or a file.
    """
    write_bytes(path, dump(doc), durability)


def write_bytes(path: str, data: bytes, durability: Durability) -> None:
    """``write_json`` for a document already encoded (as ``dump`` encodes it).

    Raises:
        StoreError: as ``write_json``.
    """
    directory = os.path.dirname(path)
    if not is_real_dir(directory):  # the lstat os.path.isdir would have made
        try:
            make_dirs(directory)
        except OSError as exc:
            raise StoreError(path, f"write failed: {exc.strerror or exc}") from exc
    Rewriter(path, durability).write(data)
