"""multiprocessing.Pipe baselines: the same workloads without durability.

Every row of ``run.py`` runs its baseline in the same run, so the ratio is measured
under the same load. Children are started with the ``fork`` start method (cheap,
and the floor the issue names); the bench parent forks them only while it holds no
lock a child could need (the children touch nothing but their pipe).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from typing import Any, Iterator

_ctx = multiprocessing.get_context("fork")


# -- children -------------------------------------------------------------------------


def _counter_child(conn: Any) -> None:
    """Count messages until ``None``; answer the count."""
    count = 0
    recv = conn.recv
    while True:
        message = recv()
        if message is None:
            conn.send(count)
            return
        count += 1


def _echo_child(conn: Any) -> None:
    """Answer every message with itself until ``None``; say ``ready`` first."""
    conn.send("ready")
    while True:
        message = conn.recv()
        if message is None:
            return
        conn.send(message)


def _polled_recv(conn: Any, poll_s: float) -> Any:
    """``conn.recv()``, polling for up to ``poll_s`` seconds before it blocks."""
    until = time.perf_counter() + poll_s
    while not conn.poll(0) and time.perf_counter() < until:
        pass
    return conn.recv()


def _polling_echo_child(conn: Any, poll_s: float) -> None:
    """``_echo_child`` that polls for the next message before it sleeps."""
    conn.send("ready")
    while True:
        message = _polled_recv(conn, poll_s)
        if message is None:
            return
        conn.send(message)


def _idle_child(conn: Any) -> None:
    """Block on the pipe until EOF (an idle consumer)."""
    try:
        conn.recv()
    except EOFError:
        pass


def _resume_child(conn: Any) -> None:
    """Count ``n`` messages, timestamping the first and the last one handled."""
    first = last = None
    count = 0
    while True:
        message = conn.recv()
        if message is None:
            conn.send({"count": count, "first_at": first, "last_at": last})
            return
        last = time.time()
        if first is None:
            first = last
        count += 1


@contextlib.contextmanager
def _child(target: Any, context: Any = None, args: tuple[Any, ...] = ()) -> Iterator[tuple[Any, Any]]:
    ctx = context or _ctx
    parent, child = ctx.Pipe(duplex=True)
    process = ctx.Process(target=target, args=(child, *args), daemon=True)
    process.start()
    child.close()
    try:
        yield process, parent
    finally:
        parent.close()
        process.join(2.0)
        if process.exitcode is None:
            process.kill()
            process.join(2.0)


# -- workloads ------------------------------------------------------------------------


def tell(n: int) -> float:
    """msgs/s sending ``n`` small dicts to a counting child, until it counted them all."""
    with _child(_counter_child) as (_, conn):
        start = time.perf_counter()
        send = conn.send
        for i in range(n):
            send({"n": 1, "i": i})
        send(None)
        count = conn.recv()
        elapsed = time.perf_counter() - start
    assert count == n, (count, n)
    return n / elapsed


def ask(n: int, warmup: int = 50, poll_us: float = 0) -> list[float]:
    """Round-trip times (µs) of ``n`` request/response pairs over one Pipe; with
    ``poll_us``, both sides poll for that long before they sleep (as the actors'
    ask does, ``runtime.spinning``), which shows the floor of that way of waiting."""
    times = []
    poll_s = poll_us / 1e6
    with _child(_polling_echo_child if poll_s else _echo_child, args=(poll_s,) if poll_s else ()) as (_, conn):
        conn.recv()  # ready
        for i in range(warmup + n):
            start = time.perf_counter_ns()
            conn.send({"q": "count?", "i": i})
            _polled_recv(conn, poll_s)
            if i >= warmup:
                times.append((time.perf_counter_ns() - start) / 1000.0)
        conn.send(None)
    return times


def spawn(k: int, method: str = "fork") -> list[float]:
    """ms from ``Process.start()`` to the child's first message over a Pipe, ``k`` times."""
    ctx = multiprocessing.get_context(method)
    times = []
    for _ in range(k):
        start = time.perf_counter()
        with _child(_echo_child, ctx) as (_, conn):
            conn.recv()
            times.append((time.perf_counter() - start) * 1000.0)
            conn.send(None)
    return times


def fanout(children: int, per_child: int) -> float:
    """Aggregate msgs/s sending round-robin to ``children`` counting children."""
    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(_child(_counter_child))[1] for _ in range(children)]
        start = time.perf_counter()
        for i in range(per_child):
            for conn in conns:
                conn.send({"n": 1, "i": i})
        for conn in conns:
            conn.send(None)
        counts = [conn.recv() for conn in conns]
        elapsed = time.perf_counter() - start
    assert counts == [per_child] * children, counts
    return children * per_child / elapsed


@contextlib.contextmanager
def idle_children(count: int) -> Iterator[list[int]]:
    """``count`` children blocked on a Pipe; yields their pids."""
    with contextlib.ExitStack() as stack:
        children = [stack.enter_context(_child(_idle_child)) for _ in range(count)]
        try:
            yield [process.pid for process, _ in children]
        finally:
            # Each later child inherited the parent ends of the earlier pipes, so EOF
            # alone would not reach them: tell each to exit.
            for _, conn in children:
                try:
                    conn.send(None)
                except OSError:
                    pass


def resume(n: int) -> dict[str, float]:
    """Start a consumer and push ``n`` queued messages to it: seconds to the first and
    to the last one handled, counted from ``Process.start()`` (the non-durable
    equivalent of re-spawning an actor with ``n`` messages waiting)."""
    messages = [{"seq": i} for i in range(n)]
    start = time.time()
    with _child(_resume_child) as (_, conn):
        for message in messages:
            conn.send(message)
        conn.send(None)
        result = conn.recv()
    assert result["count"] == n, result
    return {"first_s": result["first_at"] - start, "all_s": result["last_at"] - start}
