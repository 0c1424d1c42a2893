"""Imported by the fork server (``launcher.PRELOAD``): a worker's codecs, run there.

A forked worker's first pass through code is slow: the interpreter specialises a
function's bytecode after its first calls (writing into the code object, which then
copies its page in the child), and caches fill on first use. Run once here, in the
server, every worker forked from it inherits them specialised and filled: the
first decode of its spec, of its first message and the encode of the reply cost a
cold worker ~0.5-0.7 ms less (measured: ``pipe_entry.warm_codecs`` in a fresh child,
2.3-2.4 ms against 1.6-1.7 when the server ran it first).

Only codecs run (no file, descriptor or environment is touched), and any failure is
swallowed: the fork server imports its preload catching ``ImportError`` only, and a
lost warm-up costs nothing but speed. Message ids the codecs made here are not
reused by a child: ``messages`` drops its random digits after a fork.
"""

from __future__ import annotations

import logging

from .pipe_entry import warm_codecs

log = logging.getLogger(__name__)

#: Passes through the codecs: CPython 3.11 specialises a function's bytecode after
#: its eighth call.
PASSES = 20


def warm() -> bool:
    """Run the codecs ``PASSES`` times; returns whether they ran without an error."""
    try:
        for _ in range(PASSES):
            warm_codecs()
    except Exception as exc:  # only a lost speed-up; a worker reports real trouble itself
        log.debug("fork server: warming the codecs failed: %s", exc)
        return False
    return True


#: Whether the import ran them (see ``warm``).
WARMED = warm()
