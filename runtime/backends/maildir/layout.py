"""Where the maildir backend keeps everything: every path in one place.

::

    <home>/projects/<project-key>/
        project.json                 workspace path, created_at
        index.json  .index.lock      roots + child_lookup {actor_id: system_id}  (cache)
        fabric/<actor_id>.json       leased records
        sessions/<system_id>/
            session.json  .system.lock  children.json (cache)  mailbox/ (the system's inbox)
            children/<actor_id>/
                session.json         {"state", "admitted", "meta"}: authority, the worker writes it
                admitted.json        the AdmittedSet as of the last checkpoint
                supervision.json     status and restarts, as the supervisor last wrote them
                mailbox/             log/*.seg  new/ cur/ corrupt/ dead/  .bell .config.json .inflight

Every component that comes from outside (a project key, a system id, an actor id)
goes through ``check_id`` before it becomes part of a path. Directories are made
0700 and files 0600 (``durable``), and a home another user owns is refused
(``check_home``).
"""

from __future__ import annotations

import json
import os

from ...errors import StoreError
from ...ids import check_id
from .durable import atomic_write, read_bytes

#: Default backpressure limit: messages waiting (delivered, not yet acked).
DEFAULT_MAX_PENDING = 50_000
#: Sub-directories of a mailbox holding Maildir files, by state.
MESSAGE_DIRS = ("new", "cur", "corrupt", "dead")
#: All sub-directories of a mailbox (``log/`` holds the senders' segments; made last).
SUBDIRS = (*MESSAGE_DIRS, "log")
#: Name of the doorbell FIFO inside a mailbox.
BELL = ".bell"
#: Name of the in-flight marker inside a mailbox (see ``inflight``).
INFLIGHT = ".inflight"
#: Per-mailbox settings written by the spawner, read by every sender.
MAILBOX_CONFIG = ".config.json"
#: The files of an actor's directory that commits rewrite.
SESSION, ADMITTED, SUPERVISION = "session.json", "admitted.json", "supervision.json"
#: The step journal of an actor's uncommitted turns (appended, emptied at commit).
JOURNAL = "journal.jsonl"


class MailboxPaths:
    """The directories and files of one mailbox."""

    __slots__ = ("root", "new", "cur", "corrupt", "dead", "log", "bell", "inflight", "config")

    def __init__(self, root: str) -> None:
        self.root = root
        self.new = os.path.join(root, "new")
        self.cur = os.path.join(root, "cur")
        self.corrupt = os.path.join(root, "corrupt")
        self.dead = os.path.join(root, "dead")
        self.log = os.path.join(root, "log")
        self.bell = os.path.join(root, BELL)
        self.inflight = os.path.join(root, INFLIGHT)
        self.config = os.path.join(root, MAILBOX_CONFIG)

    def sub(self, state: str) -> str:
        """The directory of Maildir files in ``state`` (one of ``MESSAGE_DIRS``)."""
        if state not in MESSAGE_DIRS:
            raise ValueError(f"{state!r} is not one of {MESSAGE_DIRS}")
        return os.path.join(self.root, state)


class ProjectLayout:
    """The paths of one project under ``home``."""

    def __init__(self, home: str, key: str) -> None:
        self.home = home
        self.key = check_id(key, "project key")
        self.root = os.path.join(home, "projects", self.key)
        self.fabric = os.path.join(self.root, "fabric")
        self.sessions = os.path.join(self.root, "sessions")
        self.index = os.path.join(self.root, "index.json")
        self.index_lock = os.path.join(self.root, ".index.lock")
        self.project_json = os.path.join(self.root, "project.json")

    def system_dir(self, system_id: str) -> str:
        return os.path.join(self.sessions, check_id(system_id, "system id"))

    def system_lock(self, system_id: str) -> str:
        return os.path.join(self.system_dir(system_id), ".system.lock")

    def children_dir(self, system_id: str) -> str:
        return os.path.join(self.system_dir(system_id), "children")

    def children_json(self, system_id: str) -> str:
        return os.path.join(self.system_dir(system_id), "children.json")

    def child_dir(self, system_id: str, actor_id: str) -> str:
        return os.path.join(self.children_dir(system_id), check_id(actor_id))

    def actor_file(self, system_id: str, actor_id: str | None, name: str) -> str:
        """A file of an actor's directory, or of the system's own when ``actor_id`` is None."""
        base = self.system_dir(system_id) if actor_id is None else self.child_dir(system_id, actor_id)
        return os.path.join(base, name)

    def mailbox(self, system_id: str, actor_id: str | None = None) -> str:
        """The mailbox of an actor, or of the system itself when ``actor_id`` is None."""
        return self.actor_file(system_id, actor_id, "mailbox")

    def record(self, actor_id: str) -> str:
        """An actor's lease record."""
        return os.path.join(self.fabric, f"{check_id(actor_id)}.json")


def check_home(home: str, uid: int | None = None) -> None:
    """Refuse a home that another user owns.

    Its files would be that user's to read and change (message bodies, states,
    specs), and files made here would be this user's in their directory. A home
    that does not exist yet is made by this process, so it is this user's.

    Args:
        home: the home directory.
        uid: whose it must be (default: this process's effective uid).

    Raises:
        StoreError: ``home`` belongs to another user, or cannot be looked at.
    """
    try:
        owner = os.stat(home).st_uid
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(home, f"cannot look at the home: {exc.strerror or exc}") from exc
    user = os.geteuid() if uid is None else uid
    if owner != user:
        raise StoreError(home, f"the home belongs to uid {owner}, not to this user (uid {user}); "
                               "use a home of your own (--home or ACTORS_HOME)")


def write_mailbox_config(root: str, max_pending: int, mailbox_format: str | None = None) -> None:
    """Record a mailbox's limit (and, if given, its format: "log" or "maildir") for
    senders in other processes, unless already in force; no file means the defaults."""
    doc = _read_config(root)
    if read_max_pending(root) == max_pending and mailbox_format in (None, doc.get("format", "log")):
        return
    doc["max_pending"] = max_pending
    if mailbox_format is not None:
        doc["format"] = mailbox_format
    atomic_write(os.path.join(root, MAILBOX_CONFIG), json.dumps(doc).encode(), "process")


def _read_config(root: str) -> dict[str, object]:
    try:
        doc = json.loads(read_bytes(os.path.join(root, MAILBOX_CONFIG)))
    except (OSError, ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}


def read_max_pending(root: str) -> int:
    """The limit a mailbox's spawner recorded (the default if none, or unreadable)."""
    try:
        value = json.loads(read_bytes(os.path.join(root, MAILBOX_CONFIG))).get("max_pending")
        usable = isinstance(value, int) and not isinstance(value, bool) and value > 0
        return int(value) if usable else DEFAULT_MAX_PENDING
    except (OSError, ValueError, AttributeError, RecursionError):
        return DEFAULT_MAX_PENDING
