"""An actor's session on disk: ``session.json`` (state, recent ids, meta) and
``admitted.json`` (the AdmittedSet as of the last checkpoint).

A commit rewrites ``session.json``'s spare in place and swaps it in, with one
``fdatasync`` and no directory flush (``session_file``): no inode is created or freed
per commit. At "machine" a worker may stage a commit and flush it later
(``commit_unflushed``, ``flush``: group commit). It carries only the ids admitted since the
last checkpoint; past ``CHECKPOINT_EVERY`` of them the whole set is written to
``admitted.json`` and ``session.json`` starts afresh. ``admitted.json`` is written
only after the ids in it were committed, so their union, read at activation, is
always exactly the committed ids (or more of the already-committed ones).
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Sequence

from ...durability import Durability
from ...errors import StoreError
from ..base import SessionDoc
from .durable import Rewriter, make_dirs
from .journal_file import JournalFile, read_journal
from .json_docs import read_json
from .layout import ADMITTED, JOURNAL, SESSION, ProjectLayout
from .session_file import SessionFile, read_session

#: Ids carried in session.json before a checkpoint. A commit writes ~40 B per tail id
#: and a checkpoint ~160 KB (4,096 ids), so per message ~20*T + 160,000/T bytes:
#: smallest near T = 100.
CHECKPOINT_EVERY = 128


def load_session_doc(path: str, admitted_path: str | None) -> tuple[SessionDoc, list[str]] | None:
    """A session document and its tail of ids since the checkpoint (``None`` if none).

    The session is the authority on the actor's state: one that cannot be read is
    reported, never replaced by an empty state. A checkpoint of another shape than
    ``{"ids": [...]}`` counts as no checkpoint.

    Raises:
        StoreError: it (or the checkpoint) exists but cannot be read, does not parse,
            or is not an object with ``state`` and ``meta`` objects and an
            ``admitted`` list.
    """
    return parse_session_doc(read_session(path)[0], path, admitted_path)


def parse_session_doc(doc: Any, path: str, admitted_path: str | None) -> tuple[SessionDoc, list[str]] | None:
    """``load_session_doc`` of a document already read (``None``: there is none)."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise StoreError(path, "not a JSON object")
    state = doc.get("state") or {}
    meta = doc.get("meta") or {}
    tail = doc.get("admitted") or []
    outbox = doc.get("outbox") or []
    if not isinstance(state, dict) or not isinstance(meta, dict) or not isinstance(tail, list):
        raise StoreError(path, "state, meta or admitted has the wrong type")
    if not isinstance(outbox, list):
        raise StoreError(path, "outbox has the wrong type")
    ids: list[str] = []
    if admitted_path is not None:
        checkpoint = read_json(admitted_path)
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get("ids"), list):
            ids.extend(i for i in checkpoint["ids"] if isinstance(i, str))
    tail = [i for i in tail if isinstance(i, str)]
    outbox = [entry for entry in outbox if isinstance(entry, dict)]
    return SessionDoc(state=state, admitted=ids + tail, meta=meta, outbox=outbox), tail


class MaildirSession:
    """One actor's session files, written by its worker only."""

    def __init__(self, layout: ProjectLayout, system_id: str, actor_id: str, durability: Durability) -> None:
        self.path = layout.actor_file(system_id, actor_id, SESSION)
        self.admitted_path = layout.actor_file(system_id, actor_id, ADMITTED)
        self._session_file = SessionFile(self.path, durability)
        self._admitted_writer = Rewriter(self.admitted_path, durability)
        self._journal = JournalFile(layout.actor_file(system_id, actor_id, JOURNAL), durability)
        self._tail: list[str] = []  # ids committed since the last checkpoint
        #: The tail as JSON, one piece per commit that added ids: a commit encodes only
        #: its own ids, not the up to CHECKPOINT_EVERY before them.
        self._tail_json: list[str] = []
        self._dir_checked = False

    def load(self) -> SessionDoc | None:
        found = parse_session_doc(self._session_file.load(), self.path, self.admitted_path)
        if found is None:
            return None
        doc, self._tail = found
        self._tail_json = [json.dumps(self._tail)[1:-1]] if self._tail else []
        journal = read_journal(self._journal.path)
        self._journal.dirty = bool(journal)
        return SessionDoc(doc.state, doc.admitted, doc.meta, doc.outbox, journal)

    def commit(self, state_json: str, meta_json: str, new_ids: Sequence[str],
               admitted: Iterable[str], outbox_json: str = "[]") -> None:
        self._commit(state_json, meta_json, new_ids, admitted, outbox_json, True)

    def commit_unflushed(self, state_json: str, meta_json: str, new_ids: Sequence[str],
                         admitted: Iterable[str], outbox_json: str = "[]") -> None:
        """``commit`` staged, without its flush (``FlushesLater``; see ``session_file``).
        A commit that brings a checkpoint of the ids is flushed first: ``admitted.json``
        must never name an id whose commit a power loss could take back."""
        self._commit(state_json, meta_json, new_ids, admitted, outbox_json, False)

    @property
    def unflushed(self) -> bool:
        return self._session_file.unflushed

    def flush(self) -> None:
        self._session_file.flush()

    def _commit(self, state_json: str, meta_json: str, new_ids: Sequence[str],
                admitted: Iterable[str], outbox_json: str, flush: bool) -> None:
        if not self._dir_checked:  # once: the spawner or the mailbox usually made it
            directory = os.path.dirname(self.path)
            try:
                make_dirs(directory)  # and refuse a symlink in the actor directory's place
            except OSError as exc:
                raise StoreError(directory, f"cannot create the session: {exc.strerror or exc}") from exc
            self._dir_checked = True
        tail, committed = self._tail, len(self._tail)
        tail.extend(new_ids)
        pieces, added = self._tail_json, len(tail) > committed
        if added:
            pieces.append(json.dumps(tail[committed:])[1:-1])
        outbox = "" if outbox_json == "[]" else f',"outbox":{outbox_json}'
        data = f'{{"state":{state_json},"admitted":[{",".join(pieces)}],"meta":{meta_json}{outbox}'.encode()
        try:
            self._session_file.write(data, flush=flush)
        except BaseException:
            del tail[committed:]  # not committed: the caller passes them again
            if added:
                pieces.pop()
            raise
        if len(tail) >= CHECKPOINT_EVERY:
            self._session_file.flush()
            self._admitted_writer.write(json.dumps({"ids": list(admitted)}).encode())
            self._tail, self._tail_json = [], []

    def journal(self, entry_json: str) -> None:
        self._journal.append(entry_json)

    def clear_journal(self) -> None:
        self._journal.clear()

    def close(self) -> None:
        self._journal.close()


def session_meta(doc: Any) -> dict[str, Any]:
    """The ``meta`` object of a parsed session document ({} if it has none)."""
    meta = doc.get("meta") if isinstance(doc, dict) else None
    return meta if isinstance(meta, dict) else {}
