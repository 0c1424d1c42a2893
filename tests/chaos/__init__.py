"""Chaos tests: workers, parents and leases killed or stalled mid-stream.

Marked ``chaos`` (``pytest -m chaos``) and run by ``make test`` with the rest. Each
test draws its moments from ``random.Random`` with a fixed seed, printed at the
start (``CHAOS_SEED=<n>`` replays another), and checks the same four things: every
message whose send returned is applied, none is applied twice, every ask is
answered or fails with an ``ActorError``, and no process is left behind.
"""
