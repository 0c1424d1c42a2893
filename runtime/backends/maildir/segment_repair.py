"""Damage inside a segment: a header whose positions cannot be trusted, and bytes in
the middle of a segment that are not records. Neither may lose a message or stop the
mailbox; what cannot be read goes to ``corrupt/`` with a logged reason.

::

    header   magic or version not ours         -> the file to corrupt/, not read (segment_reader)
             cursor or claimed outside the      -> a copy of the segment to corrupt/, and the
             records, claimed before cursor,       segment read again from its first record
             or not where a record starts
    records  checksum fails, length intact,     -> that record to corrupt/, the next one read
             or a batch not filled by its
             messages
             length damaged, bytes written over -> the bytes up to the next whole frame to
             or in between                         corrupt/, reading resumes there
             nothing whole follows              -> a tail: waited for while its writer lives,
                                                   torn once it is gone (segment_reader)
             (version 3) a zero length word     -> nothing written yet while its writer lives;
                                                   once it is gone, zeros to the end are the
                                                   end, anything else past it is read by the
                                                   rules above

A "whole frame" is a record whose length is plausible and whose CRC-32 matches its
payload (a batch's messages must also fill it exactly), or the seal followed by nothing
but zeros to the end of the file. A writer writes each record once, after the ones
before it, so bytes followed by a whole frame are final: skipping them is safe even
while the writer lives.

The reader resynchronises (``resync``) and the header check walks the frames
(``walk``) by the same rules, so a cursor a reader left after skipping damage is
still found on a record boundary by the next reader.

Trade-off of a distrusted header: the segment is read from its first record, so
messages already acked are delivered again. The worker's AdmittedSet drops those it
still remembers (the last 4,096 ids); a message older than that would be handled
twice. That is preferred to the alternative, deleting the segment with messages never
handled in it.
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from typing import NamedTuple

from ...durability import Durability
from .durable import unlink_quietly
from .layout import MailboxPaths
from .quarantine import quarantine_bytes
from .segment_format import (
    BATCH_FLAG,
    HEADER_SIZE,
    INDEX_MASK,
    INNER,
    MAX_RECORD,
    RECORD,
    SEAL,
    SEAL_LENGTH,
)

log = logging.getLogger(__name__)

#: The position of a segment's first record.
FIRST_POSITION = HEADER_SIZE << 16
#: A segment read to its end whose damaged bytes could not be kept in ``corrupt/`` is
#: renamed in ``log/`` with this prefix: no reader reads it, nothing removes it.
SET_ASIDE = ".damaged-"
#: Bytes per ``pread`` when a whole segment is read.
_READ_ALL_CHUNK = 1 << 20
#: The last byte of a plausible frame length (at most ``MAX_RECORD``, with or without
#: ``BATCH_FLAG``) or of the seal's: where a frame may start, found in C, not byte by byte.
_HIGH_BYTE = re.compile(b"[\\x00-\\x%02x\\x80-\\x%02x\\xff]" % (MAX_RECORD >> 24, (BATCH_FLAG | MAX_RECORD) >> 24))
#: A search for the next whole frame checksums at most this many times the bytes it
#: searches (see ``next_frame``).
CRC_BUDGET = 16
#: Where a hole of zeros ends.
_NOT_ZERO = re.compile(b"[^\\x00]")


class Damage(NamedTuple):
    """Bytes of a segment that cannot be read: where (a byte offset, or
    ``<offset>.<index>`` for one message of a record), what, and why."""

    offset: int | str
    data: bytes
    reason: str


def frame_end(data: bytes, pos: int) -> int | None:
    """Where the whole frame at ``pos`` ends, or None if none starts there.

    ``data`` must run to the end of the file: the seal counts only when nothing but
    zeros follows it (a writer writes nothing after it; a seal followed by more is
    damage).
    """
    if pos + RECORD.size > len(data):
        return None
    length, crc = RECORD.unpack_from(data, pos)
    if length == SEAL_LENGTH:
        sealed = pos + len(SEAL)
        return sealed if crc == 0 and only_zeros(data, sealed) else None
    size = length & ~BATCH_FLAG
    end: int = pos + RECORD.size + size
    if not 0 < size <= MAX_RECORD or end > len(data):
        return None
    payload = memoryview(data)[pos + RECORD.size:end]
    if zlib.crc32(payload) != crc:
        return None
    if length & BATCH_FLAG and batch_count(payload) is None:
        return None
    return end


def only_zeros(data: bytes, start: int) -> bool:
    """Whether ``data`` holds nothing but zeros from ``start`` on (or nothing)."""
    return _NOT_ZERO.search(data, start) is None


def batch_count(payload: bytes | memoryview) -> int | None:
    """How many messages a batch record's payload holds, or None if they do not fill
    it exactly or are more than a position can number (see ``unpack_record``)."""
    pos, count, size = 0, 0, len(payload)
    while pos < size:
        if pos + INNER.size > size or count > INDEX_MASK:
            return None
        (length,) = INNER.unpack_from(payload, pos)
        pos += INNER.size + length
        count += 1
    return count if pos == size else None


def next_frame(data: bytes, start: int) -> int | None:
    """The first offset at or after ``start`` where a whole frame starts, or None.

    Each candidate costs a CRC over the length it claims, so bytes crafted to look
    like many long frames could make the search quadratic: past ``CRC_BUDGET`` times
    the bytes searched, it gives up and the rest counts as a tail (kept in
    ``corrupt/`` once its writer is gone), so a mailbox is never stuck on it.
    """
    at = start + 3  # the high byte of the length at ``start``
    budget = CRC_BUDGET * max(len(data) - start, 1 << 16)
    while True:
        found = _HIGH_BYTE.search(data, at)
        if found is None:
            return None
        pos = found.start() - 3
        if data[pos:pos + 4] == b"\0\0\0\0":
            # A hole of zeros holds no frame: go on from the last few zeros before its end.
            after = _NOT_ZERO.search(data, pos + 4)
            if after is None:
                return None
            at = after.start()
            continue
        if pos + RECORD.size <= len(data):
            budget -= min(RECORD.unpack_from(data, pos)[0] & ~BATCH_FLAG, len(data) - pos)
            if budget < 0:
                log.warning("segment: no whole frame found within %d bytes of CRC past offset %d; "
                            "treating the rest as a tail", CRC_BUDGET * max(len(data) - start, 1 << 16), start)
                return None
        if frame_end(data, pos) is not None:
            return pos
        at = found.start() + 1


def resync(data: bytes, pos: int) -> tuple[int, str] | None:
    """Where reading resumes past a frame at ``pos`` that is not whole, and why.

    ``data`` runs to the end of the file. Reading resumes at the next whole frame: for
    a record whose length is intact that is the frame right after it (a message's
    JSON holds no frame), so the record is skipped alone; for a damaged length, or
    bytes written over or in between, it is the first record past them. None when no
    whole frame follows: the rest is a tail, still being written or torn, which only
    its writer's going can tell.
    """
    found = next_frame(data, pos + 1)
    if found is None:
        return None
    if pos + RECORD.size <= len(data):
        length, crc = RECORD.unpack_from(data, pos)
        if length != SEAL_LENGTH and found == pos + RECORD.size + (length & ~BATCH_FLAG):
            checked = zlib.crc32(memoryview(data)[pos + RECORD.size:found]) == crc
            why = "its batch of messages does not fill it" if checked else "its checksum does not match"
            return found, f"a damaged record ({why})"
    return found, "bytes that are not records (a damaged length, or bytes written over or in between)"


def walk(data: bytes, until: int | None = None) -> tuple[dict[int, int], int]:
    """The frames of a whole segment as its reader finds them, damage skipped.

    With ``until`` (a byte offset), the walk ends at the first frame past it: frames
    are found from the start, so those at or before ``until`` are the same as a whole
    walk finds, and nothing after it is read or checksummed.

    Returns:
        The offset of each frame with the number of messages it holds (a seal: 0), and
        where the walk stopped: the end of the file, the seal, a tail not whole, or
        (with ``until``) the first frame after ``until``.
    """
    frames: dict[int, int] = {}
    pos = HEADER_SIZE
    limit = len(data) if until is None else min(len(data), until + 1)
    while pos < limit:
        end = frame_end(data, pos)
        if end is None:
            skip = resync(data, pos)
            if skip is None:
                break
            pos = skip[0]
            continue
        length, _ = RECORD.unpack_from(data, pos)
        if length == SEAL_LENGTH:
            frames[pos] = 0
            break
        frames[pos] = batch_count(memoryview(data)[pos + RECORD.size:end]) or 0 if length & BATCH_FLAG else 1
        pos = end
    return frames, pos


def header_problem(fd: int, cursor: int, claimed: int) -> str | None:
    """Why a segment's header positions cannot be trusted, or None if they can.

    ``cursor`` and ``claimed`` are as read (0 stands for the first record). Each must
    lie inside the file, the cursor at or before ``claimed``, and each where the
    reader could have left it: at a frame (inside a batch, at one of its messages), at
    the end of the whole frames, or at the end of the file. A fresh segment's header
    is settled without reading the file.
    """
    if cursor in (0, FIRST_POSITION) and claimed in (0, FIRST_POSITION):
        return None
    cursor = cursor or FIRST_POSITION
    claimed = claimed or cursor
    size = os.fstat(fd).st_size
    for name, position in (("cursor", cursor), ("claimed position", claimed)):
        if not HEADER_SIZE <= position >> 16 <= size:
            return f"its {name} (byte {position >> 16}) is outside the segment's {size} bytes"
    if claimed < cursor:
        return f"its claimed position ({claimed:#x}) is before its cursor ({cursor:#x})"
    problem = _positions_problem(read_all(fd, 0), cursor, claimed)
    if problem is not None:
        # A segment written in place can be read while a record is still being copied
        # in, its first page there and a later record already whole (see
        # ``SegmentReader._skip_damage``): only what a second read confirms counts.
        problem = _positions_problem(read_all(fd, 0), cursor, claimed)
    return problem


def _positions_problem(data: bytes, cursor: int, claimed: int) -> str | None:
    """``header_problem``'s check of where the positions are, in the segment's bytes."""
    # Only where the positions are matters: a walk to the furthest of them finds the
    # same frames there as a walk of the whole segment (it starts at the same place
    # and follows the same rules), without checksumming the unread records after them.
    frames, stop = walk(data, claimed >> 16)
    for name, position in (("cursor", cursor), ("claimed position", claimed)):
        offset, index = position >> 16, position & INDEX_MASK
        count = frames.get(offset)
        if count is None and offset not in (stop, len(data)):
            return f"its {name} (byte {offset}) is not where a record starts"
        if index and index >= (count or 0):
            return f"its {name} names message {index} of a record at byte {offset} that holds {count or 0}"
    return None


def read_all(fd: int, start: int) -> bytes:
    """The file from ``start`` to its end."""
    chunks: list[bytes] = []
    while True:
        chunk = os.pread(fd, _READ_ALL_CHUNK, start)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        start += len(chunk)


def keep_damage(paths: MailboxPaths, durability: Durability, segment: str, damaged: list[Damage]) -> bool:
    """Keep each damaged span of a segment in ``corrupt/<segment>@<offset>`` (each
    logged with its reason); returns whether all were kept."""
    kept = True
    for damage in damaged:
        kept = quarantine_bytes(paths, durability, segment, damage.offset, damage.data, damage.reason) and kept
    return kept


def keep_copy(paths: MailboxPaths, durability: Durability, path: str, reason: str) -> bool:
    """Keep a copy of a segment whose header cannot be trusted in
    ``corrupt/<segment>@0``, before its reader rewrites the header; returns whether it
    was kept. The segment itself stays and is read from its first record."""
    name = os.path.basename(path)
    log.warning("mailbox %s: segment %s: header cannot be trusted (%s); reading it again from its "
                "first record (messages already handled may come again)", paths.root, name, reason)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        log.error("mailbox %s: could not copy segment %s: %s", paths.root, name, exc.strerror or exc)
        return False
    try:
        data = read_all(fd, 0)
    finally:
        os.close(fd)
    return quarantine_bytes(paths, durability, name, 0, data, f"a copy: its header cannot be trusted ({reason})")


def retire(paths: MailboxPaths, path: str, keep: bool) -> None:
    """Remove a segment whose every message was acked; if ``keep`` (damaged bytes of
    it could not be kept in ``corrupt/``), set it aside instead (``SET_ASIDE``), so
    those bytes are not lost with it."""
    if not keep:
        unlink_quietly(path)
        return
    name = os.path.basename(path)
    try:
        os.rename(path, os.path.join(os.path.dirname(path), SET_ASIDE + name))
    except OSError as exc:
        log.error("mailbox %s: could not set segment %s aside: %s", paths.root, name, exc.strerror or exc)
        return
    log.error("mailbox %s: segment %s set aside as %s%s: damaged bytes of it could not be kept in corrupt/",
              paths.root, name, SET_ASIDE, name)
