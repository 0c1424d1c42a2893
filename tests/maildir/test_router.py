"""The maildir Router shared by threads: concurrent deliveries, and a cache that
never closes a handle a delivery is still using."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from actors_runtime.address import Address
from actors_runtime.backends.maildir import router as router_module
from actors_runtime.backends.maildir import segment_format, segment_writer
from actors_runtime.backends.maildir.layout import ProjectLayout, write_mailbox_config
from actors_runtime.backends.maildir.mailbox import MaildirMailbox
from actors_runtime.backends.maildir.router import Router
from actors_runtime.errors import MailboxFull, StoreError
from actors_runtime.messages import AgentRef, InboxMessage
from conftest import HeldFlush, mailbox_dir

HOME, PROJECT = "home", "proj"


def _address(tmp_path, name: str) -> Address:
    address = Address(str(tmp_path / HOME), PROJECT, "main", name)
    MaildirMailbox(mailbox_dir(address)).close()  # as the spawner leaves it
    return address


def _router(tmp_path, durability) -> Router:
    """A router for the project the test's addresses are in."""
    return Router(ProjectLayout(str(tmp_path / HOME), PROJECT), durability)


def _deliver(router: Router, address: Address, message: InboxMessage) -> None:
    """Deliver one message to ``address`` through the router's cached handle."""
    router.on(address, lambda box: box.deliver([message]))


def _deliver_to_segment(router: Router, address: Address, message: InboxMessage) -> str:
    """Deliver one message as ``_deliver`` does; returns the segment it went to."""
    return router.on(address, lambda box: box._sender.deliver([message], 0.0))


def _message(body):
    return InboxMessage.create(AgentRef("tester"), "task", body)


def _open_files_under(root) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(root)):
            found.append(target)
    return found


def _run_in_threads(send, count: int) -> None:
    """Run ``send(0)`` ... ``send(count - 1)`` at once, each on its own thread."""
    threads = [threading.Thread(target=send, args=(t,)) for t in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def _bodies(address: Address) -> list:
    box = MaildirMailbox(mailbox_dir(address), create=False)
    try:
        return [d.message.body for d in box.drain()]
    finally:
        box.close()


@pytest.mark.parametrize("durability", ["process", "machine"])
def test_threads_sharing_a_router_over_more_mailboxes_than_it_caches_lose_nothing(
        tmp_path, monkeypatch, durability):
    monkeypatch.setattr(router_module, "ROUTER_CACHE_SIZE", 2)  # evictions all the time
    addresses = [_address(tmp_path, f"a{n}") for n in range(5)]
    router = _router(tmp_path, durability)
    errors = []

    def send(thread: int) -> None:
        try:
            for n in range(40):
                _deliver(router, addresses[(thread + n) % len(addresses)], _message([thread, n]))
        except Exception as exc:  # surfaced below: a thread's error would vanish
            errors.append(exc)

    _run_in_threads(send, 6)
    router.close()
    assert errors == []
    assert _open_files_under(tmp_path) == []  # every handle, evicted or not, was closed
    got = {address.actor_id: _bodies(address) for address in addresses}
    assert sorted(body for bodies in got.values() for body in bodies) == sorted(
        [t, n] for t in range(6) for n in range(40))
    for bodies in got.values():  # each thread's messages to one mailbox, in the order sent
        for thread in range(6):
            sent = [n for t, n in bodies if t == thread]
            assert sent == sorted(sent)


def test_a_handle_pushed_out_of_the_cache_mid_delivery_is_closed_when_that_delivery_ends(
        tmp_path, monkeypatch):
    monkeypatch.setattr(router_module, "ROUTER_CACHE_SIZE", 1)
    slow, other = _address(tmp_path, "slow"), _address(tmp_path, "other")
    router = _router(tmp_path, "machine")
    _deliver(router, slow, _message("opened"))
    held = HeldFlush()
    monkeypatch.setattr(segment_writer, "sync_data", held)
    outcome = {}
    sender = threading.Thread(
        target=lambda: outcome.update(path=_deliver_to_segment(router, slow, _message("held"))))
    sender.start()
    assert held.entered.wait(30)
    _deliver(router, other, _message("evicts the slow one"))  # not held up by the other flush
    assert any("/slow/" in path for path in _open_files_under(tmp_path))  # still in use: open
    held.release.set()
    sender.join(30)
    assert outcome["path"].endswith(segment_format.SUFFIX)
    assert not any("/slow/" in path for path in _open_files_under(tmp_path))  # closed after
    router.close()
    assert _bodies(slow) == ["opened", "held"]


def test_threads_sharing_a_handle_cannot_overshoot_max_pending(tmp_path, monkeypatch):
    address = _address(tmp_path, "small")
    write_mailbox_config(mailbox_dir(address), 2)
    router = _router(tmp_path, "machine")
    _deliver(router, address, _message("m0"))
    held = HeldFlush()
    monkeypatch.setattr(segment_writer, "sync_data", held)
    first = threading.Thread(target=_deliver, args=(router, address, _message("m1")))
    first.start()
    assert held.entered.wait(30)  # m1 took the last room and is being flushed
    with pytest.raises(MailboxFull):
        _deliver(router, address, _message("m2"))
    held.release.set()
    first.join(30)
    router.close()
    assert _bodies(address) == ["m0", "m1"]


def test_a_child_forked_while_other_threads_hold_the_send_locks_can_still_send(tmp_path):
    address = _address(tmp_path, "target")
    router = _router(tmp_path, "process")
    _deliver(router, address, _message("parent"))
    box = router.on(address, lambda handle: handle)  # the cached handle sends go through
    holding, release = threading.Event(), threading.Event()

    def hold_every_lock() -> None:  # as threads in the middle of sends would
        with router._lock, box._sender._lock, box._sender._writer._lock, segment_writer._writers_lock:
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold_every_lock)
    holder.start()
    assert holding.wait(30)
    try:
        pid = os.fork()
        if pid == 0:  # the child: only this thread lives on
            signal.alarm(10)  # a hung child ends instead of hanging the test
            try:
                _deliver(router, address, _message("child"))
                os._exit(0)
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        holder.join(30)
    router.close()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert sorted(_bodies(address)) == ["child", "parent"]


@pytest.mark.parametrize("seed", [0, 5])
def test_a_background_flush_resolves_a_send_only_after_its_own_segment_is_on_disk(
        tmp_path, monkeypatch, seed):
    """Threads mix flushed and background-flushed sends to three mailboxes, with
    segments rotating every few messages, a router caching one handle, and every
    eleventh flush failing. A send whose Future succeeds must be covered by a
    successful fdatasync of its own segment, at a size that included its record."""
    monkeypatch.setattr(segment_writer, "SEGMENT_LIMIT", 600)
    monkeypatch.setattr(router_module, "ROUTER_CACHE_SIZE", 1)
    addresses = [_address(tmp_path, name) for name in ("a", "b", "c")]
    real_sync, guard, flushed_to, calls = segment_writer.sync_data, threading.Lock(), {}, [seed]

    def recording_sync(fd):
        path, size = os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd).st_size
        with guard:
            calls[0] += 1
            if calls[0] % 11 == 0:
                raise OSError(5, "Input/output error")
        real_sync(fd)
        with guard:
            flushed_to[path] = max(flushed_to.get(path, 0), size)

    monkeypatch.setattr(segment_writer, "sync_data", recording_sync)
    router, flusher = _router(tmp_path, "machine"), segment_writer.Flusher("test-flusher")
    sent = []  # (future, segment path, where its record ends)

    def send(thread: int) -> None:
        for n in range(120):
            address = addresses[(n + thread) % 3]
            try:
                message = _message([thread, n])
                if (n + thread) % 4 == 0:
                    _deliver(router, address, message)
                    continue
                written = router.on(address,
                                    lambda box, message=message: box._sender.deliver_unflushed(message, 0.0))
                size = written._end  # where its own record ends
            except StoreError:  # a flushed send that met a failing flush
                continue
            sent.append((flusher.submit(written, n), written.path, size))

    _run_in_threads(send, 4)
    flusher.close()
    router.close()
    succeeded = [(path, size) for future, path, size in sent if future.exception() is None]
    assert len(succeeded) < len(sent)  # some flushes failed, as arranged
    assert [(path, size) for path, size in succeeded if flushed_to.get(path, 0) < size] == []
    assert _open_files_under(tmp_path) == []
