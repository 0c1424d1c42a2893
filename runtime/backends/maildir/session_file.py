"""How an actor's ``session.json`` is committed: one ``fdatasync``, no directory flush.

::

    commit n:  text + ,"commit":n,"crc":C}  --overwrite-->  .session.json.spare (inode X)
               fdatasync(X)                                  <- the commit is on disk
               renameat2(EXCHANGE): session.json <-> spare   (no directory fsync)
    commit n+1 goes into inode Y (the spare now), n stays whole in X

    staged (at "machine", a commit the worker may flush later: ``worker.group_commit``):
    commit n+1 --overwrite--> spare (Y), no fdatasync, no exchange
    commit n+2 --overwrite--> spare (Y) again: X keeps n, the last flushed commit
    flush:     fdatasync(Y), renameat2(EXCHANGE)            <- n+2 is on disk

The two names always lead to two inodes that hold the last two commits, each written
whole and flushed before the next one begins. Which name leads to which inode is what
the directory says, and after a power loss the directory may say either: the exchange
was not flushed. So the reader does not trust the names: it reads both files and takes
the one whose CRC holds with the higher commit number (``read_session``). The
directory is flushed only when a name is made (the first commit, a new spare) and
once per ``SessionFile`` (per worker): until then this process does not know that
both names are on disk.

Guarantees and failure modes:

- A staged commit survives a crash of its process: the spare holds it whole, with a
  higher commit number, and the next ``load`` flushes it before it swaps it in. A
  power loss may lose it or tear it; then the other file, the last flushed commit,
  is read (the worker acks nothing a staged commit covers before its flush).
- A commit is durable once ``SessionFile.write`` returned (at "machine", unstaged): a power loss
  after it leaves the new text in one of the two inodes, whole, and the other one
  holds the commit before it, whole too.
- A crash while the spare is written leaves it torn: its CRC fails (sector-sized
  tears can make text that still parses) and the other file, the last commit, wins
  (the last flushed one: a staged commit being overwritten is lost with the torn
  text, and since nothing it covered was acked, its messages come again).
- A crash after the write and before ``write`` returned may leave the new commit whole
  on disk; a reader then takes it. A commit is atomic, not undone: its messages come
  again and the ids it holds drop them.
- After a power loss ``session.json`` itself may hold the older text (or a torn one)
  until the worker starts: the worker settles the names first (``SessionFile.load``:
  the newer text is swapped back to ``session.json`` and the directory flushed), so
  its next commit never writes over the newest one. Readers in other processes use
  ``read_session``. A damaged ``session.json`` next to a whole commit in the spare is
  read as that commit, with a warning; with none it is reported (``DamagedDocument``).
- A spare without a ``session.json`` is no commit: a first commit is renamed into
  place and the directory flushed before it returns.
- A document without the seal (written before this format, by hand, or the system's
  own document) is taken as it is at ``session.json``, and never at the spare's name
  (there it is an older text).
"""

from __future__ import annotations

import json
import logging
import zlib
from typing import Any

from ...durability import MACHINE, Durability
from ...errors import StoreError
from .durable import Rewriter, exchange, flush_file, fsync_dir, read_file
from .json_docs import TORN_READ_RETRIES, DamagedDocument, read_json

log = logging.getLogger(__name__)

#: Ends every sealed session text: ``,"commit":<n>,"crc":<CRC-32 of all before it>}``.
_CRC_KEY = b',"crc":'
#: Reads of both names again when an exchange moved them while they were read.
EXCHANGE_RETRIES = 20


def seal(body: bytes, number: int) -> bytes:
    """The committed text of ``body`` (a JSON object without its closing brace)."""
    head = b'%s,"commit":%d' % (body, number)
    return b"%s%s%d}" % (head, _CRC_KEY, zlib.crc32(head))


def _sealed_number(data: bytes) -> int | None:
    """The commit number of a sealed text, -1 if it is torn, None if it has no seal."""
    text = data.rstrip()  # a shorter text is padded with spaces
    at = text.rfind(_CRC_KEY)
    if at < 0 or not text.endswith(b"}"):
        return None
    try:
        crc = int(text[at + len(_CRC_KEY):-1])
        number_at = text.rindex(b',"commit":', 0, at)
        number = int(text[number_at + 10:at])
    except ValueError:
        return -1
    return number if zlib.crc32(text[:at]) == crc else -1


def _read_sealed(path: str) -> tuple[Any, int | None, int]:
    """A session file's document, commit number (None: no seal; (None, None): no
    file) and the inode it was read from (0 when unsealed). A torn text is read
    again, as ``read_json`` does.

    Raises:
        DamagedDocument: it is torn read after read, or no document.
        StoreError: it cannot be read.
    """
    for _ in range(TORN_READ_RETRIES + 1):
        try:
            data, inode = read_file(path)
        except FileNotFoundError:
            return None, None, 0
        except OSError:
            return read_json(path), None, 0  # its errors, worded once
        number = _sealed_number(data)
        if number is None:
            return read_json(path), None, 0
        if number >= 0:
            try:
                return json.loads(data), number, inode
            except (ValueError, RecursionError) as exc:  # sealed, yet not JSON: not torn, damaged
                raise DamagedDocument(path, f"cannot read: {exc}") from exc
    raise DamagedDocument(path, "cannot read: its checksum does not match (a torn write)")


def read_session(path: str) -> tuple[Any, int, bool]:
    """The newest committed session document at ``path`` or its spare: never older
    than the last commit that returned before this call.

    The two names are read one after the other, and the writer may exchange them in
    between: both reads can then lead to one file, the older commit, and the newer
    one is missed. So the read is made again until the two reads were of the two
    files (at most ``EXCHANGE_RETRIES`` times; a writer that commits faster than that
    for so long gets the last whole commit read). That is enough: a file is only ever
    rewritten with a newer commit, and a torn read is refused, so whatever is read
    of each file is at least what any earlier read found there. (A staged commit
    being overwritten in the spare by the next one reads as torn until that write is
    done: read after read, then as the last flushed commit, in the other file.)

    Returns:
        (document or None, its commit number (0 without a seal), whether it came
        from the spare).

    Raises:
        DamagedDocument: ``session.json`` is damaged and the spare holds no commit.
        StoreError: a file cannot be read.
    """
    for _ in range(EXCHANGE_RETRIES):
        found = _read_both(path)
        if found is not None:
            return found
    return _read_both(path, settled=False)  # type: ignore[return-value]


def _read_both(path: str, settled: bool = True) -> tuple[Any, int, bool] | None:
    """One read of ``path`` and its spare; None if both led to one file (when
    ``settled``)."""
    try:
        doc, number, inode = _read_sealed(path)
        damage = None
    except DamagedDocument as exc:
        doc, number, inode, damage = None, -1, 0, exc
    if number is None:
        # Unsealed, or no file: a first commit is renamed into place and the directory
        # flushed before it returns, so a spare without a session.json is no commit.
        return doc, 0, False
    try:
        spare, spare_number, spare_inode = _read_sealed(Rewriter(path).spare)
    except StoreError:  # a torn or foreign spare is no commit
        spare, spare_number, spare_inode = None, None, 0
    if settled and inode and spare_inode == inode:
        return None
    if spare is not None and spare_number is not None and spare_number > number:
        if damage is not None:
            log.warning("%s: %s; the commit before it, in its spare, is taken", path, damage)
        return spare, spare_number, True
    if damage is not None:
        raise damage
    return doc, number, False



class SessionFile:
    """Commits ``session.json`` for its one writer (see the module docstring)."""

    def __init__(self, path: str, durability: Durability) -> None:
        self.path = path
        self.durability = durability
        self._writer = Rewriter(path, durability, keep_names=True)
        self._number: int | None = None  # the last commit's number, once settled

    def load(self) -> Any:
        """The newest committed document (None if none), with the names settled.

        Raises:
            StoreError: it cannot be read (``DamagedDocument``: it is damaged), or the
                names cannot be settled.
        """
        doc, number, from_spare = read_session(self.path)
        if from_spare:
            # The directory lost the last exchange, or the process that staged this
            # commit died before flushing it: flush it (its messages may be acked from
            # here on), then put it back at the name, for every reader, and so that
            # the next commit goes to the older file.
            try:
                if self.durability == MACHINE:
                    flush_file(self._writer.spare)
                exchange(self._writer.spare, self.path)
                if self.durability == MACHINE:
                    fsync_dir(self._writer.directory)
            except OSError as exc:
                raise StoreError(self.path, f"cannot settle the session: {exc.strerror or exc}") from exc
        self._number = number
        return doc

    def write(self, body: bytes, *, flush: bool = True) -> None:
        """Commit ``body`` (a JSON object without its closing brace) atomically.

        Without ``flush`` (at "machine", over an earlier commit) the commit is staged
        in the spare, unflushed and not swapped in: it survives a crash of this
        process (a reader takes the higher commit number of the two files), and
        ``flush`` makes it durable. Until then the other file keeps the last flushed
        commit: staged commits overwrite one another in the spare, never it.

        Raises:
            StoreError: the write failed. As after a crash at that point, readers then
                find the last commit, or this one if it was written whole before the
                failure (a commit is atomic, never torn; its messages, if it was made,
                are dropped as repeats when they come again).
        """
        if self._number is None:  # never write over the newest text
            try:
                self.load()
            except DamagedDocument:  # and no commit in the spare: this one replaces it
                self._number = 0
        number = (self._number or 0) + 1
        if flush or self.durability != MACHINE or not self._number:
            self._writer.write(seal(body, number))
        else:
            self._writer.stage(seal(body, number))
        self._number = number

    @property
    def unflushed(self) -> bool:
        """Whether the last commit is staged and not flushed yet."""
        return self._writer.staged

    def flush(self) -> None:
        """Make the staged commit durable and swap it in (nothing if none is staged).

        Raises:
            StoreError: it failed; the commit stays staged (a crash of this process
                still finds it; a power loss may not).
        """
        self._writer.flush_staged()
