"""What a fleet leaves behind to be observed: per-actor counters and failure records.

Both live in the actor's session meta and are committed with the turn that changed
them, so any process that can read the session (``actors inspect``, ``actors
dashboard``) sees them, with or without the fleet's parent running, and they survive
every restart of the worker. The worker writes them (``counters``, ``failures``);
the CLI reads them through ``SessionStore.load_session``.
"""

from .counters import BUCKETS, COUNTERS_KEY, TurnCounters
from .failures import FAILURES_KEPT, FAILURES_KEY, failures_of, record_failure

__all__ = ["BUCKETS", "COUNTERS_KEY", "FAILURES_KEPT", "FAILURES_KEY", "TurnCounters", "failures_of",
           "record_failure"]
