"""Where a message goes: ``Address``, and the key that names a project.

An address names a mailbox without asking any process: the backend's location
(``home``: a directory, a URL), the project, the system and the actor's id. It holds
no path: each backend decides where an address's mailbox lives. Mailboxes exist
whether or not their actor runs, which is what makes them durable; the fabric is
only asked who is alive.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from .errors import InvalidSpec
from .ids import check_id
from .messages import AgentRef

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_SLUG_MAX = 48


def fnv1a_64(data: bytes) -> int:
    """FNV-1a, 64 bits."""
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return value


def project_key(project_dir: str | os.PathLike[str]) -> str:
    """The key of a project directory: folded path slug + ``-`` + 8 hex digits.

    The slug makes the key readable; the hash (FNV-1a 64 of the absolute path, low
    32 bits) keeps ``/a/b`` and ``/a-b``, which fold to the same slug, apart.
    """
    path = os.path.abspath(os.fspath(project_dir))
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")[-_SLUG_MAX:].strip("-") or "root"
    # A non-UTF-8 file name arrives with surrogate escapes, which plain .encode() refuses.
    return f"{slug}-{fnv1a_64(path.encode('utf-8', 'surrogateescape')) & 0xFFFFFFFF:08x}"


@dataclass(frozen=True)
class Address:
    """A mailbox: an actor's (``actor_id`` set) or a system's inbox (``actor_id`` None)."""

    home: str
    project_key: str
    system_id: str
    actor_id: str | None = None

    @property
    def name(self) -> str:
        return self.actor_id if self.actor_id is not None else self.system_id

    @property
    def system_inbox(self) -> "Address":
        """The inbox of the system that owns this address."""
        return Address(self.home, self.project_key, self.system_id, None)

    def agent_ref(self, role: str | None = None) -> AgentRef:
        """The ``from`` field for messages sent by the owner of this address."""
        return AgentRef(session_id=self.name, role=role, system_id=self.system_id)

    def reply_address(self, sender: AgentRef) -> "Address":
        """Where a reply to a message from ``sender`` goes (same home and project)."""
        system_id = sender.system_id or self.system_id
        actor_id = None if sender.session_id == system_id else sender.session_id
        return Address(self.home, self.project_key, system_id, actor_id)

    def to_dict(self) -> dict[str, Any]:
        return {"home": self.home, "project": self.project_key, "system": self.system_id,
                "name": self.actor_id}

    @classmethod
    def from_dict(cls, doc: Any) -> "Address":
        """Rebuild from :meth:`to_dict`, validating every component.

        Raises:
            InvalidSpec: missing or unsafe components.
        """
        if not isinstance(doc, dict):
            raise InvalidSpec("address", f"{doc!r} is not an object")
        try:
            home, project, system = doc["home"], doc["project"], doc["system"]
        except KeyError as exc:
            raise InvalidSpec("address", f"missing {exc.args[0]!r}") from None
        name = doc.get("name")
        if not isinstance(home, str) or not home:
            raise InvalidSpec("address", "home must be a non-empty string")
        return cls(home, check_id(project, "project key"), check_id(system, "system id"),
                   None if name is None else check_id(name))
