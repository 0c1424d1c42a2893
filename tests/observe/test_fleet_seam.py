"""The fleet's rows are read through the backend seam only: the same on every backend."""

from __future__ import annotations

import json

import pytest
from actors_runtime.admitted import AdmittedSet
from actors_runtime.messages import AgentRef, InboxKind, InboxMessage
from actors_runtime.observe import COUNTERS_KEY, TurnCounters
from actors_runtime.records import STOPPED, ChildEntry

from actors.cli.exposition import metrics_text
from actors.cli.fleet import detail, snapshot


def test_rows_and_details_come_from_the_store_the_mailbox_and_the_fabric_of_any_backend(open_project_backend,
                                                                                        clock):
    backend = open_project_backend()
    address = backend.address("main", "ledger")
    backend.provision(address, 100)
    backend.store.record_children("main", [ChildEntry(id="ledger", actor_class="m:Ledger", status=STOPPED,
                                                      restarts=2)])
    counters = TurnCounters()
    for seconds in (0.001, 0.002, 0.2):
        counters.observe(seconds)
    counters.failed = 1
    failure = {"time": clock(), "msg_id": "m-1", "type": "builtins.KeyError", "message": "'x'",
               "traceback": "Traceback (most recent call last):\nKeyError: 'x'\n"}
    meta = {"id": "ledger", "failures": [failure], "paused": {"msg_id": "m-1", "reason": "poison", "since": 1.0}}
    meta_json = TurnCounters.splice(json.dumps(meta, separators=(",", ":")), counters.to_json())
    backend.store.session("main", "ledger").commit('{"n":1}', meta_json, [], AdmittedSet(8))
    sent = InboxMessage.create(AgentRef(session_id="test"), InboxKind.TASK.value, {"n": 2})
    poison = InboxMessage.create(AgentRef(session_id="test"), InboxKind.TASK.value, {"n": 3})
    backend.deliver(address, [poison, sent])
    mailbox = backend.mailbox(address)
    try:
        mailbox.claim(5.0)
        first, *rest = mailbox.drain()
        mailbox.bury(first, "the worker died while handling it 3 times", 3)
        mailbox.give_back(rest)
    finally:
        mailbox.close()

    [snap] = snapshot(backend, now=clock() + 5)
    row = snap.row
    assert (row["id"], row["class"], row["status"], row["restarts"]) == ("ledger", "m:Ledger", "paused", 2)  # the session says paused
    assert (row["handled"], row["failed"], row["pending"], row["dead"]) == (3, 1, 1, 1)
    assert row["last_failure"] == {k: failure[k] for k in ("time", "msg_id", "type", "message")}
    assert row["paused"]["reason"] == "poison" and COUNTERS_KEY not in row
    found = detail(backend, "ledger", now=clock() + 5)
    assert found["failures"] == [failure] and [m["id"] for m in found["waiting"]] == [sent.id]
    assert [(d["id"], d["attempts"]) for d in found["dead_letters"]] == [(poison.id, 3)]
    assert found["counters"]["buckets"][:3] == [0, 1, 1]

    pytest.importorskip("prometheus_client")
    text = metrics_text([snap])[0].decode()
    assert 'actors_messages_handled_total{actor="ledger"' in text
    assert 'actors_handler_seconds_bucket{actor="ledger",host=' in text and 'le="0.001"' in text
    assert 'actors_mailbox_pending{actor="ledger"' in text and 'actors_active{host=' in text
