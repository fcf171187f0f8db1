"""Turning tracing on in a process: the SDK's tracer provider, its sampler and exporter
(ADR 0033). Called by ``bootstrap`` where workflows launch (``payerbridge serve``,
``payerbridge worker``), stopped (its last spans sent) where they shut down.

``off`` (the default) installs no provider: the SDK is not even imported, and only the
trace context is propagated. ``otlp`` sends spans in batches to an OpenTelemetry
collector over OTLP/HTTP (protobuf): to ``otlp_endpoint`` when given, else where the
standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` say
(the exporter reads them, and ``OTEL_EXPORTER_OTLP_HEADERS``, ``..._TIMEOUT`` and the
batch's ``OTEL_BSP_*``). ``log`` writes each finished span as a JSON log line, for a
look without a collector. Sampling follows the caller's decision; a trace we start is
kept with ``sample_ratio``'s probability.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, Protocol

from payerbridge.tracing.context import configure, is_propagating

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "TracingMode",
    "TracingSettings",
    "process_resource",
    "record_with",
    "start_tracing",
    "stop_tracing",
]

TracingMode = Literal["off", "otlp", "log"]
_provider: TracerProvider | None = None
_INSTANCE_ID = "service.instance.id"
_instance_id = str(uuid.uuid4())  # this process's; a forked child draws its own (below)


def _new_instance_id() -> None:
    global _instance_id
    _instance_id = str(uuid.uuid4())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_instance_id)


class TracingSettings(Protocol):
    """What of the settings (``config.Settings``) tracing reads."""

    @property
    def tracing(self) -> TracingMode: ...
    @property
    def trace_propagation(self) -> bool: ...
    @property
    def otlp_endpoint(self) -> str | None: ...
    @property
    def trace_sample_ratio(self) -> float: ...
    @property
    def worker_id(self) -> str: ...


def start_tracing(settings: TracingSettings, *, version: str) -> None:
    """Trace this process as ``settings`` say (replacing what an earlier call set up)."""
    stop_tracing()
    if settings.tracing == "off":
        configure(None, propagate=settings.trace_propagation)
        return
    record_with(
        _exporter(settings.tracing, settings.otlp_endpoint),
        propagate=settings.trace_propagation,
        sample_ratio=settings.trace_sample_ratio,
        resource={"service.version": version, **process_resource(settings.worker_id)},
    )


def process_resource(worker_id: str) -> dict[str, str | int]:
    """The resource attributes of this process: ``service.instance.id`` unique to it (a
    random UUID, as the semantic conventions advise: every process of a deployment may
    share a host, a worker id, and in time a pid), and what tells an operator which one
    it is: its host, its pid, its worker id. An ``OTEL_RESOURCE_ATTRIBUTES`` that names
    ``service.instance.id`` is kept."""
    attributes: dict[str, str | int] = {
        "host.name": socket.gethostname(),
        "process.pid": os.getpid(),
        "payerbridge.worker_id": worker_id,
    }
    given = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if not any(pair.split("=", 1)[0].strip() == _INSTANCE_ID for pair in given.split(",")):
        attributes[_INSTANCE_ID] = _instance_id
    return attributes


def _exporter(mode: TracingMode, otlp_endpoint: str | None) -> SpanExporter:
    if mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=otlp_endpoint)  # None: the OTEL_* variables
    from payerbridge.tracing.span_log import LogSpanExporter

    return LogSpanExporter()


def record_with(
    exporter: SpanExporter,
    *,
    propagate: bool = True,
    sample_ratio: float = 1.0,
    resource: Mapping[str, str | int] | None = None,
    batch: bool = True,
) -> None:
    """Record spans and hand them to ``exporter`` (in batches, off the request's path;
    ``batch=False``: each as it ends, for tests)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    global _provider
    stop_tracing()
    attributes = dict(resource or {})
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes.setdefault("service.name", "payerbridge")
    # Our own provider, not the global one: nothing else in the process (DBOS) starts
    # spans on it, and a test can set it up again.
    # Parent-based: a caller's decision stands. A trace we start was sampled already
    # (``tracing.context``, at ``sample_ratio``): the SDK is asked only for those we keep.
    provider = TracerProvider(
        resource=Resource.create(attributes), sampler=ParentBased(root=ALWAYS_ON)
    )
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    _provider = provider
    configure(provider.get_tracer("payerbridge"), propagate=propagate, sample_ratio=sample_ratio)


def stop_tracing() -> None:
    """Send the spans still buffered and stop recording; propagation stays as it was."""
    global _provider
    configure(None, propagate=is_propagating())
    provider, _provider = _provider, None
    if provider is not None:
        provider.shutdown()  # flushes the batch
