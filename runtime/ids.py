"""The one validator for actor and system ids.

An id becomes a path component (``children/<id>/``, ``fabric/<id>.json``), so it must
be a single safe component. Every entry point that builds a path from an id calls
:func:`check_id` first; nothing else decides what an id may be.
"""

from __future__ import annotations

import re

from .errors import InvalidSpec

#: A single path component: starts with a letter or digit, at most 128 characters.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def is_valid_id(value: object) -> bool:
    """Return whether ``value`` is an acceptable actor id."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def check_id(value: object, what: str = "actor id") -> str:
    """Return ``value`` if it is a valid id.

    Raises:
        InvalidSpec: (also a ``ValueError``) naming the id and the rule it broke.
    """
    if is_valid_id(value):
        return value  # type: ignore[return-value]
    if not isinstance(value, str):
        reason = f"{value!r} is a {type(value).__name__}, not a string"
    elif not value:
        reason = "it is empty"
    elif len(value) > 128:
        reason = f"{value[:20]!r}... is {len(value)} characters long (at most 128)"
    else:
        reason = (
            f"{value!r} must be one path component: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    raise InvalidSpec(what, reason)
