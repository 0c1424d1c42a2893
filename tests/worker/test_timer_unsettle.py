"""A tick whose turn is left unhandled (a stop during its retry backoff) gets its
entry back: it has no other copy, so taking back its admission must take back what
admitting it settled in the timer table."""

from __future__ import annotations

from actors_runtime.messages import AgentRef, InboxKind, InboxMessage
from actors_runtime.worker.timers import TimerTable


def test_unsettling_a_one_shot_reminder_puts_it_back_in_the_table_and_its_base():
    table = TimerTable()
    table.set("nudge", 100.0, None, {"p": 1})
    table.committed()
    [tick] = table.due_ticks(100.0, "a", AgentRef("a"))
    table.settle(tick.receipt)
    assert table.reminders == {} and table.next_due is None
    table.unsettle(tick.id)
    assert table.reminders == {"nudge": {"due": 100.0, "period": None, "payload": {"p": 1}}}
    assert table.next_due == 100.0
    table.restore()  # back to the base: the entry is there too
    assert "nudge" in table.reminders


def test_unsettling_a_periodic_reminder_puts_back_its_due_time():
    table = TimerTable()
    table.set("beat", 100.0, 10.0, None)
    table.committed()
    [tick] = table.due_ticks(125.0, "a", AgentRef("a"))
    table.settle(tick.receipt)
    assert table.reminders["beat"]["due"] == 130.0
    table.unsettle(tick.id)
    assert table.reminders["beat"]["due"] == 100.0


def test_unsettling_a_fired_delayed_message_keeps_it_again_and_a_commit_ends_the_undo():
    table = TimerTable()
    message = InboxMessage.create(AgentRef("s"), InboxKind.TASK.value, {"x": 1}, deliver_at=50.0)
    table.keep(message)
    table.committed()
    [tick] = table.due_ticks(60.0, "a", AgentRef("a"))
    table.settle(tick.receipt)
    assert table.delayed == []
    table.unsettle(message.id)
    assert [e["message"]["id"] for e in table.delayed] == [message.id]
    table.settle(tick.receipt)
    table.committed()
    table.unsettle(message.id)  # committed: nothing to take back
    assert table.delayed == []


def test_unsettling_an_id_that_was_not_settled_changes_nothing():
    table = TimerTable()
    table.set("x", 5.0, None, None)
    table.unsettle("not-a-tick")
    assert set(table.reminders) == {"x"}
