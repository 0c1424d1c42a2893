"""Input that cannot be read goes to ``corrupt/`` with a logged reason, and debris of
crashed senders is swept: neither may ever stop a mailbox.

Nothing is moved or written into a ``corrupt/`` that is not a directory of its own (a
symlink there could lead out of the home): the input then stays where it was, with a
logged warning. A copy already in ``corrupt/`` is never replaced by a later one of the
same name.
"""

from __future__ import annotations

import logging
import os
import time

from ...durability import Durability
from ...errors import StoreError
from .durable import atomic_write, is_real_dir, make_dirs, temp_owner_alive
from .layout import MailboxPaths

log = logging.getLogger(__name__)

#: Temp files older than this (seconds) are debris of a crashed sender.
STALE_TEMP_AGE = 600.0


def corrupt_path(paths: MailboxPaths, name: str) -> str:
    """A free path for ``name`` in ``corrupt/`` (made if missing).

    Raises:
        OSError: ``corrupt/`` is a symlink or a file (``NotADirectoryError``), or cannot be made.
    """
    if not is_real_dir(paths.corrupt):
        make_dirs(paths.corrupt)
    path, n = os.path.join(paths.corrupt, name), 0
    while os.path.lexists(path):
        n += 1
        path = os.path.join(paths.corrupt, f"{name}~{n}")
    return path


def quarantine_file(paths: MailboxPaths, path: str, why: object) -> bool:
    """Move an unreadable file (a message, a segment) into ``corrupt/``; returns
    whether it was moved (if not, it stays where it was, and a warning says why)."""
    log.warning("mailbox %s: moving unparsable %s to corrupt/: %s", paths.root, os.path.basename(path), why)
    try:
        os.rename(path, corrupt_path(paths, os.path.basename(path)))
    except OSError as exc:
        log.warning("mailbox %s: %s stays where it is: %s", paths.root, os.path.basename(path),
                    exc.strerror or exc)
        return False
    return True


def quarantine_bytes(paths: MailboxPaths, durability: Durability, segment: str, offset: object,
                     data: bytes, why: object) -> bool:
    """Keep unreadable bytes of a segment in ``corrupt/<segment>@<offset>``; returns
    whether they were kept (if not, an error says why: the segment still has them)."""
    name = f"{segment}@{offset}"
    log.warning("mailbox %s: moving %s (%d bytes) to corrupt/: %s", paths.root, name, len(data), why)
    try:
        atomic_write(corrupt_path(paths, name), data, durability)
    except OSError as exc:
        log.error("mailbox %s: could not keep %s: %s", paths.root, name, exc.strerror or exc)
        return False
    except StoreError as exc:
        log.error("mailbox %s: could not keep %s: %s", paths.root, name, exc)
        return False
    return True


def sweep_temps(paths: MailboxPaths) -> None:
    """Remove temp files of senders that are gone (a segment's at once: it holds no
    message yet; a Maildir file's once it is ``STALE_TEMP_AGE`` old)."""
    cutoff = time.time() - STALE_TEMP_AGE
    for sub in (paths.new, paths.dead, paths.log):
        try:
            listed = os.listdir(sub)
        except FileNotFoundError:
            continue
        for name in listed:
            if is_foreign_temp(name):  # the crate's atomic write: ".<name>.tmp.<uuid>", no pid to ask
                _unlink_if_older(os.path.join(sub, name), cutoff)
            elif name.startswith(".tmp-"):
                path = os.path.join(sub, name)
                if temp_owner_alive(name):
                    continue
                try:
                    if sub == paths.log or os.stat(path).st_mtime < cutoff:
                        os.unlink(path)
                except OSError:
                    pass


def is_foreign_temp(name: str) -> bool:
    """Whether ``name`` is the temp file of the original crate's atomic write
    (``.<target name>.tmp.<uuid>``)."""
    return name[:1] == "." and not name.startswith(".tmp-") and ".tmp." in name


def _unlink_if_older(path: str, cutoff: float) -> None:
    try:
        if os.lstat(path).st_mtime < cutoff:
            os.unlink(path)
    except OSError:
        pass
