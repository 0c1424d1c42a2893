"""An actor's step journal on disk: ``journal.jsonl``, one JSON object per line.

Records are written by the actor's worker only, one after the other from the start
of the file, and at durability "machine" with an ``fdatasync`` before the write
returns: one flush per step. The file is emptied once the turns it records have
committed, by overwriting what they wrote with NUL bytes, which readers skip; it
keeps its size. So the next turn's records land inside the file's size, in blocks it
already has, and their ``fdatasync`` writes only those data blocks: no size or block
map to write with every step, and no blocks freed per turn (this file system, mounted
``discard``, trims freed blocks synchronously: ~1 ms a truncate). A file that grew
past ``KEEP_AT_MOST`` is truncated instead.

Emptying is not flushed: a power cut may bring back records of messages the
AdmittedSet already holds, which the worker ignores (the next step's ``fdatasync``
flushes the NULs with it). A line torn by a crash, or one that is not a JSON object,
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
#: A journal file up to this size is emptied by overwriting (and keeps its size); a
#: larger one is truncated.
KEEP_AT_MOST = 1024 * 1024

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | NOFOLLOW


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
        line = line.strip(b"\0")  # what an emptied file holds
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
        #: Where the next record goes: the end of the records in the file.
        self._end = 0
        #: The file ends in a torn line: the next record starts on a line of its own.
        self._torn = False
        #: Whether anything was appended since the file was last emptied.
        self.dirty = False

    def append(self, entry_json: str) -> None:
        """Append one record; durable on return (see the module docstring).

        Raises:
            StoreError: it could not be written.
        """
        try:
            fd = self._open()
            data = (b"\n" if self._torn else b"") + entry_json.encode() + b"\n"
            view, at = memoryview(data), self._end
            while view:
                written = os.pwrite(fd, view, at)
                view, at = view[written:], at + written
            if self.durability == MACHINE:
                os.fdatasync(fd)
        except OSError as exc:
            raise StoreError(self.path, f"cannot write the step journal: {exc.strerror or exc}") from exc
        self._end, self._torn = at, False
        self.dirty = True

    def clear(self) -> None:
        """Empty the file (not flushed: see the module docstring)."""
        if not self.dirty:
            return
        try:
            fd = self._open()
            if os.fstat(fd).st_size > KEEP_AT_MOST:
                os.ftruncate(fd, 0)
            elif self._end:
                os.pwrite(fd, bytes(self._end), 0)
        except OSError as exc:
            raise StoreError(self.path, f"cannot empty the step journal: {exc.strerror or exc}") from exc
        self._end, self._torn = 0, False
        self.dirty = False

    def _open(self) -> int:
        if self._fd < 0:
            directory = os.path.dirname(self.path)
            make_dirs(directory)
            created = not os.path.lexists(self.path)
            fd = os.open(self.path, _OPEN_FLAGS, FILE_MODE)
            try:
                records = b"".join(iter(lambda: os.read(fd, 1 << 16), b"")).rstrip(b"\0")
                if created and self.durability == MACHINE:
                    fsync_dir(directory)
            except BaseException:
                os.close(fd)
                raise
            self._fd, self._end = fd, len(records)
            self._torn = bool(records) and not records.endswith(b"\n")
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
