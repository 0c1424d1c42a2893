"""Input that cannot be read goes to ``corrupt/`` with a logged reason, and debris of
crashed senders is swept: neither may ever stop a mailbox."""

from __future__ import annotations

import logging
import os
import time

from ...durability import Durability
from ...errors import StoreError
from .durable import atomic_write, temp_owner_alive
from .layout import MailboxPaths

log = logging.getLogger(__name__)

#: Temp files older than this (seconds) are debris of a crashed sender.
STALE_TEMP_AGE = 600.0


def quarantine_file(paths: MailboxPaths, path: str, why: object) -> None:
    """Move an unreadable file (a message, a segment) into ``corrupt/``."""
    log.warning("mailbox %s: moving unparsable %s to corrupt/: %s", paths.root, os.path.basename(path), why)
    try:
        os.rename(path, os.path.join(paths.corrupt, os.path.basename(path)))
    except OSError:
        pass


def quarantine_bytes(paths: MailboxPaths, durability: Durability, segment: str, offset: object,
                     data: bytes, why: object) -> None:
    """Keep unreadable bytes of a segment in ``corrupt/<segment>@<offset>``."""
    name = f"{segment}@{offset}"
    log.warning("mailbox %s: moving %s (%d bytes) to corrupt/: %s", paths.root, name, len(data), why)
    try:
        atomic_write(os.path.join(paths.corrupt, name), data, durability)
    except StoreError as exc:
        log.error("mailbox %s: could not keep %s: %s", paths.root, name, exc)


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
            if name.startswith(".tmp-"):
                path = os.path.join(sub, name)
                if temp_owner_alive(name):
                    continue
                try:
                    if sub == paths.log or os.stat(path).st_mtime < cutoff:
                        os.unlink(path)
                except OSError:
                    pass
