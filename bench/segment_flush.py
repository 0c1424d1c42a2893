"""What one durable record costs a segment writer at "machine", without actors around it.

``writer``: the tree's ``SegmentWriter`` (whatever segment format it writes), one
thread appending ``--n`` records of ``--size`` bytes (each ``append`` is a write and an
``fdatasync``): p10/p50/p90 per append; then ``--threads`` threads, each with its own
writer and segment (as senders to different actors are), appending ``--n`` each:
records/s. Also the block device's write requests per append (``/sys/block``), which
other programs on the disk add to.

``group``: the shape a group flush would have, on raw files written in place (zeros
written and flushed beforehand): ``--threads`` threads each write a record to its own
file and then either flush it (``fdatasync`` each) or hand it to one flusher thread that
takes every file written since its last round, writes their pages out with
``sync_file_range`` (``WRITE`` on all, then ``WAIT_BEFORE|WRITE|WAIT_AFTER`` on all)
and issues one ``fdatasync`` (one
device cache flush for them all); records/s for each, alternating.

Usage::

    .venv/bin/python bench/segment_flush.py writer [--n 400] [--size 220] [--threads 8] [--dir /tmp]
    .venv/bin/python bench/segment_flush.py group [--n 150] [--size 220] [--threads 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import tempfile
import threading
import time
from typing import Callable

import common

_SYNC_FILE_RANGE_WRITE = 2
_SYNC_FILE_RANGE_ALL = 1 | 2 | 4  # WAIT_BEFORE | WRITE | WAIT_AFTER


def _device_writes(path: str) -> int:
    """Write requests completed by the block device holding ``path`` (all programs)."""
    dev = os.stat(path).st_dev
    name = os.path.basename(os.path.realpath(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"))
    with open(f"/sys/block/{name}/stat" if os.path.exists(f"/sys/block/{name}") else
              f"/sys/class/block/{name}/stat") as handle:
        return int(handle.read().split()[4])


def writer(n: int, size: int, threads: int, root: str) -> None:
    from actors_runtime.backends.maildir import segment_format
    from actors_runtime.backends.maildir.segment_writer import SegmentWriter

    payload = b"x" * size
    home = tempfile.mkdtemp(prefix="segment-flush-", dir=root)
    try:
        one = SegmentWriter(os.path.join(home, "one"), "machine")
        one.append([payload])  # the segment exists from here on
        times = []
        before = _device_writes(home)
        for _ in range(n):
            start = time.perf_counter_ns()
            one.append([payload])
            times.append((time.perf_counter_ns() - start) / 1000)
        requests = (_device_writes(home) - before) / n
        one.close()
        print(f"format {segment_format.VERSION}, 1 thread, {n} appends of {size} B: "
              f"p10 {common.percentile(times, 10):.0f} p50 {common.percentile(times, 50):.0f} "
              f"p90 {common.percentile(times, 90):.0f} us; device writes per append {requests:.2f}")
        many = [SegmentWriter(os.path.join(home, f"many-{k}"), "machine") for k in range(threads)]
        for each in many:
            each.append([payload])

        def send(each: SegmentWriter) -> None:
            for _ in range(n):
                each.append([payload])

        rate = _timed(threads, n, lambda k: send(many[k]))
        for each in many:
            each.close()
        print(f"format {segment_format.VERSION}, {threads} threads x {n} appends, a writer each: "
              f"{rate:,.0f} records/s")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _timed(threads: int, n: int, body: Callable[[int], None]) -> float:
    workers = [threading.Thread(target=body, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return threads * n / (time.perf_counter() - start)


class _GroupFlusher:
    """One thread that flushes every file written since its last round with one cache flush."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
        self._cond = threading.Condition()
        self._dirty: dict[int, None] = {}
        self._round = 0  # rounds finished
        self._closed = False
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def flush(self, fd: int) -> None:
        """Return once ``fd``'s writes so far are on disk."""
        with self._cond:
            self._dirty[fd] = None
            target = self._round + 2 if self._busy else self._round + 1
            self._cond.notify_all()
            while self._round < target:
                self._cond.wait()

    _busy = False

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._closed:
                    self._cond.wait()
                if not self._dirty:
                    return
                fds, self._dirty = list(self._dirty), {}
                self._busy = True
            for flags in (_SYNC_FILE_RANGE_WRITE, _SYNC_FILE_RANGE_ALL):  # start all, then wait for all
                for fd in fds:
                    if self._libc.sync_file_range(fd, 0, 0, flags) != 0:
                        raise OSError(ctypes.get_errno(), "sync_file_range")
            os.fdatasync(fds[0])  # its cache flush covers the pages written above
            with self._cond:
                self._busy = False
                self._round += 1
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()


def group(n: int, size: int, threads: int, rounds: int, root: str) -> None:
    home = tempfile.mkdtemp(prefix="segment-group-", dir=root)
    record = b"r" * size
    try:
        for round_ in range(rounds):
            shapes = ["fdatasync each", "group flush"] if round_ % 2 == 0 else ["group flush", "fdatasync each"]
            for shape in shapes:
                fds = []
                for k in range(threads):  # zeros written and flushed beforehand: writes in place
                    fd = os.open(os.path.join(home, f"{shape[0]}{round_}-{k}"), os.O_RDWR | os.O_CREAT, 0o600)
                    os.pwrite(fd, bytes(n * size + 4096), 0)
                    os.fsync(fd)
                    fds.append(fd)
                flusher = _GroupFlusher() if shape == "group flush" else None

                def send(k: int) -> None:
                    for i in range(n):
                        os.pwrite(fds[k], record, i * size)
                        if flusher is None:
                            os.fdatasync(fds[k])
                        else:
                            flusher.flush(fds[k])

                rate = _timed(threads, n, send)
                if flusher is not None:
                    flusher.close()
                for fd in fds:
                    os.close(fd)
                print(f"round {round_}: {shape:15} {threads} threads x {n}: {rate:,.0f} records/s "
                      f"(load {' '.join(open('/proc/loadavg').read().split()[:3])})")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["writer", "group"])
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--size", type=int, default=220)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where files are made (default: the temp dir)")
    args = parser.parse_args()
    print(f"load {' '.join(open('/proc/loadavg').read().split()[:3])}")
    if args.mode == "writer":
        writer(args.n or 400, args.size, args.threads, args.dir)
    else:
        group(args.n or 150, args.size, args.threads, args.rounds, args.dir)


if __name__ == "__main__":
    main()
