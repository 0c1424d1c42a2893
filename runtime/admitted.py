"""``AdmittedSet``: the bounded memory of message ids already applied.

Persisted with the state in ``session.json`` at every commit, so a message redelivered
after a crash between commit and ack is recognised and skipped. Bounded with FIFO
eviction: the oldest id is forgotten first. 4,096 ids comfortably cover a batch plus
the redeliveries a crash can cause; an id older than that has long been acked.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Iterator

#: Default capacity (ids remembered).
DEFAULT_CAPACITY = 4096


class AdmittedSet:
    """An insertion-ordered set of message ids with a capacity."""

    __slots__ = ("_ids", "capacity")

    def __init__(self, capacity: int = DEFAULT_CAPACITY, ids: Iterable[str] = ()) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, not {capacity}")
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        for msg_id in ids:
            self.insert(msg_id)

    def insert(self, msg_id: str) -> bool:
        """Admit ``msg_id``. Returns ``False`` if it was already admitted (a duplicate)."""
        if msg_id in self._ids:
            return False
        self._ids[msg_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def discard(self, msg_id: str) -> None:
        """Forget ``msg_id`` (used when a batch is rolled back before its commit)."""
        self._ids.pop(msg_id, None)

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        """Oldest first."""
        return iter(self._ids)

    def to_list(self) -> list[str]:
        """Oldest first, as stored in ``session.json``."""
        return list(self._ids)

    @classmethod
    def from_list(cls, ids: Iterable[str], capacity: int = DEFAULT_CAPACITY) -> "AdmittedSet":
        """Rebuild from :meth:`to_list` output (keeps the newest ``capacity`` ids)."""
        return cls(capacity, ids)
