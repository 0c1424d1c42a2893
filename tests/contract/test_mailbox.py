"""The mailbox contract: what every backend's ``Mailbox`` promises (runtime/backends/base.py).

Each test is one promise and runs once per backend (the ``backend`` fixture). Two
handles on one mailbox stand for two processes: a sender and the reader. A reader
that "dies" is a handle closed without acking what it held.
"""

from __future__ import annotations

import threading

import pytest
from actors_runtime.errors import ActorNotFound, InvalidSpec, MailboxFull, StoreError
from actors_runtime.messages import AgentRef, InboxMessage

SENDER = AgentRef("sender", None, "main")


def _message(body: object = None, *, kind: str = "task", msg_id: str | None = None,
             correlation_id: str | None = None) -> InboxMessage:
    return InboxMessage.create(SENDER, kind, body, msg_id=msg_id, correlation_id=correlation_id)


@pytest.fixture
def address(backend):
    address = backend.address("main", "actor")
    backend.mailbox(address, create=True).close()
    return address


@pytest.fixture
def reader(backend, address):
    box = backend.mailbox(address)
    box.claim(0)
    yield box
    box.close()


@pytest.fixture
def sender(backend, address):
    box = backend.mailbox(address)
    yield box
    box.close()


def _ids(batch) -> list[str]:
    return [d.id for d in batch]


def test_a_delivered_message_is_handed_out_to_the_reader_with_its_id_kind_and_body(sender, reader):
    message = _message({"n": 1, "nested": [1, "two", None]})
    sender.deliver([message])
    [delivered] = reader.drain()
    assert delivered.id == message.id, "the id changed on the way"
    assert delivered.message.kind == "task" and delivered.message.body == {"n": 1, "nested": [1, "two", None]}
    assert delivered.message.sender.session_id == "sender"


def test_messages_of_one_sender_come_out_in_the_order_sent(sender, reader):
    sent = [_message(i) for i in range(50)]
    for message in sent[:20]:
        sender.deliver([message])
    sender.deliver(sent[20:])  # a batch keeps its order too
    assert _ids(reader.drain()) == [m.id for m in sent], "one sender's order was not kept"


def test_messages_of_several_senders_each_keep_their_order(backend, address, reader):
    senders = [backend.mailbox(address) for _ in range(3)]
    sent: dict[int, list[str]] = {i: [] for i in range(3)}
    try:
        for round_ in range(10):
            for i, box in enumerate(senders):
                message = _message({"sender": i, "seq": round_})
                box.deliver([message])
                sent[i].append(message.id)
    finally:
        for box in senders:
            box.close()
    received = reader.drain()
    assert sorted(_ids(received)) == sorted(i for ids in sent.values() for i in ids)
    for i in range(3):
        mine = [d.id for d in received if d.message.body["sender"] == i]
        assert mine == sent[i], f"sender {i}'s messages came out of order"


def test_drain_hands_out_at_most_its_limit_and_says_that_more_are_waiting(sender, reader):
    sender.deliver([_message(i) for i in range(5)])
    first = reader.drain(2)
    assert len(first) == 2 and reader.more_waiting, "a limited drain must say that more wait"
    rest = reader.drain(10)
    assert [d.message.body for d in first + rest] == [0, 1, 2, 3, 4]
    assert not reader.more_waiting
    assert reader.drain() == []


def test_an_acked_message_is_never_handed_out_again_by_that_reader_or_the_next(backend, address, sender, reader):
    sender.deliver([_message(i) for i in range(3)])
    batch = reader.drain()
    assert reader.ack(batch) == 3
    assert reader.drain() == []
    reader.close()
    successor = backend.mailbox(address)
    successor.claim(0)
    try:
        assert successor.recover() == [], "acked messages came back to the next reader"
    finally:
        successor.close()


def test_ack_returns_how_many_it_retired_and_a_second_ack_retires_nothing(sender, reader):
    sender.deliver([_message(i) for i in range(4)])
    batch = reader.drain()
    assert reader.ack(batch[:3]) == 3
    assert reader.ack(batch[:3]) == 0, "ack must be idempotent"
    assert reader.ack(batch[3:]) == 1


def test_a_reader_that_dies_before_acking_leaves_every_message_to_the_next_reader_with_the_same_ids(
        backend, address, sender, reader):
    sent = [_message({"i": i}) for i in range(6)]
    sender.deliver(sent)
    handed = reader.drain(4)
    reader.ack(handed[:1])
    reader.close()  # dies holding three handed-out messages, two more waiting
    successor = backend.mailbox(address)
    successor.claim(0)
    try:
        recovered = successor.recover()
        assert _ids(recovered) == [m.id for m in sent[1:]], \
            "a crashed reader's unacked messages must come back, in order, with their ids (the dedupe hand-off)"
        assert [d.message.body for d in recovered] == [{"i": i} for i in range(1, 6)]
    finally:
        successor.close()


def test_take_hands_out_only_the_kinds_asked_for_and_leaves_the_rest_queued_in_order(sender, reader):
    sender.deliver([_message(0), _message(kind="reply", correlation_id="q1"), _message(1),
                    _message(kind="reply", correlation_id="q2"), _message(2)])
    taken = reader.take({"reply"})
    assert [d.message.correlation_id for d in taken] == ["q1", "q2"]
    assert [d.message.body for d in reader.drain()] == [0, 1, 2], "take disturbed the other messages"


def test_give_back_puts_messages_back_at_the_front_of_the_queue_in_order(sender, reader):
    sender.deliver([_message(i) for i in range(5)])
    batch = reader.drain()
    reader.give_back(batch[2:])
    assert reader.more_waiting
    again = reader.drain()
    assert [d.message.body for d in again] == [2, 3, 4], "given-back messages must come first, in order"
    assert reader.ack(batch[:2] + again) == 5


def test_bury_moves_a_message_to_the_dead_letters_with_its_reason_and_attempts_and_acks_it(
        backend, address, sender, reader):
    message = _message({"poison": True})
    sender.deliver([message, _message("fine")])
    poison, fine = reader.drain()
    reader.bury(poison, "the worker died while handling it 3 times", 3)
    [letter] = reader.dead_letters()
    assert letter.message.id == message.id and letter.message.body == {"poison": True}
    assert letter.reason == "the worker died while handling it 3 times" and letter.attempts == 3
    assert letter.dead_at > 0
    reader.ack([fine])
    reader.close()
    successor = backend.mailbox(address)
    successor.claim(0)
    try:
        assert successor.recover() == [], "a buried message must not come back"
        assert successor.counts()["dead"] == 1
    finally:
        successor.close()


def test_requeue_delivers_a_dead_letter_again_with_the_same_id_and_unknown_ids_are_refused(
        backend, address, sender, reader):
    message = _message("again")
    sender.deliver([message])
    [delivered] = reader.drain()
    reader.bury(delivered, "test", 1)
    view = backend.view(address)
    try:
        assert view.requeue("no-such-id") is False
        assert view.requeue(message.id) is True
        assert view.dead_letters() == []
    finally:
        view.close()
    [back] = reader.drain()
    assert back.id == message.id and back.message.body == "again"


def test_deliver_refuses_with_mailbox_full_above_max_pending_and_delivers_nothing(backend):
    address = backend.address("main", "small")
    backend.mailbox(address, create=True, max_pending=3).close()
    backend.deliver(address, [_message(i) for i in range(3)])
    with pytest.raises(MailboxFull):
        backend.deliver(address, [_message("one too many")])
    with pytest.raises(MailboxFull):
        backend.deliver(address, [_message(i) for i in range(5)])  # larger than the limit itself
    view = backend.view(address)
    try:
        assert view.counts()["new"] == 3, "a refused delivery must deliver nothing"
    finally:
        view.close()


def test_a_blocked_deliver_goes_through_once_the_reader_makes_room(backend):
    address = backend.address("main", "blocked")
    backend.mailbox(address, create=True, max_pending=2).close()
    backend.deliver(address, [_message(0), _message(1)])
    reader = backend.mailbox(address)
    reader.claim(0)
    done = threading.Event()
    errors: list[BaseException] = []

    def send() -> None:
        try:
            backend.deliver(address, [_message(2)], block_timeout=30)
        except BaseException as exc:  # reported below
            errors.append(exc)
        done.set()

    thread = threading.Thread(target=send)
    thread.start()
    try:
        assert not done.wait(0.2), "a deliver into a full mailbox must wait for room"
        reader.ack(reader.drain(1))
        assert done.wait(30), "the blocked deliver did not go through once there was room"
        assert errors == []
        assert [d.message.body for d in reader.drain()] == [1, 2]
    finally:
        thread.join(30)
        reader.close()


def test_a_second_reader_cannot_claim_the_mailbox_until_the_first_lets_go(backend, address, reader):
    other = backend.mailbox(address)
    try:
        with pytest.raises(StoreError):
            other.claim(0)
        reader.close()
        other.claim(5)  # now it is free
    finally:
        other.close()


def test_wait_returns_true_once_a_message_is_delivered_and_false_when_nothing_comes(sender, reader):
    assert reader.drain() == []
    assert reader.wait(0.05) is False, "wait reported a message that never came"
    arrived = threading.Event()

    def wait_for_it() -> None:
        if reader.wait(30):
            arrived.set()

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    sender.deliver([_message("wake up")])
    assert arrived.wait(30), "a delivery did not end the reader's wait"
    thread.join(30)
    assert [d.message.body for d in reader.drain()] == ["wake up"]


def test_wake_ends_a_wait_from_another_thread(reader):
    reader.drain()
    woke = threading.Event()

    def wait_for_it() -> None:
        reader.wait(30)
        woke.set()

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    reader.wake()
    assert woke.wait(30), "wake did not end the wait"
    thread.join(30)


def test_a_ring_that_came_before_the_wait_is_not_lost(sender, reader):
    reader.drain()
    sender.deliver([_message("early")])  # delivered after the drain, before the wait
    assert reader.wait(30) is True


def test_the_backend_delivers_by_address_and_refuses_an_address_with_no_mailbox(backend, address, reader):
    message = _message("by address")
    backend.deliver(address, [message])
    assert _ids(reader.drain()) == [message.id]
    with pytest.raises(ActorNotFound):
        backend.deliver(backend.address("main", "nobody"), [_message()])


def test_deliver_async_hands_the_message_to_the_reader_and_its_future_gets_the_id(backend, address, reader):
    message = _message("async")
    future = backend.deliver_async(address, message)
    assert future.result(30) == message.id
    assert _ids(reader.drain()) == [message.id]


def test_a_message_with_an_invalid_id_or_a_body_that_is_not_json_is_refused_and_nothing_is_sent(
        sender, reader):
    with pytest.raises(InvalidSpec):
        sender.deliver([_message("ok"), _message(msg_id="../escape")])
    with pytest.raises((InvalidSpec, TypeError, ValueError)):
        sender.deliver([_message({"not json": object()})])
    assert reader.drain() == [], "a refused batch must deliver none of its messages"


def test_a_message_cannot_be_changed_by_its_sender_once_delivered(sender, reader):
    body = {"list": [1, 2]}
    sender.deliver([_message(body)])
    body["list"].append(3)
    [delivered] = reader.drain()
    assert delivered.message.body == {"list": [1, 2]}


def test_counts_and_peek_tell_waiting_from_handed_out_messages(backend, address, sender, reader):
    sender.deliver([_message(i) for i in range(4)])
    handed = reader.drain(1)
    view = backend.view(address)
    try:
        counts = view.counts()
        assert (counts["new"], counts["cur"], counts["dead"]) == (3, 1, 0)
        assert view.pending_count() == 4
        assert [m.body for m in view.peek("new")] == [1, 2, 3]
        assert [m.body for m in view.peek("cur")] == [0]
        assert view.has_waiting()
        reader.ack(handed + reader.drain())
        assert view.pending_count() == 0 and not view.has_waiting()
    finally:
        view.close()


def test_has_new_says_whether_anything_waits_that_was_not_handed_out(sender, reader):
    assert not reader.has_new()
    sender.deliver([_message()])
    assert reader.has_new()
    reader.drain()
    assert not reader.has_new()


def test_the_in_flight_marker_outlives_the_reader_until_it_is_forgotten(backend, address, reader):
    reader.inflight.set("msg-running")
    reader.close()  # the worker dies while handling it
    successor = backend.mailbox(address)
    successor.claim(0)
    try:
        assert successor.inflight.read() == "msg-running", "the next activation must learn what was running"
        view = backend.view(address)
        view.forget_inflight()  # a deliberate kill
        view.close()
        assert successor.inflight.read() is None
    finally:
        successor.close()


def test_a_mailbox_names_an_endpoint(backend, address):
    view = backend.view(address)
    try:
        assert isinstance(view.endpoint, str) and view.endpoint
    finally:
        view.close()


def test_a_view_of_a_mailbox_that_does_not_exist_is_actor_not_found(backend):
    with pytest.raises(ActorNotFound):
        backend.view(backend.address("main", "never-made"))


def test_an_address_of_another_project_is_never_delivered_here(backend, address, reader):
    from actors_runtime.address import Address

    foreign = Address(address.home + "-elsewhere", address.project_key, "main", "actor")
    other_project = Address(address.home, "other-00000000", "main", "actor")
    for stranger in (foreign, other_project):
        with pytest.raises(ActorNotFound):
            backend.deliver(stranger, [_message("lost?")])
        with pytest.raises(ActorNotFound):
            backend.view(stranger)
    assert reader.drain() == [], "a message for another project landed in this one"


def test_an_ack_of_a_given_back_message_retires_nothing_until_it_is_handed_out_again(
        backend, address, sender, reader):
    message = _message("back")
    sender.deliver([message])
    stale = reader.drain()
    reader.give_back(stale)
    assert reader.ack(stale) == 0, "a queued message must not be acked by a stale receipt"
    reader.close()
    successor = backend.mailbox(address)
    successor.claim(0)
    try:
        assert _ids(successor.recover()) == [message.id], "a given-back message was lost"
    finally:
        successor.close()


def test_an_empty_delivery_delivers_nothing_and_later_messages_still_arrive(sender, reader):
    sender.deliver([])
    later = _message("later")
    sender.deliver([later])
    assert _ids(reader.drain()) == [later.id]
