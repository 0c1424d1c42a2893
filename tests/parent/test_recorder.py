"""The supervision recorder: coalesced, ordered, and on disk when a caller needs it."""

from __future__ import annotations

import threading

from actors_runtime.parent.recorder import Recorder
from conftest import wait_until


class Item:
    def __init__(self, key: str, value: int) -> None:
        self.key, self.value = key, value


class Sink:
    """Collects what the recorder writes; ``gate`` holds a write until released."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def write(self, items: list[Item]) -> None:
        batch = [(item.key, item.value) for item in items]  # the facts as the write reads them
        self.entered.set()
        self.gate.wait(10)
        self.batches.append(batch)


def test_requests_made_together_are_written_once_with_the_latest_facts() -> None:
    sink = Sink()
    recorder = Recorder(sink.write, "test-recorder", delay=0.2, max_delay=5.0)
    try:
        a = Item("a", 1)
        recorder.record("a", a)
        recorder.record("b", Item("b", 1))
        a.value = 2  # the facts as they are when written, not when requested
        recorder.record("a", a)
        wait_until(lambda: sink.batches, timeout=10)
        assert sink.batches == [[("a", 2), ("b", 1)]]
    finally:
        recorder.close()


def test_a_waiting_record_is_on_disk_when_the_call_returns_without_the_delay() -> None:
    sink = Sink()
    recorder = Recorder(sink.write, "test-recorder", delay=60.0, max_delay=60.0)
    try:
        recorder.record("a", Item("a", 1))
        recorder.record("b", Item("b", 7), wait=True)
        assert sink.batches == [[("a", 1), ("b", 7)]]
    finally:
        recorder.close()


def test_flush_writes_what_is_pending_and_close_writes_the_rest() -> None:
    sink = Sink()
    recorder = Recorder(sink.write, "test-recorder", delay=60.0, max_delay=60.0)
    recorder.record("a", Item("a", 1))
    recorder.flush()
    assert sink.batches == [[("a", 1)]]
    recorder.record("b", Item("b", 2))
    recorder.close(10)
    assert sink.batches == [[("a", 1)], [("b", 2)]]
    recorder.record("c", Item("c", 3))  # closed: written by the caller at once
    assert sink.batches[-1] == [("c", 3)]


def test_a_request_made_while_a_write_runs_is_written_after_it() -> None:
    sink = Sink()
    recorder = Recorder(sink.write, "test-recorder", delay=0.0, max_delay=0.0)
    try:
        sink.gate.clear()
        a = Item("a", 1)
        recorder.record("a", a)
        assert sink.entered.wait(10)
        a.value = 2
        waiter = threading.Thread(target=recorder.record, args=("a", a, True))
        waiter.start()
        sink.gate.set()
        waiter.join(10)
        assert not waiter.is_alive()
        assert sink.batches == [[("a", 1)], [("a", 2)]]
    finally:
        recorder.close()


def test_requests_that_keep_coming_are_written_within_max_delay() -> None:
    sink = Sink()
    recorder = Recorder(sink.write, "test-recorder", delay=0.05, max_delay=0.2)
    stop = threading.Event()

    def keep_requesting() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            recorder.record("a", Item("a", n))
            stop.wait(0.01)  # pace: a request every 10 ms, below the quiet delay

    requester = threading.Thread(target=keep_requesting)
    requester.start()
    try:
        wait_until(lambda: sink.batches, timeout=10)
    finally:
        stop.set()
        requester.join(10)
        recorder.close()
