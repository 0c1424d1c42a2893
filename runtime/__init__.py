"""The durable machinery behind ``actors``: messages, mailboxes, fabric, store, worker.

Installed as ``actors_runtime`` (the repository keeps it in ``runtime/``), so a user's
own ``runtime`` module never shadows it. Internal: it never imports ``actors`` and may
change between releases.
"""

import logging

# A library configures no logging of its own; the application decides (see the guide).
logging.getLogger(__name__).addHandler(logging.NullHandler())
