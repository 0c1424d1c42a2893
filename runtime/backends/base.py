"""THE SEAM: what a backend provides, and the only storage interface the rest uses.

A backend stores one project's actors: their mailboxes, their leased records (the
fabric) and their sessions (state, admitted ids, supervision facts, indices). The
worker loop (``runtime.worker``), the parent (``runtime.parent``), the public API
(``actors``) and the CLI speak only to the protocols below; nothing outside
``runtime/backends/<name>/`` knows how a backend keeps its data.

::

    sender (any process)        Backend.deliver(address, ...)  -> Mailbox.deliver
    the actor's one worker      Mailbox.claim -> recover -> drain/take -> ack | bury
                                SessionStore.session(...).commit   (before the ack)
                                Fabric.publish / renew / withdraw
    anyone (ps, inbox, dead)    Backend.view(address): counts, peek, dead letters
                                Fabric.resolve / is_live / discover

To add a backend: implement ``Backend`` (and the objects it hands out), register
it in ``runtime.backends.open_backend``, and add it to the ``backend`` fixture of
``tests/contract``: the contract suite states every promise below as a test, and a
backend that breaks one fails a test named after the promise.

Errors: a backend translates its client's errors into ``StoreError`` (cannot read
or write), ``MailboxFull`` (backpressure) and ``ActorNotFound`` (no such mailbox)
inside the backend; nothing else escapes its methods.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Protocol, Sequence, runtime_checkable

from ..address import Address
from ..messages import InboxMessage
from ..records import AgentRecord, ChildEntry


@dataclass(frozen=True, slots=True)
class Delivered:
    """A message handed to the reader, and the backend's note of where it came from.

    ``receipt`` is opaque to everyone but the backend that made it (a segment and a
    position, a file, a stream entry id); hand the ``Delivered`` back to ``ack``,
    ``give_back`` or ``bury`` of the mailbox that handed it out.
    """

    message: InboxMessage
    receipt: Any

    @property
    def id(self) -> str:
        return self.message.id


@dataclass(frozen=True)
class DeadLetter:
    """A message taken out of circulation (see ``Mailbox.bury``), with why.

    Attributes:
        message: the message, as it was delivered.
        reason: why it was buried (e.g. "the worker died while handling it 3 times").
        attempts: deliveries that killed the worker.
        dead_at: unix time it was buried.
    """

    message: InboxMessage
    reason: str
    attempts: int
    dead_at: float


@dataclass(frozen=True)
class SessionDoc:
    """What an actor's last commit left: the state to restore and the ids to remember.

    Attributes:
        state: the JSON state as committed (``{}`` for a new actor).
        admitted: ids of messages already applied, oldest first (the AdmittedSet).
        meta: the actor's metadata (identity, spec without secrets, poison counts).
        outbox: what the last committed turns sent and may not have delivered yet
            (``{"to": address dict, "message": wire dict}``, in order): the next
            activation delivers them again, and receivers drop the repeats.
        journal: step records of turns that have not committed (see
            ``runtime.worker.journal``), oldest first.
    """

    state: dict[str, Any]
    admitted: list[str]
    meta: dict[str, Any]
    outbox: list[dict[str, Any]] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)


class InflightMarker(Protocol):
    """Names the message a worker is handling, so that after a crash the next
    activation knows which one was running (poison-message counting). Setting it
    sits on the hot path: it must not cost a round trip (maildir: a shared page)."""

    def read(self) -> str | None: ...
    def set(self, msg_id: str) -> None: ...
    def clear(self) -> None: ...
    def close(self) -> None: ...


class MailboxView(Protocol):
    """Read-only looks at one mailbox, from any process, plus the operator's verbs."""

    @property
    def endpoint(self) -> str:
        """Where the mailbox is, for people and lease records (a directory, a key)."""
        ...

    def counts(self) -> dict[str, int]:
        """Messages per state: ``new`` (waiting), ``cur`` (handed out, not acked),
        ``corrupt`` (unreadable input kept aside) and ``dead``."""
        ...

    def pending_count(self) -> int:
        """``new`` + ``cur``: delivered and not yet acked."""
        ...

    def has_waiting(self) -> bool:
        """Whether any message waits or was left unacked (cheaper than counting)."""
        ...

    def peek(self, state: str = "new") -> Iterator[InboxMessage]:
        """The readable messages in ``state`` ("new" or "cur"), oldest first, without
        handing any out."""
        ...

    def dead_letters(self) -> list[DeadLetter]:
        """Buried messages, oldest first."""
        ...

    def requeue(self, msg_id: str) -> bool:
        """Deliver the dead letter ``msg_id`` again (same id, at the back of the
        queue); returns whether there was one."""
        ...

    def forget_inflight(self) -> None:
        """Clear the in-flight marker: a worker killed on purpose is no evidence that
        the message it was handling is poison."""
        ...

    def inflight_id(self) -> str | None:
        """The id of the message the in-flight marker names (None when it is clear).

        Read-only. Once the actor's worker has exited this is the message it was
        handling when it died: the supervisor blames such a death on the message
        (poison) rather than on the actor."""
        ...

    def close(self) -> None: ...


class Mailbox(MailboxView, Protocol):
    """One actor's inbox: many senders, one reader (fenced by ``claim``).

    Delivery is at least once: an acked message is never handed out again by this
    handle, and one handed out and not acked when its reader dies is handed out
    again to the next reader (``recover``). Messages of one sender are handed out in
    the order sent.
    """

    @property
    def more_waiting(self) -> bool:
        """Whether the last ``drain`` stopped at its limit with messages left (or the
        last ``commit_and_ack`` of a ``CommitsAndAcks`` mailbox found messages waiting)."""
        ...

    # -- senders --

    def deliver(self, messages: Sequence[InboxMessage], *, block_timeout: float | None = 0.0) -> None:
        """Make ``messages`` durable in this mailbox, in order (one flush for all).

        Raises:
            MailboxFull: ``max_pending`` waiting and no room within ``block_timeout``
                (``None`` = wait for ever); nothing was delivered.
            InvalidSpec: a message cannot be delivered (bad id, too long).
            StoreError: the write failed.
        """
        ...

    def deliver_async(self, message: InboxMessage, *,
                      block_timeout: float | None = 0.0) -> "Future[str]":
        """Deliver without waiting for durability: once this returns the message is
        readable and survives any crash of this process; the ``Future`` gets its id
        once it is durable at the backend's durability (``StoreError`` if that
        failed). Sends in flight at once share their flushes (group commit)."""
        ...

    # -- the one reader --

    def claim(self, timeout: float) -> None:
        """Become the only reader, waiting up to ``timeout`` seconds for another to go.

        Raises:
            StoreError: another live reader holds the mailbox.
        """
        ...

    def recover(self) -> list[Delivered]:
        """Everything delivered and not acked, in order: what a reader that died left
        handed out, then what waits. The first read of an activation."""
        ...

    def drain(self, limit: int | None = None) -> list[Delivered]:
        """Hand out waiting messages (at most ``limit``), each sender's in order."""
        ...

    def take(self, kinds: Iterable[str]) -> list[Delivered]:
        """Hand out every waiting message of these kinds now and leave the rest
        queued (a handler waiting for its reply)."""
        ...

    def give_back(self, batch: Sequence[Delivered]) -> None:
        """Put handed-out, unacked messages back at the front of the queue, in order."""
        ...

    def ack(self, batch: Iterable[Delivered]) -> int:
        """Retire handed-out messages; returns how many were. Idempotent. Call it only
        after the effects of the messages are committed."""
        ...

    def bury(self, delivered: Delivered, reason: str, attempts: int) -> None:
        """Move a handed-out message to the dead letters (durably, then ack it)."""
        ...

    def has_new(self) -> bool:
        """Whether anything arrived that ``drain`` has not handed out yet."""
        ...

    def wait(self, timeout: float | None) -> bool:
        """Block until a message may have arrived since the last ``drain``/``take``,
        ``wake`` is called, or ``timeout`` passes; returns whether it was woken early.
        An idle reader costs no CPU here."""
        ...

    def wake(self) -> None:
        """End a ``wait`` of this handle, from any thread or a signal handler."""
        ...

    @property
    def inflight(self) -> InflightMarker:
        """The in-flight marker of this mailbox (the reader's)."""
        ...


@runtime_checkable
class CommitsAndAcks(Protocol):
    """Optional for a ``Mailbox``: commit its actor's session and ack a batch in one
    atomic step, which saves a round trip per batch where each verb costs one (Redis).

    The worker loop uses it when the reader's mailbox offers it, and otherwise
    commits, then acks (maildir, memory). Either way an ack never stands without the
    commit it follows: here both are written or neither is.
    """

    def commit_and_ack(self, session: "ActorSession", state_json: str, meta_json: str, new_ids: Sequence[str],
                       admitted: Iterable[str], outbox_json: str, batch: Sequence[Delivered]) -> int:
        """``session.commit(...)`` and ``ack(batch)``, atomically; returns how many
        messages were retired.

        It may also hand out the next batch (what ``drain`` would, up to the last
        drain's limit), kept for the next ``drain``, which then costs nothing; a reader
        that dies first leaves it to the next one's ``recover``, as any handed-out message.

        A session this mailbox cannot write in the same step (another backend's, or
        another actor's) is committed first and the batch acked after it, in two steps.

        Raises:
            StoreError: refused (this reader's claim was taken over: a stale epoch),
                and then nothing was committed and nothing acked; or the write failed,
                and then the previous commit stands with nothing acked (in two steps:
                or the commit stands and the batch comes back, its ids remembered).
        """
        ...


@runtime_checkable
class FlushesLater(Protocol):
    """Optional for an ``ActorSession``: write a commit now and make it durable later,
    so that one flush covers several commits (group commit at "machine"; see
    ``runtime.worker.group_commit``).

    A commit written this way survives a crash of the process (``load`` in the next
    activation finds it, and makes it durable before it returns), and a power loss may
    take it back to the last flushed commit. The caller acks nothing such a commit
    covers, and releases nothing it produced, before ``flush`` returned. A session
    without it flushes every commit (or, at "process", none).
    """

    def commit_unflushed(self, state_json: str, meta_json: str, new_ids: Sequence[str],
                         admitted: Iterable[str], outbox_json: str = "[]") -> None:
        """``ActorSession.commit``, made durable only by a later ``flush`` or ``commit``
        (or by itself, when the backend must: then ``unflushed`` says False).

        Raises:
            StoreError: the commit failed; the previous one stands.
        """
        ...

    @property
    def unflushed(self) -> bool:
        """Whether a commit written with ``commit_unflushed`` is not durable yet."""
        ...

    def flush(self) -> None:
        """Make the last commit durable (nothing to do if it is).

        Raises:
            StoreError: the flush failed (the commit is still there for this process).
        """
        ...


@runtime_checkable
class OpensSendersAhead(Protocol):
    """Optional for a ``Backend``: open what this process's first message to an
    address needs (maildir: its sender handle and segment) before there is one. The
    system calls it while a worker starts, so the caller's first message only writes.
    """

    def open_sender(self, address: Address) -> None:
        """Open it now.

        Raises:
            ActorNotFound: no mailbox there. StoreError: it cannot be opened.
        """
        ...


@runtime_checkable
class PollsBeforeSleeping(Protocol):
    """Optional for a ``Mailbox``: a ``wait`` that polls for a little while before it
    blocks, while messages have been coming at least that often (``runtime.spinning``).
    The worker asks for it for its own mailbox; a handle never asked never polls.
    Maildir polls its doorbell, Redis the reply to its bell's BLPOP; a backend whose
    wait is not woken by another process (memory) has no use for it.
    """

    def poll_before_sleeping(self, seconds: float) -> None:
        """From now on a ``wait`` on the calling thread polls for up to ``seconds``
        (0: never) before it blocks; waits on other threads do not poll."""
        ...


class Fabric(Protocol):
    """Leased records of live actors. Time comes from the backend's clock.

    A record whose lease has run out belongs to a dead process: ``resolve``,
    ``is_live`` and ``discover`` do not see it and ``gc`` removes it.
    """

    def publish(self, record: AgentRecord, lease: float) -> AgentRecord:
        """Write ``record`` with a lease of ``lease`` seconds from now; returns it."""
        ...

    def renew(self, record: AgentRecord, lease: float) -> bool:
        """Extend the lease of a record this process published; returns whether the
        record was still this process's to renew."""
        ...

    def read(self, actor_id: str) -> AgentRecord | None:
        """The record, live or not (``None`` if absent or unreadable)."""
        ...

    def resolve(self, actor_id: str) -> AgentRecord | None:
        """The live record, or ``None``."""
        ...

    def is_live(self, actor_id: str) -> bool:
        """Whether the actor has a live record (the senders' question; cheap)."""
        ...

    def discover(self, *, role: str | None = None, label: str | None = None) -> list[AgentRecord]:
        """Live records sorted by id, optionally filtered."""
        ...

    def withdraw(self, actor_id: str, pid: int | None = None) -> bool:
        """Remove the record (only one published by ``pid``, when given)."""
        ...

    def gc(self) -> list[str]:
        """Remove expired and unreadable records; returns their ids."""
        ...


class ActorSession(Protocol):
    """One actor's durable session, written only by its own worker."""

    def load(self) -> SessionDoc | None:
        """What the last commit left (``None``: the actor never committed).

        Raises:
            StoreError: the session exists but cannot be read.
        """
        ...

    def commit(self, state_json: str, meta_json: str, new_ids: Sequence[str],
               admitted: Iterable[str], outbox_json: str = "[]") -> None:
        """Replace state, metadata and outbox and remember ``new_ids`` as applied, atomically.

        ``admitted`` is the whole AdmittedSet after ``new_ids`` (oldest first), for
        backends that rewrite it now and then instead of at every commit.
        ``outbox_json`` is the JSON list of messages the committed turns sent and
        that are not known to be delivered yet (``SessionDoc.outbox``). After this
        returns, a ``load`` sees all of it, even after a crash (and at durability
        "machine" a power loss).

        Raises:
            StoreError: the commit failed; the previous one stands.
        """
        ...

    def journal(self, entry_json: str) -> None:
        """Append one step record (a JSON object) to the journal of uncommitted turns.

        Durable on return at the backend's durability: after a crash, ``load``
        returns it in ``SessionDoc.journal`` (a record torn by the crash is skipped).

        Raises:
            StoreError: it could not be written.
        """
        ...

    def clear_journal(self) -> None:
        """Drop every step record (their turns committed).

        Need not be durable: a record that comes back after a crash names a message
        already applied, and the worker ignores it.

        Raises:
            StoreError: the journal could not be emptied.
        """
        ...

    def close(self) -> None: ...


class SystemLock(Protocol):
    """Held by the one process that runs a given system of a project."""

    def release(self) -> None: ...


class SessionStore(Protocol):
    """Sessions, supervision facts and the indices of one project.

    Authority is each actor's session and supervision record; the index
    (``actor_id -> system_id``) and each system's list of children are caches that
    ``rebuild_index`` regenerates.
    """

    def lock_system(self, system_id: str) -> SystemLock:
        """Take the system's lock; released by ``release`` or the death of the process.

        Raises:
            StoreError: another process holds it.
        """
        ...

    def save_system(self, system_id: str, meta: dict[str, Any]) -> None:
        """Record who runs a system (pid, start time)."""
        ...

    def remove_system(self, system_id: str) -> None:
        """Delete a system and everything under it (a short-lived system's)."""
        ...

    def session(self, system_id: str, actor_id: str) -> ActorSession:
        """The session of one actor (its worker commits through it)."""
        ...

    def load_session(self, system_id: str, actor_id: str) -> SessionDoc | None:
        """Read an actor's last commit from any process (``None`` if none)."""
        ...

    def record_children(self, system_id: str, entries: Sequence[ChildEntry]) -> None:
        """Insert or replace supervision entries (their own record, then the caches)."""
        ...

    def list_children(self, system_id: str) -> list[ChildEntry]:
        """The children of one system, sorted by id."""
        ...

    def all_children(self) -> Iterator[tuple[str, ChildEntry]]:
        """``(system_id, entry)`` for every child of every system."""
        ...

    def resolve_child(self, actor_id: str) -> str | None:
        """The system that holds ``actor_id`` (one index lookup), or ``None``."""
        ...

    def child_entry(self, actor_id: str) -> tuple[str, ChildEntry] | None:
        """``(system_id, entry)`` of an indexed actor, or ``None``."""
        ...

    def locate(self, actor_id: str, prefer: Sequence[str] = ()) -> str | None:
        """The system holding an actor the index may not know (started by hand, or a
        stale index): systems in ``prefer`` first, then every system."""
        ...

    def systems(self) -> list[str]:
        """Every system of the project, sorted."""
        ...

    def rebuild_index(self) -> dict[str, Any]:
        """Regenerate the caches from the authorities; returns the index
        (``{"roots": [...], "child_lookup": {actor_id: system_id}}``)."""
        ...


class ActorLog(Protocol):
    """An actor's log lines kept by its backend, readable from any machine (the Redis
    backend's: its workers may run on other machines than the reader). Capped: the
    oldest lines go first. Lines are best effort: a worker killed can take its last
    few milliseconds of lines with it (its log file, where it keeps one, has them).

    Raises (every method):
        StoreError: the backend could not be read or written.
    """

    def append(self, lines: Sequence[str]) -> None:
        """Keep ``lines`` after those kept (one round trip; a retry after a lost reply
        may keep them twice)."""
        ...

    def last(self, count: int | None) -> tuple[list[str], str]:
        """The last ``count`` lines kept (None: all), oldest first, and a cursor that
        ``after`` continues from."""
        ...

    def after(self, cursor: str, timeout: float) -> tuple[list[str], str]:
        """The lines kept after ``cursor``, waiting up to ``timeout`` seconds for one;
        and the cursor after them. Lines trimmed meanwhile are skipped."""
        ...


class Backend(Protocol):
    """One project's storage on one backend (see the module docstring).

    Attributes:
        name: the backend's name ("maildir", "memory").
        location: where it keeps the project (a directory, a URL): the ``home`` of
            the project's addresses.
        project_key: the project.
        durability: "machine" or "process".
        fabric, store: see ``Fabric`` and ``SessionStore``.
    """

    @property
    def name(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def project_key(self) -> str: ...
    @property
    def durability(self) -> str: ...
    @property
    def fabric(self) -> Fabric: ...
    @property
    def store(self) -> SessionStore: ...

    def exists(self) -> bool:
        """Whether any actor of the project was ever stored here."""
        ...

    def ensure_project(self, workspace: str) -> None:
        """Create the project if it is new (``workspace``: the directory it is for).

        Raises:
            StoreError: the backend cannot be written.
        """
        ...

    def address(self, system_id: str, actor_id: str | None = None) -> Address:
        """The address of an actor (or, with no ``actor_id``, of a system's inbox)."""
        ...

    def mailbox(self, address: Address, *, create: bool = False,
                max_pending: int | None = None) -> Mailbox:
        """A handle on a mailbox that the caller owns (and closes): the reader's, or
        a sender's it keeps. ``create`` makes the mailbox if missing, and
        ``max_pending`` records its limit for every sender.

        Raises:
            ActorNotFound: no such mailbox and ``create`` is false.
        """
        ...

    def reachable(self, address: Address) -> None:
        """Check that a message could be delivered to ``address`` now (a mailbox is
        there), without delivering anything: for a message held until its turn commits.

        Raises:
            ActorNotFound: no such mailbox (never spawned, or another project).
        """
        ...

    def view(self, address: Address) -> MailboxView:
        """Looks at a mailbox (close it after use).

        Raises:
            ActorNotFound: no such mailbox.
        """
        ...

    def log_path(self, address: Address) -> str | None:
        """The file an actor's worker keeps its log in, on the machine it runs on
        (``None``: no file). The file and its directory need not exist yet;
        ``address`` must name an actor.

        Raises:
            ActorNotFound: the address belongs to another home or project.
        """
        ...

    def actor_log(self, address: Address) -> ActorLog | None:
        """An actor's log lines as the backend keeps them for readers on any machine
        (``None``: its log file, ``log_path``, is the only copy). ``address`` must name
        an actor.

        Raises:
            ActorNotFound: the address belongs to another home or project.
        """
        ...

    def deliver(self, address: Address, messages: Sequence[InboxMessage], *,
                block_timeout: float | None = 0.0) -> None:
        """Deliver to the mailbox at ``address`` through a cached sender handle
        (``Mailbox.deliver``'s guarantee); thread-safe.

        Raises:
            ActorNotFound: no mailbox there. MailboxFull, InvalidSpec, StoreError.
        """
        ...

    def deliver_async(self, address: Address, message: InboxMessage, *,
                      block_timeout: float | None = 0.0) -> "Future[str]":
        """``Mailbox.deliver_async`` through a cached sender handle."""
        ...

    def provision(self, address: Address, max_pending: int) -> bool:
        """Make an actor's mailbox ready (and record its limit) before its worker
        exists; returns whether nothing was stored for the actor before.

        Raises:
            StoreError: the backend cannot be written.
        """
        ...

    def prepare(self, system_id: str, count: int) -> None:
        """Build up to ``count`` actors' storage ahead of time, so that ``provision``
        costs little when a spawn needs it (the warm pool calls this)."""
        ...

    def close(self) -> None:
        """Flush what ``deliver_async`` has in flight, then release every resource."""
        ...
