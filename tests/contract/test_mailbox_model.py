"""A model-based test of the mailbox contract: random deliver / drain / take / ack /
crash sequences, on every backend.

Several sender handles deliver into one mailbox (on maildir its segments are small,
so they seal and rotate often, and senders close or die without sealing); the
reader drains with random limits, takes replies out of turn, acks some of what it
holds, and crashes. The model is the set of ids delivered and the set acked.
Whatever the sequence, no unacked message is ever lost (it is waiting or handed
out), a handle never hands out an acked message again, each sender's messages come
out in the order sent, and after a crash ``recover`` hands back every unacked
message, plus at most some acked ones (maildir: ones that an earlier unacked message
of the same segment held back; the worker's AdmittedSet drops those).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid

from actors_runtime.backends import open_backend
from actors_runtime.backends.base import Delivered, Mailbox
from actors_runtime.backends.maildir import segment_writer
from actors_runtime.backends.memory import forget_all
from actors_runtime.messages import AgentRef, InboxMessage
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

SENDER = AgentRef("model", None, "sys")
SENDERS = 3


class MailboxMachine(RuleBasedStateMachine):
    backend_name = "maildir"
    url = ""  # the server, for "redis"

    def __init__(self) -> None:
        super().__init__()
        self.saved_limit = segment_writer.SEGMENT_LIMIT
        segment_writer.SEGMENT_LIMIT = 700  # a few messages per segment: rotation all the time
        self.tmp = tempfile.mkdtemp(prefix="mailbox-model-")
        name = {"maildir": "maildir", "memory": f"memory://{self.tmp}"}.get(self.backend_name, self.url)
        # A server outlives the examples: each one is a project of its own there.
        key = "model-00000000" if self.backend_name != "redis" else f"model-{uuid.uuid4().hex[:8]}"
        self.backend = open_backend(name, self.tmp, key, "process")
        self.backend.ensure_project(self.tmp)
        self.address = self.backend.address("sys", "actor")
        self.box = self._open(create=True)
        self.box.claim(0)
        self.senders = [self._open() for _ in range(SENDERS)]
        self.counter = 0
        self.delivered: dict[str, object] = {}  # id -> body
        self.acked: set[str] = set()
        self.claimed: dict[str, Delivered] = {}  # what this reader holds, unacked
        self.last_seen: dict[int, int] = {}  # sender -> last sequence handed out by this reader

    def _open(self, create: bool = False) -> Mailbox:
        return self.backend.mailbox(self.address, create=create)

    def _check_order(self, batch: list[Delivered]) -> None:
        for delivered in batch:
            if delivered.message.kind != "task":
                continue
            sender, seq = (int(part) for part in delivered.id[1:].split("-"))
            assert seq > self.last_seen.get(sender, -1), f"{delivered.id} came after a later one of its sender"
            self.last_seen[sender] = seq

    def _hand(self, batch: list[Delivered]) -> None:
        ids = [d.id for d in batch]
        assert len(ids) == len(set(ids))
        for delivered in batch:
            assert delivered.id not in self.acked, f"acked {delivered.id} was handed out again"
            assert delivered.id not in self.claimed, f"{delivered.id} was handed out twice"
            assert delivered.message.body == self.delivered[delivered.id]
            self.claimed[delivered.id] = delivered

    # -- rules ----------------------------------------------------------------------------

    @rule(sender=st.integers(0, SENDERS - 1), body=st.none() | st.integers() | st.text(max_size=5),
          copies=st.integers(1, 3), batched=st.booleans(), reply=st.booleans())
    def deliver(self, sender: int, body: object, copies: int, batched: bool, reply: bool) -> None:
        messages = []
        for _ in range(copies):
            msg_id = f"s{sender}-{self.counter:04d}"
            self.counter += 1
            kind = "reply" if reply else "task"
            messages.append(InboxMessage.create(SENDER, kind, body, msg_id=msg_id, correlation_id="q"))
            self.delivered[msg_id] = body
        if batched:
            self.senders[sender].deliver(messages)
        else:
            for message in messages:
                self.senders[sender].deliver([message])

    @rule(sender=st.integers(0, SENDERS - 1))
    def sender_closes(self, sender: int) -> None:
        self.senders[sender].close()  # maildir: seals its segment; it goes on with a new one
        self.senders[sender] = self._open()

    @rule(sender=st.integers(0, SENDERS - 1))
    def sender_dies(self, sender: int) -> None:
        handle = self.senders[sender]
        if self.backend_name == "maildir":
            # As a killed process would: its segment is left unsealed and unlocked.
            handle._sender._writer._abandon()  # type: ignore[attr-defined]
        self.senders[sender] = self._open()

    @rule(limit=st.none() | st.integers(1, 4))
    def drain(self, limit: int | None) -> None:
        batch = self.box.drain(limit)
        if limit is not None:
            assert len(batch) <= limit
        self._check_order(batch)
        self._hand(batch)

    @rule()
    def take_replies(self) -> None:
        taken = self.box.take({"reply"})
        assert all(d.message.kind == "reply" for d in taken)
        self._hand(taken)

    @precondition(lambda self: bool(self.claimed))
    @rule(data=st.data())
    def ack_some(self, data: st.DataObject) -> None:
        chosen = data.draw(st.lists(st.sampled_from(sorted(self.claimed)), min_size=1, unique=True))
        assert self.box.ack([self.claimed[msg_id] for msg_id in chosen]) == len(chosen)
        for msg_id in chosen:
            del self.claimed[msg_id]
            self.acked.add(msg_id)

    @precondition(lambda self: bool(self.claimed))
    @rule(data=st.data())
    def give_some_back(self, data: st.DataObject) -> None:
        held = list(self.claimed.values())
        start = data.draw(st.integers(0, len(held) - 1))
        back = held[start:]  # the newest ones, as a reader that took too many
        self.box.give_back(back)
        for delivered in back:
            del self.claimed[delivered.id]
        self.last_seen = {}  # they come again, earlier than what this reader saw

    @rule()
    def crash(self) -> None:
        # The reader dies: its handle and everything it knew are gone.
        unacked = set(self.delivered) - self.acked
        self.box.close()
        self.claimed = {}
        self.last_seen = {}
        self.box = self._open()
        self.box.claim(0)
        recovered = self.box.recover()
        ids = [d.id for d in recovered]
        assert len(ids) == len(set(ids))
        assert unacked <= set(ids), f"unacked messages were lost: {sorted(unacked - set(ids))}"
        assert set(ids) - unacked <= self.acked
        self._check_order(recovered)
        for delivered in recovered:
            self.acked.discard(delivered.id)  # handed out again: to be acked again
        self._hand(recovered)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def no_message_is_lost_and_no_acked_message_remains(self) -> None:
        in_new = [m.id for m in self.box.peek("new")]
        in_cur = [m.id for m in self.box.peek("cur")]
        held = in_new + in_cur
        assert len(held) == len(set(held)), "a message is in two places"
        assert set(held) == set(self.delivered) - self.acked
        assert set(in_cur) == set(self.claimed)
        assert self.box.pending_count() == len(self.delivered) - len(self.acked)
        # What another process sees: every unacked message, and at most acked ones
        # held back behind an unacked one (what a crash now would redeliver).
        observer = self.backend.view(self.address)
        try:
            seen = [m.id for m in observer.peek("new")] + [m.id for m in observer.peek("cur")]
            assert len(seen) == len(set(seen)) == observer.pending_count()
            unacked = set(self.delivered) - self.acked
            assert unacked <= set(seen), f"an observer misses {sorted(unacked - set(seen))}"
            assert set(seen) - unacked <= self.acked
        finally:
            observer.close()

    def teardown(self) -> None:
        for handle in (self.box, *self.senders):
            handle.close()
        self.backend.close()
        segment_writer.SEGMENT_LIMIT = self.saved_limit
        forget_all()
        shutil.rmtree(self.tmp, ignore_errors=True)


class MemoryMailboxMachine(MailboxMachine):
    backend_name = "memory"


_SETTINGS = settings(max_examples=150, stateful_step_count=40, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow])
MailboxMachine.TestCase.settings = _SETTINGS
MemoryMailboxMachine.TestCase.settings = _SETTINGS
TestMaildirMailboxModel = MailboxMachine.TestCase
TestMemoryMailboxModel = MemoryMailboxMachine.TestCase


class RedisMailboxMachine(MailboxMachine):
    backend_name = "redis"


def test_the_redis_mailbox_follows_the_model(redis_server):
    RedisMailboxMachine.url = redis_server.url
    run_state_machine_as_test(RedisMailboxMachine, settings=settings(
        max_examples=60, stateful_step_count=40, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow]))
