"""Delivery as one Maildir file per message, for mailboxes other programs read.

::

    sender: new/.tmp-<pid>-<x> --write, fsync, rename--> new/<created_at ns, 20 digits>-<id>.json
            (then ring .bell)

The original crate (bamboo-subagent) reads a mailbox only through ``new/`` and
``cur/``: it never looks at ``log/``. A mailbox is written this way when

- its spawner asked for it (``spawn(..., mailbox="maildir")``: ``"format": "maildir"``
  in ``.config.json``), so that a crate process can ``drain`` the actor's mailbox; or
- it has no ``log/`` directory: it was made by another program (the crate's own
  mailbox, where a reply to a crate asker goes), or by a version of this project
  that predates the logs. Its reader is then certainly one that reads ``new/``.

Each file holds the message's wire JSON (``InboxMessage.to_wire``), which the crate's
``InboxMessage`` reads (it ignores the fields it does not know). Names sort in
delivery order, as the crate's do; the file is complete before it has its name.
This costs a sender four file operations per message instead of one append (see
MEASUREMENTS.md), which is why it is not the default.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

from ...durability import Durability
from ...messages import InboxMessage
from .durable import atomic_write, read_bytes
from .layout import MailboxPaths


def writes_files(paths: MailboxPaths) -> bool:
    """Whether senders to this mailbox write Maildir files rather than append to logs."""
    try:
        doc = json.loads(read_bytes(paths.config))
        if isinstance(doc, dict) and doc.get("format") == "maildir":
            return True
    except (OSError, ValueError, RecursionError):
        pass  # no settings (the default), or unreadable ones: the layout decides
    return not os.path.isdir(paths.log) and os.path.isdir(paths.new)


def deliver_files(paths: MailboxPaths, durability: Durability, messages: Sequence[InboxMessage],
                  data: Sequence[bytes]) -> str:
    """Write each message as its own file in ``new/``, in order; returns ``new/``.

    Raises:
        StoreError: a file cannot be written (those written before it are delivered).
    """
    for message, wire in zip(messages, data):
        # The id was checked before (``checked_wire``): it may be part of a name.
        atomic_write(os.path.join(paths.new, message.file_name()), wire, durability)
    return paths.new
