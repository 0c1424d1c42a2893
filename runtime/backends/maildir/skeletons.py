"""Actor directories made ahead of time, so that a spawn creates almost nothing.

A skeleton holds the mailbox (its directories, doorbell and in-flight marker) and the
spare files the first commits rewrite. A spawn claims one with one ``rename``: on
this file system every new inode costs up to ~1 ms while other processes churn files.
Skeletons are built under a temporary name and renamed to ``.spare-*`` only when
complete; scans skip dot-names.
"""

from __future__ import annotations

import os
import shutil

from ...durability import Durability
from .durable import Rewriter
from .layout import ADMITTED, INFLIGHT, SESSION, SUPERVISION, MailboxPaths, ProjectLayout
from .mailbox import make_mailbox_dirs

#: Name prefix of a ready-made actor directory.
SKELETON_PREFIX = ".spare-"
#: Name prefix of one being built (removed if a crash left it).
BUILDING_PREFIX = ".building-"
#: In a skeleton, the spare that becomes the actor's first lease record.
FABRIC_SPARE = "fabric-record.json"


def make_skeleton(layout: ProjectLayout, system_id: str, durability: Durability) -> str:
    """Build an empty actor directory, ready to be renamed into place; returns it."""
    children_dir = layout.children_dir(system_id)
    os.makedirs(children_dir, exist_ok=True)
    token = os.urandom(6).hex()
    building = os.path.join(children_dir, f"{BUILDING_PREFIX}{token}")
    os.mkdir(building)
    paths = MailboxPaths(os.path.join(building, "mailbox"))
    make_mailbox_dirs(paths)
    with open(os.path.join(paths.root, INFLIGHT), "wb"):
        pass
    for name in (SESSION, SUPERVISION, ADMITTED, FABRIC_SPARE):
        Rewriter(os.path.join(building, name), durability).prepare()
    ready = os.path.join(children_dir, f"{SKELETON_PREFIX}{token}")
    os.rename(building, ready)
    return ready


def claim_skeleton(layout: ProjectLayout, skeleton: str, system_id: str, actor_id: str) -> bool:
    """Rename a skeleton into place as ``actor_id``'s directory; returns whether it was.

    Its fabric spare moves to where the actor's first lease record will be written.
    """
    target = layout.child_dir(system_id, actor_id)
    try:
        os.rename(skeleton, target)
    except OSError:  # the directory appeared meanwhile; the skeleton stays unused
        return False
    try:
        os.rename(Rewriter(os.path.join(target, FABRIC_SPARE)).spare, Rewriter(layout.record(actor_id)).spare)
    except OSError:
        pass
    return True


def remove_unfinished(layout: ProjectLayout, system_id: str) -> None:
    """Delete half-built skeletons; only the system's owner may."""
    children_dir = layout.children_dir(system_id)
    if os.path.isdir(children_dir):
        for name in os.listdir(children_dir):
            if name.startswith(BUILDING_PREFIX):
                shutil.rmtree(os.path.join(children_dir, name), ignore_errors=True)


def ready_skeletons(layout: ProjectLayout, system_id: str) -> list[str]:
    """Skeletons left ready by an earlier run (reused, not rebuilt)."""
    children_dir = layout.children_dir(system_id)
    if not os.path.isdir(children_dir):
        return []
    return [os.path.join(children_dir, n) for n in sorted(os.listdir(children_dir))
            if n.startswith(SKELETON_PREFIX)]
