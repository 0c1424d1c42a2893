"""A module whose import hangs on the host named "stuck" while the file named by
``STUCK_FLAG`` exists (it writes ``<flag>.importing`` first); elsewhere it is
``host_actors``' Counter."""

from __future__ import annotations

import os
import time

from host_actors import Counter

if os.environ.get("ACTORS_HOST_ID") == "stuck":
    open(os.environ["STUCK_FLAG"] + ".importing", "w").close()
    while os.path.exists(os.environ["STUCK_FLAG"]):
        time.sleep(0.01)

__all__ = ["Counter"]
