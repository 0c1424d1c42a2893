"""The session meta encoded entry by entry (``meta_json``) is the same document a plain
``json.dumps`` of the meta gives, through every change a timer table goes through."""

from __future__ import annotations

import json
from typing import Any

import pytest
from actors_runtime.messages import AgentRef, InboxMessage
from actors_runtime.worker.meta_json import TableJson, rest_json
from actors_runtime.worker.timers import TimerTable

SENDER = AgentRef(session_id="main", system_id="main")


def encoded(table: TimerTable, cache: TableJson, meta: dict[str, Any]) -> dict[str, Any]:
    table.write(meta)
    text = cache.meta_json(rest_json(meta), table.reminders, table.delayed)
    assert json.loads(text) == json.loads(json.dumps(meta)), "not the meta a plain encoding gives"
    return json.loads(text)


def test_every_change_of_the_table_reaches_the_text() -> None:
    table, cache = TimerTable(), TableJson()
    meta: dict[str, Any] = {"id": "a", "spec": {"limits": [1, 2.5]}}
    assert encoded(table, cache, meta) == {"id": "a", "spec": {"limits": [1, 2.5]}}
    for i in range(5):
        table.set(f"r{i}", 100.0 + i, 0.5 if i % 2 else None, {"n": i})
    table.committed()
    assert set(encoded(table, cache, meta)["reminders"]) == {"r0", "r1", "r2", "r3", "r4"}
    for delivered in table.due_ticks(101.2, "a", SENDER):  # r0 goes, r1 moves on
        table.settle(delivered.receipt)
    table.set("r2", 300.0, None, "replaced")
    assert table.forget("r4")
    doc = encoded(table, cache, meta)
    assert set(doc["reminders"]) == {"r1", "r2", "r3"}
    assert doc["reminders"]["r1"]["due"] == 101.5 and doc["reminders"]["r2"]["payload"] == "replaced"
    table.restore()  # back to the base: the set and the forget are undone, the settles stay
    doc = encoded(table, cache, meta)
    assert set(doc["reminders"]) == {"r1", "r2", "r3", "r4"} and doc["reminders"]["r2"]["payload"] == {"n": 2}


def test_delayed_messages_come_and_go_and_an_empty_table_leaves_no_keys() -> None:
    table, cache = TimerTable(), TableJson()
    meta: dict[str, Any] = {}
    messages = [InboxMessage.create(SENDER, "task", {"i": i}) for i in range(3)]
    for i, message in enumerate(messages):
        message.deliver_at = 50.0 + i
        table.keep(message)
    assert [e["message"]["id"] for e in encoded(table, cache, meta)["delayed"]] == [m.id for m in messages]
    for delivered in table.due_ticks(51.0, "a", SENDER):
        table.settle(delivered.receipt)
    assert [e["message"]["id"] for e in encoded(table, cache, meta)["delayed"]] == [messages[2].id]
    for delivered in table.due_ticks(52.0, "a", SENDER):
        table.settle(delivered.receipt)
    assert encoded(table, cache, meta) == {}


def test_an_entry_that_does_not_encode_raises_and_a_later_good_table_encodes() -> None:
    table, cache = TimerTable(), TableJson()
    table.set("ok", 1.0, None, None)
    table.set("bad", 2.0, None, {1, 2})
    with pytest.raises(TypeError):
        cache.meta_json("{}", table.reminders, table.delayed)
    table.forget("bad")
    assert json.loads(cache.meta_json('{"id":"a"}', table.reminders, table.delayed)) == {
        "id": "a", "reminders": {"ok": {"due": 1.0, "period": None, "payload": None}}}
