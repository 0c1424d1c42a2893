"""A model-based test of the mailbox: random deliver / drain / ack / crash sequences.

The model is the set of ids delivered and the set acked. Whatever the sequence, no
unacked message is ever lost (it is waiting or handed out), a handle never hands out
an acked message again, and after a crash ``recover`` hands back every unacked
message, plus at most some acked ones that an earlier unacked message held back
(the worker's AdmittedSet drops those).
"""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from runtime.mailbox import Delivered, Mailbox
from runtime.messages import AgentRef, InboxMessage

SENDER = AgentRef("model", None, "sys")


class MailboxMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="mailbox-model-")
        self.root = os.path.join(self.tmp, "mailbox")
        self.box = Mailbox(self.root, durability="process")
        self.counter = 0
        self.delivered: dict[str, object] = {}  # id -> body
        self.acked: set[str] = set()
        self.claimed: dict[str, Delivered] = {}  # what this activation holds, unacked

    # -- rules ----------------------------------------------------------------------------

    @rule(body=st.none() | st.integers() | st.text(max_size=5), copies=st.integers(1, 3))
    def deliver(self, body: object, copies: int) -> None:
        for _ in range(copies):
            msg_id = f"m{self.counter:04d}"
            self.counter += 1
            self.box.deliver(InboxMessage.create(SENDER, "task", body, msg_id=msg_id))
            self.delivered[msg_id] = body

    @rule(limit=st.none() | st.integers(1, 4))
    def drain(self, limit: int | None) -> None:
        batch = self.box.drain(limit)
        ids = [d.id for d in batch]
        assert len(ids) == len(set(ids))
        assert ids == sorted(ids), "drain must follow delivery order (ids are delivered in order)"
        for delivered in batch:
            assert delivered.id not in self.acked, f"acked {delivered.id} was handed out again"
            assert delivered.id not in self.claimed, f"{delivered.id} was claimed twice"
            assert delivered.message.body == self.delivered[delivered.id]
            self.claimed[delivered.id] = delivered

    @precondition(lambda self: bool(self.claimed))
    @rule(data=st.data(), by_id=st.booleans())
    def ack_some(self, data: st.DataObject, by_id: bool) -> None:
        chosen = data.draw(st.lists(st.sampled_from(sorted(self.claimed)), min_size=1, unique=True))
        for msg_id in chosen:
            delivered = self.claimed.pop(msg_id)
            removed = self.box.ack(msg_id) if by_id else self.box.ack_delivered(delivered)
            assert removed, f"ack of claimed {msg_id} removed nothing"
            self.acked.add(msg_id)

    @rule()
    def crash(self) -> None:
        # The activation dies: its handle and everything it knew are gone.
        unacked = set(self.delivered) - self.acked
        self.box.close()
        self.claimed = {}
        self.box = Mailbox(self.root, durability="process", create=False)
        recovered = self.box.recover()
        ids = [d.id for d in recovered]
        assert len(ids) == len(set(ids))
        assert ids == sorted(ids), "recover must follow delivery order"
        assert unacked <= set(ids), "an unacked message was lost"
        assert set(ids) - unacked <= self.acked
        for delivered in recovered:
            assert delivered.message.body == self.delivered[delivered.id]
            self.acked.discard(delivered.id)  # handed out again: to be acked again
            self.claimed[delivered.id] = delivered

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def no_message_is_lost_and_no_acked_message_remains(self) -> None:
        in_new = [m.id for m in self.box.peek("new")]
        in_cur = [m.id for m in self.box.peek("cur")]
        on_disk = in_new + in_cur
        assert len(on_disk) == len(set(on_disk)), "a message is in two places"
        assert set(on_disk) == set(self.delivered) - self.acked
        assert set(in_cur) == set(self.claimed)
        assert self.box.pending_count() == len(self.delivered) - len(self.acked)

    def teardown(self) -> None:
        self.box.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


MailboxMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMailboxModel = MailboxMachine.TestCase
