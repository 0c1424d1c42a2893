"""Dead letters of a maildir mailbox: ``dead/<name>``, one JSON envelope per message.

Nothing is written into a ``dead/`` that is not a directory of its own (a symlink
there could lead out of the home): burying then fails with ``StoreError`` and the
message stays in the mailbox.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time

from ...durability import Durability
from ...errors import StoreError
from ...ids import is_valid_id
from ...messages import InboxMessage
from ..base import DeadLetter, Delivered
from .durable import atomic_write, is_real_dir, make_dirs, read_bytes
from .layout import MailboxPaths

log = logging.getLogger(__name__)


def _file_name(delivered: Delivered) -> str:
    path, position = delivered.receipt or ("", 0)  # None: a message that was never in this mailbox
    if position < 0:
        return os.path.basename(str(path))
    if is_valid_id(delivered.message.id):
        return delivered.message.file_name()
    # Written by another program: its id must not become a path.
    return f"{hashlib.sha1(delivered.message.id.encode()).hexdigest()}.json"


def write_dead_letter(paths: MailboxPaths, durability: Durability, delivered: Delivered, reason: str,
                      attempts: int) -> str:
    """Write the envelope of a message being buried; returns its path. The caller
    acks the message afterwards, so a crash in between leaves it in both places,
    never in neither.

    Raises:
        StoreError: it cannot be written, or ``dead/`` is a symlink or a file (the
            caller then does not ack: the message stays where it is).
    """
    if not is_real_dir(paths.dead):
        try:
            make_dirs(paths.dead)
        except OSError as exc:
            raise StoreError(paths.dead, f"cannot keep a dead letter: {exc.strerror or exc}") from exc
    dead_path = os.path.join(paths.dead, _file_name(delivered))
    envelope = {
        "message": json.loads(delivered.message.to_wire()),
        "reason": reason,
        "attempts": attempts,
        "dead_at": time.time(),
    }
    atomic_write(dead_path, json.dumps(envelope, indent=1).encode(), durability)
    return dead_path


def read_dead_letters(paths: MailboxPaths) -> list[tuple[DeadLetter, str]]:
    """Each readable dead letter with its file, oldest first (unreadable ones are
    logged and skipped). A ``dead/`` that is a symlink is not read through: a requeue
    deletes the file it read.

    Raises:
        StoreError: ``dead/`` cannot be listed.
    """
    if not is_real_dir(paths.dead):
        if os.path.lexists(paths.dead):
            log.warning("mailbox %s: dead/ is not a directory of its own; not reading through it", paths.root)
        return []
    try:
        names = sorted(n for n in os.listdir(paths.dead) if n[0] != ".")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(paths.dead, f"cannot list the dead letters: {exc.strerror or exc}") from exc
    letters = []
    for name in names:
        path = os.path.join(paths.dead, name)
        try:
            doc = json.loads(read_bytes(path))
            message = InboxMessage.from_wire(json.dumps(doc["message"]))
            letter = DeadLetter(message, str(doc.get("reason", "")), int(doc.get("attempts", 0)),
                                float(doc.get("dead_at", 0.0)))
        except (OSError, ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
            log.warning("mailbox %s: unreadable dead letter %s: %s", paths.root, name, exc)
            continue
        letters.append((letter, path))
    return letters
