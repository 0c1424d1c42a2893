"""Actor directories made ahead of time, so that a spawn creates almost nothing.

A skeleton holds the mailbox (its directories, doorbell and in-flight marker) and the
spare files the first commits rewrite. A spawn claims one with one ``rename``: on
this file system every new inode costs up to ~1 ms while other processes churn files.
Skeletons are built under a temporary name and renamed to ``.spare-*`` only when
complete; scans skip dot-names. Failures are ``StoreError``: a system does without
skeletons (a spawn then makes the actor's directory itself).
"""

from __future__ import annotations

import os
import shutil

from ...durability import PROCESS, Durability
from ...errors import StoreError
from .durable import DIR_MODE, Rewriter, is_real_dir, make_dirs, write_file
from .layout import ADMITTED, INFLIGHT, SESSION, SUPERVISION, MailboxPaths, ProjectLayout
from .mailbox import make_mailbox_dirs

#: Name prefix of a ready-made actor directory.
SKELETON_PREFIX = ".spare-"
#: Name prefix of one being built (removed if a crash left it).
BUILDING_PREFIX = ".building-"
#: In a skeleton, the spare that becomes the actor's first lease record.
FABRIC_SPARE = "fabric-record.json"


def make_skeleton(layout: ProjectLayout, system_id: str, durability: Durability) -> str:
    """Build an empty actor directory, ready to be renamed into place; returns it.

    Raises:
        StoreError: it cannot be built (what was built of it stays as debris that
            ``remove_unfinished`` deletes).
    """
    children_dir = layout.children_dir(system_id)
    try:
        make_dirs(children_dir)
        token = os.urandom(6).hex()
        building = os.path.join(children_dir, f"{BUILDING_PREFIX}{token}")
        os.mkdir(building, DIR_MODE)
        paths = MailboxPaths(os.path.join(building, "mailbox"))
        make_mailbox_dirs(paths)
        write_file(os.path.join(paths.root, INFLIGHT), b"", PROCESS)
        for name in (SESSION, SUPERVISION, ADMITTED, FABRIC_SPARE):
            Rewriter(os.path.join(building, name), durability).prepare()
        ready = os.path.join(children_dir, f"{SKELETON_PREFIX}{token}")
        os.rename(building, ready)
    except OSError as exc:
        raise StoreError(children_dir, f"cannot prepare an actor's directory: {exc.strerror or exc}") from exc
    return ready


def claim_skeleton(layout: ProjectLayout, skeleton: str, system_id: str, actor_id: str) -> bool:
    """Rename a skeleton into place as ``actor_id``'s directory; returns whether it was.

    Its fabric spare moves to where the actor's first lease record will be written
    (unless ``fabric/`` is not a directory of its own: nothing moves out of the home).
    """
    target = layout.child_dir(system_id, actor_id)
    try:
        os.rename(skeleton, target)
    except OSError:  # the directory appeared meanwhile; the skeleton stays unused
        return False
    if is_real_dir(layout.fabric):
        try:
            os.rename(Rewriter(os.path.join(target, FABRIC_SPARE)).spare, Rewriter(layout.record(actor_id)).spare)
        except OSError:
            pass
    return True


def _names(children_dir: str, prefix: str) -> list[str]:
    """The paths in ``children_dir`` whose names start with ``prefix``, sorted.

    Raises:
        StoreError: it cannot be listed.
    """
    try:
        return [os.path.join(children_dir, n) for n in sorted(os.listdir(children_dir)) if n.startswith(prefix)]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(children_dir, f"cannot list: {exc.strerror or exc}") from exc


def remove_unfinished(layout: ProjectLayout, system_id: str) -> None:
    """Delete half-built skeletons; only the system's owner may.

    Raises:
        StoreError: the system's actors cannot be listed.
    """
    for path in _names(layout.children_dir(system_id), BUILDING_PREFIX):
        shutil.rmtree(path, ignore_errors=True)


def ready_skeletons(layout: ProjectLayout, system_id: str) -> list[str]:
    """Skeletons left ready by an earlier run (reused, not rebuilt).

    Raises:
        StoreError: the system's actors cannot be listed.
    """
    return _names(layout.children_dir(system_id), SKELETON_PREFIX)
