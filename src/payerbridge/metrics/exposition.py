"""What a scrape answers: this process's metrics (or, in multiprocess mode, every
process's on this host) and the database's shared state, in Prometheus's text format or
OpenMetrics as the scraper asks; served on ``/metrics`` behind the operator scope, and
on a listener of its own for a scraper on a private network (``serve_metrics``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from payerbridge.config import Settings
from payerbridge.errors import InvalidInput, Issue
from payerbridge.metrics.database import DatabaseCollector
from payerbridge.metrics.process import process_metrics, shared_directory, use_shared_directory
from payerbridge.metrics.readings import ReadingsSource, Snapshot, take_snapshot
from payerbridge.routing.model import Partner

__all__ = ["PlatformMetrics", "serve_metrics", "share_metrics"]

logger = logging.getLogger(__name__)


class _ThisProcess:
    """This process's counters, whichever ``ProcessMetrics`` is current when scraped."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from process_metrics().registry.collect()


class PlatformMetrics:
    """The platform's metrics: the shared state (``snapshot()``, which the console also
    reads) and the exposition that adds this process's counters to it."""

    def __init__(
        self,
        source: ReadingsSource,
        partners: Callable[[], Sequence[Partner]],
        clock: Callable[[], datetime],
        *,
        obligations: Sequence[str] = (),
    ) -> None:
        """``obligations``: the ids of the rule's clocks this deployment keeps, each
        given in the gauges even while none of its rows is open."""
        self._source, self._partners, self._clock = source, partners, clock
        self.database = DatabaseCollector(self.snapshot, obligations=obligations)
        self._registry: CollectorRegistry | None = None

    def snapshot(self) -> Snapshot:
        """The shared state now, read from the database."""
        return take_snapshot(self._source, self._partners, now=self._clock())

    @property
    def registry(self) -> CollectorRegistry:
        """Built at the first scrape: by then the process has chosen its mode."""
        if self._registry is None:
            # Collectors that read when scraped name no series beforehand; name[] filters
            # their answer too.
            registry = CollectorRegistry(support_collectors_without_names=True)
            directory = shared_directory()
            if directory is not None:  # every process's files, summed
                MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
            else:
                registry.register(_ThisProcess())
                ProcessCollector(registry=registry)  # CPU, memory, open files
            registry.register(self.database)
            self._registry = registry
        return self._registry

    def samples(self, names: Sequence[str] = ()) -> list[tuple[str, dict[str, str], float]]:
        """The exposition as plain values, each sample's name, labels and value (only the
        series ``names`` when given): what the console charts, from the same numbers a
        scrape gets (in multiprocess mode, every process's counters)."""
        registry: Any = self.registry.restricted_registry(names) if names else self.registry
        return [
            (sample.name, dict(sample.labels), sample.value)
            for family in registry.collect()
            for sample in family.samples
        ]

    def render(self, accept: str | None, names: Sequence[str] = ()) -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics when ``accept`` asks for it),
        only the series ``names`` when given, and its media type."""
        encoder, media_type = choose_encoder(accept or "")
        registry: Any = self.registry.restricted_registry(names) if names else self.registry
        return encoder(registry), media_type


def serve_metrics(metrics: PlatformMetrics, *, host: str, port: int) -> Any:
    """Serve the exposition on ``host:port`` from a thread of its own, without
    authentication: for a scraper on a private network. The server, to shut down;
    InvalidInput naming the setting when the address cannot be bound."""
    try:
        server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        text = f"the metrics listener cannot listen on {host}:{port} ({exc.strerror})"
        raise InvalidInput(text, issues=[Issue(text, "PAYERBRIDGE_METRICS_PORT")]) from exc
    logger.info("metrics listener started", extra={"host": host, "port": port})
    return server


def share_metrics(settings: Settings) -> None:
    """This process's counters in the host's shared directory (multiprocess mode), when
    ``metrics_multiprocess`` or prometheus-client's own ``PROMETHEUS_MULTIPROC_DIR`` asks
    for it. ``serve`` and ``worker`` call it before anything is counted."""
    directory = settings.data_dir / "metrics" if settings.metrics_multiprocess else None
    directory = directory or shared_directory()
    if directory is not None:
        use_shared_directory(directory.resolve())
