"""Timeline of a worker's start, for ``spawn_phases.py``: imported in the fork server.

Imported by the fork server (``spawn_phases`` adds it to the server's preload list),
it installs an audit hook and an after-fork hook there; every worker forked from the
server then appends ``pid clock_ns cpu_ns event detail`` lines to the file named by
``SPAWN_PROBE_FILE`` (``time.perf_counter_ns``: CLOCK_MONOTONIC, comparable with
the parent's clock; ``cpu_ns``: the worker's CPU so far, all its threads,
``time.process_time_ns``: what the machine's load changes least). Events: the fork
itself and every audit event (imports, compiles, opens, renames, unpickling ...) but
a few frequent ones. Each line is one ``os.write`` (a few us):
the timeline is the probe's, slightly slower than an unprobed start.
"""

from __future__ import annotations

import os
import sys
import time

#: Environment variable naming the file the probe appends to.
PROBE_ENV = "SPAWN_PROBE_FILE"
#: Environment variable naming a directory: each worker also runs cProfile on its
#: main thread from the fork until it removes its fabric record (its stop), and
#: writes ``<pid>.prof`` there.
PROFILE_ENV = "SPAWN_PROBE_PROFILE"
#: Audit events not recorded (``sys.addaudithook``): too frequent to say anything.
SKIPPED = frozenset({"object.__getattr__", "object.__setattr__", "object.__delattr__", "sys._getframe",
                     "code.__new__", "marshal.loads", "builtins.id", "ctypes.dlsym", "os.putenv"})

_server_pid = os.getpid()
_fd = -1
_profiler = None


def _emit(event: str, detail: str) -> None:
    global _fd
    if _fd == -2:
        return
    if _fd < 0:
        path = os.environ.get(PROBE_ENV)
        if not path:
            return
        _fd = -2  # opening it is itself an "open" event: not again meanwhile
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(_fd, f"{os.getpid()} {time.perf_counter_ns()} {time.process_time_ns()} {event} {detail}\n".encode())


def _hook(event: str, args: tuple) -> None:
    if event in SKIPPED or os.getpid() == _server_pid:
        return
    if _profiler is not None and event == "os.remove" and "fabric" in str(args[0]):
        _dump_profile()
    detail = str(args[0])[:200] if args and not isinstance(args[0], bytes) else ""
    if event == "pickle.find_class":
        detail = f"{args[0]}.{args[1]}"
    _emit(event, detail.replace(" ", "_").replace("\n", "_")[:200])


def _dump_profile() -> None:
    global _profiler
    profiler, _profiler = _profiler, None
    profiler.disable()
    profiler.dump_stats(os.path.join(os.environ[PROFILE_ENV], f"{os.getpid()}.prof"))


def _after_fork() -> None:
    global _fd, _profiler
    _fd = -1  # the server's descriptor (if any) is not ours to share
    _emit("fork", "")
    if os.environ.get(PROFILE_ENV):
        import cProfile

        _profiler = cProfile.Profile()
        _profiler.enable()


if os.environ.get(PROBE_ENV):
    sys.addaudithook(_hook)
    os.register_at_fork(after_in_child=_after_fork)
