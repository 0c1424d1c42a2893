"""``/metrics``: a fleet's figures in the Prometheus text format (``prometheus_client``).

The figures are read at each scrape (``fleet.snapshot``), not kept in this process:
the counters come from each actor's last commit, so they survive restarts of the
workers, of the fleet's parent and of the dashboard alike. ``prometheus_client`` is
an extra (``pip install 'durable-actors[metrics]'``); without it ``/metrics`` says so
and the rest of the dashboard works.

Metrics (labels ``actor``, ``system``, ``host``; ``actors_active`` has no ``actor``)::

    actors_messages_handled_total   counter    turns run to the end, failed ones included
    actors_messages_failed_total    counter    turns whose handler raised
    actors_redeliveries_total       counter    messages handed out again after their activation ended
    actors_handler_seconds          histogram  time of a turn (handler and its reply)
    actors_restarts_total           counter    restarts by the supervisor
    actors_mailbox_pending          gauge      messages not yet acked
    actors_mailbox_oldest_seconds   gauge      age of the oldest of them (0 when none)
    actors_dead_letters             gauge      messages in the dead letters
    actors_active                   gauge      actors running (live lease), per system and host
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

from actors_runtime.observe import BUCKETS

from .fleet import ActorSnapshot

#: What ``/metrics`` answers without ``prometheus_client``.
MISSING = ("prometheus_client is not installed, so there are no metrics here: "
           "pip install 'durable-actors[metrics]'\n")

_LABELS = ["actor", "system", "host"]


class MetricsUnavailable(Exception):
    """``prometheus_client`` cannot be imported."""


def metrics_text(snapshots: list[ActorSnapshot]) -> tuple[bytes, str]:
    """The exposition of ``snapshots`` and its content type.

    Raises:
        MetricsUnavailable: ``prometheus_client`` is not installed.
    """
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    except ImportError:
        raise MetricsUnavailable(MISSING) from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FleetCollector(snapshots))
    return generate_latest(registry), str(CONTENT_TYPE_LATEST)


class _FleetCollector:
    """A collector of one snapshot (a registry is made per scrape)."""

    def __init__(self, snapshots: list[ActorSnapshot]) -> None:
        self.snapshots = snapshots

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        handled = CounterMetricFamily("actors_messages_handled", "Turns run to the end, failed ones included.",
                                      labels=_LABELS)
        failed = CounterMetricFamily("actors_messages_failed", "Turns whose handler raised.", labels=_LABELS)
        redelivered = CounterMetricFamily("actors_redeliveries",
                                          "Messages handed out again after their activation ended.", labels=_LABELS)
        seconds = HistogramMetricFamily("actors_handler_seconds", "Time of a turn (handler and reply).",
                                        labels=_LABELS)
        restarts = CounterMetricFamily("actors_restarts", "Restarts by the supervisor.", labels=_LABELS)
        pending = GaugeMetricFamily("actors_mailbox_pending", "Messages not yet acked.", labels=_LABELS)
        oldest = GaugeMetricFamily("actors_mailbox_oldest_seconds", "Age of the oldest message not yet acked.",
                                   labels=_LABELS)
        dead = GaugeMetricFamily("actors_dead_letters", "Messages in the dead letters.", labels=_LABELS)
        active = GaugeMetricFamily("actors_active", "Actors running (a live lease).", labels=["system", "host"])
        running: Counter[tuple[str, str]] = Counter()
        for snap in self.snapshots:
            row, counters = snap.row, snap.counters
            labels = [row["id"], row["system"] or "", row["host"]]
            handled.add_metric(labels, counters.handled)
            failed.add_metric(labels, counters.failed)
            redelivered.add_metric(labels, counters.redeliveries)
            cumulative, buckets = 0, []
            for bound, count in zip([*map(repr, BUCKETS), "+Inf"], counters.buckets):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            seconds.add_metric(labels, buckets, counters.seconds_sum)
            restarts.add_metric(labels, row["restarts"])
            if row["pending"] is not None:
                pending.add_metric(labels, row["pending"])
                oldest.add_metric(labels, row["oldest_s"] or 0.0)
            if row["dead"] is not None:
                dead.add_metric(labels, row["dead"])
            running[(row["system"] or "", row["host"])] += row["status"] == "running"
        for (system_id, host), count in sorted(running.items()):
            active.add_metric([system_id, host], count)
        yield from (handled, failed, redelivered, seconds, restarts, pending, oldest, dead, active)
