"""Fork-server workers that do not re-run the program's main script.

Under the "forkserver" start method, multiprocessing starts every child by sending
it *preparation data* (its ``sys.path``, ``sys.argv``, working directory, and where
the main script is), and the child runs the main script again, as ``__mp_main__``,
before it does anything else: that is how a class defined in the script is found
there. A worker whose actor class lives in an importable module has no use for it,
and the re-run is most of a cold spawn's cost (the script is compiled and every
module it imports is imported, ``actors``' whole parent side included).

So a worker whose actor class is not in ``__main__`` is started as a
``ScriptlessProcess``: the same fork-server child, with the same preparation data
less its two main-script keys (``init_main_from_path``, ``init_main_from_name``),
which is what multiprocessing itself sends for an interactive session that has no
main script. It gets the parent's ``sys.path``, ``sys.argv`` and working directory
as before; its ``sys.modules["__main__"]`` is the fork server's (no ``__file__``).

What it means for a program (docs/guide.md, "Where actor classes live"):

- The script's top level does not run in such a worker: a script without the
  ``if __name__ == "__main__":`` guard works, as under "fork", as long as its actor
  classes live in modules; side effects of the script's top level (settings,
  registrations) are not made there, exactly as in any other program that imports
  the actor's module.
- A payload type defined in the script arrives there as its tagged dict, as it does
  in any process that has not imported the script.
- A worker whose class IS in ``__main__`` is started the ordinary way (the script is
  re-run, and the unguarded-main check of ``main_guard`` still applies).

Failure modes: ``ScriptlessPopen._launch`` repeats the standard library's
``popen_forkserver.Popen._launch`` (the same in CPython 3.11 and in CPython's main
branch as of this writing) with the preparation data filtered; a test compares it
with the running Python's, so a change there is seen before it matters.
``supported()`` says whether the running Python has the pieces it uses, and the
launcher falls back to the ordinary start where not.
"""

from __future__ import annotations

import io
import os
from multiprocessing import context, forkserver, reduction, spawn, util
from typing import Any

try:
    from multiprocessing import popen_forkserver
except ImportError:  # no fd passing on this platform: no fork server at all
    popen_forkserver = None  # type: ignore[assignment]

#: ``util.close_fds`` (the standard library's; not in its type stubs).
_close_fds: Any = getattr(util, "close_fds", None)

#: Preparation data keys that make a child run the main script (``spawn.prepare``).
MAIN_KEYS = ("init_main_from_path", "init_main_from_name")
#: Module names under which a class of the main script is written (``_codec.type_tag``).
MAIN_MODULES = ("__main__", "__mp_main__")


def needs_main(actor_class: str) -> bool:
    """Whether a worker for ``actor_class`` (``module:QualName``) must run the main
    script to find its class."""
    return actor_class.partition(":")[0] in MAIN_MODULES


def supported() -> bool:
    """Whether this Python has what ``ScriptlessPopen`` uses (else start the ordinary way)."""
    return (popen_forkserver is not None and _close_fds is not None and hasattr(popen_forkserver.Popen, "_launch")
            and hasattr(forkserver, "connect_to_new_process") and hasattr(forkserver, "read_signed")
            and hasattr(spawn, "get_preparation_data"))


def preparation_data(name: str) -> dict[str, Any]:
    """multiprocessing's preparation data for a child named ``name``, without the main script."""
    data: dict[str, Any] = spawn.get_preparation_data(name)
    for key in MAIN_KEYS:
        data.pop(key, None)
    return data


if popen_forkserver is not None:

    class ScriptlessPopen(popen_forkserver.Popen):
        """``popen_forkserver.Popen`` whose child is not sent the main script's path."""

        def _launch(self, process_obj: Any) -> None:
            prep_data = preparation_data(process_obj._name)
            buf = io.BytesIO()
            context.set_spawning_popen(self)
            try:
                reduction.dump(prep_data, buf)
                reduction.dump(process_obj, buf)
            finally:
                context.set_spawning_popen(None)
            fds = self._fds  # type: ignore[attr-defined]  # popen_forkserver's, not in the type stubs
            self.sentinel, w = forkserver.connect_to_new_process(fds)
            # As the standard library does: a duplicate of the data pipe's write end
            # stays open in the parent; the child takes its EOF for the parent's death.
            parent_w = os.dup(w)
            self.finalizer = util.Finalize(self, _close_fds, (parent_w, self.sentinel))
            with open(w, "wb", closefd=True) as f:
                f.write(buf.getbuffer())
            self.pid = forkserver.read_signed(self.sentinel)

    class ScriptlessProcess(context.ForkServerProcess):
        """A fork-server process started with ``ScriptlessPopen``. The child unpickles
        this class: its module is in the fork server's preload (``launcher.PRELOAD``)."""

        @staticmethod
        def _Popen(process_obj: Any) -> Any:
            return ScriptlessPopen(process_obj)
