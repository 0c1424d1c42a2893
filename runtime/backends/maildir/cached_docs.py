"""The index caches as this process last wrote them, recognised without parsing.

``index.json`` and ``children.json`` grow with every actor (some 250 bytes each), and
a system reads them on every lookup (``resolve``, ``entry``) and before every record
(``record`` rewrites them). Parsing and checking 10,000 entries costs tens of
milliseconds each time. So each write through ``CachedDocs`` stamps the document with
a fresh random token under ``GEN_KEY`` (which sorts before the other keys, and the
documents are written with sorted keys, so the token is the file's first bytes) and
keeps the document it wrote. A read opens the file and compares its first bytes with
the token held: equal, the held document is what the file holds and is returned;
anything else (another process wrote since, an older version without tokens, a torn
or damaged file, none at all) and the caller reads and checks the whole file as
before. A token names one write, so a match can never return a stale copy.

The documents handed out are shared: callers must not change them (copy, then
``write``). A write that fails forgets the held copy. Readers of other versions see
one more key and ignore it.

``children.json`` is rewritten whole on every record (a status change), and encoding
10,000 entries holds the GIL for some 30 ms: ``write_children`` keeps each entry's
encoding and encodes again only the entries that are new objects (a record replaces
an entry, never changes one in place), then joins them: the same bytes as ``dump``.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from typing import Any

from ...durability import Durability
from .json_docs import write_bytes, write_json

#: The key of the write token; "_" sorts before the lowercase keys of both caches.
GEN_KEY = "_gen"
#: How the file of a held document starts: '{"_gen":"' + 32 hex digits + '"'.
_PREFIX = b'{"' + GEN_KEY.encode() + b'":"'
_TOKEN_LEN = 32


class CachedDocs:
    """The last document this process wrote to each cache path (see the module
    docstring). Thread-safe; writers of one path are serialised by the caller (the
    index lock)."""

    def __init__(self, durability: Durability) -> None:
        self.durability = durability
        self._held: dict[str, tuple[bytes, Any]] = {}
        #: path -> actor id -> (the entry encoded, b'"id":{...}'), for ``write_children``.
        self._encoded: dict[str, dict[str, tuple[Any, bytes]]] = {}
        self._lock = threading.Lock()

    def get(self, path: str) -> Any | None:
        """The document held for ``path`` if the file still holds it, else None."""
        with self._lock:
            held = self._held.get(path)
        if held is None:
            return None
        token, doc = held
        want = _PREFIX + token + b'"'
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            head = os.read(fd, len(want))
        except OSError:
            return None
        finally:
            os.close(fd)
        return doc if head == want else None

    def write(self, path: str, doc: dict[str, Any]) -> None:
        """Write ``doc`` (stamped with a new token) and hold it.

        Raises:
            StoreError: as ``write_json``; nothing is held for ``path`` then.
        """
        token = uuid.uuid4().hex.encode()
        assert len(token) == _TOKEN_LEN
        stamped = {GEN_KEY: token.decode(), **{k: v for k, v in doc.items() if k != GEN_KEY}}
        with self._lock:
            self._held.pop(path, None)
        write_json(path, stamped, self.durability)
        with self._lock:
            self._held[path] = (token, stamped)

    def write_children(self, path: str, children: dict[str, Any]) -> None:
        """``write(path, {"version": 1, "children": children})``, encoding again only
        the entries not written before as the same objects (see the module docstring).

        Raises:
            StoreError: as ``write_json``; nothing is held for ``path`` then.
        """
        token = uuid.uuid4().hex
        with self._lock:
            self._held.pop(path, None)
            before = self._encoded.pop(path, {})
        encoded: dict[str, tuple[Any, bytes]] = {}
        for actor_id, entry in children.items():
            known = before.get(actor_id)
            if known is not None and known[0] is entry:
                encoded[actor_id] = known
            else:
                encoded[actor_id] = (entry, json.dumps(actor_id).encode() + b":" + _dump(entry))
        body = b",".join(encoded[actor_id][1] for actor_id in sorted(encoded))
        data = b'{"' + GEN_KEY.encode() + b'":"' + token.encode() + b'","children":{' + body + b'},"version":1}'
        write_bytes(path, data, self.durability)
        with self._lock:
            self._held[path] = (token.encode(), {GEN_KEY: token, "children": children, "version": 1})
            self._encoded[path] = encoded

    def forget(self, path: str) -> None:
        with self._lock:
            self._held.pop(path, None)
            self._encoded.pop(path, None)


def _dump(doc: Any) -> bytes:
    """As ``json_docs.dump``: compact, keys sorted."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
