"""The original crate's ``ProvisionSpec``, read by a seed-protocol worker.

A bamboo-subagent parent starts its worker binary with fixed arguments, writes one
``ProvisionSpec`` JSON document (compact, no newline) to its stdin, closes it, and
polls ``fabric_dir`` until the worker's record appears. ``actors worker`` reads that
document too. It is recognised by its ``fabric_dir`` or ``executor`` field and is
translated into this project's spec::

    crate                                this project
    identity.child_id                 -> identity.child_id
    identity.parent_id                -> identity.system_id (the crate keeps a child
                                         under sessions/<parent_id>/children/<child_id>,
                                         where this project keeps a system's actors)
    identity.project_key              -> identity.project_key (else from fabric_dir)
    identity.role ("" = none)         -> identity.role
    identity.depth (root 0)           -> identity.depth (at least 1)
    fabric_dir = <home>/projects/<key>/fabric -> home, project_key
    workspace                         -> project_dir (informational)
    limits.idle_timeout_secs          -> limits.idle_timeout
    limits.run_timeout_secs           -> limits.handler_timeout
    secrets (the SecretsEnvelope)     -> secrets (the actor's ``self.secrets``, memory only)

Fields of this project's spec may be given in the same document (the crate ignores
fields it does not know): ``actor_class``, ``home``, ``backend``, ``durability``,
``identity.system_id``, ``identity.labels``... and win over the translation. The
crate's spec cannot name a Python class: ``actor_class`` comes from the document, or
from ``actors worker --actor-class`` (a fixed argument, like the crate's
``worker_args``). Every other crate field (``executor``, ``bus``, ``storage_dir``,
``model``, ``disabled_tools``, ``limits.max_rounds``, ``reusable``, ``placement``,
``capabilities``) has no meaning here: it is accepted, ignored, and named in a debug
log line.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .errors import InvalidSpec

log = logging.getLogger(__name__)

#: Top-level crate fields that have no meaning here.
IGNORED = ("executor", "bus", "storage_dir", "model", "disabled_tools", "reusable", "placement", "capabilities")
#: Fields of the project's identity a crate document may carry as extras.
_IDENTITY_EXTRAS = ("system_id", "labels")


def is_crate_spec(doc: Any) -> bool:
    """Whether a parsed spec is the crate's (it has ``fabric_dir`` or ``executor``)."""
    return isinstance(doc, dict) and ("fabric_dir" in doc or "executor" in doc)


def to_project_doc(doc: dict[str, Any], actor_class: str | None = None) -> dict[str, Any]:
    """The project-shaped spec document of a crate ``ProvisionSpec`` document.

    Raises:
        InvalidSpec: a part has the wrong type, ``fabric_dir`` is not where this
            project's worker would register (``<home>/projects/<key>/fabric``), or
            there is no parent (system) id.
    """
    identity = doc.get("identity")
    if not isinstance(identity, dict):
        raise InvalidSpec("identity", "the crate's spec has no identity object")
    found = doc.get("limits")
    limits: dict[str, Any] = found if isinstance(found, dict) else {}
    home, key = _home_and_key(doc.get("fabric_dir"))
    project_key = identity.get("project_key") or key
    system_id = identity.get("system_id") or identity.get("parent_id")
    if not system_id:
        raise InvalidSpec("identity.parent_id", "the crate's spec names no parent: it is the system the "
                                                "actor belongs to (sessions/<parent_id>/children/<child_id>)")
    role = identity.get("role")
    depth = identity.get("depth", 1)
    out: dict[str, Any] = {
        "version": 1,
        "identity": {"child_id": identity.get("child_id"), "parent_id": None, "system_id": system_id,
                     "project_key": project_key, "role": role or None,
                     "labels": identity.get("labels", []),
                     "depth": max(depth, 1) if isinstance(depth, int) and not isinstance(depth, bool) else depth},
        "home": doc.get("home") or home,
        "project_dir": doc.get("project_dir") or doc.get("workspace") or "",
        "limits": _limits(limits),
        "secrets": doc.get("secrets") if isinstance(doc.get("secrets"), dict) else {},
    }
    if actor_class or doc.get("actor_class"):
        out["actor_class"] = doc.get("actor_class") or actor_class
    for name in ("backend", "durability", "restart", "on_poison", "mailbox"):
        if name in doc:
            out[name] = doc[name]
    if limits:
        out["limits"].update({k: v for k, v in limits.items() if not k.endswith("_secs") and k != "max_rounds"})
    if not out["home"]:
        raise InvalidSpec("fabric_dir", f"{doc.get('fabric_dir')!r:.200} is not <home>/projects/<key>/fabric "
                                        "and the spec names no home: the worker would register elsewhere")
    if home and os.path.abspath(out["home"]) != os.path.abspath(home):
        raise InvalidSpec("fabric_dir", f"{doc.get('fabric_dir')!r} is not the fabric of home {out['home']!r}: "
                                        "the crate parent would never see the worker register")
    if key and project_key != key:
        raise InvalidSpec("fabric_dir", f"{doc.get('fabric_dir')!r} is not the fabric of project {project_key!r}")
    ignored = [name for name in IGNORED if name in doc] + (["limits.max_rounds"] if "max_rounds" in limits else [])
    if ignored:
        log.debug("crate spec of %s: ignoring fields with no meaning here: %s", identity.get("child_id"),
                  ", ".join(ignored))
    return out


def _home_and_key(fabric_dir: Any) -> tuple[str, str]:
    """``(home, project key)`` of a ``<home>/projects/<key>/fabric`` directory
    (``("", "")`` when there is none or it is elsewhere)."""
    if fabric_dir is None:
        return "", ""
    if not isinstance(fabric_dir, str) or not fabric_dir:
        raise InvalidSpec("fabric_dir", f"{fabric_dir!r:.80} is not a directory name")
    path = os.path.normpath(os.path.abspath(fabric_dir))
    fabric, (projects, key) = os.path.basename(path), os.path.split(os.path.dirname(path))
    if fabric != "fabric" or os.path.basename(projects) != "projects" or not key:
        return "", ""
    return os.path.dirname(projects), key


def _limits(limits: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for crate_name, name in (("idle_timeout_secs", "idle_timeout"), ("run_timeout_secs", "handler_timeout")):
        value = limits.get(crate_name)
        if value is not None:
            out[name] = value
    return out
