"""Naming a backend: ``"maildir"``, ``"memory"`` / ``"memory://NAME"``, or a Redis URL
(``redis://HOST:PORT/DB``, ``unix:///PATH/redis.sock``).

Kept apart from ``runtime.backends`` so the provisioning spec can check a name
without importing any backend.
"""

from __future__ import annotations

from .errors import InvalidSpec

#: The backends this version has, by name.
AVAILABLE = ("maildir", "memory", "redis")
#: The memory backend's location when no name is given.
DEFAULT_MEMORY = "memory://default"


def parse_backend(value: object) -> tuple[str, str | None]:
    """``(name, location)`` of a backend named by ``value``; ``location`` is None when
    the backend's own default applies (maildir: the home directory).

    Raises:
        InvalidSpec: not a name or URL of an available backend (the message names them).
    """
    if isinstance(value, str):
        if value == "maildir":
            return "maildir", None
        if value == "memory":
            return "memory", DEFAULT_MEMORY
        if value.startswith("memory://") and len(value) > len("memory://"):
            return "memory", value
        if value.startswith(("redis://", "unix://")):
            return "redis", value
    raise InvalidSpec("backend", f"{value!r} is not available (available: {', '.join(AVAILABLE)}; "
                                 "'memory' may be given as 'memory://NAME', "
                                 "'redis' as redis://HOST:PORT/DB or unix:///PATH/redis.sock)")
