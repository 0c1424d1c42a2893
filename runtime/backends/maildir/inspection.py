"""Looking into a maildir mailbox from any process: counts, what waits, backpressure.

Nothing here hands a message out or moves a cursor. A segment's header says how far
its reader has claimed and acked, so another process can tell waiting messages
("new") from those being handled ("cur").
"""

from __future__ import annotations

import os
from typing import Iterator, Mapping

from ...messages import InboxMessage
from .durable import read_bytes
from .layout import MESSAGE_DIRS, MailboxPaths
from .reading import SegmentView
from .segment_format import Record, is_segment
from .segment_reader import pending_records


def count_files(directory: str) -> int:
    """Maildir files in a directory (dot-files are temps, not messages)."""
    return sum(1 for n in os.listdir(directory) if n[0] != ".")


def segment_backlogs(paths: MailboxPaths) -> Iterator[tuple[str, list[Record], int]]:
    """Each segment's records from its cursor on disk (acked by nobody yet), and
    where its reader has claimed up to."""
    try:
        listed = sorted(n for n in os.listdir(paths.log) if is_segment(n))
    except FileNotFoundError:
        return
    for name in listed:
        found = pending_records(os.path.join(paths.log, name))
        if found is not None and found[0]:
            yield name, *found


def logged(paths: MailboxPaths, views: Mapping[str, SegmentView]) -> Iterator[tuple[str, Record]]:
    """Logged messages not yet acked, as ("new" | "cur", record).

    "cur" is a message handed out and not acked: by the reader of ``views`` (this
    process's, as it knows), or by another reader, as far as its segment's header says.
    """
    for name, records, claimed in segment_backlogs(paths):
        view = views.get(name)
        if view is None:
            for record in records:
                yield ("cur" if record.position < claimed else "new"), record
            continue
        for record in records:
            if record.position in view.outstanding:
                yield ("new" if record.position in view.queued else "cur"), record
            elif record.offset >= view.read_pos:
                yield "new", record
            # else: acked by this reader, its cursor held back by an earlier one


def counts(paths: MailboxPaths, views: Mapping[str, SegmentView]) -> dict[str, int]:
    """Messages per state: ``new``, ``cur``, ``corrupt`` and ``dead``."""
    result = {sub: count_files(paths.sub(sub)) for sub in MESSAGE_DIRS}
    for state, _ in logged(paths, views):
        result[state] += 1
    return result


def waiting(paths: MailboxPaths) -> int:
    """Messages delivered and not yet claimed by the reader (a scan: for backpressure)."""
    return count_files(paths.new) + sum(
        sum(1 for r in records if r.position >= claimed) for _, records, claimed in segment_backlogs(paths))


def has_waiting(paths: MailboxPaths) -> bool:
    """Whether any message waits to be handled (or was left unacked by a reader)."""
    for directory in (paths.new, paths.cur):
        with os.scandir(directory) as entries:
            if any(e.name[0] != "." for e in entries):
                return True
    return any(True for _ in segment_backlogs(paths))


def peek(paths: MailboxPaths, views: Mapping[str, SegmentView], state: str = "new") -> Iterator[InboxMessage]:
    """The readable messages that are waiting ("new") or handed out and not acked
    ("cur"): Maildir files first, then each log in order. Nothing is handed out."""
    if state not in ("new", "cur"):
        raise ValueError(f"peek reads 'new' or 'cur', not {state!r}")
    directory = paths.sub(state)
    for name in sorted(n for n in os.listdir(directory) if n[0] != "."):
        try:
            yield InboxMessage.from_wire(read_bytes(os.path.join(directory, name)))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
    for found, record in logged(paths, views):
        if found == state:
            try:
                yield InboxMessage.from_wire(record.payload)
            except (ValueError, UnicodeDecodeError):
                continue
