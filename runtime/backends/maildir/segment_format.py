"""Per-sender message logs ("segments") inside a mailbox's ``log/``, written in place.

Data flow::

    sender process (one writer per mailbox handle)        the mailbox's one reader
    ----------------------------------------------        ------------------------
    log/.tmp-X: header + zeros to 4 KiB, flock(SH) --rename--> log/<ns>-<pid>-<tag>.seg
    write at the write position, over zeros:
        [len][crc32][message JSON]  (one pwrite; fdatasync at "machine")
    a record that crosses the zeros' end is followed
        by zeros to the next boundary (a multiple of the
        file's size, at most 64 KiB; flushed with it)
                                         ... read from the cursor up to the first
                                             zero length word, handle, commit
                                         ack: cursor := first record not yet acked
                                              (written into the header with the
                                              read position, for observers)
    seal at 1 MiB, or on close: [0xFFFFFFFF][0] at the write position
                                                          sealed + all acked -> unlink

Why not a file per message: on this file system a message file costs a create or a
claim rename, a publish rename, an open and a close for the sender, and a claim
rename, an open, a read and an ack rename for the reader; a record costs one
``pwrite``, and the reader reads many records with one ``pread``. At durability
"machine" a record needs one ``fdatasync`` and no directory fsync.

Why in place (version 3): an append changes the file's size, so its ``fdatasync``
also writes the inode. A record written over zeros the file already holds (written,
not ``fallocate``d: an unwritten extent would make the write a metadata change) leaves
size and blocks as they are, and its ``fdatasync`` writes only the data blocks. The
zeros are written ahead by the record that crosses their end, to the next multiple of
the file's size (4 KiB, 8, 16, ...) and then of ``CHUNK``: one flush in ``CHUNK`` bytes
of records pays for the inode, and a sender that writes little holds one block, as an
appended segment did. A zero length word is "nothing written yet": a frame's length is
never 0.

Guarantees:

- A record is delivered once its ``pwrite`` returned (and, at "machine", its
  ``fdatasync``): it survives any process crash (a power loss too at "machine").
- One writer per segment, so records of one sender are read in the order sent; a
  process's segments are named so that the reader takes them oldest first.
- The cursor (a message's position, so it can point inside a batch record) only
  moves past messages that were acked, and it is written after the reader's commit;
  a crash before it reaches the disk redelivers acked messages, which the reader's
  AdmittedSet drops. That set holds 4,096 ids, so the mailbox bounds what can come
  again: at "machine" it flushes its cursors once ``FLUSH_ACKS_EVERY`` acks are not
  on disk, and before it deletes a segment.
- A writer holds a shared ``flock`` on its segment for as long as it may write. A
  reader that can take the lock exclusively knows the writer is gone for good: it
  never reopens a segment. Only then is an incomplete record at the end a torn
  write (moved to ``corrupt/``) rather than one still being copied in, and only
  then are bytes past a zero length word looked at: zeros there are the unwritten
  rest of the segment (not damage), anything else is damage or a torn record.
- The seal ends a segment where it is found, if nothing but zeros follows it (a
  writer writes nothing after it; a seal followed by more is damage).
- A segment is created under a hidden temp name, locked, and only then renamed into
  ``log/``: a reader never sees an unlocked segment of a live writer.

Version 2 segments (appended, no zeros ahead: written by earlier builds) are still
read and drained: their end is the file's size, and zeros in them are damage.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

#: Segment file name suffix; everything else in ``log/`` is ignored.
SUFFIX = ".seg"
#: A writer seals its segment and starts a new one past this size (bytes).
SEGMENT_LIMIT = 1 << 20
#: Bytes read per ``pread`` when catching up.
READ_CHUNK = 1 << 18
#: Bytes of the first ``pread`` of a catch-up in a version 3 segment: up to ``CHUNK``
#: zeros follow its records, which a read of ``READ_CHUNK`` would copy every time.
FIRST_READ = 1 << 12
#: A record longer than this is garbage (a torn length), not a message.
MAX_RECORD = 64 << 20
#: The longest message (encoded) a segment takes; ``deliver`` refuses longer ones.
MAX_MESSAGE = MAX_RECORD - 64
#: How often (seconds) a reader asks whether the writer of a quiet segment is gone.
WRITER_CHECK_INTERVAL = 1.0

#: The first bytes of every segment.
MAGIC = b"DAML"
#: Segment format version: the one written.
VERSION = 3  # 1: cursors were byte offsets (never released); 2: appended, no zeros ahead
#: The versions read.
VERSIONS_READ = (2, 3)
#: The first version written in place: zeros past the records are "nothing yet".
IN_PLACE = 3
#: A new segment's size (header and zeros) in bytes; the zeros ahead then grow to the
#: next multiple of the file's size, and past ``CHUNK`` to the next multiple of it.
START_SIZE = 1 << 12
#: The most zeros a writer writes ahead at a time (bytes).
CHUNK = 64 << 10
#: The header: magic, version, cursor, claimed (both message positions).
HEADER = struct.Struct("<4sB3xQQ")
#: The two positions of the header, rewritten in place by the reader ...
POSITIONS = struct.Struct("<QQ")
#: ... at this offset.
POSITIONS_AT = 8
HEADER_SIZE = HEADER.size
#: A record's frame: payload length (| BATCH_FLAG), CRC-32 of the payload.
RECORD = struct.Struct("<II")
#: The length of the seal record, which ends a segment.
SEAL_LENGTH = 0xFFFFFFFF
SEAL = RECORD.pack(SEAL_LENGTH, 0)
#: Length flag of a batch record: its payload is records itself, all or none delivered.
BATCH_FLAG = 0x80000000
#: A message's length inside a batch record.
INNER = struct.Struct("<I")
#: Messages in one batch record at most (an index must fit the low 16 bits of a
#: position); a longer batch is several records, each all or nothing.
BATCH_LIMIT = 1024
#: The bits of a position that number a message inside its record.
INDEX_MASK = 0xFFFF


def frame(payload: bytes) -> bytes:
    """One record: length, CRC-32 and the payload."""
    return RECORD.pack(len(payload), zlib.crc32(payload)) + payload


def frame_batch(payloads: list[bytes]) -> bytes:
    """Records holding ``payloads`` in order, each batch record all-or-nothing.

    A batch longer than ``BATCH_LIMIT`` messages or half of ``MAX_RECORD`` bytes is
    split into several batch records, each of them atomic.
    """
    if len(payloads) == 1:
        return frame(payloads[0])
    out: list[bytes] = []
    inner: list[bytes] = []
    size = 0
    for payload in payloads:
        if inner and (len(inner) == BATCH_LIMIT or size + len(payload) > MAX_RECORD // 2):
            out.append(_frame_inner(inner))
            inner, size = [], 0
        inner.append(INNER.pack(len(payload)) + payload)
        size += INNER.size + len(payload)
    out.append(_frame_inner(inner))
    return b"".join(out)


def _frame_inner(inner: list[bytes]) -> bytes:
    body = b"".join(inner)
    return RECORD.pack(len(body) | BATCH_FLAG, zlib.crc32(body)) + body


def is_segment(name: str) -> bool:
    return name.endswith(SUFFIX) and name[0] != "."


def writer_of(name: str) -> str:
    """The process that wrote a segment (``<pid>-<tag>``), from its name."""
    parts = name.split("-")
    return "-".join(parts[1:3]) if len(parts) >= 4 else name


@dataclass
class Record:
    """A message read from a segment: the record holding it, and its payload.

    ``position`` orders messages within a segment and names one for ``ack``: the
    record's offset shifted left 16 bits, plus the message's index in a batch record.
    """

    offset: int
    index: int
    payload: bytes

    @property
    def position(self) -> int:
        return self.offset << 16 | self.index


def unpack_record(offset: int, batch: int, payload: bytes, records: list[Record], skip_below: int) -> bool:
    """Add the messages of one record, leaving out those before ``skip_below`` (the
    acked part of the record a resumed cursor points into).

    Returns False, adding nothing, for a batch record whose messages do not fill it
    exactly or are more than a position can number: its checksum matched, so a writer
    made it so, and it is not a record this format knows.
    """
    if not batch:
        if offset << 16 >= skip_below:
            records.append(Record(offset, 0, payload))
        return True
    found = []
    pos, index, size = 0, 0, len(payload)
    while pos < size:
        start = pos + INNER.size
        if start > size or index > INDEX_MASK:
            return False
        (length,) = INNER.unpack_from(payload, pos)
        if start + length > size:
            return False
        if offset << 16 | index >= skip_below:
            found.append(Record(offset, index, payload[start:start + length]))
        pos, index = start + length, index + 1
    records.extend(found)
    return True
