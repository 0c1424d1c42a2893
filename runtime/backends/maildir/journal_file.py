"""An actor's step journal on disk: ``journal.jsonl``, one JSON object per line.

Records are appended by the actor's worker only (``O_APPEND``, and at durability
"machine" an ``fdatasync`` before the append returns: one flush per step). The file
is emptied (``ftruncate``) once the turns it records have committed; a truncation
lost to a power cut brings back records of messages the AdmittedSet already holds,
which the worker ignores. A line torn by a crash, or one that is not a JSON object,
is skipped with a warning: nothing in the file can stop an activation.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from ...durability import MACHINE, Durability
from ...errors import StoreError
from .durable import FILE_MODE, NOFOLLOW, fsync_dir, make_dirs, read_bytes

log = logging.getLogger(__name__)

#: Journal lines longer than this are not parsed at load (a record holds one step's
#: result; a larger line is damage or a hostile write, not a record).
MAX_LINE = 64 * 1024 * 1024

_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | NOFOLLOW


def read_journal(path: str) -> list[dict[str, Any]]:
    """The records of a journal file, oldest first ([] if there is none).

    Raises:
        StoreError: it exists but cannot be read (a symlink in its place counts).
    """
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(path, f"cannot read the step journal: {exc.strerror or exc}") from exc
    records: list[dict[str, Any]] = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            if len(line) > MAX_LINE:
                raise ValueError("line too long")
            record = json.loads(line)
        except (ValueError, RecursionError):
            log.warning("%s: line %d of the step journal does not parse; skipped", path, number)
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            log.warning("%s: line %d of the step journal is not an object; skipped", path, number)
    return records


class JournalFile:
    """Appends to and empties one actor's journal file (its worker's only)."""

    def __init__(self, path: str, durability: Durability = MACHINE) -> None:
        self.path = path
        self.durability = durability
        self._fd = -1
        #: Whether anything was appended since the file was last emptied.
        self.dirty = False

    def append(self, entry_json: str) -> None:
        """Append one record; durable on return (see the module docstring).

        Raises:
            StoreError: it could not be written.
        """
        data = entry_json.encode() + b"\n"
        try:
            fd = self._open()
            os.write(fd, data)
            if self.durability == MACHINE:
                os.fdatasync(fd)
        except OSError as exc:
            raise StoreError(self.path, f"cannot write the step journal: {exc.strerror or exc}") from exc
        self.dirty = True

    def clear(self) -> None:
        """Empty the file (not flushed: see the module docstring)."""
        if not self.dirty:
            return
        try:
            os.ftruncate(self._open(), 0)
        except OSError as exc:
            raise StoreError(self.path, f"cannot empty the step journal: {exc.strerror or exc}") from exc
        self.dirty = False

    def _open(self) -> int:
        if self._fd < 0:
            directory = os.path.dirname(self.path)
            make_dirs(directory)
            created = not os.path.lexists(self.path)
            self._fd = os.open(self.path, _APPEND_FLAGS, FILE_MODE)
            if created and self.durability == MACHINE:
                fsync_dir(directory)
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
