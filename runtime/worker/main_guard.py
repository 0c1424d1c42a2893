"""A fleet script without ``if __name__ == "__main__":``: one error that names the fix.

Under the "forkserver" (default) and "spawn" start methods, multiprocessing starts
a worker by re-running the parent's main script as ``__mp_main__``, so that classes
defined in it can be found. A script that builds its ``ActorSystem`` at top level
then builds one again in every worker, before the worker has read its spec: the
second one finds its system locked ("already running in another process"), the
worker dies, and the parent's spawn fails with "exited before registering". Neither
says what to do. (Under the fork server, only workers whose actor class is defined
in the script, and warm-pool workers, re-run it: ``runtime.parent.scriptless``.)

So ``ActorSystem()`` calls ``refuse_in_bootstrap`` first. In a process that
multiprocessing is still bootstrapping (the flag it sets for its own check,
``_check_not_importing_main``), a worker this runtime started exits at once, quietly,
with ``EXIT_UNGUARDED_MAIN``; its parent turns that code into one ``SpawnError``
naming the guard (``unguarded_reason``). Any other process being bootstrapped (the
user's own multiprocessing) gets ``WrongContext`` with the same advice.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

from ..errors import WrongContext

#: Names of the worker processes this runtime starts (``Launcher.start``) begin so.
WORKER_NAME_PREFIX = "actor-"
#: Exit code of a worker whose bootstrap re-ran a main script that builds a system
#: (sysexits' EX_CONFIG: the program is set up wrong, not the actor).
EXIT_UNGUARDED_MAIN = 78
#: What to do about it.
FIX = 'put the script\'s entry point (the ActorSystem and what uses it) under `if __name__ == "__main__":`'


def refuse_in_bootstrap() -> None:
    """Refuse to build a system while multiprocessing bootstraps this process.

    Raises:
        WrongContext: in a process being bootstrapped that is not one of our workers
            (ours exit with ``EXIT_UNGUARDED_MAIN`` instead, and never return).
    """
    process = multiprocessing.current_process()
    if not getattr(process, "_inheriting", False):
        return
    if process.name.startswith(WORKER_NAME_PREFIX):
        os._exit(EXIT_UNGUARDED_MAIN)  # the parent says why, once; nothing else to clean up yet
    raise WrongContext("ActorSystem()", f"created while multiprocessing starts this process by re-running "
                       f"the main script {_main_path('__mp_main__')}: {FIX}")


def unguarded_reason() -> str:
    """The parent's explanation of a worker that exited with ``EXIT_UNGUARDED_MAIN``."""
    return (f"its worker re-ran this program's main script {_main_path('__main__')}, which creates an ActorSystem "
            f"at its top level: {FIX}")


def _main_path(name: str) -> str:
    main = sys.modules.get(name) or sys.modules.get("__main__")
    return str(getattr(main, "__file__", None) or "(the main module)")
