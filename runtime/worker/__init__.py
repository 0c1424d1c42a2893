"""The child side: one actor per worker process.

Where to look: ``activation`` (the ``Worker``: claim, restore, recover, start,
register, finish), ``loop`` (drain -> admit -> dispatch -> COMMIT -> ACK), ``state``
(the commit), ``dispatch`` (one handler call), ``replies`` (what a handler sends and
waits for), ``poison``, ``cancellation``, ``lease``, and the two entries:
``pipe_entry`` (started by a system) and ``seed_entry`` (spec on stdin).
"""

from .activation import Worker, serve
from .handler import Context, Handler, import_class
from .replies import ask_system, error_from_reply, request_activation

__all__ = ["Context", "Handler", "Worker", "ask_system", "error_from_reply", "import_class", "request_activation", "serve"]
