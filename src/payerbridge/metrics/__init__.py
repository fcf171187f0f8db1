"""Metrics: what happens in each process (counters, histograms) and the state every
process shares (read from the database when scraped), exposed for Prometheus (ADR 0032).

An adapter below the edges and above the rooms: the edges and adapters record here, the
rooms never do (their audit events are counted once committed: ``metrics.events``)."""

from payerbridge.metrics.events import observe_events
from payerbridge.metrics.exposition import PlatformMetrics, serve_metrics, share_metrics
from payerbridge.metrics.process import (
    record_http,
    record_partner_call,
    record_worker_recovery,
    shared_directory,
    use_shared_directory,
)
from payerbridge.metrics.readings import Snapshot

__all__ = [
    "PlatformMetrics",
    "Snapshot",
    "observe_events",
    "record_http",
    "record_partner_call",
    "record_worker_recovery",
    "serve_metrics",
    "share_metrics",
    "shared_directory",
    "use_shared_directory",
]
