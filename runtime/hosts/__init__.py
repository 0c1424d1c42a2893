"""Hosts of pools: processes that run the actors systems place on their pool
(``actors host``; see ``host``), on the Redis backend."""

from .host import DEFAULT_HOST_LEASE, Host
from .machine import DEFAULT_WARM, default_host_id, import_error

__all__ = ["DEFAULT_HOST_LEASE", "DEFAULT_WARM", "Host", "default_host_id", "import_error"]
