"""Every key the Redis backend uses, built in one place from validated ids.

::

    actors:<project>:project              hash   workspace, created_at
    actors:<project>:systems              set    system ids
    actors:<project>:index                hash   actor id -> system id (a cache)
    actors:<project>:fabric               set    ids with a lease record
    actors:<project>:rec:<actor>          string the AgentRecord JSON (+ host, token), PX lease
    actors:<project>:s:<system>:meta      string who runs the system (JSON)
    actors:<project>:s:<system>:lock      string the system lock's token, PX (renewed)
    actors:<project>:s:<system>:children  hash   actor id -> ChildEntry JSON (the authority)
    actors:<project>:s:<system>:sessions  set    actors that committed
    actors:<project>:s:<system>:a:<actor>:session   hash state, meta, outbox
    ...:a:<actor>:admitted / :journal     lists
    ...:a:<actor>:log                     stream its workers' log lines (capped: see ``logs``)
    ...:a:<actor>:stream                  the mailbox (consumer group "readers")
    ...:a:<actor>:cfg / :epoch / :reader / :bell / :dead / :corrupt / :queued / :inflight
    actors:<project>:s:<system>:inbox:... the system's own mailbox, same suffixes

Everything of a system shares the prefix ``actors:<project>:s:<system>:``, so
removing a system is one SCAN of that prefix. Ids are checked by ``check_id``
(letters, digits, ``.``, ``_``, ``-``): none can contain ``:`` or a glob character.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...ids import check_id

#: The first component of every key.
PREFIX = "actors"
#: The consumer group every mailbox stream has.
GROUP = "readers"


@dataclass(frozen=True)
class MailboxKeys:
    """The keys of one mailbox."""

    base: str

    @property
    def stream(self) -> str:
        return f"{self.base}:stream"

    @property
    def cfg(self) -> str:
        return f"{self.base}:cfg"

    @property
    def epoch(self) -> str:
        return f"{self.base}:epoch"

    @property
    def reader(self) -> str:
        return f"{self.base}:reader"

    @property
    def bell(self) -> str:
        return f"{self.base}:bell"

    @property
    def dead(self) -> str:
        return f"{self.base}:dead"

    @property
    def queued(self) -> str:
        """Ids the reader holds back from the stream's pending entries (given back,
        or left by ``take``): waiting, for views, though pending in the group."""
        return f"{self.base}:queued"

    @property
    def corrupt(self) -> str:
        return f"{self.base}:corrupt"

    @property
    def inflight(self) -> str:
        return f"{self.base}:inflight"


@dataclass(frozen=True)
class SessionKeys:
    """The keys of one actor's session."""

    base: str

    @property
    def session(self) -> str:
        return f"{self.base}:session"

    @property
    def admitted(self) -> str:
        return f"{self.base}:admitted"

    @property
    def journal(self) -> str:
        return f"{self.base}:journal"


class Keys:
    """Builds the keys of one project (see the module docstring)."""

    def __init__(self, project_key: str) -> None:
        self.root = f"{PREFIX}:{check_id(project_key, 'project key')}"
        self.project = f"{self.root}:project"
        self.systems = f"{self.root}:systems"
        self.index = f"{self.root}:index"
        self.fabric = f"{self.root}:fabric"

    def record(self, actor_id: str) -> str:
        return f"{self.root}:rec:{check_id(actor_id)}"

    def system(self, system_id: str) -> str:
        """The prefix every key of the system starts with (ends with ``:``)."""
        return f"{self.root}:s:{check_id(system_id, 'system id')}:"

    def system_meta(self, system_id: str) -> str:
        return self.system(system_id) + "meta"

    def system_lock(self, system_id: str) -> str:
        return self.system(system_id) + "lock"

    def children(self, system_id: str) -> str:
        return self.system(system_id) + "children"

    def sessions(self, system_id: str) -> str:
        return self.system(system_id) + "sessions"

    def actor(self, system_id: str, actor_id: str) -> str:
        return self.system(system_id) + "a:" + check_id(actor_id)

    def session(self, system_id: str, actor_id: str) -> SessionKeys:
        return SessionKeys(self.actor(system_id, actor_id))

    def log(self, system_id: str, actor_id: str) -> str:
        """The stream of an actor's log lines (trimmed: a log, never a mailbox)."""
        return self.actor(system_id, actor_id) + ":log"

    def mailbox(self, system_id: str, actor_id: str | None) -> MailboxKeys:
        if actor_id is None:
            return MailboxKeys(self.system(system_id) + "inbox")
        return MailboxKeys(self.actor(system_id, actor_id))
