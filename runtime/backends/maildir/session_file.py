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
import os
import zlib
from typing import Any

from ...durability import MACHINE, Durability
from ...errors import StoreError
from .durable import Rewriter, exchange, flush_file, fsync_dir, open_for_reading, read_open
from .json_docs import TORN_READ_RETRIES, DamagedDocument, read_error

log = logging.getLogger(__name__)

#: Ends every sealed session text: ``,"commit":<n>,"crc":<CRC-32 of all before it>}``.
_CRC_KEY = b',"crc":'
#: Opens of both names again when an exchange moved them between the two opens.
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


def read_session(path: str) -> tuple[Any, int, bool]:
    """The newest committed session document at ``path`` or its spare: never older
    than the last commit that returned before this call (but for a staged one, below).

    Both names are opened before either is read. The writer may exchange them between
    the two opens: both then lead to one file, maybe the older commit, and the opens
    are made again (a window of two ``open`` calls, not of two reads). Once the two
    open files are two inodes, they are the two the writer rewrites (it makes no new
    one while both names exist), and whatever happens to the names from then on, what
    is read of each held file is no older than what it held when this call began:

    - the newest commit that returned before the call is whole in one of the two
      files then (a commit goes into the file that does not hold the last one, and
      returns after its exchange);
    - each file is only ever rewritten in place with a newer commit;
    - a read that meets a rewrite is torn, its CRC fails, and it is refused and made
      again (``TORN_READ_RETRIES`` times; then that file counts as damaged).

    So the higher of the two commit numbers read is at least that commit. A staged
    commit is the exception the module docstring names: the next one is written over
    it in the spare, and while that write goes on it reads as torn, read after read,
    then as the last flushed commit, in the other file.

    If the names still led to one file after ``EXCHANGE_RETRIES`` opens (a writer
    exchanging them as fast as this process opens), that one file is read as
    ``session.json``: a whole commit, one of the last two, maybe not the newest.

    Returns:
        (document or None, its commit number (0 without a seal), whether it came
        from the spare).

    Raises:
        DamagedDocument: ``session.json`` is damaged and the spare holds no commit.
        StoreError: a file cannot be read.
    """
    spare_path = Rewriter(path).spare
    for attempt in range(EXCHANGE_RETRIES + 1):
        held = _open_both(path, spare_path, settled=attempt < EXCHANGE_RETRIES)
        if held is not None:
            break
    else:
        raise AssertionError("unreachable: the last attempt is not settled")
    fd, spare_fd = held
    try:
        return _read_held(path, fd, spare_path, spare_fd)
    finally:
        for each in (fd, spare_fd):
            if isinstance(each, int):
                os.close(each)


#: What ``_open_both`` holds of ``session.json``: its file open, the error that
#: makes it damaged, or None (no such file).
_Held = tuple[int | DamagedDocument | None, int | None]


def _open_both(path: str, spare_path: str, settled: bool) -> _Held | None:
    """``session.json`` and its spare, both open (the spare None if it cannot be: it is
    no commit then); None if both names led to one file (when ``settled``).

    Raises:
        StoreError: ``session.json`` cannot be opened (but for damage, which is held).
    """
    try:
        fd: int | DamagedDocument = open_for_reading(path)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        error = read_error(path, exc)
        if not isinstance(error, DamagedDocument):
            raise error from exc
        fd = error
    try:
        spare_fd: int | None = open_for_reading(spare_path)
    except OSError:
        spare_fd = None
    try:
        if isinstance(fd, int) and spare_fd is not None and os.fstat(fd).st_ino == os.fstat(spare_fd).st_ino:
            os.close(spare_fd)  # an exchange fell between the two opens
            spare_fd = None
            if settled:
                os.close(fd)
                return None
    except OSError as exc:
        for each in (fd, spare_fd):
            if isinstance(each, int):
                os.close(each)
        raise StoreError(path, f"cannot read: {exc.strerror or exc}") from exc
    return fd, spare_fd


def _read_held(path: str, fd: int | DamagedDocument | None, spare_path: str,
               spare_fd: int | None) -> tuple[Any, int, bool]:
    """``read_session``'s choice between the two files held open."""
    if fd is None:
        return None, 0, False
    damage = fd if isinstance(fd, DamagedDocument) else None
    doc: Any = None
    number: int | None = -1
    if isinstance(fd, int):
        try:
            doc, number = _read_sealed(fd, path)
        except DamagedDocument as exc:
            damage = exc
    if number is None:
        # Unsealed: taken as it is. (A spare without a session.json is no commit: a
        # first commit is renamed into place and the directory flushed before it returns.)
        return doc, 0, False
    spare, spare_number = None, None
    if spare_fd is not None:
        try:
            spare, spare_number = _read_sealed(spare_fd, spare_path)
        except StoreError:  # a torn or foreign spare is no commit
            pass
    if spare_number is not None and spare_number > number:
        if damage is not None:
            log.warning("%s: %s; the commit before it, in its spare, is taken", path, damage)
        return spare, spare_number, True
    if damage is not None:
        raise damage
    return doc, number, False


def _read_sealed(fd: int, path: str) -> tuple[Any, int | None]:
    """The document in the open session file ``fd`` and its commit number (None: no
    seal). A torn text is read again, as ``read_json`` reads one.

    Raises:
        DamagedDocument: it is torn read after read, or no document.
        StoreError: it cannot be read.
    """
    for attempt in range(TORN_READ_RETRIES + 1):
        try:
            data = read_open(fd)
        except OSError as exc:
            raise read_error(path, exc) from exc
        number = _sealed_number(data)
        if number == -1:
            continue
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            if number is not None:  # sealed, yet not JSON: not torn, damaged
                raise DamagedDocument(path, f"cannot read: {exc}") from exc
            if attempt == TORN_READ_RETRIES:
                raise DamagedDocument(path, f"cannot read: {exc}") from exc
            continue
        if doc is None:  # else it would read as no document at all: a lost session
            raise DamagedDocument(path, "cannot read: it holds null, not a document")
        return doc, number
    raise DamagedDocument(path, "cannot read: its checksum does not match (a torn write)")


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
