"""The one durable-write primitive, and the durability levels it honours.

``atomic_write`` is the discipline every file that must survive goes through: a
hidden, uniquely named temp file in the target directory, write, fsync, rename over
the target, fsync the directory. A reader sees the old file or the new one, never a
torn one, and a crash leaves at most a dot-file that scanners skip.
"""

from __future__ import annotations

import itertools
import os
import uuid
from typing import Literal

from .errors import InvalidSpec, StoreError

Durability = Literal["machine", "process"]

#: Survives power loss: fsync the file and its directory.
MACHINE: Durability = "machine"
#: Survives any process crash (kill -9), not a kernel crash: no fsync.
PROCESS: Durability = "process"
#: Both levels, for validation.
DURABILITY_LEVELS = (MACHINE, PROCESS)

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def check_durability(value: object) -> Durability:
    """Return ``value`` if it names a durability level, else raise ``InvalidSpec``."""
    if value not in DURABILITY_LEVELS:
        raise InvalidSpec("durability", f"{value!r} is not one of {', '.join(DURABILITY_LEVELS)}")
    return value  # type: ignore[return-value]


def fsync_dir(path: str) -> None:
    """Make a directory's entries (a rename, a create) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: str, data: bytes, durability: Durability = MACHINE) -> None:
    """Create ``path`` exclusively and write ``data`` to it (fsynced at "machine").

    Raises:
        FileExistsError: ``path`` exists.
        OSError: the write failed; a partial file is removed.
    """
    fd = os.open(path, _WRITE_FLAGS, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durability == MACHINE:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(path)
        raise
    os.close(fd)


def _new_temp_prefix() -> None:
    global _temp_prefix
    _temp_prefix = f".tmp-{uuid.uuid4().hex[:12]}-"


_temp_prefix = ""
_new_temp_prefix()
os.register_at_fork(after_in_child=_new_temp_prefix)
_temp_counter = itertools.count()


def temp_name(directory: str) -> str:
    """A hidden, unique path in ``directory`` (scanners skip dot-files).

    Unique per process by a random prefix (renewed in forked children) and a counter,
    which is cheaper than a fresh UUID per file.
    """
    return os.path.join(directory, f"{_temp_prefix}{next(_temp_counter)}")


def atomic_write(path: str, data: bytes, durability: Durability = MACHINE) -> None:
    """Replace ``path`` with ``data`` atomically.

    Args:
        path: the target file; its directory must exist.
        data: the complete new contents.
        durability: "machine" fsyncs the file and the directory; "process" does not
            (still atomic and safe against kill -9).

    Raises:
        StoreError: the write failed; the target is untouched and no temp file remains.
    """
    directory = os.path.dirname(path) or "."
    tmp = temp_name(directory)
    try:
        write_file(tmp, data, durability)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise StoreError(path, f"write failed: {exc.strerror or exc}") from exc
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if durability == MACHINE:
        fsync_dir(directory)


def read_bytes(path: str) -> bytes:
    """Read a whole file with one ``os.read`` loop (cheaper than ``open()``)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
